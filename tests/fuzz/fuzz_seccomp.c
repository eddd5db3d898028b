/* fuzz_seccomp: seccomp profile JSON (OCI linux.seccomp, Docker's format) -> BPF with
 * sbx_seccomp_compile() (runtime/lib/seccomp.c): the JSON -> rules parsing, the rules libseccomp
 * compiles, and the prefix sbx writes itself (the ENOSYS check and the conditional "override"
 * rules with their patched jumps). Each input is parsed as JSON (duplicates refused, as profiles
 * are loaded) and compiled with the real libseccomp (not instrumented: coverage guides through
 * seccomp.c only).
 * Checks: the error convention, and that a compiled program is one the kernel would load, since
 * sbx loads it in the child after clone with no way to report a bad one well: 1..4096
 * instructions, only the classic-BPF instructions seccomp allows, word loads inside
 * struct seccomp_data, every jump landing inside the program, and a return as the last
 * instruction (what the kernel's bpf_check_classic() and seccomp_check_filter() test). */
#include "fuzz.h"
#include "seccomp.h"
#include "utils.h"

#include <linux/filter.h>
#include <linux/seccomp.h>

static void
check_program(const struct sbx_bpf *bpf)
{
    FUZZ_CHECK(bpf->insns != NULL && bpf->len >= 1 && bpf->len <= 4096);
    for (size_t pc = 0; pc < bpf->len; pc++) {
        const struct sock_filter *f = &bpf->insns[pc];
        size_t left = bpf->len - pc - 1; /* instructions after this one */
        switch (f->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            FUZZ_CHECK(f->k < sizeof(struct seccomp_data) && f->k % 4 == 0);
            break;
        case BPF_LD | BPF_W | BPF_LEN:
        case BPF_LDX | BPF_W | BPF_LEN:
        case BPF_LD | BPF_IMM:
        case BPF_LDX | BPF_IMM:
        case BPF_MISC | BPF_TAX:
        case BPF_MISC | BPF_TXA:
        case BPF_RET | BPF_K:
        case BPF_RET | BPF_A: break;
        case BPF_LD | BPF_MEM:
        case BPF_LDX | BPF_MEM:
        case BPF_ST:
        case BPF_STX: FUZZ_CHECK(f->k < BPF_MEMWORDS); break;
        case BPF_ALU | BPF_ADD | BPF_K:
        case BPF_ALU | BPF_SUB | BPF_K:
        case BPF_ALU | BPF_MUL | BPF_K:
        case BPF_ALU | BPF_AND | BPF_K:
        case BPF_ALU | BPF_OR | BPF_K:
        case BPF_ALU | BPF_XOR | BPF_K:
        case BPF_ALU | BPF_LSH | BPF_K:
        case BPF_ALU | BPF_RSH | BPF_K:
        case BPF_ALU | BPF_ADD | BPF_X:
        case BPF_ALU | BPF_SUB | BPF_X:
        case BPF_ALU | BPF_MUL | BPF_X:
        case BPF_ALU | BPF_AND | BPF_X:
        case BPF_ALU | BPF_OR | BPF_X:
        case BPF_ALU | BPF_XOR | BPF_X:
        case BPF_ALU | BPF_LSH | BPF_X:
        case BPF_ALU | BPF_RSH | BPF_X:
        case BPF_ALU | BPF_DIV | BPF_X:
        case BPF_ALU | BPF_MOD | BPF_X:
        case BPF_ALU | BPF_NEG: break;
        case BPF_ALU | BPF_DIV | BPF_K:
        case BPF_ALU | BPF_MOD | BPF_K: FUZZ_CHECK(f->k != 0); break;
        case BPF_JMP | BPF_JA: FUZZ_CHECK(f->k < left); break;
        case BPF_JMP | BPF_JEQ | BPF_K:
        case BPF_JMP | BPF_JGT | BPF_K:
        case BPF_JMP | BPF_JGE | BPF_K:
        case BPF_JMP | BPF_JSET | BPF_K:
        case BPF_JMP | BPF_JEQ | BPF_X:
        case BPF_JMP | BPF_JGT | BPF_X:
        case BPF_JMP | BPF_JGE | BPF_X:
        case BPF_JMP | BPF_JSET | BPF_X: FUZZ_CHECK(f->jt < left && f->jf < left); break;
        default:
            fprintf(stderr, "fuzz_seccomp: instruction %zu has code %#x\n", pc, f->code);
            FUZZ_CHECK(!"an instruction seccomp accepts");
        }
    }
    uint16_t last = bpf->insns[bpf->len - 1].code;
    FUZZ_CHECK(last == (BPF_RET | BPF_K) || last == (BPF_RET | BPF_A));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return 0;
    struct sbx_bpf bpf = {0};
    sbx_error_t err = NULL;
    int r = sbx_seccomp_compile(j, &bpf, &err);
    FUZZ_CHECK_ERR(r, err);
    if (r == 0)
        check_program(&bpf);
    else
        FUZZ_CHECK(bpf.insns == NULL && bpf.len == 0);
    sbx_bpf_free(&bpf);
    sbx_error_release(&err);
    json_decref(j);
    return 0;
}
