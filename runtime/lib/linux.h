/* Child-side mechanism: everything that runs after clone inside the new namespaces. Nothing here
 * allocates after the mounts begin except through the sync helpers; errors travel back to the
 * parent over the sync socket. */
#ifndef SBX_LINUX_H
#define SBX_LINUX_H

#include "seccomp.h"
#include "spec.h"
#include "sync.h"

struct sbx_child_ctx {
    sbx_spec_t *spec;
    struct sbx_bpf bpf;
    bool has_bpf;
    int sync_fd;
    pid_t parent_pid;
    bool wait_for_start; /* OCI create/start split */
    bool in_userns;
    int start_fd;            /* listening exec.sock (wait_for_start), else -1 */
    int console_fd;          /* connected --console-socket, else -1 */
    int pty_slave;           /* set by the child when process.terminal */
    int ns_fd[SBX_NS_COUNT]; /* namespaces to join (linux.namespaces[].path), else -1 */
    bool join_only;          /* sbxrun exec: namespaces already joined, only exec the process */
    char state_json[1024];   /* OCI state for createContainer/startContainer hooks */
    /* cgroup v1: the child moves itself into its cgroups through these (enter_cgroup(); see
     * sbx_cgroup_self_join_fds(): no RCU wait, unlike the parent writing the child's pid). */
    int cgroup_join_fds[8];
    size_t n_cgroup_join_fds;
    /* v1: the parent creates the cgroups while the child builds its root, and their `tasks` files
     * follow SYNC_GO in SYNC_CGROUP; the child takes them when it first needs to be inside. */
    bool cgroup_late;
    bool cgroup_entered;
    int proc_self_fd;      /* the child's /proc/self (O_PATH) until it has entered its cgroup */
    bool wait_net;         /* SYNC_NET follows SYNC_GO once the parent has set up the network */
    bool workload_is_pid1; /* no init of ours: the workload is the parent's direct child */
};

/* The common tail of every sandbox process (init or exec'd): session, rlimits, identity,
 * capabilities, no_new_privs, the start wait, seccomp and execve. Never returns. */
__attribute__((noreturn)) void sbx_child_exec(struct sbx_child_ctx *ctx);
/* Child side of process.terminal: a pty from the sandbox's own devpts, master sent over
 * ctx->console_fd (SCM_RIGHTS), slave kept in ctx->pty_slave for sbx_child_exec. Returns -errno. */
int sbx_child_setup_pty(struct sbx_child_ctx *ctx);

/* Entry point of the cloned child; never returns. */
__attribute__((noreturn)) void sbx_child_main(struct sbx_child_ctx *ctx);

#endif
