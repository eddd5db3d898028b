/* apid's resolver for sandboxes: UDP and TCP on port 53 of the bridge gateway.
 *
 * Every sandbox's /etc/resolv.conf names the gateway (sandbox.c), and its chain drops DNS and
 * DNS-over-TLS to anyone else once its policy has a domain rule (net.c), so this is the one
 * resolver a sandbox has. For each query: the source address names the sandbox (an address no
 * live sandbox holds is REFUSED), the policy decides the name (egress.c); a denied name is
 * answered NXDOMAIN here and never leaves the host (no lookup, so no data smuggled out in
 * names); an allowed one is forwarded to the host's upstream resolvers with a fresh random id
 * from a fresh socket, and the A records of the answer are added to the sandbox's address set
 * *before* the answer is sent, so the connection that follows finds its address open. TTLs in
 * the answer are capped (egress.c's TTL_MAX) so no client caches an address past its set entry.
 *
 * Bounds: UDP queries are forwarded by at most MAX_INFLIGHT threads at once (beyond: SERVFAIL);
 * at most MAX_TCP TCP clients, each closed after TCP_IDLE_MS without a query; every upstream
 * exchange has a deadline; messages are at most 64 KiB (TCP) or what one datagram holds. */
#include "apid.h"
#include "dns_wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>

#define MAX_UPSTREAMS APID_DNS_MAX_UPSTREAMS
#define MAX_INFLIGHT 128
#define MAX_TCP 64
#define UP_TIMEOUT_MS 2000
#define TCP_IDLE_MS 10000
#define UDP_MAX 4096 /* EDNS payloads above this are rare; larger answers come truncated */

static struct {
    bool running;
    int udp, tcp, stop_fd;
    struct sockaddr_in up[MAX_UPSTREAMS];
    size_t nup;
    pthread_t udp_thr, tcp_thr;
    atomic_int inflight, tcp_clients;
} D = {.udp = -1, .tcp = -1, .stop_fd = -1};

bool
apid_dns_running(void)
{
    return D.running;
}

static int
parse_upstream(const char *s, struct sockaddr_in *out)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", s);
    int64_t port = 53;
    char *colon = strchr(buf, ':');
    if (colon) {
        *colon = '\0';
        if (parse_int64(colon + 1, 1, 65535, &port) < 0)
            return -1;
    }
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return strlen(s) < sizeof(buf) && inet_pton(AF_INET, buf, &out->sin_addr) == 1 ? 0 : -1;
}

int
apid_dns_parse_upstreams(const char *list, struct sockaddr_in *out, size_t *n)
{
    cleanup_free char *copy = xstrdup(list);
    char *save = NULL;
    *n = 0;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (*n == MAX_UPSTREAMS || parse_upstream(t, &out[*n]) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

/* The host's resolvers: IPv4 `nameserver` lines of /etc/resolv.conf (loopback ones included:
 * apid forwards from the host's own network namespace). */
static void
upstreams_from_resolv_conf(void)
{
    cleanup_file FILE *f = fopen("/etc/resolv.conf", "re");
    char line[256];
    while (f && D.nup < MAX_UPSTREAMS && fgets(line, sizeof(line), f)) {
        char ns[64];
        if (sscanf(line, " nameserver %63s", ns) == 1 && parse_upstream(ns, &D.up[D.nup]) == 0)
            D.nup++;
    }
}

static uint16_t
random_id(void)
{
    uint16_t id = 0;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = (uint16_t)(apid_now_ms() ^ (uintptr_t)&id);
    return id;
}

static int
wait_fd(int fd, short ev, int64_t deadline)
{
    int64_t left = deadline - sbx_monotonic_ms();
    if (left <= 0)
        return 0;
    struct pollfd p = {.fd = fd, .events = ev};
    int r;
    while ((r = poll(&p, 1, (int)left)) < 0 && errno == EINTR)
        ;
    return r;
}

/* One upstream over UDP: the answer whose id and question match, or -1. */
static ssize_t
ask_udp(const struct sockaddr_in *up, const uint8_t *q, size_t qn, const struct dns_question *qq,
        uint8_t *ans, size_t cap)
{
    cleanup_close int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)up, sizeof(*up)) < 0 ||
        send(fd, q, qn, 0) != (ssize_t)qn)
        return -1;
    int64_t deadline = sbx_monotonic_ms() + UP_TIMEOUT_MS;
    while (wait_fd(fd, POLLIN, deadline) > 0) {
        ssize_t n = recv(fd, ans, cap, 0);
        struct dns_question aq;
        if (n < DNS_HEADER || dns_id(ans) != dns_id(q) || !(ans[2] & 0x80) ||
            dns_parse_question(ans, (size_t)n, &aq) < 0 || strcmp(aq.name, qq->name) ||
            aq.qtype != qq->qtype || aq.qclass != qq->qclass)
            continue; /* not ours: a late answer or a spoof; keep waiting until the deadline */
        return n;
    }
    return -1;
}

