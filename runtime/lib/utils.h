/* Internal helpers shared by every part of sbx: cleanup attributes, allocation that never
 * returns NULL, small file helpers and the quantity parsers used by CLI flags and the API. */
#ifndef SBX_UTILS_H
#define SBX_UTILS_H

#include "sbx.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TEMP_FAILURE_RETRY
#define TEMP_FAILURE_RETRY(expression)                                                             \
    ({                                                                                             \
        long int __result;                                                                         \
        do                                                                                         \
            __result = (long int)(expression);                                                     \
        while (__result == -1L && errno == EINTR);                                                 \
        __result;                                                                                  \
    })
#endif

#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void cleanup_freep(void *p);
void cleanup_closep(int *fd);
void cleanup_filep(FILE **f);
void cleanup_dirp(DIR **d);
void cleanup_strvp(char ***v);
/* Closes the descriptors that are >= 0 and sets them to -1. */
void close_fds(int *fds, size_t n);
/* One message of len bytes carrying n descriptors (SCM_RIGHTS, at most SBX_MAX_PASSED_FDS).
 * Returns 0 or -errno. */
#define SBX_MAX_PASSED_FDS 16
int sbx_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t n);
/* Receives one message into buf and the descriptors that came with it (close-on-exec) into fds;
 * any beyond max are closed. Returns the byte count (0: peer gone) or -errno. */
ssize_t sbx_recv_fds(int sock, void *buf, size_t len, int *fds, size_t max, size_t *n);
/* safe_write() that a pipe without readers cannot kill: SIGPIPE is ignored for the call only
 * (left ignored, it would survive into the exec of whatever is started next). */
ssize_t safe_write_nosigpipe(int fd, const void *buf, size_t len);
/* `sbxrun --debug`: a timeline of a sandbox's start and end on stderr, one line per step with
 * the milliseconds since sbx_trace_start() and the pid as the process sees it (init is 1, the
 * workload 2). Cheap when off; safe after clone (no allocation). */
extern bool sbx_trace_on;
void sbx_trace_start(void);
void sbx_trace(const char *step);
/* Wall-clock time in milliseconds since the epoch. */
int64_t sbx_realtime_ms(void);
/* A monotonic clock in milliseconds, for deadlines. */
int64_t sbx_monotonic_ms(void);
#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))
#define cleanup_file __attribute__((cleanup(cleanup_filep)))
#define cleanup_dir __attribute__((cleanup(cleanup_dirp)))
#define cleanup_strv __attribute__((cleanup(cleanup_strvp)))

/* Ownership hand-off out of a cleanup variable. */
#define steal_pointer(pp)                                                                          \
    ({                                                                                             \
        __typeof__(*(pp)) _p = *(pp);                                                              \
        *(pp) = NULL;                                                                              \
        _p;                                                                                        \
    })
static inline int
get_and_reset_fd(int *fd)
{
    int r = *fd;
    *fd = -1;
    return r;
}

