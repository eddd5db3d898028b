/* sbx-apid: OpenSandbox-compatible lifecycle API daemon. Start-up order matters: the launcher is
 * forked first, while the process is still single-threaded (libsbx clones and execs from it);
 * then the store is opened, the previous run's sandboxes are recovered, and only then do the
 * watcher and HTTP threads start. */
#include <sys/resource.h>
#include "apid.h"
#include "mcp.h"
#include "pool.h"
#include "session_api.h"
#include "openhands.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

/* One daemon per directory: an exclusive lock on DIR/.apid.lock (a name no sandbox id can have),
 * held for the daemon's life and naming its pid. Two daemons on one data dir would share the
 * store; on one run dir, each would take the other's sandboxes for orphans to adopt or remove,
 * and both would run their TTL timers and pools. The lock goes with the process (kill -9
 * included), so a restart is never blocked by a dead daemon. */
static int
lock_dir(const char *flag, const char *dir, struct sbx_lockfile *l, sbx_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/.apid.lock", dir);
    pid_t holder = 0;
    int r = sbx_lockfile_take(l, path, 0, true, &holder, err);
    if (r <= 0)
        return r;
    cleanup_free char *who = holder ? xasprintf("PID %d", (int)holder) : xstrdup("PID unknown");
    return sbx_make_error(err, 0, "%s %s is in use by another sbx-apid (%s; lock %s)", flag, dir,
                          who, path);
}

static bool
same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The sandboxes' resolver (dns.c) on the bridge gateway. Without it (no networking, or port 53
 * of the gateway taken) apid still serves; creates with domain rules are then refused. */
