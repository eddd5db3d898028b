/* The warm pool. Members are real sandboxes started by apid_mgr_prestart() but kept out of the
 * store: they are invisible to list/get, have no expiry, and a crash of apid leaves them as
 * orphans that start-up recovery removes. A claim adopts a member into the store with the
 * claimant's fields; nothing of one claimant reaches the next because members are used once.
 *
 * Per-request parts applied at claim time:
 *  - metadata, timeout/expiry, image uri, resource limits: written with the store row;
 *  - limits below the pool's class: sbx_container_update() on the member, which changes its
 *    cgroup and its config.json together (requests above the class do not match and are created
 *    cold);
 *  - entrypoint and env: members run the agent without an entrypoint; the claimant's is handed
 *    over with the agent's POST /entrypoint, after which the sandbox behaves exactly like a cold
 *    one (its state follows the entrypoint's exit, env is seen by later commands too). */
#include "pool.h"
#include "agent_client.h"
#include "resources.h"
#include "metrics.h"
#include "update.h"

#define READY_TIMEOUT_MS 10000
#define LIVENESS_EVERY_MS 2000
#define REFILL_SETTLE_MS 20

struct member {
    struct apid_sandbox *sb;
    struct member *next;
};

struct pool {
    char *image_uri;  /* as configured */
    char *image_name; /* resolved entry below images_dir */
    char *key;
    struct apid_limits cls; /* resource class: the server defaults */
    json_t *net_policy;     /* network mode: the server's default policy, bridge networking */
    size_t min, max, target;
    struct member *ready, *ready_tail;
    size_t n_ready, n_starting;
    int64_t last_claim_ms;
    int64_t backoff_until;
    unsigned fails;
};

static struct apid_ctx *ctx;
static struct pool *pools;
static size_t n_pools;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_t *workers;
static size_t n_workers;
static bool stopping;

static int
parse_spec(const char *spec, struct pool *p, sbx_error_t *err)
{
    /* IMAGE may itself hold ':' (a tag), so the counts are taken from the end. */
    cleanup_free char *s = xstrdup(spec);
    char *c1 = strrchr(s, ':');
    if (!c1)
        return sbx_make_error(err, 0, "--pool `%s`: expected IMAGE:COUNT or IMAGE:MIN:MAX", spec);
    *c1 = '\0';
    int64_t a, b;
    if (parse_int64(c1 + 1, 0, 100000, &b) < 0)
        return sbx_make_error(err, 0, "--pool `%s`: bad count", spec);
    a = b;
    char *c2 = strrchr(s, ':');
    int64_t t;
    if (c2 && parse_int64(c2 + 1, 0, 100000, &t) == 0) {
        *c2 = '\0';
        a = t;
    }
    if (!*s || a > b)
        return sbx_make_error(
            err, 0, "--pool `%s`: expected IMAGE:COUNT or IMAGE:MIN:MAX (MIN <= MAX)", spec);
    int r = apid_resolve_image(ctx->cfg->images_dir, s, &p->image_name, err);
    if (r < 0)
        return sbx_error_wrap(err, "--pool `%s`", spec);
    /* A pool is for starting fast: its image must be in the store already. With a numeric tag
     * (python:3) give MIN and MAX, so the tag is not read as a count. */
    if (r == APID_IMAGE_PULL)
        return sbx_make_error(err, 0,
                              "--pool `%s`: image `%s` is not in the image store; pull "
                              "it first (sbxrun pull %s)",
                              spec, p->image_name, s);
    p->image_uri = xstrdup(s);
    p->min = (size_t)a;
    p->max = (size_t)b;
    p->target = p->min;
    p->key = xasprintf("%s|class=default|net=default", p->image_uri);
    return 0;
}

