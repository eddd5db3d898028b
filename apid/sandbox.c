/* The sandbox manager: lifecycle operations, the watcher/expiry thread and restart recovery.
 *
 * Truth lives in two places that must agree: the store (what the API reports) and the processes
 * (libsbx state in the run dir + the per-sandbox monitor). Every state change is committed to the
 * store before the API reports it. Operations on one sandbox are serialized by a per-id busy lock
 * so create/delete/pause/expiry never interleave; reads (GET/list) go straight to the store.
 *
 * Per-sandbox files live in <run-dir>/.sandboxes/<id>/ (apid_sandboxes_dir()): config.json,
 * token (0400), net.json, monitor.pid, monitor.log and result.json (written by the monitor when
 * the sandbox ends). They matter only while the sandbox's processes may live, which no reboot
 * outlasts, so they sit on the run dir's tmpfs: on ext4 each create and delete of these files
 * made the next inode allocation scan past recently deleted inodes (recently_deleted()), a third
 * of apid's CPU per create after a few hundred sandboxes. The store stays in the data dir. */
#include "apid.h"
#include "container.h"
#include "state.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define START_TIMEOUT_MS 30000
#define RESULT_GRACE_MS 5000

static struct apid_ctx *ctx;

/* ---------- per-sandbox busy locks ---------- */

struct busy {
    char id[65];
    struct busy *next;
};
static struct busy *busy_list;
static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t busy_cond = PTHREAD_COND_INITIALIZER;

static bool
busy_has(const char *id)
{
    for (struct busy *b = busy_list; b; b = b->next)
        if (strcmp(b->id, id) == 0)
            return true;
    return false;
}

static bool
sb_lock_try(const char *id, bool wait)
{
    pthread_mutex_lock(&busy_lock);
    while (busy_has(id)) {
        if (!wait) {
            pthread_mutex_unlock(&busy_lock);
            return false;
        }
        pthread_cond_wait(&busy_cond, &busy_lock);
    }
    struct busy *b = xmalloc0(sizeof(*b));
    snprintf(b->id, sizeof(b->id), "%s", id);
    b->next = busy_list;
    busy_list = b;
    pthread_mutex_unlock(&busy_lock);
    return true;
}

static void
sb_lock(const char *id)
{
    sb_lock_try(id, true);
}

static void
sb_unlock(const char *id)
{
    pthread_mutex_lock(&busy_lock);
    for (struct busy **p = &busy_list; *p; p = &(*p)->next) {
        if (strcmp((*p)->id, id) == 0) {
            struct busy *b = *p;
            *p = b->next;
            free(b);
            break;
        }
    }
    pthread_cond_broadcast(&busy_cond);
    pthread_mutex_unlock(&busy_lock);
}

/* ---------- watch list: sandboxes whose main process we wait for ---------- */

struct watch {
    char id[65];
    int pidfd;
    int64_t exited_ms; /* 0 while running */
};
static struct watch *watches;
static size_t n_watches;
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static int wake_fd = -1;
static pthread_t mon_thread;
static volatile bool stopping;

static void
wake(void)
{
    uint64_t one = 1;
    if (wake_fd >= 0 && write(wake_fd, &one, sizeof(one)) < 0) {
        /* The counter is saturated only if nobody reads it; the thread polls anyway. */
    }
}

