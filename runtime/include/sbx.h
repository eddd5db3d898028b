/* libsbx public API: the isolation core shared by sbxrun and sbx-apid. */
#ifndef SBX_H
#define SBX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SBX_PUBLIC __attribute__((visibility("default")))

#define SBX_VERSION "0.1.0"

/* Error object (crun convention): functions take `sbx_error_t *err` last, return a
 * negative value on failure and set *err; 0 or a positive value on success. */
struct sbx_error_s {
    int status; /* errno value, 0 when not errno-related */
    char *msg;
};
typedef struct sbx_error_s *sbx_error_t;

SBX_PUBLIC int sbx_make_error(sbx_error_t *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
SBX_PUBLIC int sbx_error_wrap(sbx_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
SBX_PUBLIC void sbx_error_release(sbx_error_t *err);
/* Prints "PROG: msg" to stderr and releases the error. */
SBX_PUBLIC void sbx_error_print(const char *prog, sbx_error_t *err);

/* An OCI runtime-spec config.json, parsed (see spec.h for the layout). */
typedef struct sbx_spec sbx_spec_t;

#endif
