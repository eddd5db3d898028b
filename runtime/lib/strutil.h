/* String helpers with one copy for all of sbx: libsbx, apid, the client and the static sbx-agent
 * compile them. The agent runs in any rootfs and links nothing but libc and a static jansson, so
 * nothing here may use another library, libsbx's aborting allocators or global state. */
#ifndef SBX_STRUTIL_H
#define SBX_STRUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* The one RFC 3339 formatter: ts as UTC with frac_digits (0..9) digits of the second, truncated
 * ("2006-01-02T15:04:05.000Z" for 3), into buf (48 bytes hold any). No gmtime_r(): glibc's reads
 * /etc/localtime, for a UTC time that needs no zone. */
void sbx_format_rfc3339(const struct timespec *ts, int frac_digits, char *buf, size_t len);

/* Percent-decoding of in[0..n) into out (which may be in itself); '+' becomes a space when
 * plus_space (query strings and form encoding). Returns the decoded length, or -1 on a '%' not
 * followed by two hex digits or a NUL, raw or decoded: no path, id or key holds one, and a C
 * string would end there. out is not NUL-terminated. */
ssize_t sbx_pct_decode(const char *in, size_t n, char *out, bool plus_space);

/* Constant-time comparison of a secret a client sent (got) with the expected one (want): the
 * time depends on want's length only, never on where the first difference is. */
bool sbx_ct_equal(const char *got, size_t gotlen, const char *want, size_t wantlen);

/* A JSON string of raw bytes s[0..n) (a program's output, a file name): the bytes themselves when
 * they are UTF-8, else with every byte that is not part of a valid sequence replaced by U+FFFD,
 * so that any bytes make valid JSON. NUL bytes are kept (jansson writes \u0000). NULL only when
 * out of memory. */
json_t *sbx_json_text(const char *s, size_t n);

#endif