static int
pidfd_open_checked(pid_t pid, unsigned long long start)
{
    if (pid <= 0)
        return -1;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -1;
    /* The pid is trusted only with its start time: a recycled pid is another process. */
    if (start && sbx_pid_start_time(pid) != start) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

static void
watch_add(const char *id, pid_t pid, unsigned long long start)
{
    int fd = pidfd_open_checked(pid, start);
    pthread_mutex_lock(&watch_lock);
    watches = xrealloc(watches, (n_watches + 1) * sizeof(*watches));
    struct watch *w = &watches[n_watches++];
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->pidfd = fd;
    w->exited_ms = fd < 0 ? apid_now_ms() : 0;
    pthread_mutex_unlock(&watch_lock);
    wake();
}

static void
watch_remove(const char *id)
{
    pthread_mutex_lock(&watch_lock);
    for (size_t i = 0; i < n_watches; i++) {
        if (strcmp(watches[i].id, id) == 0) {
            if (watches[i].pidfd >= 0)
                close(watches[i].pidfd);
            watches[i] = watches[--n_watches];
            break;
        }
    }
    pthread_mutex_unlock(&watch_lock);
}

/* ---------- helpers ---------- */

static char *
sb_dir(const char *id)
{
    cleanup_free char *root = apid_sandboxes_dir(ctx->cfg);
    return xasprintf("%s/%s", root, id);
}

/* Reads "<pid> <start>" from monitor.pid. */
static bool
read_monitor_pid(const char *id, pid_t *pid, unsigned long long *start)
{
    cleanup_free char *dir = sb_dir(id);
    cleanup_free char *p = xasprintf("%s/monitor.pid", dir);
    cleanup_free char *txt = NULL;
    if (read_file(p, &txt, NULL, NULL) < 0)
        return false;
    int ip;
    return sscanf(txt, "%d %llu", &ip, start) == 2 && (*pid = ip) > 0;
}

/* An exited process stays in /proc (same pid and start time) until its parent, the monitor,
 * reaps it; that is not a live sandbox. */
static bool
proc_is_zombie(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp && (rp[2] == 'Z' || rp[2] == 'X');
}

static bool
proc_alive(pid_t pid, unsigned long long start)
{
    return pid > 0 && start && sbx_pid_start_time(pid) == start;
}

/* Waits (bounded) for a process identified by pid + start time to go away. */
static bool
wait_gone(pid_t pid, unsigned long long start, int timeout_ms)
{
    int fd = pidfd_open_checked(pid, start);
    if (fd < 0)
        return true;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = TEMP_FAILURE_RETRY(poll(&p, 1, timeout_ms));
    close(fd);
    return r > 0;
}

/* Frees every runtime resource of a sandbox (processes, cgroup, mounts, state dir). Idempotent. */
static void
release_runtime(const char *id, pid_t mon, unsigned long long mon_start)
{
    sbx_error_t err = NULL;
    struct sbx_state *st = NULL;
    if (sbx_state_load(ctx->cfg->run_dir, id, &st, &err) == 0) {
        if (sbx_state_alive(st) &&
            sbx_container_kill(ctx->cfg->run_dir, id, SIGKILL, true, &err) < 0) {
            log_warn("sandbox %s: kill: %s", id, err->msg);
            sbx_error_release(&err);
        }
        sbx_state_free(st);
    }
    sbx_error_release(&err);
    /* The monitor is tearing the sandbox down too once its init dies; let it finish so the two
     * cleanups do not race, then remove whatever is left. */
    if (mon > 0 && !wait_gone(mon, mon_start, 10000)) {
        log_warn("sandbox %s: monitor %d still running, killing it", id, mon);
        kill(mon, SIGKILL);
        wait_gone(mon, mon_start, 2000);
    }
    if (sbx_container_delete(ctx->cfg->run_dir, id, true, &err) < 0) {
        if (err->status != ENOENT)
            log_warn("sandbox %s: delete runtime state: %s", id, err->msg);
        sbx_error_release(&err);
    }
    /* A create killed before libsbx wrote state.json may leave a bare directory behind. */
    cleanup_free char *rd = xasprintf("%s/%s", ctx->cfg->run_dir, id);
    if (access(rd, F_OK) == 0 && rm_rf(rd, &err) < 0) {
        log_warn("sandbox %s: %s", id, err->msg);
        sbx_error_release(&err);
    }
}

static void
monitor_of(const struct apid_sandbox *sb, pid_t *mon, unsigned long long *start)
{
    *mon = sb->monitor_pid;
    *start = sb->monitor_start;
    if (*mon <= 0)
        read_monitor_pid(sb->id, mon, start);
}

/* Removes a sandbox completely: processes, runtime state, files, store row. Caller holds its lock.
 */
static int
destroy(struct apid_sandbox *sb, const char *reason, sbx_error_t *err)
{
    int r;
    if (sb->state != ST_STOPPING) {
        r = apid_store_set_state(ctx->store, sb->id, ST_STOPPING, reason,
                                 "sandbox is being removed", err);
        if (r < 0)
            return r;
    }
    /* Logged before the row goes: a kill -9 after it leaves no trace of why it went. */
    log_info("sandbox %s: removing (reason %s)", sb->id, reason);
    watch_remove(sb->id);
    pid_t mon;
    unsigned long long mstart;
    monitor_of(sb, &mon, &mstart);
    release_runtime(sb->id, mon, mstart);
    apid_proxy_abort(sb->id);
    apid_net_release(sb->id, sb->address, sb->veth);
    cleanup_free char *dir = sb_dir(sb->id);
    if ((r = rm_rf(dir, err)) < 0)
        return r;
    if ((r = apid_store_delete(ctx->store, sb->id, err)) < 0)
        return r;
    log_info("sandbox %s removed (reason %s)", sb->id, reason);
    return 0;
}

/* Decides Terminated/Failed from result.json once the main process is gone. */
static void
finalize(const char *id, bool monitor_gone)
{
    struct apid_sandbox *sb = NULL;
    sbx_error_t err = NULL;
    if (apid_store_get(ctx->store, id, &sb, &err) <= 0) {
        sbx_error_release(&err);
        watch_remove(id);
        return;
    }
    cleanup_free char *dir = sb_dir(id);
    cleanup_free char *rp = xasprintf("%s/result.json", dir);
    json_t *res = json_load_file(rp, 0, NULL);
    int state = ST_FAILED;
    const char *reason = "CONTAINER_EXITED_ERROR";
    cleanup_free char *msg = NULL;
    if (res) {
        int code = (int)json_integer_value(json_object_get(res, "exitCode"));
        int sig = (int)json_integer_value(json_object_get(res, "signal"));
        const char *error = json_string_value(json_object_get(res, "error"));
        bool oom = json_is_true(json_object_get(res, "oom"));
        if (error) {
            reason = "PROVISIONING_ERROR";
            msg = xasprintf("sandbox failed: %s", error);
        } else if (code == 0) {
            state = ST_TERMINATED;
            reason = "CONTAINER_EXITED";
            msg = xstrdup("main process exited with code 0");
        } else {
            msg = xasprintf("main process exited with code %d%s%s%s", code, sig ? " (signal " : "",
                            sig ? signal_name(sig) : "", sig ? ")" : "");
            if (oom) {
                char *m2 = xasprintf("%s; out of memory", msg);
                free(msg);
                msg = m2;
            }
        }
        json_decref(res);
    } else {
        msg = xstrdup(monitor_gone ? "sandbox exited; its exit status was lost"
                                   : "sandbox exited; no exit status reported in time");
    }
    if (!apid_state_terminal(sb->state) && sb->state != ST_STOPPING) {
        if (apid_store_set_state(ctx->store, id, state, reason, msg, &err) < 0) {
            log_err("sandbox %s: %s", id, err->msg);
            sbx_error_release(&err);
        } else {
            log_info("sandbox %s %s: %s", id, apid_state_name(state), msg);
        }
    }
    watch_remove(id);
    pid_t mon;
    unsigned long long mstart;
    monitor_of(sb, &mon, &mstart);
    release_runtime(id, mon, mstart);
    /* An ended sandbox keeps its row (Terminated/Failed) but not its address. */
    apid_net_release(id, sb->address, sb->veth);
    if (sb->address)
        apid_store_set_net(ctx->store, id, NULL, NULL, NULL);
    apid_sandbox_free(sb);
}

/* ---------- JSON shape ---------- */

json_t *
apid_sandbox_json(const struct apid_sandbox *sb, bool full)
{
    char ts[40];
    json_t *status = json_object();
    json_object_set_new(status, "state", json_string(apid_state_name(sb->state)));
    if (sb->reason)
        json_object_set_new(status, "reason", json_string(sb->reason));
    if (sb->message)
        json_object_set_new(status, "message", json_string(sb->message));
    apid_format_time(sb->last_transition_ms, ts, sizeof(ts));
    json_object_set_new(status, "lastTransitionAt", json_string(ts));
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(sb->id));
    json_object_set_new(o, "status", status);
    json_object_set(o, "metadata", json_is_object(sb->metadata) ? sb->metadata : json_object());
    json_object_set(o, "entrypoint", json_is_array(sb->entrypoint) ? sb->entrypoint : json_array());
    apid_format_time(sb->created_ms, ts, sizeof(ts));
    json_object_set_new(o, "createdAt", json_string(ts));
    if (sb->expires_ms) {
        apid_format_time(sb->expires_ms, ts, sizeof(ts));
        json_object_set_new(o, "expiresAt", json_string(ts));
    }
    if (full && sb->image_uri)
        json_object_set_new(o, "image", json_pack("{s:s}", "uri", sb->image_uri));
    if (json_array_size(sb->volumes))
        json_object_set(o, "volumes", sb->volumes);
    return o;
}

