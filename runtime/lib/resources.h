/* Resource limits are always passed on as OCI `linux.resources`. sbxrun's flags, apid's
 * resourceLimits, a pool claim's smaller limits and `sbxrun update`'s flags each fill a struct
 * sbx_limits. One builder turns that into linux.resources. The runtime reads only
 * linux.resources (spec.c), and a change to a live sandbox goes through sbx_container_update()
 * (update.h), which changes its cgroup and its recorded config.json together.
 *
 * Error messages here name OCI fields (`memory.limit`), never a command-line flag: apid's users
 * see them too. */
#ifndef SBX_RESOURCES_H
#define SBX_RESOURCES_H

#include "spec.h"

/* -1: not set, for every number. */
struct sbx_limits {
    int64_t memory;             /* bytes: memory.limit */
    int64_t memory_swap;        /* memory+swap bytes: memory.swap. Unset while memory is set:
                                 * equal to memory, i.e. no swap (sbx's rule everywhere) */
    int64_t memory_reservation; /* bytes: memory.reservation (v1 soft limit, v2 memory.low) */
    int64_t cpu_milli;          /* thousandths of a CPU: cpu.quota milli*100 usec per
                                 * cpu.period 100000 usec; not with cpu_quota or cpu_period */
    int64_t cpu_quota;          /* usec per period: cpu.quota */
    int64_t cpu_period;         /* usec: cpu.period */
    int64_t cpu_shares;         /* cpu.shares (v1 shares; v2 converts them to a weight) */
    int64_t cpu_weight;         /* v2 weight 1-10000: unified "cpu.weight" (v1: as shares) */
    int64_t pids;               /* pids.limit */
    int64_t io_weight;          /* blockIO.weight 10-1000 */
    const char *cpuset_cpus;    /* cpu.cpus; NULL: not set */
    const char *cpuset_mems;    /* cpu.mems; NULL: not set */
};

#define SBX_LIMITS_UNSET                                                                           \
    {                                                                                              \
        .memory = -1, .memory_swap = -1, .memory_reservation = -1, .cpu_milli = -1,                \
        .cpu_quota = -1, .cpu_period = -1, .cpu_shares = -1, .cpu_weight = -1, .pids = -1,         \
        .io_weight = -1, .cpuset_cpus = NULL, .cpuset_mems = NULL                                  \
    }

/* The builder: a linux.resources object holding only the sections of the limits that are set
 * (memory, cpu, pids, blockIO, unified), in OCI units. The values are not range-checked here
 * (the cgroup layer checks them when it applies them, sbx_resources_check_update() when they
 * update a live sandbox); only a CPU given both as milli-CPUs and as quota/period is refused. */
json_t *sbx_limits_resources(const struct sbx_limits *l, sbx_error_t *err);
/* Writes those sections into cfg's linux.resources (made if missing; nothing is made when no
 * limit is set): each replaces the section of the same name, except unified, whose keys are set
 * one by one. */
int sbx_config_set_limits(json_t *cfg, const struct sbx_limits *l, sbx_error_t *err);

/* A change of linux.resources, as `runc update -r` reads it: every field left out stays as it
 * is. Checks its shape, types and ranges and returns in *out the fields that change something:
 *   - memory.limit/swap/reservation, cpu.shares/quota/period/cpus/mems, pids.limit,
 *     blockIO.weight and unified (strings) are supported;
 *   - 0 (and "") mean "unchanged", as with runc; -1 ("unlimited") is refused, since sbx never
 *     lifts a limit it cannot name;
 *   - devices are left out, as runc's update leaves them (containerd sends the whole
 *     resources object, devices included);
 *   - memory.checkBeforeUpdate is left out of *out (sbx_container_update() reads it);
 *   - any other field with a value that means something is refused, by name.
 * Every error names the field and the value. */
int sbx_resources_check_update(json_t *update, json_t **out, sbx_error_t *err);
/* The record after an update: a copy of old (NULL: none) with the fields of update (checked)
 * set, plus two rules that keep the record meaning what the cgroup gets:
 *   - memory.limit without memory.swap sets memory.swap to the limit: swap stays off unless it
 *     is asked for, as at create;
 *   - cpu.shares drops an older unified "cpu.weight" and the other way round (v2 would apply
 *     the weight and v1 the shares: the record would say two things). */
json_t *sbx_resources_merge(json_t *old, json_t *update);
/* What to apply: the fields of update, with their values taken from merged, plus the ones that
 * the cgroup layer writes together with them (memory.limit with memory.swap, cpu.quota with
 * cpu.period), where merged has them. */
json_t *sbx_resources_pick(json_t *merged, json_t *update);
/* The checks that need the whole record: memory.swap needs memory.limit and is at least it. */
int sbx_resources_check_merged(json_t *merged, sbx_error_t *err);

#endif
