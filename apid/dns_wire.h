/* DNS messages on the wire (RFC 1035), only as much as apid's per-sandbox resolver needs: the
 * question of a query, the A records of an answer, TTL capping and error replies. Every byte
 * comes from a sandbox (queries) or from an upstream server a sandbox can steer (answers), so
 * every read is bounded by the message and names are checked, not trusted. */
#ifndef SBX_DNS_WIRE_H
#define SBX_DNS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define DNS_HEADER 12
#define DNS_NAME_MAX 254 /* presentation form, no trailing dot, plus NUL */
#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1
#define DNS_RCODE_FORMERR 1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP 4
#define DNS_RCODE_REFUSED 5

struct dns_question {
    char name[DNS_NAME_MAX]; /* lowercase, without the trailing dot; "" for the root */
    uint16_t qtype, qclass;
    size_t end; /* offset just past the question */
};

/* Reads the header and the one question of a message (a query, or the answer to one).
 * Returns 0, or -1 when the message is malformed, has not exactly one question, or the name
 * is not a host name (letters, digits, '-', '_' in labels of 1..63 bytes): such a name cannot
 * be matched against a policy honestly, so it is refused rather than forwarded. */
int dns_parse_question(const uint8_t *m, size_t n, struct dns_question *q);

/* Walks the answer, authority and additional sections of an answer: caps every record's TTL at
 * max_ttl in place (so no client caches an address longer than the sandbox may use it), and
 * calls fn for each A record of class IN in the answer section. Returns the number of A
 * records, or -1 when the message is malformed (then m may be partly rewritten). */
typedef void (*dns_a_fn)(void *arg, const uint8_t addr[4], uint32_t ttl);
int dns_scan_answer(uint8_t *m, size_t n, uint32_t max_ttl, dns_a_fn fn, void *arg);

/* An error reply to query q (its header and question, q->end bytes of m): QR and RA set, the
 * query's id, opcode and RD kept, no records. Returns its length, or 0 when cap is too small. */
size_t dns_error_reply(const uint8_t *m, const struct dns_question *q, int rcode, uint8_t *out,
                       size_t cap);

/* Message id (first two bytes). */
static inline uint16_t
dns_id(const uint8_t *m)
{
    return (uint16_t)(m[0] << 8 | m[1]);
}
static inline void
dns_set_id(uint8_t *m, uint16_t id)
{
    m[0] = (uint8_t)(id >> 8);
    m[1] = (uint8_t)id;
}

#endif
