/* sbx-apid: OpenSandbox-compatible lifecycle API daemon. Start-up order matters: the launcher is
 * forked first, while the process is still single-threaded (libsbx clones and execs from it);
 * then the store is opened, the previous run's sandboxes are recovered, and only then do the
 * watcher and HTTP threads start. */
#include <sys/resource.h>
#include "apid.h"
#include "pool.h"
#include "session_api.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

int
main(int argc, char **argv)
{
    sbx_error_t err = NULL;
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
     * root can reach the token file that is bind-mounted into it. */
    if (mkdir_p(cfg.data_dir, 0700, &err) < 0 || mkdir_p(cfg.run_dir, 0711, &err) < 0 ||
        mkdir_p(sbdir, 0711, &err) < 0 || chmod(sbdir, 0711) < 0) {
        sbx_error_print("sbx-apid", &err);
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
                log_warn("%s is not traversable (o+x): sandboxes cannot read their agent token",
                         p);
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
    cleanup_free char *dbpath = xasprintf("%s/apid.db", cfg.data_dir);
    /* Networking comes up before recovery (which releases dead sandboxes' addresses and rules)
     * and is re-synced after it (rules of the survivors, stray host links). */
    if (apid_store_open(dbpath, &ctx.store, &err) < 0 || apid_mgr_init(&ctx, &err) < 0 ||
        apid_net_init(&cfg, &err) < 0 || apid_net_load(ctx.store, &err) < 0 ||
        apid_mgr_recover(&err) < 0 || apid_net_resync(ctx.store, sbdir, &err) < 0 ||
        apid_mgr_start_threads(&err) < 0 ||
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
        log_info("%s: shutting down; sandboxes keep running", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    apid_http_stop();
    apid_pool_stop(); /* unclaimed members are removed; claimed ones keep running */
    apid_mgr_stop();
    apid_net_shutdown(apid_net_live_count() > 0);
    apid_launcher_stop();
    apid_store_close(ctx.store);
    apid_config_free(&cfg);
    return 0;
}