int
apid_pool_init(struct apid_ctx *c, sbx_error_t *err)
{
    ctx = c;
    const struct apid_config *cfg = c->cfg;
    for (char **s = cfg->pool_specs; s && *s; s++) {
        struct pool p = {0};
        int r = parse_spec(*s, &p, err);
        if (r < 0)
            return r;
        p.cls = (struct apid_limits){.cpu_milli = cfg->default_cpu_milli,
                                     .memory = cfg->default_memory,
                                     .pids = cfg->default_pids};
        if ((r = apid_parse_net_policy(NULL, cfg->default_egress, &p.net_policy, err)) < 0)
            return r;
        for (size_t i = 0; i < n_pools; i++)
            if (strcmp(pools[i].image_name, p.image_name) == 0)
                return sbx_make_error(err, 0, "--pool `%s`: image given twice", *s);
        pools = xrealloc(pools, (n_pools + 1) * sizeof(*pools));
        pools[n_pools++] = p;
        log_info("pool %s: min %zu, max %zu", p.key, p.min, p.max);
    }
    return 0;
}

static bool
member_alive(const struct apid_sandbox *sb)
{
    return sb->pid > 0 && sbx_pid_start_time(sb->pid) == sb->pid_start;
}

/* Starts one member of p and waits until its agent answers /ping. */
static struct apid_sandbox *
start_member(struct pool *p, sbx_error_t *err)
{
    struct apid_create_req req = {0};
    req.image_uri = p->image_uri;
    req.entrypoint = json_array();
    req.env = json_object();
    req.metadata = json_object();
    req.timeout = -1;
    req.limits = p->cls;
    req.net_policy = p->net_policy;
    struct apid_sandbox *sb = NULL;
    int r = apid_mgr_prestart(&req, &sb, err);
    json_decref(req.entrypoint);
    json_decref(req.env);
    json_decref(req.metadata);
    if (r < 0)
        return NULL;
    struct apid_agent_target t;
    apid_agent_target_of(sb, &t);
    if (apid_agent_wait_ready(&t, READY_TIMEOUT_MS, err) < 0) {
        apid_mgr_discard(sb);
        apid_sandbox_free(sb);
        return NULL;
    }
    return sb;
}

static void
discard_list(struct member *m)
{
    while (m) {
        struct member *next = m->next;
        apid_mgr_discard(m->sb);
        apid_sandbox_free(m->sb);
        free(m);
        m = next;
    }
}

/* Takes dead members and members above the target out of the pools (caller holds lock). */
static struct member *
collect_surplus(int64_t now, bool check_alive)
{
    struct member *out = NULL;
    for (size_t i = 0; i < n_pools; i++) {
        struct pool *p = &pools[i];
        if (p->target > p->min && now - p->last_claim_ms > ctx->cfg->pool_idle_shrink * 1000) {
            log_info("pool %s: idle, shrinking from %zu to %zu", p->key, p->target, p->min);
            p->target = p->min;
        }
        struct member **pp = &p->ready;
        p->ready_tail = NULL;
        while (*pp) {
            struct member *m = *pp;
            if ((check_alive && !member_alive(m->sb)) || p->n_ready > p->target) {
                *pp = m->next;
                p->n_ready--;
                m->next = out;
                out = m;
                continue;
            }
            p->ready_tail = m;
            pp = &m->next;
        }
    }
    return out;
}

/* Starting a member costs a few ms of CPU (clone, mounts, the agent's exec); on a small host a
 * refill that starts the moment a claim takes a member competes with that claim's own work (the
 * entrypoint hand-over, the store write) and doubled the claim's latency. So a refill waits until
 * claims have paused for REFILL_SETTLE_MS, unless the pool is down to half its target: then
 * keeping members ready matters more than the latency of the claims in flight. */
static bool
refill_yields(const struct pool *p, int64_t now)
{
    return now - p->last_claim_ms < REFILL_SETTLE_MS &&
           p->n_ready + p->n_starting >= p->target / 2 && p->n_ready > 0;
}

