/* Sandbox lifecycle: the API that the sbxrun verbs and sbx-apid both call. A sandbox is identified
 * by its id; its record lives in <state_root>/<id>/state.json (default state_root /run/sbx). */
#ifndef SBX_CONTAINER_H
#define SBX_CONTAINER_H

#include "spec.h"
#include "state.h"

#define SBX_DEFAULT_STATE_ROOT "/run/sbx"

struct sbx_run_opts {
    const char *id;            /* required, id_is_valid() */
    const char *state_root;    /* NULL: SBX_DEFAULT_STATE_ROOT */
    const char *cgroup_parent; /* NULL: default (see cgroup.h) */
    int json_status_fd; /* -1: none. JSON lines: {"id","pid"} at start, {"exit-code",..} at end */
    int timeout_sec;    /* 0: none; on expiry the sandbox is killed and the result is 124 */
    bool keep_state;    /* keep <state_root>/<id> after exit (apid); sbxrun run removes it */
    bool quiet;
    /* Create/start split (OCI `create`): with detach, run() returns once the sandbox is created;
     * its process then waits, before exec, for sbx_container_start() to connect to the listening
     * socket <state_root>/<id>/exec.sock. A socket rather than runc's fifo: accept() needs no
     * permission on the host path (the process may already be an unmapped uid without caps and
     * without /proc), and the connection carries exec errors back to `start`. The process is
     * not watched afterwards: it is reparented to the caller's subreaper (containerd's shim). */
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
    int exit_code; /* docker-style: code, 128+signal, 124 timeout, 125 runtime, 126/127 exec */
    int signal;    /* signal that killed the workload, 0 if it exited */
    bool oom;      /* the cgroup saw an OOM kill */
    bool timed_out;
};

/* Runs the sandbox to completion (or, with detach, until created). Returns < 0 only for runtime
 * failures (the caller maps them to exit code 125); the workload's result is in *result. */
int sbx_container_run(sbx_spec_t *spec, const struct sbx_run_opts *opts, struct sbx_exit *result,
                      sbx_error_t *err);
/* Releases a created sandbox (it is blocked in accept() on <state_root>/<id>/exec.sock), waits
 * until its program is exec'd, then runs the poststart hooks (a failing one only warns). */
int sbx_container_start(const char *state_root, const char *id, sbx_error_t *err);

struct sbx_exec_opts {
    json_t *process;   /* OCI process object (borrowed); NULL: the config's own */
    char *const *args; /* with process NULL: replaces process.args */
    bool detach;       /* return once exec'd, leaving the process to our reaper */
    const char *pid_file;
    const char *console_socket; /* process.terminal: the pty master goes there */
};
/* Runs another process in a running sandbox: joins its cgroup and every namespace, applies the
 * process's identity, capabilities, rlimits and no_new_privileges and the sandbox's seccomp
 * filter. Without detach, waits and stores the docker-style exit code in *exit_code. */
int sbx_container_exec(const char *state_root, const char *id, const struct sbx_exec_opts *eo,
                       int *exit_code, sbx_error_t *err);
/* Loads the config saved at create time (<state_root>/<id>/config.json): later edits of the
 * bundle must not change a running sandbox. */
int sbx_container_load_spec(const char *state_root, const char *id, json_t *process,
                            sbx_spec_t **out, sbx_error_t *err);

/* Runs hooks in order with the OCI state JSON on stdin; the first failure is returned. root:
 * chroot for the hook (the host root as seen from inside a half-built sandbox), else NULL. */
int sbx_hooks_run(const char *phase, const struct sbx_hook *hooks, size_t n, const char *root,
                  const char *state_json, sbx_error_t *err);
/* The same for poststart and poststop, whose failures the spec makes warnings: every hook runs,
 * each failure is printed as a warning on stderr (unless quiet); returns how many failed. */
int sbx_hooks_run_warn(const char *phase, const struct sbx_hook *hooks, size_t n, const char *root,
                       const char *state_json, bool quiet);
/* OCI state JSON (compact) of a record, with `status` as given; caller frees. */
char *sbx_state_oci_json(const struct sbx_state *st, const char *status);
/* Signals the main process, or with all=true every process in the sandbox's cgroup. */
int sbx_container_kill(const char *state_root, const char *id, int sig, bool all, sbx_error_t *err);
int sbx_container_pause(const char *state_root, const char *id, sbx_error_t *err);
int sbx_container_resume(const char *state_root, const char *id, sbx_error_t *err);
/* Removes a stopped sandbox's record and cgroup; force kills a running one first. */
int sbx_container_delete(const char *state_root, const char *id, bool force, sbx_error_t *err);

#endif
