/* The parent/child sync protocol (sync.h). */
#include "sync.h"
#include "utils.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int
sbx_sync_send(int fd, int type, int value, const char *fmt, ...)
{
    struct sbx_sync_msg m = {.type = type, .value = value};
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m.msg, sizeof(m.msg), fmt, ap);
        va_end(ap);
    }
    return TEMP_FAILURE_RETRY(send(fd, &m, sizeof(m), MSG_NOSIGNAL)) == sizeof(m) ? 0 : -errno;
}

int
sbx_sync_send_fds(int fd, int type, const int *fds, size_t n)
{
    struct sbx_sync_msg m = {.type = type};
    return sbx_send_fds(fd, &m, sizeof(m), fds, n);
}

int
sbx_sync_recv_fds(int fd, struct sbx_sync_msg *m, int *fds, size_t max, size_t *n)
{
    ssize_t r = sbx_recv_fds(fd, m, sizeof(*m), fds, max, n);
    /* A peer that exits with messages of ours unread (the child failing before it took
     * SYNC_CGROUP or SYNC_NET) makes the kernel report ECONNRESET once, ahead of what that peer
     * had sent before: its error report. Read on. */
    if (r == -ECONNRESET)
        r = sbx_recv_fds(fd, m, sizeof(*m), fds, max, n);
    if (r <= 0)
        return (int)r;
    if (r != sizeof(*m)) {
        close_fds(fds, *n);
        *n = 0;
        return -EPROTO;
    }
    m->msg[sizeof(m->msg) - 1] = '\0';
    return 1;
}

int
sbx_sync_recv(int fd, struct sbx_sync_msg *m)
{
    size_t n;
    return sbx_sync_recv_fds(fd, m, NULL, 0, &n);
}
