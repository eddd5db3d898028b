/* The parent/child sync protocol over its SEQPACKET socketpair: messages, descriptors, and what
 * a peer that exits early leaves to read. */
#include "linux.h"
#include "unit.h"
#include "utils.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

UNIT_TEST(sync, error_report_survives_unread_messages)
{
    /* The child fails and exits before reading what the parent sent it (SYNC_CGROUP, SYNC_NET):
     * its error report must still reach the parent, then EOF. */
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    CU_ASSERT_EQUAL(sbx_sync_send(sv[0], SYNC_NET, 0, NULL), 0);
    CU_ASSERT_EQUAL(sbx_sync_send(sv[1], SYNC_ERROR, EACCES, "bind source `%s`", "/x"), 0);
    close(sv[1]);
    struct sbx_sync_msg m;
    CU_ASSERT_EQUAL(sbx_sync_recv(sv[0], &m), 1);
    CU_ASSERT_EQUAL(m.type, SYNC_ERROR);
    CU_ASSERT_EQUAL(m.value, EACCES);
    CU_ASSERT_STRING_EQUAL(m.msg, "bind source `/x`");
    CU_ASSERT_EQUAL(sbx_sync_recv(sv[0], &m), 0);
    close(sv[0]);
}

UNIT_TEST(sync, descriptors_travel_with_a_message)
{
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CU_ASSERT_EQUAL(sbx_sync_send_fds(sv[0], SYNC_CGROUP, fds, 3), 0);
    close_fds(fds, 3);
    struct sbx_sync_msg m;
    int got[2] = {-1, -1};
    size_t n = 9;
    /* Room for two: the third is closed, not leaked. */
    CU_ASSERT_EQUAL(sbx_sync_recv_fds(sv[1], &m, got, 2, &n), 1);
    CU_ASSERT_EQUAL(m.type, SYNC_CGROUP);
    CU_ASSERT_EQUAL(n, 2);
    struct stat st;
    for (int i = 0; i < 2; i++) {
        CU_ASSERT(fstat(got[i], &st) == 0 && S_ISCHR(st.st_mode));
        CU_ASSERT_EQUAL(fcntl(got[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    }
    close_fds(got, 2);
    /* A plain message carries none. */
    CU_ASSERT_EQUAL(sbx_sync_send_fds(sv[0], SYNC_GO, NULL, 0), 0);
    CU_ASSERT_EQUAL(sbx_sync_recv_fds(sv[1], &m, got, 2, &n), 1);
    CU_ASSERT_EQUAL(n, 0);
    close(sv[0]);
    close(sv[1]);
}
