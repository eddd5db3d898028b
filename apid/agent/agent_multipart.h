/* Incremental multipart/form-data parser: bytes go straight from the socket to the callbacks, so an
 * upload of any size needs only the fixed state below. */
#ifndef SBX_AGENT_MULTIPART_H
#define SBX_AGENT_MULTIPART_H
#include <stdbool.h>
#include <stddef.h>

#define AG_MP_BOUNDARY_MAX 70 /* RFC 2046 */
#define AG_MP_HDR_MAX 8192

struct ag_mp_cb {
    /* name/filename/ctype are NUL-terminated and may be empty. */
    int (*part_begin)(void *u, const char *name, const char *filename, const char *ctype);
    int (*part_data)(void *u, const char *p, size_t n);
    int (*part_end)(void *u);
};

struct ag_mp {
    char delim[AG_MP_BOUNDARY_MAX + 5]; /* "\r\n--" boundary */
    size_t dlen;
    size_t match; /* bytes of delim matched and held back */
    int st;
    bool in_part;
    int dash; /* bytes seen after a delimiter */
    char hdr[AG_MP_HDR_MAX];
    size_t hlen;
    int parts;
};

/* Extracts the boundary from a Content-Type header. -1 if not multipart/form-data or no boundary.
 */
int ag_mp_init(struct ag_mp *mp, const char *content_type);
/* 0 ok, -1 malformed, callback errors (<0 from a callback) returned as -2. */
int ag_mp_feed(struct ag_mp *mp, const char *p, size_t n, const struct ag_mp_cb *cb, void *u);
/* True when the closing delimiter was seen. */
bool ag_mp_done(const struct ag_mp *mp);

#endif