/* ---------- operations ---------- */

int
apid_mgr_get(const char *id, struct apid_sandbox **out, sbx_error_t *err)
{
    int r = apid_store_get(ctx->store, id, out, err);
    if (r < 0)
        return r;
    if (r == 0)
        return apid_fail(err, E_NOT_FOUND, "sandbox `%s` not found", id);
    return 0;
}

/* Host id that the sandbox's uid/gid 0 maps to (0 without a user namespace). */
static unsigned
host_id_of_root(json_t *oci, const char *which)
{
    json_t *maps = json_object_get(json_object_get(oci, "linux"), which), *m;
    size_t i;
    json_array_foreach (maps, i, m) {
        if (json_integer_value(json_object_get(m, "containerID")) == 0)
            return (unsigned)json_integer_value(json_object_get(m, "hostID"));
    }
    return 0;
}

/* Reads the status pipe until the {"pid":N} line, EOF (start failed) or the timeout. */
static pid_t
await_started(int fd, int timeout_ms)
{
    char buf[4096];
    size_t len = 0;
    int64_t deadline = apid_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - apid_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = TEMP_FAILURE_RETRY(poll(&p, 1, (int)left));
        if (r <= 0)
            return 0;
        ssize_t n = TEMP_FAILURE_RETRY(read(fd, buf + len, sizeof(buf) - 1 - len));
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        char *nl;
        while ((nl = strchr(buf, '\n'))) {
            *nl = '\0';
            json_t *o = json_loads(buf, 0, NULL);
            pid_t pid = o ? (pid_t)json_integer_value(json_object_get(o, "pid")) : 0;
            bool ended = o && json_object_get(o, "exit-code");
            json_decref(o);
            if (pid > 0)
                return pid;
            if (ended)
                return -1;
            len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len + 1);
        }
        if (len == sizeof(buf) - 1)
            len = 0;
    }
}

static char *
start_error(const char *id)
{
    cleanup_free char *dir = sb_dir(id);
    cleanup_free char *rp = xasprintf("%s/result.json", dir);
    json_t *res = json_load_file(rp, 0, NULL);
    const char *e = json_string_value(json_object_get(res, "error"));
    char *msg = e     ? xstrdup(e)
                : res ? xasprintf("main process exited with code %d during start",
                                  (int)json_integer_value(json_object_get(res, "exitCode")))
                      : xstrdup("the sandbox did not start in time");
    json_decref(res);
    return msg;
}

/* pooled: a warm-pool member, kept out of the store and the watch list until
 * apid_mgr_adopt(); a crash meanwhile leaves an orphan that apid_mgr_recover() removes. */
/* A new sandbox record (Pending) with its network address, not stored yet. */
static int
new_sandbox(const struct apid_create_req *req, struct apid_sandbox **out, sbx_error_t *err)
{
    int r;
    struct apid_sandbox *sb = xmalloc0(sizeof(*sb));
    apid_new_id(sb->id);
    char token[65];
    random_hex(token, 64);
    sb->token = xstrdup(token);
    explicit_bzero(token, sizeof(token));
    sb->state = ST_PENDING;
    sb->reason = xstrdup("CONTAINER_STARTING");
    sb->message = xstrdup("sandbox is starting");
    sb->created_ms = sb->last_transition_ms = apid_now_ms();
    sb->expires_ms = req->timeout > 0 ? sb->created_ms + req->timeout * 1000 : 0;
    sb->image_uri = xstrdup(req->image_uri);
    sb->entrypoint = json_incref(req->entrypoint);
    sb->env = json_incref(req->env);
    sb->metadata = json_deep_copy(req->metadata);
    sb->resource_limits = json_incref(req->resource_limits);
    sb->limits = req->limits;
    sb->volumes = json_incref(req->volumes);
    if (apid_net_enabled() && !req->net_none &&
        (r = apid_net_alloc(sb->id, &sb->address, &sb->veth, err)) < 0) {
        apid_sandbox_free(sb);
        return r;
    }
    *out = sb;
    return 0;
}

