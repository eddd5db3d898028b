/* Metrics are a few atomics and one small table under a mutex: scrapes are rare and the hot
 * paths (create, proxy) only add to counters. */
#include "metrics.h"
#include "pool.h"

#include <stdarg.h>
#include <stdatomic.h>

/* Upper bounds in seconds: a pooled create is ~1 ms, a cold one ~10-100 ms. */
static const double buckets[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                                 0.1,    0.25,  0.5,   1,     2.5,  5,    10};
#define NB (sizeof(buckets) / sizeof(buckets[0]))

struct hist {
    atomic_ullong count[NB + 1]; /* last: +Inf */
    atomic_ullong n;
    atomic_ullong sum_us;
};
static struct hist create_hist[2]; /* [0] cold, [1] pool */
static atomic_ullong pool_hits, pool_misses;
static atomic_ullong proxy_by_class[6]; /* 1xx..5xx, [0] other */

#define MAX_ERR 64
static struct {
    int status;
    char code[64];
    unsigned long long n;
} errs[MAX_ERR];
static size_t n_errs;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

void
apid_metrics_create(double ms, bool pooled)
{
    struct hist *h = &create_hist[pooled ? 1 : 0];
    double s = ms / 1000.0;
    size_t i = 0;
    while (i < NB && s > buckets[i])
        i++;
    atomic_fetch_add(&h->count[i], 1);
    atomic_fetch_add(&h->n, 1);
    atomic_fetch_add(&h->sum_us, (unsigned long long)(ms * 1000.0));
}

void
apid_metrics_pool(bool hit)
{
    atomic_fetch_add(hit ? &pool_hits : &pool_misses, 1);
}

void
apid_metrics_proxy_request(int status)
{
    int c = status / 100;
    atomic_fetch_add(&proxy_by_class[c >= 1 && c <= 5 ? c : 0], 1);
}

void
apid_metrics_error(int status, const char *code)
{
    if (!code)
        code = "";
    pthread_mutex_lock(&err_lock);
    size_t i;
    for (i = 0; i < n_errs; i++)
        if (errs[i].status == status && strcmp(errs[i].code, code) == 0)
            break;
    if (i == n_errs && n_errs < MAX_ERR) {
        errs[i].status = status;
        snprintf(errs[i].code, sizeof(errs[i].code), "%s", code);
        n_errs++;
    }
    if (i < n_errs)
        errs[i].n++;
    pthread_mutex_unlock(&err_lock);
}

struct out {
    char *p;
    size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) outf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (n > 0 ? (size_t)n : 0);
        o->p = xrealloc(o->p, o->cap);
    }
}

static void
pool_line(void *cls, const char *key, const char *image, size_t ready, size_t starting,
          size_t target)
{
    struct out *o = cls;
    outf(o, "sbx_apid_pool_ready{key=\"%s\",image=\"%s\"} %zu\n", key, image, ready);
    outf(o, "sbx_apid_pool_starting{key=\"%s\",image=\"%s\"} %zu\n", key, image, starting);
    outf(o, "sbx_apid_pool_target{key=\"%s\",image=\"%s\"} %zu\n", key, image, target);
}

char *
apid_metrics_render(struct apid_store *store)
{
    struct out o = {.cap = 8192};
    o.p = xmalloc0(o.cap);
    outf(&o, "# HELP sbx_apid_sandboxes Sandboxes in the store by state.\n"
             "# TYPE sbx_apid_sandboxes gauge\n");
    for (int st = 0; st < ST__COUNT; st++) {
        int64_t total = 0;
        struct apid_sandbox **items = NULL;
        size_t n = 0;
        sbx_error_t err = NULL;
        if (apid_store_list(store, 1u << st, NULL, 1, 1, &items, &n, &total, &err) < 0)
            sbx_error_release(&err);
        apid_sandbox_list_free(items, n);
        outf(&o, "sbx_apid_sandboxes{state=\"%s\"} %lld\n", apid_state_name(st), (long long)total);
    }
    {
        cleanup_free char *pulls = apid_images_metrics_text();
        outf(&o, "%s", pulls);
        cleanup_free char *dns = apid_egress_metrics();
        outf(&o, "%s", dns);
    }
    outf(&o, "# HELP sbx_apid_create_duration_seconds POST /sandboxes until the 202 reply.\n"
             "# TYPE sbx_apid_create_duration_seconds histogram\n");
    for (int k = 0; k < 2; k++) {
        const char *src = k ? "pool" : "cold";
        struct hist *h = &create_hist[k];
        unsigned long long cum = 0;
        for (size_t i = 0; i <= NB; i++) {
            cum += atomic_load(&h->count[i]);
            if (i < NB)
                outf(&o, "sbx_apid_create_duration_seconds_bucket{source=\"%s\",le=\"%g\"} %llu\n",
                     src, buckets[i], cum);
            else
                outf(&o,
                     "sbx_apid_create_duration_seconds_bucket{source=\"%s\",le=\"+Inf\"} %llu\n",
                     src, cum);
        }
        outf(&o, "sbx_apid_create_duration_seconds_sum{source=\"%s\"} %.6f\n", src,
             (double)atomic_load(&h->sum_us) / 1e6);
        outf(&o, "sbx_apid_create_duration_seconds_count{source=\"%s\"} %llu\n", src,
             atomic_load(&h->n));
    }
    outf(&o,
         "# HELP sbx_apid_pool_claims_total Creates that matched a pool key, by outcome.\n"
         "# TYPE sbx_apid_pool_claims_total counter\n"
         "sbx_apid_pool_claims_total{result=\"hit\"} %llu\n"
         "sbx_apid_pool_claims_total{result=\"miss\"} %llu\n",
         atomic_load(&pool_hits), atomic_load(&pool_misses));
    outf(&o, "# HELP sbx_apid_pool_ready Ready pooled sandboxes per pool key.\n"
             "# TYPE sbx_apid_pool_ready gauge\n"
             "# TYPE sbx_apid_pool_starting gauge\n"
             "# TYPE sbx_apid_pool_target gauge\n");
    apid_pool_foreach(pool_line, &o);
    outf(&o, "# HELP sbx_apid_proxy_requests_total Requests proxied to sandbox agents.\n"
             "# TYPE sbx_apid_proxy_requests_total counter\n");
    static const char *const cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 6; i++)
        outf(&o, "sbx_apid_proxy_requests_total{code=\"%s\"} %llu\n", cls[i],
             atomic_load(&proxy_by_class[i]));
    outf(&o, "# HELP sbx_apid_errors_total Error replies by HTTP status and error code.\n"
             "# TYPE sbx_apid_errors_total counter\n");
    pthread_mutex_lock(&err_lock);
    for (size_t i = 0; i < n_errs; i++)
        outf(&o, "sbx_apid_errors_total{status=\"%d\",code=\"%s\"} %llu\n", errs[i].status,
             errs[i].code, errs[i].n);
    pthread_mutex_unlock(&err_lock);
    return o.p;
}
