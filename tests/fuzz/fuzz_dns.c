/* fuzz_dns: apid's resolver for sandboxes (apid/dns_wire.c) reading DNS messages: queries come
 * from code in a sandbox, answers from upstream servers that a sandbox can steer (any allowed
 * name's authoritative server writes part of them). The input is read as a query
 * (dns_parse_question), as an answer (dns_scan_answer, in place, on a copy) and, when its
 * question parses, answered with an error reply.
 * Checks: a parsed name is lowercase host-name characters and dots, no empty label, at most 253
 * bytes; the question ends inside the message; every A record handed out has a TTL at or below
 * the cap, and after a scan every TTL of the message is at or below it too (a second scan finds
 * the same records and changes nothing); an error reply has the query's id and question, QR set,
 * the rcode asked for and no records, and parses back to the same question. */
#include "dns_wire.h"
#include "fuzz.h"

#include <stdbool.h>

#define CAP 3600

struct seen {
    size_t n;
    uint32_t ip[64];
    bool over;
};

static void
on_a(void *arg, const uint8_t addr[4], uint32_t ttl)
{
    struct seen *s = arg;
    if (ttl > CAP)
        s->over = true;
    if (s->n < 64)
        memcpy(&s->ip[s->n], addr, 4);
    s->n++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dns_question q;
    if (dns_parse_question(data, size, &q) == 0) {
        size_t len = strlen(q.name);
        FUZZ_CHECK(len <= 253 && q.end <= size && q.end >= DNS_HEADER + 5);
        for (size_t i = 0; i < len; i++) {
            char c = q.name[i];
            FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                       c == '.');
            FUZZ_CHECK(c != '.' || (i > 0 && i + 1 < len && q.name[i + 1] != '.'));
        }
        uint8_t out[600];
        size_t n = dns_error_reply(data, &q, DNS_RCODE_NXDOMAIN, out, sizeof(out));
        FUZZ_CHECK(n == (q.end <= sizeof(out) ? q.end : 0));
        if (n) {
            struct dns_question back;
            FUZZ_CHECK(dns_parse_question(out, n, &back) == 0);
            FUZZ_CHECK(!strcmp(back.name, q.name) && back.qtype == q.qtype &&
                       back.qclass == q.qclass);
            FUZZ_CHECK(dns_id(out) == dns_id(data) && (out[2] & 0x80) && (out[3] & 0x0F) == 3);
            FUZZ_CHECK(!out[6] && !out[7] && !out[8] && !out[9] && !out[10] && !out[11]);
        }
    }
    uint8_t *m = malloc(size ? size : 1);
    FUZZ_CHECK(m);
    memcpy(m, data, size);
    struct seen a = {0}, b = {0};
    int r = dns_scan_answer(m, size, CAP, on_a, &a);
    FUZZ_CHECK(r == -1 || (r >= 0 && (size_t)r == a.n));
    FUZZ_CHECK(!a.over);
    if (r >= 0) {
        uint8_t *again = malloc(size ? size : 1);
        FUZZ_CHECK(again);
        memcpy(again, m, size);
        FUZZ_CHECK(dns_scan_answer(again, size, CAP, on_a, &b) == r && !b.over);
        FUZZ_CHECK(memcmp(again, m, size) == 0);
        FUZZ_CHECK(memcmp(a.ip, b.ip, (a.n < 64 ? a.n : 64) * 4) == 0);
        free(again);
    }
    free(m);
    return 0;
}