static int
read_full(int fd, uint8_t *buf, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        if (wait_fd(fd, POLLIN, deadline) <= 0)
            return -1;
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0) {
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

static int
write_full(int fd, const uint8_t *buf, size_t n, int64_t deadline)
{
    size_t put = 0;
    while (put < n) {
        if (wait_fd(fd, POLLOUT, deadline) <= 0)
            return -1;
        ssize_t r = send(fd, buf + put, n - put, MSG_NOSIGNAL);
        if (r <= 0) {
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            return -1;
        }
        put += (size_t)r;
    }
    return 0;
}

/* One upstream over TCP (RFC 7766: two-byte length prefix). */
static ssize_t
ask_tcp(const struct sockaddr_in *up, const uint8_t *q, size_t qn, const struct dns_question *qq,
        uint8_t *ans, size_t cap)
{
    cleanup_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int64_t deadline = sbx_monotonic_ms() + UP_TIMEOUT_MS;
    if (connect(fd, (const struct sockaddr *)up, sizeof(*up)) < 0 && errno != EINPROGRESS)
        return -1;
    if (wait_fd(fd, POLLOUT, deadline) <= 0)
        return -1;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)
        return -1;
    uint8_t len[2] = {(uint8_t)(qn >> 8), (uint8_t)qn};
    if (write_full(fd, len, 2, deadline) < 0 || write_full(fd, q, qn, deadline) < 0 ||
        read_full(fd, len, 2, deadline) < 0)
        return -1;
    size_t n = (size_t)len[0] << 8 | len[1];
    struct dns_question aq;
    if (n < DNS_HEADER || n > cap || read_full(fd, ans, n, deadline) < 0 ||
        dns_id(ans) != dns_id(q) || dns_parse_question(ans, n, &aq) < 0 ||
        strcmp(aq.name, qq->name) || aq.qtype != qq->qtype || aq.qclass != qq->qclass)
        return -1;
    return (ssize_t)n;
}

struct learn_ctx {
    uint32_t src;
    const char *name;
};

static void
on_a(void *arg, const uint8_t addr[4], uint32_t ttl)
{
    struct learn_ctx *l = arg;
    apid_egress_learn(l->src, l->name, addr, ttl);
}

/* The answer to one query (m, n) from src, into out; returns its length (0: say nothing). */
static size_t
resolve(uint8_t *m, size_t n, uint32_t src, bool tcp, uint8_t *out, size_t cap)
{
    if (n < DNS_HEADER || (m[2] & 0x80)) /* too short, or an answer sent to us: ignore */
        return 0;
    struct dns_question q;
    if (dns_parse_question(m, n, &q) < 0) {
        /* FORMERR with the bare header: the question is what could not be read. */
        struct dns_question hdr = {.end = DNS_HEADER};
        size_t len = dns_error_reply(m, &hdr, DNS_RCODE_FORMERR, out, cap);
        if (len)
            out[5] = 0;
        return len;
    }
    if ((m[2] & 0x78) != 0) /* only standard queries (opcode 0) */
        return dns_error_reply(m, &q, DNS_RCODE_NOTIMP, out, cap);
    char id[65] = "";
    int allow = apid_egress_query(src, q.name, id);
    if (allow < 0)
        return dns_error_reply(m, &q, DNS_RCODE_REFUSED, out, cap);
    if (allow == 0) {
        log_debug("dns: sandbox %s: denied %s", id, q.name[0] ? q.name : ".");
        return dns_error_reply(m, &q, DNS_RCODE_NXDOMAIN, out, cap);
    }
    uint16_t client_id = dns_id(m);
    dns_set_id(m, random_id());
    ssize_t an = -1;
    for (size_t i = 0; i < D.nup && an < 0; i++)
        an = tcp ? ask_tcp(&D.up[i], m, n, &q, out, cap) : ask_udp(&D.up[i], m, n, &q, out, cap);
    dns_set_id(m, client_id);
    if (an < 0)
        return dns_error_reply(m, &q, DNS_RCODE_SERVFAIL, out, cap);
    struct learn_ctx l = {.src = src, .name = q.name};
    if (dns_scan_answer(out, (size_t)an, 3600, on_a, &l) < 0)
        return dns_error_reply(m, &q, DNS_RCODE_SERVFAIL, out, cap);
    dns_set_id(out, client_id);
    return (size_t)an;
}

