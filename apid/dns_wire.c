/* DNS wire format for apid's resolver (see dns_wire.h). Written here rather than taken from a
 * library: Debian's resolver libraries (c-ares, ldns, libresolv's ns_*) parse whole messages into
 * their own structures, and the resolver needs three narrow things they do not do in place —
 * check one question, cap TTLs, read A records — over bytes an attacker chooses. */
#include "dns_wire.h"

#include <string.h>

#define DNS_TYPE_OPT 41
#define MAX_LABELS 128 /* a 255-byte name has at most 127 labels */

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int
host_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Reads the name at off into out (lowercase, dot-separated); *endp: the offset after the name
 * where it starts (after the first pointer when compressed). Pointers must point strictly
 * backwards from the label that holds them, so every walk ends (RFC 1035 §4.1.4 allows only
 * "a prior occurrence"). */
static int
read_name(const uint8_t *m, size_t n, size_t off, char out[DNS_NAME_MAX], size_t *endp)
{
    size_t pos = off, end = 0, olen = 0;
    for (int hops = 0; hops <= MAX_LABELS; hops++) {
        if (pos >= n)
            return -1;
        uint8_t l = m[pos];
        if ((l & 0xC0) == 0xC0) {
            if (pos + 1 >= n)
                return -1;
            size_t ptr = (size_t)(l & 0x3F) << 8 | m[pos + 1];
            if (!end)
                end = pos + 2;
            /* Backwards, and never into the header: the header is rewritten in replies. */
            if (ptr >= pos || ptr < DNS_HEADER)
                return -1;
            pos = ptr;
            continue;
        }
        if (l & 0xC0) /* 0x40 and 0x80: extended and reserved label types */
            return -1;
        if (l == 0) {
            out[olen] = '\0';
            *endp = end ? end : pos + 1;
            return 0;
        }
        if (pos + 1 + l > n || olen + (olen ? 1 : 0) + l > DNS_NAME_MAX - 1)
            return -1;
        if (olen)
            out[olen++] = '.';
        for (size_t i = 0; i < l; i++) {
            uint8_t c = m[pos + 1 + i];
            if (!host_char(c))
                return -1;
            out[olen++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        pos += 1 + (size_t)l;
    }
    return -1;
}

/* Skips a name in a record (its owner name): labels up to the root or the first pointer. */
static long
skip_name(const uint8_t *m, size_t n, size_t pos)
{
    for (int i = 0; i <= MAX_LABELS; i++) {
        if (pos >= n)
            return -1;
        uint8_t l = m[pos];
        if ((l & 0xC0) == 0xC0)
            return pos + 2 <= n ? (long)(pos + 2) : -1;
        if (l & 0xC0)
            return -1;
        if (l == 0)
            return (long)(pos + 1);
        pos += 1 + (size_t)l;
    }
    return -1;
}

int
dns_parse_question(const uint8_t *m, size_t n, struct dns_question *q)
{
    if (n < DNS_HEADER || get16(m + 4) != 1)
        return -1;
    size_t end;
    if (read_name(m, n, DNS_HEADER, q->name, &end) < 0 || end + 4 > n)
        return -1;
    q->qtype = get16(m + end);
    q->qclass = get16(m + end + 2);
    q->end = end + 4;
    return 0;
}

int
dns_scan_answer(uint8_t *m, size_t n, uint32_t max_ttl, dns_a_fn fn, void *arg)
{
    if (n < DNS_HEADER || get16(m + 4) != 1)
        return -1;
    size_t an = get16(m + 6), total = an + get16(m + 8) + get16(m + 10);
    long p = skip_name(m, n, DNS_HEADER);
    if (p < 0 || (size_t)p + 4 > n)
        return -1;
    size_t pos = (size_t)p + 4;
    int found = 0;
    for (size_t i = 0; i < total; i++) {
        if ((p = skip_name(m, n, pos)) < 0 || (size_t)p + 10 > n)
            return -1;
        pos = (size_t)p;
        uint16_t type = get16(m + pos), klass = get16(m + pos + 2);
        uint32_t ttl = get32(m + pos + 4);
        size_t rdlen = get16(m + pos + 8);
        if (pos + 10 + rdlen > n)
            return -1;
        /* OPT's "TTL" holds the extended rcode and flags (RFC 6891), not a time. */
        if (type != DNS_TYPE_OPT && ttl > max_ttl) {
            ttl = max_ttl;
            put32(m + pos + 4, ttl);
        }
        if (i < an && type == DNS_TYPE_A && klass == DNS_CLASS_IN && rdlen == 4) {
            found++;
            if (fn)
                fn(arg, m + pos + 10, ttl);
        }
        pos += 10 + rdlen;
    }
    return found;
}

size_t
dns_error_reply(const uint8_t *m, const struct dns_question *q, int rcode, uint8_t *out, size_t cap)
{
    if (q->end > cap || q->end < DNS_HEADER)
        return 0;
    memcpy(out, m, q->end);
    out[2] = (uint8_t)(0x80 | (m[2] & 0x79));  /* QR; the query's opcode and RD (AA, TC clear) */
    out[3] = (uint8_t)(0x80 | (rcode & 0x0F)); /* RA */
    memset(out + 4, 0, 8);
    out[5] = 1; /* QDCOUNT */
    return q->end;
}