/* Starts a sandbox from a resolved image: a new one, or `pending`, whose row exists already
 * (a create that waited for its image's pull: on failure it ends Failed, the client has its
 * 202). */
static int
launch(const struct apid_create_req *req, const char *image, bool pooled,
       struct apid_sandbox *pending, struct apid_sandbox **out, sbx_error_t *err)
{
    struct apid_config *cfg = ctx->cfg;
    struct apid_sandbox *sb = pending;
    int r;
    if (sb == NULL && (r = new_sandbox(req, &sb, err)) < 0)
        return r;
    const char *token = sb->token;

    cleanup_free char *dir = sb_dir(sb->id);
    cleanup_free char *tokp = xasprintf("%s/token", dir);
    cleanup_free char *cfgp = xasprintf("%s/config.json", dir);
    json_t *oci = NULL;
    bool inserted = false;
    int status_fd = -1;
    cleanup_free char *resolvp = NULL;
    sb_lock(sb->id);
    /* 0711: the sandbox's (id-mapped) root must reach its token below this directory, but may
     * not list it or read anything else here. */
    if ((r = mkdir_p(dir, 0711, err)) < 0)
        goto fail;
    chmod(dir, 0711);
    {
        cleanup_close int fd = open(tokp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
        if (fd < 0 || safe_write(fd, token, strlen(token)) < 0) {
            r = sbx_make_error(err, errno, "write %s", tokp);
            goto fail;
        }
    }
    const char *agent = cfg->agent_path && *cfg->agent_path && strcmp(cfg->agent_path, "none")
                            ? cfg->agent_path
                            : NULL;
    /* The sandbox resolves names through apid's resolver on its gateway (dns.c): that is where
     * domain rules are enforced, whatever resolv.conf the image carries. */
    if (sb->address && apid_dns_running()) {
        resolvp = xasprintf("%s/resolv.conf", dir);
        cleanup_free char *txt = xasprintf("# written by sbx-apid: its resolver on the sandbox "
                                           "bridge\nnameserver %s\n",
                                           apid_net_gateway());
        if ((r = write_file(resolvp, txt, strlen(txt), err)) < 0)
            goto fail;
        chmod(resolvp, 0644);
    }
    struct apid_spec_in in = {
        .resolv_path = resolvp,
        .id = sb->id,
        .images_dir = cfg->images_dir,
        .image_name = image,
        .agent_path = agent,
        .token_path = tokp,
        .entrypoint = req->entrypoint,
        .env = req->env,
        .limits = req->limits,
        .run_as = req->run_as,
        .uid = req->uid,
        .gid = req->gid,
        .fs_gid = req->fs_gid,
        .workdir = req->workdir,
        .volume_mounts = req->volume_mounts,
    };
    if ((r = apid_build_oci(&in, &oci, err)) < 0) {
        r = apid_fail(err, E_START_FAILED, "building the sandbox config: %s", (*err)->msg);
        goto fail;
    }
    /* Readable only by the sandbox's root, which is an unprivileged host id when the config
     * maps a user namespace; the agent reads it at start and unlinks it when it can. */
    if (chown(tokp, host_id_of_root(oci, "uidMappings"), host_id_of_root(oci, "gidMappings")) < 0) {
        r = sbx_make_error(err, errno, "chown %s", tokp);
        goto fail;
    }
    if (json_dump_file(oci, cfgp, JSON_INDENT(2)) < 0) {
        r = sbx_make_error(err, errno, "write %s", cfgp);
        goto fail;
    }
    if (sb->address) {
        /* The monitor plumbs the veth from this; the policy is re-read from it after a restart. */
        cleanup_free char *netp = xasprintf("%s/net.json", dir);
        json_t *plan = apid_net_plan(sb->id, sb->address, req->net_policy);
        int dr = json_dump_file(plan, netp, JSON_COMPACT);
        json_decref(plan);
        if (dr < 0) {
            r = sbx_make_error(err, errno, "write %s", netp);
            goto fail;
        }
    }
    chmod(cfgp, 0600);
    /* The row exists before any process does, so a crash from here on is found by recovery. */
    if (pending) {
        struct apid_sandbox *row = NULL;
        bool there = apid_store_get(ctx->store, sb->id, &row, NULL) == 1;
        apid_sandbox_free(row);
        if (!there) {
            r = apid_fail(err, E_NOT_FOUND, "sandbox %s was deleted while its image was pulled",
                          sb->id);
            goto fail;
        }
    }
    if (!pooled && !pending) {
        /* Named volumes are made and the row that uses them stored under one lock: a DELETE of
         * the volume sees the row (409) or runs before the volume is made again. */
        apid_volumes_lock();
        if ((r = apid_volumes_make(req, err)) == 0)
            r = apid_store_insert(ctx->store, sb, err);
        apid_volumes_unlock();
        if (r < 0)
            goto fail;
    } else if (pending && (r = apid_volumes_make(req, err)) < 0) {
        goto fail; /* its row holds the volumes since the create */
    }
    inserted = !pooled && !pending;

    pid_t mon = 0;
    if ((r = apid_launcher_spawn(sb->id, dir, cfg->run_dir, cfg->cgroup_parent, &mon, &status_fd,
                                 err)) < 0)
        goto fail;
    sb->monitor_pid = mon;
    sb->monitor_start = sbx_pid_start_time(mon);
    if (!pooled)
        apid_store_set_runtime(ctx->store, sb->id, 0, 0, mon, sb->monitor_start, NULL, NULL);
    pid_t pid = await_started(status_fd, START_TIMEOUT_MS);
    close(status_fd);
    status_fd = -1;
    if (pid <= 0) {
        if (pid == 0) /* timed out: stop the half-started sandbox */
            kill(mon, SIGKILL);
        wait_gone(mon, sb->monitor_start, 5000);
        cleanup_free char *why = start_error(sb->id);
        r = apid_fail(err, E_START_FAILED, "sandbox failed to start: %s", why);
        goto fail;
    }
    sb->pid = pid;
    sb->pid_start = sbx_pid_start_time(pid);
    struct sbx_state *st = NULL;
    sbx_error_t e2 = NULL;
    if (sbx_state_load(cfg->run_dir, sb->id, &st, &e2) == 0) {
        sb->cgroup = st->cgroup ? xstrdup(st->cgroup) : NULL;
        if (st->pid == pid && st->pid_start)
            sb->pid_start = st->pid_start;
        sbx_state_free(st);
    }
    sbx_error_release(&e2);
    /* Egress rules only after the address is plumbed; until then the default drop applies. */
    if ((r = apid_net_attach(sb->id, sb->address, req->net_policy, err)) < 0)
        goto fail;
    if (pooled) {
        json_decref(oci);
        sb->state = ST_RUNNING;
        log_debug("pooled sandbox %s started (image %s, pid %d)", sb->id, image, pid);
        sb_unlock(sb->id);
        *out = sb;
        return 0;
    }
    if ((r = apid_store_set_runtime(ctx->store, sb->id, pid, sb->pid_start, mon, sb->monitor_start,
                                    sb->cgroup, err)) < 0)
        goto fail;
    if ((r = apid_store_set_state(ctx->store, sb->id, ST_RUNNING, "CONTAINER_RUNNING",
                                  "sandbox is running", err)) < 0)
        goto fail;
    watch_add(sb->id, pid, sb->pid_start);
    json_decref(oci);
    struct apid_sandbox *fresh = NULL;
    apid_store_get(ctx->store, sb->id, &fresh, NULL);
    log_info("sandbox %s created (image %s, pid %d)", sb->id, image, pid);
    sb_unlock(sb->id);
    if (fresh) {
        if (!pending) /* the caller owns a pending record */
            apid_sandbox_free(sb);
        sb = fresh;
    }
    *out = sb;
    return 0;

fail:
    /* Never leave a half-created sandbox: undo everything, including the store row. */
    if (status_fd >= 0)
        close(status_fd);
    json_decref(oci);
    log_warn("sandbox %s: create failed: %s", sb->id, *err ? (*err)->msg : "?");
    {
        pid_t mon;
        unsigned long long ms;
        monitor_of(sb, &mon, &ms);
        release_runtime(sb->id, mon, ms);
        apid_net_release(sb->id, sb->address, sb->veth);
        sbx_error_t e3 = NULL;
        rm_rf(dir, &e3);
        sbx_error_release(&e3);
        if (inserted)
            apid_store_delete(ctx->store, sb->id, NULL);
        else if (pending)
            apid_store_set_state(ctx->store, sb->id, ST_FAILED, "SANDBOX_START_FAILED",
                                 *err ? (*err)->msg : "start failed", NULL);
    }
    sb_unlock(sb->id);
    if (!pending)
        apid_sandbox_free(sb);
    return r;
}

static int
create_sandbox(const struct apid_create_req *req, bool pooled, struct apid_sandbox **out,
               sbx_error_t *err)
{
    cleanup_free char *image = NULL;
    int r = apid_resolve_image(ctx->cfg->images_dir, req->image_uri, &image, err);
    if (r < 0)
        return r;
    if (r != APID_IMAGE_PULL)
        return launch(req, image, pooled, NULL, out, err);
    if (pooled)
        return apid_fail(err, E_IMAGE_NOT_FOUND,
                         "pool image `%s` is not in the image store: "
                         "pull it first (sbxrun pull)",
                         image);
    /* Not pulled yet: the client gets its 202 now, the sandbox waits Pending for the pull
     * (images.c), then starts (apid_mgr_image_ready()). */
    struct apid_sandbox *sb = NULL;
    if ((r = new_sandbox(req, &sb, err)) < 0)
        return r;
    free(sb->reason);
    free(sb->message);
    sb->reason = xstrdup("IMAGE_PULLING");
    sb->message = xasprintf("pulling image %s", image);
    sb_lock(sb->id);
    apid_volumes_lock();
    if ((r = apid_volumes_make(req, err)) == 0)
        r = apid_store_insert(ctx->store, sb, err);
    apid_volumes_unlock();
    if (r == 0 && (r = apid_images_pull_for(ctx->cfg->images_dir, image, sb->id, req, err)) < 0)
        apid_store_delete(ctx->store, sb->id, NULL);
    sb_unlock(sb->id);
    if (r < 0) {
        apid_net_release(sb->id, sb->address, sb->veth);
        apid_sandbox_free(sb);
        return r;
    }
    if (sb->expires_ms)
        wake(); /* its expiry applies while it waits too */
    *out = sb;
    return 0;
}

void
apid_mgr_image_ready(const char *id, const struct apid_create_req *req, const char *digest,
                     const char *reason, const char *message)
{
    struct apid_sandbox *sb = NULL;
    if (apid_store_get(ctx->store, id, &sb, NULL) != 1 || sb == NULL)
        return; /* deleted while it waited */
    if (sb->state != ST_PENDING) {
        apid_sandbox_free(sb);
        return;
    }
    if (digest == NULL) {
        sb_lock(id);
        apid_store_set_state(ctx->store, id, ST_FAILED, reason, message, NULL);
        sb_unlock(id);
        apid_sandbox_free(sb);
        return;
    }
    sbx_error_t err = NULL;
    struct apid_sandbox *out = NULL;
    /* Its expiry was armed at create; the start keeps the stored one. */
    if (launch(req, digest, false, sb, &out, &err) < 0) {
        log_warn("sandbox %s: start after the image pull failed: %s", id, err ? err->msg : "?");
        sbx_error_release(&err);
    } else if (out != sb) {
        apid_sandbox_free(out);
    }
    apid_sandbox_free(sb);
}

void
apid_mgr_pending_message(const char *id, const char *message)
{
    if (!sb_lock_try(id, false))
        return; /* busy (being deleted or started): the next report will do */
    struct apid_sandbox *sb = NULL;
    if (apid_store_get(ctx->store, id, &sb, NULL) == 1 && sb && sb->state == ST_PENDING)
        apid_store_set_state(ctx->store, id, ST_PENDING, "IMAGE_PULLING", message, NULL);
    apid_sandbox_free(sb);
    sb_unlock(id);
}

int
apid_mgr_create(const struct apid_create_req *req, struct apid_sandbox **out, sbx_error_t *err)
{
    return create_sandbox(req, false, out, err);
}

/* ---------- warm pool hooks (pool.c) ---------- */

int
apid_mgr_prestart(const struct apid_create_req *req, struct apid_sandbox **out, sbx_error_t *err)
{
    return create_sandbox(req, true, out, err);
}

int
apid_mgr_adopt(struct apid_sandbox *sb, sbx_error_t *err)
{
    sb_lock(sb->id);
    sb->state = ST_RUNNING;
    free(sb->reason);
    free(sb->message);
    sb->reason = xstrdup("CONTAINER_RUNNING");
    sb->message = xstrdup("sandbox is running (from the warm pool)");
    /* One transaction: the row is born with its processes (a pooled member already runs). */
    int r = apid_store_insert(ctx->store, sb, err);
    if (r == 0)
        watch_add(sb->id, sb->pid, sb->pid_start);
    sb_unlock(sb->id);
    if (r == 0 && sb->expires_ms)
        wake(); /* arm its expiry timer */
    return r;
}

void
apid_mgr_discard(const struct apid_sandbox *sb)
{
    sb_lock(sb->id);
    release_runtime(sb->id, sb->monitor_pid, sb->monitor_start);
    apid_net_release(sb->id, sb->address, sb->veth);
    cleanup_free char *dir = sb_dir(sb->id);
    sbx_error_t e = NULL;
    if (rm_rf(dir, &e) < 0) {
        log_warn("pooled sandbox %s: %s", sb->id, e->msg);
        sbx_error_release(&e);
    }
    sb_unlock(sb->id);
}

int
apid_mgr_delete(const char *id, const char *reason, sbx_error_t *err)
{
    struct apid_sandbox *sb = NULL;
    sb_lock(id);
    int r = apid_mgr_get(id, &sb, err);
    if (r == 0)
        r = destroy(sb, reason, err);
    sb_unlock(id);
    apid_sandbox_free(sb);
    return r;
}

/* Pause and resume are one transition read in opposite directions: the state it starts from,
 * the libsbx call, and the state (with its reason) it ends in. */
struct pause_step {
    int from, to; /* enum apid_state, as struct apid_sandbox keeps it */
    const char *verb, *reason, *message;
    const char *from_code; /* the error when the sandbox is not in `from` */
    int (*call)(const char *run_dir, const char *id, sbx_error_t *err);
};

static const struct pause_step PAUSE = {.from = ST_RUNNING,
                                        .to = ST_PAUSED,
                                        .verb = "pause",
                                        .reason = "CONTAINER_PAUSED",
                                        .message = "sandbox is paused",
                                        .from_code = E_NOT_RUNNING,
                                        .call = sbx_container_pause};
static const struct pause_step RESUME = {.from = ST_PAUSED,
                                         .to = ST_RUNNING,
                                         .verb = "resume",
                                         .reason = "CONTAINER_RUNNING",
                                         .message = "sandbox is running",
                                         .from_code = E_NOT_PAUSED,
                                         .call = sbx_container_resume};

static int
pause_transition(const char *id, const struct pause_step *s, sbx_error_t *err)
{
    struct apid_sandbox *sb = NULL;
    sb_lock(id);
    int r = apid_mgr_get(id, &sb, err);
    if (r == 0 && sb->state != s->from)
        r = apid_fail(err, s->from_code, "sandbox `%s` is %s, not %s", id,
                      apid_state_name(sb->state), apid_state_name(s->from));
    if (r == 0 && (r = s->call(ctx->cfg->run_dir, id, err)) < 0)
        sbx_error_wrap(err, "%s", s->verb);
    if (r == 0)
        r = apid_store_set_state(ctx->store, id, s->to, s->reason, s->message, err);
    sb_unlock(id);
    apid_sandbox_free(sb);
    return r;
}

int
apid_mgr_pause(const char *id, sbx_error_t *err)
{
    return pause_transition(id, &PAUSE, err);
}

int
apid_mgr_resume(const char *id, sbx_error_t *err)
{
    return pause_transition(id, &RESUME, err);
}

int
apid_mgr_renew(const char *id, int64_t expires_ms, sbx_error_t *err)
{
    struct apid_sandbox *sb = NULL;
    sb_lock(id);
    int r = apid_mgr_get(id, &sb, err);
    if (r == 0 && sb->expires_ms == 0)
        r = apid_fail(err, E_NO_EXPIRATION,
                      "sandbox `%s` was created without a timeout and never expires", id);
    if (r == 0 && sb->state == ST_STOPPING)
        r = apid_fail(err, E_CONFLICT, "sandbox `%s` is being removed", id);
    if (r == 0)
        r = apid_store_set_expiry(ctx->store, id, expires_ms, err);
    sb_unlock(id);
    apid_sandbox_free(sb);
    if (r == 0)
        wake(); /* re-arm the timer */
    return r;
}

int
apid_mgr_patch_metadata(const char *id, json_t *patch, struct apid_sandbox **out, sbx_error_t *err)
{
    struct apid_sandbox *sb = NULL;
    int r = apid_validate_metadata(patch, true, err);
    if (r < 0)
        return r;
    sb_lock(id);
    r = apid_mgr_get(id, &sb, err);
    if (r == 0) {
        json_t *md = json_is_object(sb->metadata) ? json_deep_copy(sb->metadata) : json_object();
        const char *k;
        json_t *v;
        json_object_foreach (patch, k, v) {
            if (json_is_null(v))
                json_object_del(md, k);
            else
                json_object_set(md, k, v);
        }
        r = apid_store_set_metadata(ctx->store, id, md, err);
        json_decref(sb->metadata);
        sb->metadata = md;
    }
    sb_unlock(id);
    if (r < 0) {
        apid_sandbox_free(sb);
        return r;
    }
    *out = sb;
    return 0;
}

/* ---------- watcher + expiry thread ---------- */

static void
expire(const char *id)
{
    sbx_error_t err = NULL;
    log_info("sandbox %s expired (reason TTL_EXPIRED)", id);
    if (apid_mgr_delete(id, "TTL_EXPIRED", &err) < 0) {
        log_err("sandbox %s: expiry: %s", id, err->msg);
        sbx_error_release(&err);
        /* Do not spin on a sandbox that cannot be removed: try again later. */
        apid_store_set_expiry(ctx->store, id, apid_now_ms() + 30000, NULL);
    }
}

static void *
monitor_thread(void *arg)
{
    (void)arg;
    while (!stopping) {
        int64_t now = apid_now_ms();
        int timeout = 60000;
        char id[65];
        int64_t exp_ms;
        sbx_error_t err = NULL;
        int r = apid_store_next_expiry(ctx->store, id, &exp_ms, &err);
        if (r < 0) {
            log_err("%s", err->msg);
            sbx_error_release(&err);
        } else if (r == 1) {
            if (exp_ms <= now) {
                expire(id);
                continue;
            }
            if (exp_ms - now < timeout)
                timeout = (int)(exp_ms - now);
        }

        /* Snapshot the watch list; sandboxes whose process exited wait for result.json. */
        pthread_mutex_lock(&watch_lock);
        size_t n = n_watches;
        struct pollfd *pfd = xmalloc0((n + 1) * sizeof(*pfd));
        char(*ids)[65] = xmalloc0((n + 1) * sizeof(*ids));
        char(*done)[65] = xmalloc0((n + 1) * sizeof(*done));
        bool *gone = xmalloc0((n + 1) * sizeof(*gone));
        size_t n_done = 0;
        pfd[0].fd = wake_fd;
        pfd[0].events = POLLIN;
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], 65, "%s", watches[i].id);
            pfd[i + 1].fd = watches[i].exited_ms ? -1 : watches[i].pidfd;
            pfd[i + 1].events = POLLIN;
            if (watches[i].exited_ms) {
                cleanup_free char *dir = sb_dir(watches[i].id);
                cleanup_free char *rp = xasprintf("%s/result.json", dir);
                bool late = now - watches[i].exited_ms > RESULT_GRACE_MS;
                if (access(rp, F_OK) == 0 || late) {
                    snprintf(done[n_done], 65, "%s", watches[i].id);
                    gone[n_done++] = late;
                } else if (timeout > 100) {
                    timeout = 100;
                }
            }
        }
        pthread_mutex_unlock(&watch_lock);

        for (size_t i = 0; i < n_done; i++) {
            /* Skip sandboxes another operation holds (e.g. a delete already removing them). */
            if (!sb_lock_try(done[i], false))
                continue;
            finalize(done[i], gone[i]);
            sb_unlock(done[i]);
        }
        if (n_done == 0) {
            r = TEMP_FAILURE_RETRY(poll(pfd, n + 1, timeout));
            if (r > 0 && (pfd[0].revents & POLLIN)) {
                uint64_t v;
                if (read(wake_fd, &v, sizeof(v)) < 0) {
                    /* EAGAIN: another wake-up raced us; nothing to drain. */
                }
            }
            pthread_mutex_lock(&watch_lock);
            for (size_t i = 0; r > 0 && i < n; i++) {
                if (!(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                for (size_t j = 0; j < n_watches; j++)
                    if (strcmp(watches[j].id, ids[i]) == 0 && !watches[j].exited_ms)
                        watches[j].exited_ms = apid_now_ms();
            }
            pthread_mutex_unlock(&watch_lock);
        }
        free(pfd);
        free(ids);
        free(done);
        free(gone);
    }
    return NULL;
}