/* 1: fd is readable; 0: woken for nothing, poll again; -1: apid_dns_stop() asked to end. */
static int
next_ready(int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = D.stop_fd, .events = POLLIN}};
    if (poll(p, 2, -1) < 0)
        return errno == EINTR ? 0 : -1;
    if (p[1].revents)
        return -1;
    return (p[0].revents & POLLIN) ? 1 : 0;
}

/* A worker with a small stack (they hold one message and a poll), not joined. */
static int
spawn_detached(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    int r = pthread_create(&t, &at, fn, arg);
    pthread_attr_destroy(&at);
    return r;
}

/* ---------- UDP ---------- */

struct udp_job {
    uint8_t q[UDP_MAX];
    size_t n;
    struct sockaddr_in from;
};

static void *
udp_worker(void *arg)
{
    struct udp_job *j = arg;
    uint8_t out[UDP_MAX];
    size_t len = resolve(j->q, j->n, j->from.sin_addr.s_addr, false, out, sizeof(out));
    if (len)
        sendto(D.udp, out, len, 0, (struct sockaddr *)&j->from, sizeof(j->from));
    free(j);
    atomic_fetch_sub(&D.inflight, 1);
    return NULL;
}

static void *
udp_loop(void *arg)
{
    (void)arg;
    for (;;) {
        int w = next_ready(D.udp);
        if (w < 0)
            break;
        if (w == 0)
            continue;
        struct udp_job *j = xmalloc0(sizeof(*j));
        socklen_t fl = sizeof(j->from);
        ssize_t n =
            recvfrom(D.udp, j->q, sizeof(j->q), MSG_TRUNC, (struct sockaddr *)&j->from, &fl);
        if (n < DNS_HEADER || (size_t)n > sizeof(j->q) || j->from.sin_family != AF_INET) {
            free(j);
            continue;
        }
        j->n = (size_t)n;
        if (atomic_fetch_add(&D.inflight, 1) >= MAX_INFLIGHT ||
            spawn_detached(udp_worker, j) != 0) {
            atomic_fetch_sub(&D.inflight, 1);
            struct dns_question q;
            uint8_t out[512];
            size_t len = dns_parse_question(j->q, j->n, &q) == 0
                             ? dns_error_reply(j->q, &q, DNS_RCODE_SERVFAIL, out, sizeof(out))
                             : 0;
            if (len)
                sendto(D.udp, out, len, 0, (struct sockaddr *)&j->from, sizeof(j->from));
            free(j);
        }
    }
    return NULL;
}

/* ---------- TCP ---------- */

struct tcp_client {
    int fd;
    uint32_t src;
};

static void *
tcp_client_thread(void *arg)
{
    struct tcp_client *c = arg;
    uint8_t *q = xmalloc0(65536), *out = xmalloc0(65536);
    for (;;) {
        uint8_t len[2];
        int64_t deadline = sbx_monotonic_ms() + TCP_IDLE_MS;
        if (read_full(c->fd, len, 2, deadline) < 0)
            break;
        size_t n = (size_t)len[0] << 8 | len[1];
        if (n < DNS_HEADER || read_full(c->fd, q, n, sbx_monotonic_ms() + UP_TIMEOUT_MS) < 0)
            break;
        size_t an = resolve(q, n, c->src, true, out, 65535);
        if (!an)
            break;
        len[0] = (uint8_t)(an >> 8);
        len[1] = (uint8_t)an;
        deadline = sbx_monotonic_ms() + UP_TIMEOUT_MS;
        if (write_full(c->fd, len, 2, deadline) < 0 || write_full(c->fd, out, an, deadline) < 0)
            break;
    }
    close(c->fd);
    free(c);
    free(q);
    free(out);
    atomic_fetch_sub(&D.tcp_clients, 1);
    return NULL;
}

