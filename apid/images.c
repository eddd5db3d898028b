/* Image pulls for apid. A create whose image is not in the store yet answers 202 at once: the
 * sandbox is Pending with reason IMAGE_PULLING and a message with the pull's progress, while a
 * thread pulls the image (libsbx's sbx_image_pull(), the same code as `sbxrun pull`). Creates of
 * one image share its pull: each waits on it and then starts, or ends Failed with the pull's
 * reason (IMAGE_NOT_FOUND, IMAGE_AUTH_FAILED, IMAGE_PULL_FAILED) and cause.
 *
 * Credentials (image.auth) are only in memory, for the pull; creates that give different
 * credentials for one image each get a pull of their own, so no create rides on another's
 * credentials. apid never forks on these threads (libcurl and libarchive only). */
#include "apid.h"
#include "image.h"
#include "metrics.h"

#include <stdatomic.h>
#include <sys/file.h>

struct waiter {
    char id[40];
    struct apid_create_req req;
    struct waiter *next;
};

struct pull {
    char *ref, *user, *pass, *images_dir;
    struct waiter *waiters;
    /* progress, for the waiters' messages */
    int layer, layers;
    uint64_t done, total;
    int64_t last_report_ms;
    struct pull *next;
};

static pthread_mutex_t pulls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pull *pulls;

static atomic_ullong m_pulls, m_failures, m_bytes, m_layers;

char *
apid_images_metrics_text(void)
{
    pthread_mutex_lock(&pulls_lock);
    unsigned n = 0;
    for (struct pull *p = pulls; p; p = p->next)
        n++;
    pthread_mutex_unlock(&pulls_lock);
    return xasprintf(
        "# HELP sbx_image_pulls_total Image pulls apid started.\n"
        "# TYPE sbx_image_pulls_total counter\nsbx_image_pulls_total %llu\n"
        "# HELP sbx_image_pull_failures_total Image pulls that failed.\n"
        "# TYPE sbx_image_pull_failures_total counter\nsbx_image_pull_failures_total %llu\n"
        "# HELP sbx_image_pull_bytes_total Layer bytes downloaded by pulls.\n"
        "# TYPE sbx_image_pull_bytes_total counter\nsbx_image_pull_bytes_total %llu\n"
        "# HELP sbx_image_pull_layers_total Layers downloaded and unpacked by pulls.\n"
        "# TYPE sbx_image_pull_layers_total counter\nsbx_image_pull_layers_total %llu\n"
        "# HELP sbx_image_pulls_in_progress Image pulls running now.\n"
        "# TYPE sbx_image_pulls_in_progress gauge\nsbx_image_pulls_in_progress %u\n",
        (unsigned long long)m_pulls, (unsigned long long)m_failures, (unsigned long long)m_bytes,
        (unsigned long long)m_layers, n);
}

static bool
same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void
on_progress(int layer, int n, const char *digest, uint64_t done, uint64_t total, const char *state,
            void *data)
{
    struct pull *p = data;
    if (layer < 0)
        return;
    int64_t now = apid_now_ms();
    pthread_mutex_lock(&pulls_lock);
    p->layer = layer;
    p->layers = n;
    p->done = done;
    p->total = total;
    bool report = now - p->last_report_ms >= 500 || strcmp(state, "downloading") != 0;
    if (report)
        p->last_report_ms = now;
    /* The ids to update, copied: the store is written without the lock held. */
    char(*ids)[40] = NULL;
    size_t nid = 0;
    for (struct waiter *w = report ? p->waiters : NULL; w; w = w->next) {
        ids = xrealloc(ids, (nid + 1) * sizeof(*ids));
        memcpy(ids[nid++], w->id, 40);
    }
    pthread_mutex_unlock(&pulls_lock);
    if (nid == 0)
        return;
    cleanup_free char *msg =
        xasprintf("pulling image %s: layer %d/%d %.19s %s, %.1f/%.1f MiB", p->ref, layer + 1, n,
                  digest ? digest : "", state, done / 1048576.0, total / 1048576.0);
    for (size_t i = 0; i < nid; i++)
        apid_mgr_pending_message(ids[i], msg);
    free(ids);
}