/* ---------- start-up ---------- */

int
apid_mgr_init(struct apid_ctx *c, sbx_error_t *err)
{
    ctx = c;
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0)
        return sbx_make_error(err, errno, "eventfd");
    return 0;
}

/* Brings one stored sandbox in line with reality after a restart. */
static void
recover_one(struct apid_sandbox *sb)
{
    sbx_error_t err = NULL;
    const char *id = sb->id;
    pid_t mon;
    unsigned long long mstart;
    monitor_of(sb, &mon, &mstart);

    if (sb->state == ST_STOPPING) {
        log_info("recover %s: finishing an interrupted removal", id);
        if (destroy(sb, sb->reason ? sb->reason : "USER_DELETE", &err) < 0) {
            log_err("recover %s: %s", id, err->msg);
            sbx_error_release(&err);
        }
        return;
    }
    if (sb->state == ST_PENDING) {
        /* apid died during create. The monitor is independent of apid and carries on; wait for it
         * to either bring the sandbox up or give up, then decide. No client got a 202 for it. */
        if (mon <= 0) {
            usleep(300 * 1000); /* the launcher may be between fork and monitor.pid */
            monitor_of(sb, &mon, &mstart);
        }
        int64_t deadline = apid_now_ms() + START_TIMEOUT_MS;
        while (proc_alive(mon, mstart) && apid_now_ms() < deadline) {
            struct sbx_state *st = NULL;
            if (sbx_state_load(ctx->cfg->run_dir, id, &st, NULL) == 0) {
                bool up = st->status && strcmp(st->status, "creating") && sbx_state_alive(st);
                sbx_state_free(st);
                if (up)
                    break;
            }
            usleep(50 * 1000);
        }
        log_info("recover %s: create was interrupted by an apid restart; removing it", id);
        if (destroy(sb, "CREATE_INTERRUPTED", &err) < 0) {
            log_err("recover %s: %s", id, err->msg);
            sbx_error_release(&err);
        }
        return;
    }
    if (apid_state_terminal(sb->state)) {
        release_runtime(id, mon, mstart);
        return;
    }
    struct sbx_state *st = NULL;
    bool alive = false;
    if (sbx_state_load(ctx->cfg->run_dir, id, &st, NULL) == 0) {
        alive = sbx_state_alive(st) && !proc_is_zombie(st->pid) && st->pid == sb->pid &&
                (!sb->pid_start || st->pid_start == sb->pid_start);
        if (alive) {
            const char *now = sbx_state_current_status(st);
            int want = strcmp(now, "paused") == 0 ? ST_PAUSED : ST_RUNNING;
            if (want != sb->state &&
                apid_store_set_state(ctx->store, id, want,
                                     want == ST_PAUSED ? "CONTAINER_PAUSED" : "CONTAINER_RUNNING",
                                     "state re-read after an apid restart", &err) < 0) {
                log_err("recover %s: %s", id, err->msg);
                sbx_error_release(&err);
            }
        }
        sbx_state_free(st);
    }
    if (alive) {
        log_info("recover %s: re-adopted (pid %d)", id, sb->pid);
        watch_add(id, sb->pid, sb->pid_start);
        return;
    }
    /* Dead while apid was away: the monitor may still be writing result.json. */
    wait_gone(mon, mstart, 5000);
    finalize(id, true);
}

