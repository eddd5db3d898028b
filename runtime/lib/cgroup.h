/* One cgroup interface over cgroup v2 (primary) and v1/hybrid hosts (memory, cpu, cpuacct, pids,
 * freezer, blkio, cpuset and devices hierarchies). sbx only ever creates, changes and removes
 * the sandbox's own cgroup (v1: `sbx-ID` below the caller's cgroup; v2: `ID` below a `sbx`
 * child of it) or one below a configured parent, whose missing levels it creates and removes
 * again. */
#ifndef SBX_CGROUP_H
#define SBX_CGROUP_H

#include "spec.h"

enum sbx_cgroup_mode { SBX_CGROUP_UNIFIED, SBX_CGROUP_HYBRID, SBX_CGROUP_LEGACY };

struct sbx_cgroup; /* opaque */

struct sbx_cgroup_stats {
    int64_t memory_current, memory_peak; /* bytes, -1 unknown */
    int64_t cpu_usec;
    int64_t pids_current;
    int64_t oom_kills;
    bool frozen;
};

/* Mode of this host, detected once with statfs() on /sys/fs/cgroup. */
enum sbx_cgroup_mode sbx_cgroup_mode(void);

/* Creates the sandbox cgroup `<parent>/<name>` in every hierarchy sbx uses and applies the limits.
 * parent: NULL for the default (`sbx` below the caller's own cgroup, per hierarchy), or a path
 * relative to the cgroup root(s). On any failure nothing is left behind. */
int sbx_cgroup_create(const char *parent, const char *name, const struct sbx_resources *res,
                      struct sbx_cgroup **out, sbx_error_t *err);
/* Re-opens an existing sandbox cgroup from its serialized form (sbx_cgroup_serialize()). */
int sbx_cgroup_open(const char *serialized, struct sbx_cgroup **out, sbx_error_t *err);
/* A string that sbx_cgroup_open() accepts; caller frees. */
char *sbx_cgroup_serialize(const struct sbx_cgroup *cg);

/* v2: O_DIRECTORY fd of the leaf for clone3(CLONE_INTO_CGROUP); -1 on v1/hybrid. */
int sbx_cgroup_dirfd(const struct sbx_cgroup *cg);
int sbx_cgroup_enter(struct sbx_cgroup *cg, pid_t pid, sbx_error_t *err);
/* v1/hybrid: O_CLOEXEC descriptors (at most max) through which a single-threaded process moves
 * itself into cg with sbx_cgroup_join_self() (-errno), without the ~10 ms RCU wait that moving
 * another pid costs. Returns their number; 0 on v2 (use CLONE_INTO_CGROUP or sbx_cgroup_enter). */
int sbx_cgroup_self_join_fds(struct sbx_cgroup *cg, int *fds, size_t max, sbx_error_t *err);
int sbx_cgroup_join_self(const int *fds, size_t n);
/* The calling single-threaded process joins cg (by itself on v1, see above). */
int sbx_cgroup_enter_self(struct sbx_cgroup *cg, sbx_error_t *err);
int sbx_cgroup_update(struct sbx_cgroup *cg, const struct sbx_resources *res, sbx_error_t *err);
int sbx_cgroup_freeze(struct sbx_cgroup *cg, bool frozen, sbx_error_t *err);
/* SIGKILL every process (cgroup.kill, else freeze -> kill each -> always thaw). */
int sbx_cgroup_kill(struct sbx_cgroup *cg, int sig, sbx_error_t *err);
int sbx_cgroup_pids(struct sbx_cgroup *cg, pid_t **pids, size_t *n, sbx_error_t *err);
int sbx_cgroup_stats(struct sbx_cgroup *cg, struct sbx_cgroup_stats *st, sbx_error_t *err);
/* OOM kills in the cgroup so far (-1: unknown); one file, where the stats read seven. */
int64_t sbx_cgroup_oom_kills(struct sbx_cgroup *cg);
/* Kills whatever is left, waits (bounded) for it to drain and removes every directory created. */
int sbx_cgroup_destroy(struct sbx_cgroup *cg, sbx_error_t *err);
void sbx_cgroup_free(struct sbx_cgroup *cg);
/* Path used for /proc/<pid>/cgroup-relative display, e.g. "/sbx-ID" (v1). */
const char *sbx_cgroup_path(const struct sbx_cgroup *cg);

#endif