static void *
worker(void *arg)
{
    (void)arg;
    int64_t last_check = 0;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        int64_t now = apid_now_ms();
        bool check = now - last_check >= LIVENESS_EVERY_MS;
        struct member *surplus = collect_surplus(now, check);
        if (check)
            last_check = now;
        if (surplus) {
            pthread_mutex_unlock(&lock);
            discard_list(surplus);
            pthread_mutex_lock(&lock);
            continue;
        }
        /* The pool furthest below its target goes first, so one hot key cannot starve others. */
        struct pool *p = NULL;
        size_t best_gap = 0;
        int64_t wait_ms = 1000;
        for (size_t i = 0; i < n_pools; i++) {
            struct pool *q = &pools[i];
            size_t have = q->n_ready + q->n_starting;
            if (have >= q->target || now < q->backoff_until)
                continue;
            if (refill_yields(q, now)) {
                if (q->last_claim_ms + REFILL_SETTLE_MS - now < wait_ms)
                    wait_ms = q->last_claim_ms + REFILL_SETTLE_MS - now;
                continue;
            }
            if (q->target - have > best_gap) {
                best_gap = q->target - have;
                p = q;
            }
        }
        if (!p) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            int64_t ns = dl.tv_nsec + (wait_ms > 0 ? wait_ms : 1) * 1000000LL;
            dl.tv_sec += ns / 1000000000LL;
            dl.tv_nsec = ns % 1000000000LL;
            pthread_cond_timedwait(&cond, &lock, &dl);
            continue;
        }
        p->n_starting++;
        pthread_mutex_unlock(&lock);
        sbx_error_t err = NULL;
        struct apid_sandbox *sb = start_member(p, &err);
        pthread_mutex_lock(&lock);
        p->n_starting--;
        if (!sb) {
            /* A broken image or a full host must not turn into a fork loop: back off. */
            p->fails++;
            int64_t delay = 1000LL << (p->fails < 6 ? p->fails : 6);
            p->backoff_until = apid_now_ms() + delay;
            log_warn("pool %s: starting a member failed (retry in %llds): %s", p->key,
                     (long long)delay / 1000, err ? err->msg : "?");
            sbx_error_release(&err);
            continue;
        }
        p->fails = 0;
        struct member *m = xmalloc0(sizeof(*m));
        m->sb = sb;
        if (p->ready_tail)
            p->ready_tail->next = m;
        else
            p->ready = m;
        p->ready_tail = m;
        p->n_ready++;
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int
apid_pool_start(sbx_error_t *err)
{
    if (!n_pools)
        return 0;
    n_workers = (size_t)ctx->cfg->pool_concurrency;
    workers = xmalloc0(n_workers * sizeof(*workers));
    for (size_t i = 0; i < n_workers; i++) {
        int r = pthread_create(&workers[i], NULL, worker, NULL);
        if (r) {
            n_workers = i;
            return sbx_make_error(err, r, "pool worker thread");
        }
    }
    return 0;
}

void
apid_pool_stop(void)
{
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i < n_workers; i++)
        pthread_join(workers[i], NULL);
    free(workers);
    workers = NULL;
    n_workers = 0;
    for (size_t i = 0; i < n_pools; i++) {
        discard_list(pools[i].ready);
        pools[i].ready = pools[i].ready_tail = NULL;
        pools[i].n_ready = 0;
        free(pools[i].image_uri);
        free(pools[i].image_name);
        free(pools[i].key);
        json_decref(pools[i].net_policy);
    }
    free(pools);
    pools = NULL;
    n_pools = 0;
}

static struct pool *
match(const struct apid_create_req *req)
{
    if (!n_pools)
        return NULL;
    cleanup_free char *name = NULL;
    sbx_error_t e = NULL;
    if (apid_resolve_image(ctx->cfg->images_dir, req->image_uri, &name, &e) < 0) {
        sbx_error_release(&e);
        return NULL;
    }
    for (size_t i = 0; i < n_pools; i++) {
        struct pool *p = &pools[i];
        /* Within the class: limits can be lowered in place, never raised. */
        if (strcmp(p->image_name, name) || req->net_none ||
            json_array_size(req->volumes) > 0 || /* members start without volumes */
            !json_equal(req->net_policy, p->net_policy) ||
            req->limits.cpu_milli > p->cls.cpu_milli || req->limits.memory > p->cls.memory ||
            req->limits.pids > p->cls.pids ||
            req->limits.disk > 0) /* members have the default writable layer, fixed at mount */
            continue;
        return p;
    }
    return NULL;
}