static int
start_dns(const struct apid_config *cfg)
{
    sbx_error_t err = NULL;
    if (apid_net_gateway() && apid_dns_start(apid_net_gateway(), cfg->dns_upstream, &err) < 0) {
        log_warn("%s: domain rules in networkPolicy will be refused", err->msg);
        sbx_error_release(&err);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    sbx_error_t err = NULL;
    /* Whatever descriptors apid was started with (a caller's lock file, a terminal's) must not
     * reach the launcher and the sandbox monitors it forks, which outlive apid by design: one
     * such fd kept a test's flock held by a sandbox's monitor. */
    syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
    /* Declared first: released (their files removed) on every return below. */
    cleanup_lockfile struct sbx_lockfile data_lock = SBX_LOCKFILE_INIT;
    cleanup_lockfile struct sbx_lockfile run_lock = SBX_LOCKFILE_INIT;
    struct apid_config cfg;
    apid_config_init(&cfg);
    int r = apid_config_parse(&cfg, argc, argv, &err);
    if (r != 0) {
        if (r < 0)
            sbx_error_print("sbx-apid", &err);
        apid_config_free(&cfg);
        return r < 0 ? 2 : 0;
    }
    apid_log_setup(cfg.log_level, cfg.log_json);
    signal(SIGPIPE, SIG_IGN);
    /* An fd or two per sandbox (watchers, proxy sockets): 1,000 sandboxes exceed the usual soft
     * limit of 1024. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    /* Handle signals synchronously in the main thread: block them before any thread exists so
     * every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);

    if (geteuid() != 0)
        log_warn("not running as root: creating sandboxes will most likely fail");
    if (!cfg.api_key || !*cfg.api_key)
        log_warn("no API key configured: authentication is OFF (use --api-key, SBX_API_KEY or "
                 "--api-key-file)");
    if (!cfg.agent_path || !*cfg.agent_path || !strcmp(cfg.agent_path, "none"))
        log_warn("no sbx-agent binary: sandboxes run their entrypoint directly, without execd");
    else if (access(cfg.agent_path, X_OK) < 0)
        log_warn("sbx-agent `%s` is not executable: creates will fail", cfg.agent_path);

    cleanup_free char *sbdir = apid_sandboxes_dir(&cfg);
    /* Traversable (not listable), like libsbx's state root, so that each sandbox's id-mapped
     * root can reach the token file that is bind-mounted into it, and its named volumes below
     * the data directory (the store itself is 0600). */
    if (mkdir_p(cfg.data_dir, 0711, &err) < 0 || mkdir_p(cfg.run_dir, 0711, &err) < 0 ||
        mkdir_p(sbdir, 0711, &err) < 0 || chmod(sbdir, 0711) < 0) {
        sbx_error_print("sbx-apid", &err);
        return 1;
    }
    /* Before anything reads or changes the state (the launcher, recovery, the bridge): a
     * refused daemon leaves the running one as it was. */
    if (lock_dir("--data-dir", cfg.data_dir, &data_lock, &err) < 0 ||
        (!same_dir(cfg.data_dir, cfg.run_dir) &&
         lock_dir("--run-dir", cfg.run_dir, &run_lock, &err) < 0) ||
        apid_net_lock(&cfg, &err) < 0) {
        log_err("refusing to start: %s", err->msg);
        sbx_error_release(&err);
        apid_net_shutdown(false);
        apid_config_free(&cfg);
        return 1;
    }
    struct statfs run_fs;
    if (statfs(cfg.run_dir, &run_fs) == 0 && run_fs.f_type != TMPFS_MAGIC)
        log_warn("run dir `%s` is not on a tmpfs: creating and removing each sandbox's files "
                 "there slows later creates (on ext4, inode allocation skips recently freed "
                 "inodes); /run is a tmpfs on systemd hosts",
                 cfg.run_dir);
    if (cfg.agent_path && *cfg.agent_path && strcmp(cfg.agent_path, "none")) {
        /* Each sandbox's root is an unprivileged host id that must reach its token file. */
        cleanup_free char *p = realpath(sbdir, NULL);
        while (p && *p) {
            struct stat st;
            if (stat(p, &st) == 0 && !(st.st_mode & S_IXOTH)) {
                log_warn("%s is not traversable (o+x): sandboxes cannot read their agent token", p);
                break;
            }
            char *slash = strrchr(p, '/');
            if (!slash)
                break;
            *slash = '\0';
        }
    }
    if (apid_launcher_start(&err) < 0) {
        sbx_error_print("sbx-apid", &err);
        return 1;
    }
    /* Only after the fork: the launcher must not inherit the blocked mask or the database. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    struct apid_ctx ctx = {.cfg = &cfg};
    pthread_mutex_init(&ctx.cfg_lock, NULL);
    apid_session_init(&ctx);
    apid_oh_init(&ctx);
    apid_mcp_init(&ctx);
    cleanup_free char *dbpath = xasprintf("%s/apid.db", cfg.data_dir);
    /* Networking comes up before recovery (which releases dead sandboxes' addresses and rules)
     * and is re-synced after it (rules of the survivors, stray host links). */
    if (apid_egress_init(sbdir, cfg.data_dir, &err) < 0 ||
        apid_store_open(dbpath, &ctx.store, &err) < 0 ||
        apid_volumes_init(&cfg, ctx.store, &err) < 0 || apid_mgr_init(&ctx, &err) < 0 ||
        apid_net_init(&cfg, &err) < 0 || apid_net_load(ctx.store, &err) < 0 ||
        apid_mgr_recover(&err) < 0 || apid_net_resync(ctx.store, sbdir, &err) < 0 ||
        start_dns(&cfg) < 0 || apid_mgr_start_threads(&err) < 0 ||
        apid_http_start(&ctx, &err) < 0) {
        log_err("%s", err ? err->msg : "start-up failed");
        sbx_error_release(&err);
        apid_launcher_stop();
        return 1;
    }
    /* The warm pool fills only after recovery, which removed the previous run's unclaimed
     * members as orphans (they are never in the store). */
    if (apid_pool_init(&ctx, &err) < 0 || apid_pool_start(&err) < 0) {
        log_err("%s", err->msg);
        sbx_error_release(&err);
        apid_http_stop();
        apid_pool_stop();
        apid_mgr_stop();
        apid_launcher_stop();
        return 1;
    }
    log_info("sbx-apid %s ready (data %s, run %s, images %s)", SBX_VERSION, cfg.data_dir,
             cfg.run_dir, cfg.images_dir);

    for (;;) {
        int sig;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            pthread_mutex_lock(&ctx.cfg_lock);
            r = apid_config_reload(&cfg, &err);
            pthread_mutex_unlock(&ctx.cfg_lock);
            if (r < 0) {
                log_err("reload failed, keeping the old settings: %s", err->msg);
                sbx_error_release(&err);
            } else {
                log_info("configuration reloaded");
            }
            continue;
        }
        log_info("%s: shutting down; sandboxes keep running",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    apid_http_stop();
    apid_pool_stop(); /* unclaimed members are removed; claimed ones keep running */
    apid_mgr_stop();
    apid_dns_stop();
    apid_net_shutdown(apid_net_live_count() > 0);
    apid_launcher_stop();
    apid_store_close(ctx.store);
    apid_config_free(&cfg);
    return 0;
}
