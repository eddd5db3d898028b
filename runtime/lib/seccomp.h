/* Seccomp: OCI/Docker JSON profiles compiled to BPF with libseccomp in the parent; the child only
 * loads the raw program (libseccomp never runs after clone). */
#ifndef SBX_SECCOMP_H
#define SBX_SECCOMP_H

#include "sbx.h"
#include <jansson.h>
#include <linux/filter.h>

struct sbx_bpf {
    struct sock_filter *insns;
    size_t len; /* number of instructions */
};

/* Resolves a profile by name ("default", "strict", "none") from the embedded copies / the profiles
 * directory, or by path. Returns a new reference, or NULL in *out for "none". */
int sbx_seccomp_profile_load(const char *name_or_path, json_t **out, sbx_error_t *err);
/* Compiles an OCI `linux.seccomp` object. Always filters by architecture: other ABIs (i386, x32)
 * are killed unless the profile lists them. */
int sbx_seccomp_compile(json_t *oci_seccomp, struct sbx_bpf *out, sbx_error_t *err);
/* Shared by the seccomp and capability profiles: a name is looked up as `DIR/NAME.json` among the
 * files embedded at build time (scripts/embed.sh); anything containing '/' is a path. `kind` only
 * appears in error messages. */
int sbx_profile_load_json(const char *kind, const char *dir, const char *name_or_path, json_t **out,
                          sbx_error_t *err);
/* The embedded text of built-in profile `name` ("default", "strict"), or NULL. */
const char *sbx_seccomp_builtin_text(const char *name, size_t *len);
/* The workload's filter of a spec: its linux.seccomp, or the built-in profile its annotation
 * run.sbx.seccomp names (parsed only when not cached), or none (out->len 0). With a cache_dir,
 * compiled filters are kept there (seccomp_cache.c). */
int sbx_seccomp_compile_spec(const sbx_spec_t *s, const char *cache_dir, struct sbx_bpf *out,
                             sbx_error_t *err);
void sbx_bpf_free(struct sbx_bpf *bpf);
/* Child side, async-signal-safe: installs the program (NNP must be set, or CAP_SYS_ADMIN held). */
int sbx_seccomp_apply(const struct sbx_bpf *bpf);
/* The sandbox init's own, much tighter filter (only what its loop calls), or the workload's on
 * an architecture without one. */
int sbx_seccomp_apply_init(const struct sbx_bpf *workload_bpf);

#endif