static int
apply_limits(struct apid_sandbox *sb, const struct apid_limits *cls, const struct apid_limits *want,
             sbx_error_t *err)
{
    if (want->cpu_milli == cls->cpu_milli && want->memory == cls->memory && want->pids == cls->pids)
        return 0;
    /* The cgroup and the member's config.json change together: the record of a claimed sandbox
     * says what its cgroup has. */
    struct sbx_limits lim;
    apid_limits_to_sbx(want, &lim);
    json_t *res = sbx_limits_resources(&lim, err);
    if (res == NULL)
        return -1;
    cleanup_free char *dir = apid_sandboxes_dir(ctx->cfg);
    cleanup_free char *cfgp = xasprintf("%s/%s/config.json", dir, sb->id);
    int r = sbx_container_update(ctx->cfg->run_dir, sb->id, cfgp, res, err);
    json_decref(res);
    return r;
}

/* The entrypoint hand-over is sent before the claim's store write and its answer read after, so
 * the agent forks the entrypoint while apid commits the row. *call: the request in flight, NULL
 * if the request has no entrypoint. */
static int
hand_over_send(struct apid_sandbox *sb, const struct apid_create_req *req,
               struct apid_agent_call **call, sbx_error_t *err)
{
    *call = NULL;
    if (json_array_size(req->entrypoint) == 0)
        return 0;
    json_t *body = json_pack("{s:O, s:O}", "argv", req->entrypoint, "env",
                             json_is_object(req->env) ? req->env : json_object());
    cleanup_free char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct apid_agent_target t;
    apid_agent_target_of(sb, &t);
    *call =
        apid_agent_send(&t, "POST", "/entrypoint", "application/json", txt, strlen(txt), 5000, err);
    return *call ? 0 : -1;
}

static int
hand_over_finish(struct apid_agent_call *call, sbx_error_t *err)
{
    if (!call)
        return 0;
    struct apid_http_resp resp;
    int r = apid_agent_recv(call, 5000, 65536, &resp, err);
    if (r < 0)
        return r;
    if (resp.status != 200)
        r = sbx_make_error(err, 0, "agent refused the entrypoint: %d %s", resp.status,
                           resp.body ? resp.body : "");
    apid_http_resp_free(&resp);
    return r;
}