static bool
in_list(struct apid_sandbox **v, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i]->id, id) == 0)
            return true;
    return false;
}

int
apid_mgr_recover(sbx_error_t *err)
{
    struct apid_sandbox **all = NULL;
    size_t n = 0;
    int r = apid_store_all(ctx->store, &all, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        recover_one(all[i]);
    apid_sandbox_list_free(all, n);
    if ((r = apid_store_all(ctx->store, &all, &n, err)) < 0)
        return r;

    /* Orphans: runtime state or sandbox directories that the store does not know. */
    const char *dirs[2] = {ctx->cfg->run_dir, NULL};
    cleanup_free char *sbdir = apid_sandboxes_dir(ctx->cfg);
    dirs[1] = sbdir;
    for (int k = 0; k < 2; k++) {
        cleanup_dir DIR *d = opendir(dirs[k]);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (!id_is_valid(de->d_name) || in_list(all, n, de->d_name))
                continue;
            if (de->d_name[0] == '.')
                continue;
            if (k == 0) {
                /* The run dir may be shared with sbxrun: only touch state that apid created
                 * (annotated config), or a bare uuid-named directory of a create cut short. */
                struct sbx_state *st = NULL;
                bool ours = false;
                if (sbx_state_load(dirs[k], de->d_name, &st, NULL) == 0) {
                    ours = json_is_string(json_object_get(st->annotations, "run.sbx.apid"));
                    sbx_state_free(st);
                } else {
                    cleanup_free char *sj = xasprintf("%s/%s/state.json", dirs[k], de->d_name);
                    ours = strlen(de->d_name) == 36 && access(sj, F_OK) < 0;
                }
                if (!ours)
                    continue;
                log_warn("removing orphaned sandbox %s", de->d_name);
                pid_t mon = 0;
                unsigned long long ms = 0;
                read_monitor_pid(de->d_name, &mon, &ms);
                release_runtime(de->d_name, mon, ms);
            } else {
                log_warn("removing orphaned sandbox directory %s/%s", dirs[k], de->d_name);
                cleanup_free char *p = xasprintf("%s/%s", dirs[k], de->d_name);
                sbx_error_t e = NULL;
                rm_rf(p, &e);
                sbx_error_release(&e);
            }
        }
    }
    apid_sandbox_list_free(all, n);
    return 0;
}

int
apid_mgr_start_threads(sbx_error_t *err)
{
    int r = pthread_create(&mon_thread, NULL, monitor_thread, NULL);
    if (r)
        return sbx_make_error(err, r, "create watcher thread");
    return 0;
}

void
apid_mgr_stop(void)
{
    stopping = true;
    wake();
    pthread_join(mon_thread, NULL);
}