void *xmalloc0(size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xappendf(char **s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A growing byte buffer, NUL-terminated after len once anything was added ({0}: empty). */
struct sbx_buf {
    char *p;
    size_t len, cap;
};
void sbx_buf_add(struct sbx_buf *b, const void *s, size_t n);
void strv_free(char **v);
size_t strv_len(char *const *v);
/* Appends a copy of s to a NULL-terminated vector, reallocating it. */
void strv_append(char ***v, const char *s);

int write_file_at(int dirfd, const char *path, const char *data, size_t len, sbx_error_t *err);
int write_file(const char *path, const char *data, size_t len, sbx_error_t *err);
/* Reads a whole (small) file; *out is NUL-terminated. */
int read_file_at(int dirfd, const char *path, char **out, size_t *len, sbx_error_t *err);
int read_file(const char *path, char **out, size_t *len, sbx_error_t *err);
int mkdir_p(const char *path, mode_t mode, sbx_error_t *err);
/* Removes a directory tree without following symlinks or crossing mount points. */
int rm_rf(const char *path, sbx_error_t *err);

/* Lock files: an exclusive flock(2) on a file that its holder removes as it lets go, so that a
 * lock per sandbox id leaves no file per id behind. A flock belongs to the open file and goes
 * with the last process that has it open, kill -9 included: a dead holder never blocks anyone
 * and there is no stale lock to detect. Since holders unlink the file, a taker checks after
 * flock() that the path still names the file it locked, and starts over on the new one if not.
 * The fd is close-on-exec; a fork (without exec) shares the lock, so close it in children. */
struct sbx_lockfile {
    int fd; /* -1: not held */
    char *path;
};
#define SBX_LOCKFILE_INIT                                                                          \
    {                                                                                              \
        .fd = -1, .path = NULL                                                                     \
    }
/* Takes the lock on path (created 0600 if missing), waiting up to wait_ms for a holder to let go
 * (0: not at all). write_pid records the taker's pid in the file, for sbx_lockfile_holder().
 * Returns 0 when taken, 1 when another process holds it (then *holder, if given, is the pid it
 * recorded, 0 if none), negative on error (errno-carrying: ENOENT when the directory is missing).
 */
int sbx_lockfile_take(struct sbx_lockfile *l, const char *path, int wait_ms, bool write_pid,
                      pid_t *holder, sbx_error_t *err);
/* Unlinks the file (still locked, so no taker can keep using it) and lets go. Idempotent; keeps
 * errno. */
void sbx_lockfile_release(struct sbx_lockfile *l);
/* The pid a holder recorded in the lock file, 0 if none. */
pid_t sbx_lockfile_holder(const char *path);
#define cleanup_lockfile __attribute__((cleanup(sbx_lockfile_release)))

/* openat2(2), tried again while it fails with EAGAIN (bounded): with RESOLVE_IN_ROOT or
 * RESOLVE_BENEATH the kernel refuses a ".." in the walk with EAGAIN when a rename or mount
 * happened anywhere on the system meanwhile, since it cannot then prove the walk stayed inside.
 * Mounts are frequent on a busy host: CI saw it. Returns the fd, or -1 with errno set. */
struct open_how;
int openat2_retry(int dirfd, const char *path, const struct open_how *how);
ssize_t safe_write(int fd, const void *buf, size_t len);
ssize_t safe_read(int fd, void *buf, size_t len);

/* Quantity parsers; each returns -EINVAL on bad input, -ERANGE on overflow.
 * parse_size: the command line's sizes, with Docker's meaning: plain bytes or K/M/G/T in any
 * case with an optional B or iB, every one a power of 1024 ("512m" = "512M" = "512Mi" =
 * 512 MiB, "1.5g"). For sbxrun's flags and sbx's own annotations. */
int parse_size(const char *s, int64_t *out);
/* parse_quantity: the API's sizes, Kubernetes quantities: plain bytes, k/M/G/T/P/E = powers of
 * 1000, Ki/Mi/Gi/Ti/Pi/Ei = powers of 1024, case-sensitive ("1G" = 10^9, "1Gi" = 2^30); a
 * fraction only with a suffix, rounded down. A milli-quantity ("500m") is -EDOM. */
int parse_quantity(const char *s, int64_t *out);
/* CPUs, the same in both worlds: "0.5", "2", or Kubernetes millicores "500m" (= 0.5).
 * Result in millicpus. */
int parse_cpus(const char *s, int64_t *millicpus);
/* Strict decimal integer in [min, max]. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Signal by name ("TERM", "SIGTERM", "kill") or number. */
int parse_signal(const char *s);
const char *signal_name(int sig);

/* Random lowercase hex id of n characters. */
void random_hex(char *buf, size_t n);
/* ID syntax shared by the CLI and the state directory: [A-Za-z0-9][A-Za-z0-9_.-]{0,63}. */
bool id_is_valid(const char *id);

#endif