/* Claims a ready member of p for req. 1: *out is the adopted sandbox, 0: none ready. */
static int
claim(struct pool *p, const struct apid_create_req *req, struct apid_sandbox **out)
{
    for (;;) {
        pthread_mutex_lock(&lock);
        p->last_claim_ms = apid_now_ms();
        struct member *m = p->ready;
        if (m) {
            p->ready = m->next;
            if (!p->ready)
                p->ready_tail = NULL;
            p->n_ready--;
        } else if (p->target < p->max) {
            p->target++; /* demand: grow toward max */
        }
        pthread_cond_signal(&cond); /* refill */
        pthread_mutex_unlock(&lock);
        if (!m)
            return 0;
        struct apid_sandbox *sb = m->sb;
        free(m);
        /* Env/env-only requests without an entrypoint cannot be delivered to a running agent in a
         * way that later commands would see (no POST /entrypoint): those go cold. Checked by the
         * caller; here every member is usable unless it died or the hand-over fails. */
        sbx_error_t err = NULL;
        int64_t now = apid_now_ms();
        struct apid_agent_call *hand_over = NULL;
        if (!member_alive(sb) || apply_limits(sb, &p->cls, &req->limits, &err) < 0 ||
            hand_over_send(sb, req, &hand_over, &err) < 0) {
            if (err)
                log_warn("pool %s: member %s unusable: %s", p->key, sb->id, err->msg);
            sbx_error_release(&err);
            apid_mgr_discard(sb);
            apid_sandbox_free(sb);
            continue;
        }
        free(sb->image_uri);
        sb->image_uri = xstrdup(req->image_uri);
        json_decref(sb->entrypoint);
        sb->entrypoint = json_incref(req->entrypoint);
        json_decref(sb->env);
        sb->env = json_incref(req->env);
        json_decref(sb->metadata);
        sb->metadata = json_deep_copy(req->metadata);
        json_decref(sb->resource_limits);
        sb->resource_limits = json_incref(req->resource_limits);
        sb->limits = req->limits;
        sb->created_ms = sb->last_transition_ms = now;
        sb->expires_ms = req->timeout > 0 ? now + req->timeout * 1000 : 0;
        if (apid_mgr_adopt(sb, &err) < 0) {
            log_warn("pool %s: adopting %s: %s", p->key, sb->id, err->msg);
            sbx_error_release(&err);
            apid_agent_abandon(hand_over);
            apid_mgr_discard(sb);
            apid_sandbox_free(sb);
            continue;
        }
        if (hand_over_finish(hand_over, &err) < 0) {
            /* Adopted already: removed like any sandbox, and the next member is tried. */
            log_warn("pool %s: member %s refused the entrypoint: %s", p->key, sb->id, err->msg);
            sbx_error_release(&err);
            apid_mgr_delete(sb->id, "POOL_HANDOVER_FAILED", NULL);
            apid_sandbox_free(sb);
            continue;
        }
        log_info("sandbox %s created from pool %s", sb->id, p->key);
        *out = sb;
        return 1;
    }
}

int
apid_pool_create(const struct apid_create_req *req, bool *pooled, struct apid_sandbox **out,
                 sbx_error_t *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    *pooled = false;
    struct pool *p = NULL;
    /* Env without an entrypoint has no carrier into a running agent (see the top comment). */
    /* Nor does a user or working directory: the member's agent runs as its default user. */
    if ((json_array_size(req->entrypoint) > 0 || json_object_size(req->env) == 0) && !req->run_as &&
        !req->workdir)
        p = match(req);
    int r;
    struct apid_sandbox *sb = NULL;
    if (p && claim(p, req, &sb) == 1) {
        *pooled = true;
        apid_metrics_pool(true);
        /* Re-read: the reply shows exactly what the store holds, as for a cold create. */
        struct apid_sandbox *fresh = NULL;
        if (apid_store_get(ctx->store, sb->id, &fresh, NULL) == 1) {
            apid_sandbox_free(sb);
            sb = fresh;
        }
        r = 0;
    } else {
        if (p)
            apid_metrics_pool(false);
        r = apid_mgr_create(req, &sb, err);
    }
    if (r == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        apid_metrics_create((double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                                (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
                            *pooled);
        *out = sb;
    }
    return r;
}

void
apid_pool_health(json_t *o)
{
    json_t *per = json_object();
    size_t total = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_pools; i++) {
        struct pool *p = &pools[i];
        total += p->n_ready;
        json_object_set_new(per, p->key,
                            json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "image", p->image_uri,
                                      "ready", (json_int_t)p->n_ready, "starting",
                                      (json_int_t)p->n_starting, "min", (json_int_t)p->min, "max",
                                      (json_int_t)p->max, "target", (json_int_t)p->target));
    }
    pthread_mutex_unlock(&lock);
    json_object_set_new(o, "pool_size", json_integer((json_int_t)total));
    json_object_set_new(o, "pools", per);
}

void
apid_pool_foreach(apid_pool_visit_fn fn, void *cls)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_pools; i++)
        fn(cls, pools[i].key, pools[i].image_uri, pools[i].n_ready, pools[i].n_starting,
           pools[i].target);
    pthread_mutex_unlock(&lock);
}
