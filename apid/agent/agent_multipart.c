#include "agent_multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { MP_BODY, MP_AFTER, MP_AFTER_LF, MP_PAD, MP_HDRS, MP_EPILOGUE };

/* Reads a header parameter (token or quoted-string) named `key` out of a header value. */
static bool
hdr_param(const char *v, const char *key, char *out, size_t outsz)
{
    size_t kl = strlen(key);
    const char *p = v;
    while ((p = strchr(p, ';')) != NULL) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, key, kl) != 0 || p[kl] != '=')
            continue;
        p += kl + 1;
        size_t o = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (o + 1 >= outsz)
                    return false;
                out[o++] = *p++;
            }
            if (*p != '"')
                return false;
        } else {
            while (*p && *p != ';' && *p != ' ' && *p != '\t') {
                if (o + 1 >= outsz)
                    return false;
                out[o++] = *p++;
            }
        }
        out[o] = 0;
        return true;
    }
    return false;
}

int
ag_mp_init(struct ag_mp *mp, const char *ct)
{
    memset(mp, 0, sizeof(*mp));
    if (ct == NULL)
        return -1;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "multipart/form-data", 19) != 0 || (ct[19] != ';' && ct[19] != ' '))
        return -1;
    char b[AG_MP_BOUNDARY_MAX + 2];
    if (!hdr_param(ct + 19, "boundary", b, sizeof(b)))
        return -1;
    size_t bl = strlen(b);
    if (bl == 0 || bl > AG_MP_BOUNDARY_MAX || strpbrk(b, "\r\n"))
        return -1;
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, b, bl);
    mp->dlen = 4 + bl;
    /* The first delimiter has no preceding CRLF; pretend it was there. */
    mp->match = 2;
    mp->st = MP_BODY;
    return 0;
}

bool
ag_mp_done(const struct ag_mp *mp)
{
    return mp->st == MP_EPILOGUE;
}

static int
parse_headers(struct ag_mp *mp, const struct ag_mp_cb *cb, void *u)
{
    char name[256] = "", filename[1024] = "", ctype[256] = "";
    bool have_cd = false;
    mp->hdr[mp->hlen] = 0;
    char *line = mp->hdr;
    while (line && *line) {
        char *end = strstr(line, "\r\n");
        if (end)
            *end = 0;
        char *colon = strchr(line, ':');
        if (colon == NULL)
            return -1;
        *colon = 0;
        char *val = colon + 1;
        while (*val == ' ' || *val == '\t')
            val++;
        if (strcasecmp(line, "Content-Disposition") == 0) {
            if (strncasecmp(val, "form-data", 9) != 0)
                return -1;
            have_cd = true;
            if (!hdr_param(val, "name", name, sizeof(name)))
                return -1;
            hdr_param(val, "filename", filename, sizeof(filename));
        } else if (strcasecmp(line, "Content-Type") == 0) {
            snprintf(ctype, sizeof(ctype), "%s", val);
        }
        line = end ? end + 2 : NULL;
    }
    if (!have_cd)
        return -1;
    mp->in_part = true;
    mp->parts++;
    if (cb->part_begin && cb->part_begin(u, name, filename, ctype) < 0)
        return -2;
    return 0;
}

int
ag_mp_feed(struct ag_mp *mp, const char *p, size_t n, const struct ag_mp_cb *cb, void *u)
{
    size_t i = 0;
    while (i < n) {
        switch (mp->st) {
        case MP_BODY: {
            if (mp->match == 0) {
                /* Fast path: skip CRs that visibly cannot start the delimiter, so binary data (a CR
                 * every ~256 bytes) still reaches the callback in large runs. */
                size_t j = i;
                for (;;) {
                    const char *cr = memchr(p + j, '\r', n - j);
                    if (cr == NULL) {
                        j = n;
                        break;
                    }
                    size_t k = (size_t)(cr - p), avail = n - k;
                    if (memcmp(p + k, mp->delim, avail < mp->dlen ? avail : mp->dlen) == 0) {
                        j = k;
                        break;
                    }
                    j = k + 1;
                }
                if (j > i && mp->in_part && cb->part_data && cb->part_data(u, p + i, j - i) < 0)
                    return -2;
                i = j;
                if (i == n)
                    break;
            }
            char c = p[i];
            if (c == mp->delim[mp->match]) {
                mp->match++;
                i++;
                if (mp->match == mp->dlen) {
                    mp->match = 0;
                    if (mp->in_part) {
                        mp->in_part = false;
                        if (cb->part_end && cb->part_end(u) < 0)
                            return -2;
                    }
                    mp->st = MP_AFTER;
                    mp->dash = 0;
                }
                break;
            }
            /* Mismatch: the held-back bytes were data. The boundary has no CR, so the only place a
             * new match can start is the current byte itself. */
            if (mp->in_part && cb->part_data && cb->part_data(u, mp->delim, mp->match) < 0)
                return -2;
            mp->match = 0;
            break;
        }
        case MP_AFTER: {
            char c = p[i++];
            if (mp->dash == 0 && c == '-') {
                mp->dash = 1;
            } else if (mp->dash == 1) {
                if (c != '-')
                    return -1;
                mp->st = MP_EPILOGUE;
            } else if (c == '\r') {
                mp->st = MP_AFTER_LF;
            } else if (c == ' ' || c == '\t') {
                mp->st = MP_PAD;
            } else {
                return -1;
            }
            break;
        }
        case MP_PAD: {
            char c = p[i++];
            if (c == '\r')
                mp->st = MP_AFTER_LF;
            else if (c != ' ' && c != '\t')
                return -1;
            break;
        }
        case MP_AFTER_LF:
            if (p[i++] != '\n')
                return -1;
            mp->st = MP_HDRS;
            mp->hlen = 0;
            break;
        case MP_HDRS: {
            char c = p[i++];
            if (mp->hlen + 1 >= sizeof(mp->hdr))
                return -1;
            mp->hdr[mp->hlen++] = c;
            if (mp->hlen == 2 && mp->hdr[0] == '\r' && mp->hdr[1] == '\n') {
                /* A part without headers has no name: unusable for form-data. */
                return -1;
            }
            if (mp->hlen >= 4 && memcmp(mp->hdr + mp->hlen - 4, "\r\n\r\n", 4) == 0) {
                mp->hlen -= 4;
                int rc = parse_headers(mp, cb, u);
                if (rc < 0)
                    return rc;
                mp->st = MP_BODY;
                mp->match = 0;
            }
            break;
        }
        case MP_EPILOGUE: return 0;
        }
    }
    return 0;
}
