/* Child-side mechanism: everything that runs after clone inside the new namespaces. Nothing here
 * allocates after the mounts begin except through the sync helpers; errors travel back to the
 * parent over the sync socket. */
#ifndef SBX_LINUX_H
#define SBX_LINUX_H

#include "seccomp.h"
#include "spec.h"

enum sbx_sync_type {
    SYNC_GO = 1,       /* parent -> child: maps written, cgroup joined (v2) */
    SYNC_ERROR = 100,  /* child -> parent: setup failed (errno + message) */
    SYNC_EXEC_FAILED,  /* child -> parent: execve failed (errno + message) */
    SYNC_CREATED,      /* child -> parent: namespaces and root ready, waiting for start */
    SYNC_STARTED,      /* child -> parent: workload exec'd; value = workload pid in the pidns */
    SYNC_EXIT,         /* init -> parent: workload wait status */
    SYNC_START,        /* parent -> child: go ahead and exec */
    SYNC_HOOKS,        /* child -> parent: root built, run prestart/createRuntime hooks now */
    SYNC_NET,          /* parent -> child: network set up (wait_net) */
    SYNC_CGROUP,       /* parent -> child: cgroup_late's `tasks` files (SCM_RIGHTS), maybe none */
};

struct sbx_sync_msg {
    int type;
    int value; /* errno, pid or wait status */
    char msg[1024];
};

struct sbx_child_ctx {
    sbx_spec_t *spec;
    struct sbx_bpf bpf;
    bool has_bpf;
    int sync_fd;
    pid_t parent_pid;
    bool wait_for_start; /* OCI create/start split */
    bool in_userns;
    int start_fd;        /* listening exec.sock (wait_for_start), else -1 */
    int console_fd;      /* connected --console-socket, else -1 */
    int pty_slave;       /* set by the child when process.terminal */
    int ns_fd[SBX_NS_COUNT]; /* namespaces to join (linux.namespaces[].path), else -1 */
    bool join_only;      /* sbxrun exec: namespaces already joined, only exec the process */
    char state_json[1024]; /* OCI state for createContainer/startContainer hooks */
    /* cgroup v1: the child moves itself into its cgroups through these (enter_cgroup(); see
     * sbx_cgroup_self_join_fds(): no RCU wait, unlike the parent writing the child's pid). */
    int cgroup_join_fds[8];
    size_t n_cgroup_join_fds;
    /* v1: the parent creates the cgroups while the child builds its root, and their `tasks` files
     * follow SYNC_GO in SYNC_CGROUP; the child takes them when it first needs to be inside. */
    bool cgroup_late;
    bool cgroup_entered;
    int proc_self_fd; /* the child's /proc/self (O_PATH) until it has entered its cgroup */
    bool wait_net; /* SYNC_NET follows SYNC_GO once the parent has set up the network */
    bool workload_is_pid1; /* no init of ours: the workload is the parent's direct child */
};

/* The common tail of every sandbox process (init or exec'd): session, rlimits, identity,
 * capabilities, no_new_privs, the start wait, seccomp and execve. Never returns. */
__attribute__((noreturn)) void sbx_child_exec(struct sbx_child_ctx *ctx);
/* Child side of process.terminal: a pty from the sandbox's own devpts, master sent over
 * ctx->console_fd (SCM_RIGHTS), slave kept in ctx->pty_slave for sbx_child_exec. Returns -errno. */
int sbx_child_setup_pty(struct sbx_child_ctx *ctx);

int sbx_sync_send(int fd, int type, int value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int sbx_sync_recv(int fd, struct sbx_sync_msg *m);
/* A message of type with descriptors, and its receiving side (fds beyond max are closed). */
int sbx_sync_send_fds(int fd, int type, const int *fds, size_t n);
int sbx_sync_recv_fds(int fd, struct sbx_sync_msg *m, int *fds, size_t max, size_t *n);

/* Entry point of the cloned child; never returns. */
__attribute__((noreturn)) void sbx_child_main(struct sbx_child_ctx *ctx);

#endif
