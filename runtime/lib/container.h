/* Sandbox lifecycle: the API that the sbxrun verbs and sbx-apid both call. A sandbox is identified
 * by its id; its record lives in <state_root>/<id>/state.json (default state_root /run/sbx). */
#ifndef SBX_CONTAINER_H
#define SBX_CONTAINER_H

#include "spec.h"
#include "state.h"

#define SBX_DEFAULT_STATE_ROOT "/run/sbx"

struct sbx_run_opts {
    const char *id;          /* required, id_is_valid() */
    const char *state_root;  /* NULL: SBX_DEFAULT_STATE_ROOT */
    const char *cgroup_parent; /* NULL: default (see cgroup.h) */
    int json_status_fd;      /* -1: none. JSON lines: {"id","pid"} at start, {"exit-code",..} at end */
    int timeout_sec;         /* 0: none; on expiry the sandbox is killed and the result is 124 */
    bool keep_state;         /* keep <state_root>/<id> after exit (apid); sbxrun run removes it */
    bool quiet;
    /* Create/start split (OCI): run() with stop_before_exec waits on the exec fifo in
     * <state_root>/<id>/exec.fifo and returns once the process is created; sbx_container_start()
     * releases it. */
    bool detach;
    const char *pid_file;
    const char *console_socket;
    bool no_pivot;
    /* Called in the parent once the child exists in its namespaces (id maps written, cgroup
     * joined) and before it is released, so the caller can plumb the child's network namespace
     * (e.g. a veth whose peer is born there) while nothing runs in it yet. < 0 aborts the run. */
    int (*net_setup)(pid_t child_pid, void *data, sbx_error_t *err);
    void *net_data;
};

struct sbx_exit {
    int exit_code;  /* docker-style: code, 128+signal, 124 timeout, 125 runtime, 126/127 exec */
    int signal;     /* signal that killed the workload, 0 if it exited */
    bool oom;       /* the cgroup saw an OOM kill */
    bool timed_out;
};

/* Runs the sandbox to completion (or, with detach, until created). Returns < 0 only for runtime
 * failures (the caller maps them to exit code 125); the workload's result is in *result. */
int sbx_container_run(sbx_spec_t *spec, const struct sbx_run_opts *opts, struct sbx_exit *result,
                      sbx_error_t *err);
int sbx_container_start(const char *state_root, const char *id, sbx_error_t *err);
/* Signals the main process, or with all=true every process in the sandbox's cgroup. */
int sbx_container_kill(const char *state_root, const char *id, int sig, bool all, sbx_error_t *err);
int sbx_container_pause(const char *state_root, const char *id, sbx_error_t *err);
int sbx_container_resume(const char *state_root, const char *id, sbx_error_t *err);
/* Removes a stopped sandbox's record and cgroup; force kills a running one first. */
int sbx_container_delete(const char *state_root, const char *id, bool force, sbx_error_t *err);

#endif
