/* Child-side mechanism: everything that runs after clone inside the new namespaces. Nothing here
 * allocates after the mounts begin except through the sync helpers; errors travel back to the
 * parent over the sync socket. */
#ifndef SBX_LINUX_H
#define SBX_LINUX_H

#include "seccomp.h"
#include "spec.h"

enum sbx_sync_type {
    SYNC_GO = 1,       /* parent -> child: maps written, cgroup joined */
    SYNC_ERROR,        /* child -> parent: setup failed (errno + message) */
    SYNC_EXEC_FAILED,  /* child -> parent: execve failed (errno + message) */
    SYNC_CREATED,      /* child -> parent: namespaces and root ready, waiting for start */
    SYNC_STARTED,      /* child -> parent: workload exec'd; value = workload pid in the pidns */
    SYNC_EXIT,         /* init -> parent: workload wait status */
    SYNC_START,        /* parent -> child: go ahead and exec */
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
};

int sbx_sync_send(int fd, int type, int value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int sbx_sync_recv(int fd, struct sbx_sync_msg *m);

/* Entry point of the cloned child; never returns. */
__attribute__((noreturn)) void sbx_child_main(struct sbx_child_ctx *ctx);

#endif