static void *
tcp_loop(void *arg)
{
    (void)arg;
    for (;;) {
        int w = next_ready(D.tcp);
        if (w < 0)
            break;
        if (w == 0)
            continue;
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        int fd = accept4(D.tcp, (struct sockaddr *)&from, &fl, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            continue;
        if (atomic_fetch_add(&D.tcp_clients, 1) >= MAX_TCP) {
            atomic_fetch_sub(&D.tcp_clients, 1);
            close(fd);
            continue;
        }
        struct tcp_client *c = xmalloc0(sizeof(*c));
        c->fd = fd;
        c->src = from.sin_addr.s_addr;
        if (spawn_detached(tcp_client_thread, c) != 0) {
            close(fd);
            free(c);
            atomic_fetch_sub(&D.tcp_clients, 1);
        }
    }
    return NULL;
}

/* ---------- start / stop ---------- */

static int
bound_socket(int type, const char *gateway, sbx_error_t *err)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sbx_make_error(err, errno, "dns: socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, gateway, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        (type == SOCK_STREAM && listen(fd, 128) < 0)) {
        int e = errno;
        close(fd);
        return sbx_make_error(err, e, "dns: listen on %s:53/%s", gateway,
                              type == SOCK_STREAM ? "tcp" : "udp");
    }
    return fd;
}

int
apid_dns_start(const char *gateway, const char *upstreams, sbx_error_t *err)
{
    if (!gateway)
        return 0;
    D.nup = 0;
    if (upstreams && *upstreams) {
        if (apid_dns_parse_upstreams(upstreams, D.up, &D.nup) < 0)
            return sbx_make_error(err, 0,
                                  "--dns-upstream `%s`: expected up to %d IPV4[:PORT], "
                                  "comma-separated",
                                  upstreams, MAX_UPSTREAMS);
    } else {
        upstreams_from_resolv_conf();
    }
    if (D.nup == 0)
        log_warn("dns: no upstream resolver (--dns-upstream, /etc/resolv.conf): allowed names "
                 "get SERVFAIL");
    if ((D.udp = bound_socket(SOCK_DGRAM, gateway, err)) < 0)
        return -1;
    if ((D.tcp = bound_socket(SOCK_STREAM, gateway, err)) < 0 ||
        (D.stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
        apid_dns_stop();
        return D.tcp < 0 ? -1 : sbx_make_error(err, errno, "dns: eventfd");
    }
    if (pthread_create(&D.udp_thr, NULL, udp_loop, NULL) != 0) {
        apid_dns_stop();
        return sbx_make_error(err, EAGAIN, "dns: thread");
    }
    if (pthread_create(&D.tcp_thr, NULL, tcp_loop, NULL) != 0) {
        uint64_t one = 1;
        (void)!write(D.stop_fd, &one, sizeof(one));
        pthread_join(D.udp_thr, NULL);
        apid_dns_stop();
        return sbx_make_error(err, EAGAIN, "dns: thread");
    }
    D.running = true;
    int r = apid_net_open_dns(err);
    if (r < 0) {
        apid_dns_stop();
        return r;
    }
    char ups[256] = "";
    for (size_t i = 0; i < D.nup; i++) {
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &D.up[i].sin_addr, a, sizeof(a));
        size_t l = strlen(ups);
        snprintf(ups + l, sizeof(ups) - l, "%s%s:%d", i ? "," : "", a, ntohs(D.up[i].sin_port));
    }
    log_info("dns: resolver for sandboxes on %s:53 (udp, tcp), upstream %s", gateway,
             D.nup ? ups : "none");
    return 0;
}

void
apid_dns_stop(void)
{
    if (D.running) {
        uint64_t one = 1;
        (void)!write(D.stop_fd, &one, sizeof(one));
        pthread_join(D.udp_thr, NULL);
        pthread_join(D.tcp_thr, NULL);
        D.running = false;
    }
    /* Detached workers still answering hold D.udp: give them their deadline before closing it. */
    for (int i = 0; i < 100 && (atomic_load(&D.inflight) || atomic_load(&D.tcp_clients)); i++)
        usleep(100 * 1000);
    if (atomic_load(&D.inflight) || atomic_load(&D.tcp_clients))
        return; /* a worker still holds them; the process is about to exit anyway */
    if (D.udp >= 0)
        close(D.udp);
    if (D.tcp >= 0)
        close(D.tcp);
    if (D.stop_fd >= 0)
        close(D.stop_fd);
    D.udp = D.tcp = D.stop_fd = -1;
}
