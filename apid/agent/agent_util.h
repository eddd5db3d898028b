/* Agent-local helpers. The agent is linked statically without libsbx, so nothing here may pull
 * in jansson or other shared-library dependencies, and nothing here has global side effects
 * (these objects are also linked into the unit-test binary). */
#ifndef SBX_AGENT_UTIL_H
#define SBX_AGENT_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "strutil.h"

struct ag_buf {
    char *p;
    size_t len, cap;
};

int ag_buf_reserve(struct ag_buf *b, size_t extra);
int ag_buf_put(struct ag_buf *b, const void *p, size_t n);
int ag_buf_puts(struct ag_buf *b, const char *s);
int ag_buf_putc(struct ag_buf *b, char c);
int ag_buf_printf(struct ag_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ag_buf_consume(struct ag_buf *b, size_t n);
void ag_buf_free(struct ag_buf *b);
/* NUL-terminates without counting the NUL in len; returns p (never NULL on success). */
char *ag_buf_cstr(struct ag_buf *b);

/* Appends j's compact JSON (at most 15 significant digits for reals) and takes j; -1 when out of
 * memory (nothing appended), also for j NULL, so json_pack()'s result can go straight in. */
int ag_buf_json(struct ag_buf *b, json_t *j);
/* s as a JSON string, invalid UTF-8 replaced (sbx_json_text). */
json_t *ag_jtext(const char *s);

/* 32 lowercase hex digits from getrandom (command and session ids). */
void ag_new_id(char out[33]);

struct ag_kv {
    char *k, *v;
};
struct ag_query {
    struct ag_kv *kv;
    size_t n;
};
/* Parses "a=1&b=%2F&a=2" (repeated keys kept in order). -1 on malformed escapes. */
int ag_query_parse(const char *q, size_t n, struct ag_query *out);
const char *ag_query_get(const struct ag_query *q, const char *key);
void ag_query_free(struct ag_query *q);

/* execd mode encoding: the decimal digits of the API integer are the octal permission bits. */
int ag_mode_from_api(int64_t api, mode_t *out);
int64_t ag_mode_to_api(mode_t m);

/* Range header. Returns 0 with an inclusive [*start,*end] window, 1 when the header should be
 * ignored (absent, not "bytes=", syntactically invalid), -1 when unsatisfiable (→ 416). */
int ag_range_parse(const char *hdr, uint64_t size, uint64_t *start, uint64_t *end);

/* Whether a file name matches a search pattern (GET /files/search?pattern=): fnmatch(3) on the
 * name alone, so * ? [set] [!set] [^set] [[:class:]] and backslash escapes, with "**" as "*". */
bool ag_name_match(const char *pat, const char *name);

int64_t ag_now_ms(void);
int64_t ag_mono_ms(void);
/* RFC 3339 UTC with a Z suffix (what the SDK's new Date() wants), milliseconds unless zero. */
void ag_rfc3339(char out[48], const struct timespec *ts);

/* "~" (alone or before a '/', at the start) becomes home, else HOME, else "/"; $NAME and ${NAME}
 * become NAME's value ("" when unset), as a shell would without word splitting. Variables come
 * from env, or the agent's own environment when env is NULL. NULL when out of memory. */
char *ag_expand(const char *in, char *const *env, const char *home);

/* Lexically normalises an absolute path: collapses "//" and "/./", resolves ".." against "/"
 * (so it can never climb above the root). Relative input is taken relative to "/". */
char *ag_path_clean(const char *in);

/* passwd/group lookups in root's /etc files (root NULL: "/"), never through NSS: a static binary
 * in a scratch rootfs has no libnss. 0 when found, -1 when not or unreadable. */
int ag_user_by_name(const char *root, const char *name, uid_t *uid, gid_t *gid, char *home,
                    size_t homesz);
int ag_user_by_uid(const char *root, uid_t uid, char *name, size_t namesz, gid_t *gid, char *home,
                   size_t homesz);
int ag_group_by_name(const char *root, const char *name, gid_t *gid);
int ag_group_by_gid(const char *root, gid_t gid, char *name, size_t namesz);
/* Supplementary groups listing `user` as a member; returns count (≤ max). */
int ag_user_groups(const char *root, const char *user, gid_t *out, int max);

#endif
