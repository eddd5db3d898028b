/* Shared by the libFuzzer harnesses in tests/fuzz/ (one per parser family, README "Tests").
 * Each harness feeds libFuzzer's bytes to one family of parsers of untrusted input and checks,
 * beyond what ASan, UBSan and the leak checker catch, the promises those parsers make to their
 * callers; a broken promise aborts, which libFuzzer records as a crash. Harnesses are
 * deterministic (no clock, no randomness) and free everything they allocate. */
#ifndef SBX_FUZZ_H
#define SBX_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The crun convention (sbx.h): a negative return sets *err, anything else leaves it unset. */
#define FUZZ_CHECK_ERR(r, err)                                                                     \
    FUZZ_CHECK((r) < 0 ? (err) != NULL && (err)->msg != NULL : (err) == NULL)

/* The input as a C string: bytes up to the first NUL, as a C caller would see them. */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
