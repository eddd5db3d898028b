/* libsbx public API: the isolation core shared by sbxrun and sbx-apid. */
#ifndef SBX_H
#define SBX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SBX_PUBLIC __attribute__((visibility("default")))

#define SBX_VERSION "0.1.0"

/* Error object (crun convention): functions take `sbx_error_t *err` last, return a
 * negative value on failure and set *err; 0 or a positive value on success.
 *
 * `code` says what kind of failure it is, for callers that must answer on a wire (sbx-apid turns
 * it into an HTTP status and an API code); the message is for people and is never parsed. It is
 * a pointer to a static string rather than an enum so that one field carries both libsbx's own
 * few categories (SBX_ERR_* below, the only names libsbx knows) and a caller's vocabulary (apid
 * stores its wire codes, "SANDBOX::NOT_FOUND", in the same field) without libsbx learning the
 * caller's names. Compare codes with strcmp. NULL: no category (an internal failure).
 * sbx_error_wrap adds context to the message and keeps code and status, so wrapping never
 * changes what a caller answers. */
struct sbx_error_s {
    int status; /* errno value, 0 when not errno-related */
    char *msg;
    const char *code; /* static string or NULL; see above */
};
typedef struct sbx_error_s *sbx_error_t;

/* libsbx's categories, set where a caller can act on them:
 * NOT_FOUND: the named object (an image in the store) does not exist;
 * BUSY: the object is in use (an image a sandbox runs, a sandbox not stopped);
 * LIMIT: a requested resource limit is invalid or cannot be enforced here. The message names
 * the limit by what it is ("memory limit"), never by a CLI option: each caller names its own
 * option for it when it reports (sbxrun run says --memory). */
#define SBX_ERR_NOT_FOUND "sbx.not_found"
#define SBX_ERR_BUSY "sbx.busy"
#define SBX_ERR_LIMIT "sbx.limit"

SBX_PUBLIC int sbx_make_error(sbx_error_t *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* sbx_make_error with a code (a static string: SBX_ERR_* or a caller's own). */
SBX_PUBLIC int sbx_make_error_code(sbx_error_t *err, const char *code, int status, const char *fmt,
                                   ...) __attribute__((format(printf, 4, 5)));
SBX_PUBLIC int sbx_error_wrap(sbx_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The error's code, or NULL (also for no error). */
SBX_PUBLIC const char *sbx_error_code(const sbx_error_t err);
/* Whether err is set and carries this code. */
SBX_PUBLIC bool sbx_error_is(const sbx_error_t err, const char *code);
SBX_PUBLIC void sbx_error_release(sbx_error_t *err);
/* Prints "PROG: msg" to stderr and releases the error. */
SBX_PUBLIC void sbx_error_print(const char *prog, sbx_error_t *err);

/* An OCI runtime-spec config.json, parsed (see spec.h for the layout). */
typedef struct sbx_spec sbx_spec_t;

#endif
