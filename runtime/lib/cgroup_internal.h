/* Pure helpers of cgroup.c, exposed for the unit tests and for the CLI's flag translation. */
#ifndef SBX_CGROUP_INTERNAL_H
#define SBX_CGROUP_INTERNAL_H

#include "sbx.h"

/* Finds the caller's cgroup in the text of /proc/self/cgroup. controller NULL or "" selects the
 * cgroup v2 line ("0::/path"); otherwise the v1 line whose controller list contains it (also
 * "name=systemd"). *path is malloc'd, always starts with '/'. -ENOENT if there is no such line. */
int sbx_cgroup_parse_proc_cgroup(const char *content, const char *controller, char **path,
                                 sbx_error_t *err);

/* --cpus in millicpus -> cpu.max quota for a period (usec). The kernel refuses quotas under
 * 1000 usec, so smaller results are raised to that. */
int64_t sbx_cgroup_millicpus_to_quota(int64_t millicpus, int64_t period);
/* cpu.max content: "QUOTA PERIOD", quota < 0 meaning "max", period <= 0 meaning 100000. */
char *sbx_cgroup_cpu_max_string(int64_t quota, int64_t period);

/* v1 cpu.shares <-> v2 cpu.weight, systemd's mapping (the defaults 1024 and 100 correspond),
 * clamped to the kernel ranges 2..262144 and 1..10000. */
int64_t sbx_cgroup_shares_to_weight(int64_t shares);
int64_t sbx_cgroup_weight_to_shares(int64_t weight);
/* OCI blockIO.weight (10..1000, v1 blkio.weight) -> v2 io.weight (1..10000), as crun does. */
int64_t sbx_cgroup_blkio_to_io_weight(int64_t blkio_weight);

#endif