static void *
pull_thread(void *arg)
{
    struct pull *p = arg;
    struct sbx_pull_opts o = {.images_dir = p->images_dir,
                              .reg = {.username = p->user, .password = p->pass},
                              .progress = {on_progress, p}};
    struct sbx_pull_result res = {.kind = SBX_PULL_FAILED};
    sbx_error_t err = NULL;
    atomic_fetch_add(&m_pulls, 1);
    struct sbx_store st;
    int gc = sbx_store_open(p->images_dir, true, &st, &err) < 0
                 ? -1
                 : sbx_store_gc_lock(&st, LOCK_SH, &err);
    int r = gc < 0 ? -1 : sbx_image_pull(p->ref, &o, &res, &err);
    if (gc >= 0)
        close(gc);
    sbx_store_close(&st);
    const char *reason = NULL;
    cleanup_free char *msg = NULL;
    if (r < 0) {
        atomic_fetch_add(&m_failures, 1);
        reason = res.kind == SBX_PULL_NOT_FOUND ? "IMAGE_NOT_FOUND"
                 : res.kind == SBX_PULL_AUTH    ? "IMAGE_AUTH_FAILED"
                                                : "IMAGE_PULL_FAILED";
        msg = xasprintf("pulling image %s: %s", p->ref, err ? err->msg : "failed");
        log_warn("%s", msg);
    } else {
        atomic_fetch_add(&m_bytes, res.bytes_fetched);
        atomic_fetch_add(&m_layers, (unsigned long long)res.layers_fetched);
        log_info("image %s pulled (%s, %d layers, %d fetched)", p->ref, res.digest, res.layers,
                 res.layers_fetched);
    }
    sbx_error_release(&err);
    /* Out of the list first: a create arriving from now on finds the image in the store (or
     * starts a new pull after a failure). */
    pthread_mutex_lock(&pulls_lock);
    for (struct pull **pp = &pulls; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    struct waiter *w = p->waiters;
    p->waiters = NULL;
    pthread_mutex_unlock(&pulls_lock);
    while (w) {
        struct waiter *next = w->next;
        apid_mgr_image_ready(w->id, &w->req, r < 0 ? NULL : res.digest, reason, msg);
        apid_create_req_free(&w->req);
        free(w);
        w = next;
    }
    sbx_pull_result_free(&res);
    free(p->ref);
    free(p->images_dir);
    free(p->user);
    if (p->pass)
        explicit_bzero(p->pass, strlen(p->pass));
    free(p->pass);
    free(p);
    return NULL;
}

int
apid_images_pull_for(const char *images_dir, const char *ref, const char *id,
                     const struct apid_create_req *req, sbx_error_t *err)
{
    struct waiter *w = xmalloc0(sizeof(*w));
    snprintf(w->id, sizeof(w->id), "%s", id);
    apid_create_req_copy(req, &w->req);
    pthread_mutex_lock(&pulls_lock);
    struct pull *p = pulls;
    while (p && !(strcmp(p->ref, ref) == 0 && same(p->user, req->image_user) &&
                  same(p->pass, req->image_pass)))
        p = p->next;
    if (p) { /* share the running pull */
        w->next = p->waiters;
        p->waiters = w;
        pthread_mutex_unlock(&pulls_lock);
        return 0;
    }
    p = xmalloc0(sizeof(*p));
    p->ref = xstrdup(ref);
    p->images_dir = xstrdup(images_dir);
    p->user = xstrdup(req->image_user);
    p->pass = xstrdup(req->image_pass);
    p->waiters = w;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &a, pull_thread, p);
    pthread_attr_destroy(&a);
    if (e != 0) {
        pthread_mutex_unlock(&pulls_lock);
        apid_create_req_free(&w->req);
        free(w);
        free(p->ref);
        free(p->images_dir);
        free(p->user);
        free(p->pass);
        free(p);
        return sbx_make_error(err, e, "start the pull of %s", ref);
    }
    p->next = pulls;
    pulls = p;
    pthread_mutex_unlock(&pulls_lock);
    return 0;
}
