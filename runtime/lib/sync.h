/* The sync protocol between sbxrun (the parent, or `sbxrun start` over exec.sock) and the
 * sandbox's first process: fixed-size messages on a SOCK_SEQPACKET socket, descriptors passed
 * with SCM_RIGHTS. Both sides include this; docs/architecture.md has the order of the messages. */
#ifndef SBX_SYNC_H
#define SBX_SYNC_H

#include <stddef.h>

enum sbx_sync_type {
    SYNC_GO = 1,      /* parent -> child: maps written, cgroup joined (v2) */
    SYNC_ERROR = 100, /* child -> parent: setup failed (errno + message) */
    SYNC_EXEC_FAILED, /* child -> parent: execve failed (errno + message) */
    SYNC_CREATED,     /* child -> parent: namespaces and root ready, waiting for start */
    SYNC_STARTED,     /* child -> parent: workload exec'd; value = workload pid in the pidns */
    SYNC_EXIT,        /* init -> parent: workload wait status */
    SYNC_START,       /* parent -> child: go ahead and exec */
    SYNC_HOOKS,       /* child -> parent: root built, run prestart/createRuntime hooks now */
    SYNC_NET,         /* parent -> child: network set up (wait_net) */
    SYNC_CGROUP,      /* parent -> child: cgroup_late's `tasks` files (SCM_RIGHTS), maybe none */
};

struct sbx_sync_msg {
    int type;
    int value; /* errno, pid or wait status */
    char msg[1024];
};

/* Each returns 0 (recv: 1 for a message, 0 at EOF) or -errno. */
int sbx_sync_send(int fd, int type, int value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int sbx_sync_recv(int fd, struct sbx_sync_msg *m);
/* A message of type with descriptors, and its receiving side (fds beyond max are closed). */
int sbx_sync_send_fds(int fd, int type, const int *fds, size_t n);
int sbx_sync_recv_fds(int fd, struct sbx_sync_msg *m, int *fds, size_t max, size_t *n);

#endif
