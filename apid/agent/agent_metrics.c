/* Metrics from the sandbox's own cgroup as seen through its cgroup namespace (v2 first, then v1),
 * falling back to /proc for hosts or sandboxes without a cgroup mount; GET /metrics and
 * /metrics/watch. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_srv.h"

static int
read_small(const char *path, char *buf, size_t sz)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sz - 1, f);
    fclose(f);
    buf[n] = 0;
    return (int)n;
}

static bool
read_u64(const char *path, uint64_t *v)
{
    char b[64];
    if (read_small(path, b, sizeof(b)) <= 0)
        return false;
    char *end;
    unsigned long long x = strtoull(b, &end, 10);
    if (end == b)
        return false;
    *v = x;
    return true;
}

static uint64_t
meminfo(const char *key)
{
    char b[4096];
    if (read_small("/proc/meminfo", b, sizeof(b)) <= 0)
        return 0;
    char *p = strstr(b, key);
    if (p == NULL)
        return 0;
    return strtoull(p + strlen(key), NULL, 10) * 1024;
}

static double
cpu_count(void)
{
    cpu_set_t set;
    double n = 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    else
        n = (double)sysconf(_SC_NPROCESSORS_ONLN);
    char b[128];
    if (read_small("/sys/fs/cgroup/cpu.max", b, sizeof(b)) > 0) {
        unsigned long long q, per;
        if (sscanf(b, "%llu %llu", &q, &per) == 2 && per > 0 && (double)q / (double)per < n)
            n = (double)q / (double)per;
    } else {
        uint64_t per = 0;
        char qb[64];
        if (read_small("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", qb, sizeof(qb)) > 0 &&
            atoll(qb) > 0 && read_u64("/sys/fs/cgroup/cpu/cpu.cfs_period_us", &per) && per > 0 &&
            (double)atoll(qb) / (double)per < n)
            n = (double)atoll(qb) / (double)per;
    }
    return n;
}

void
ag_metrics_sample(struct ag_cpu_sample *s)
{
    char b[1024];
    s->ok = false;
    s->mono_ms = ag_mono_ms();
    if (read_small("/sys/fs/cgroup/cpu.stat", b, sizeof(b)) > 0) {
        char *p = strstr(b, "usage_usec ");
        if (p) {
            s->usage_us = strtoull(p + 11, NULL, 10);
            s->ok = true;
            return;
        }
    }
    uint64_t ns;
    if (read_u64("/sys/fs/cgroup/cpuacct/cpuacct.usage", &ns) ||
        read_u64("/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", &ns)) {
        s->usage_us = ns / 1000;
        s->ok = true;
        return;
    }
    if (read_small("/proc/stat", b, sizeof(b)) > 0) {
        unsigned long long u, ni, sy, id, io, irq, sirq, st;
        if (sscanf(b, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &u, &ni, &sy, &id, &io, &irq,
                   &sirq, &st) == 8) {
            long hz = sysconf(_SC_CLK_TCK);
            s->usage_us = (u + ni + sy + irq + sirq + st) *
                          (1000000ULL / (unsigned long long)(hz > 0 ? hz : 100));
            s->ok = true;
        }
    }
}

/* Two decimals, as the figures always had (all are >= 0; no libm in the static agent). */
static double
r2(double v)
{
    return (double)(long long)(v * 100 + 0.5) / 100;
}

json_t *
ag_metrics_json(const struct ag_cpu_sample *prev, const struct ag_cpu_sample *cur)
{
    double ncpu = cpu_count();
    double pct = 0;
    if (prev && prev->ok && cur->ok && cur->mono_ms > prev->mono_ms &&
        cur->usage_us >= prev->usage_us) {
        pct = (double)(cur->usage_us - prev->usage_us) /
              ((double)(cur->mono_ms - prev->mono_ms) * 1000.0 * ncpu) * 100.0;
        if (pct > 100)
            pct = 100;
    }
    uint64_t total = meminfo("MemTotal:"), used = 0, v;
    char mb[64];
    if (read_small("/sys/fs/cgroup/memory.max", mb, sizeof(mb)) > 0) {
        if (strncmp(mb, "max", 3) != 0 && (v = strtoull(mb, NULL, 10)) > 0 && v < total)
            total = v;
        if (!read_u64("/sys/fs/cgroup/memory.current", &used))
            used = 0;
    } else if (read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes", &used)) {
        if (read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes", &v) && v < total)
            total = v;
    }
    if (used == 0) {
        uint64_t avail = meminfo("MemAvailable:");
        used = total > avail ? total - avail : 0;
    }
    return json_pack("{s:f,s:f,s:f,s:f,s:I}", "cpu_count", r2(ncpu), "cpu_used_pct", r2(pct),
                     "mem_total_mib", r2((double)total / 1048576.0), "mem_used_mib",
                     r2((double)used / 1048576.0), "timestamp", (json_int_t)ag_now_ms());
}

void
ag_metrics_send(struct ag_conn *c)
{
    struct ag_cpu_sample cur;
    ag_metrics_sample(&cur);
    json_t *j = ag_metrics_json(&c->prev, &cur);
    ag_srv.last = cur;
    c->prev = cur;
    if (c->watch == W_ONESHOT) {
        c->watch = W_NONE;
        ag_reply_json(c, j);
        return;
    }
    struct ag_buf b = {0};
    if (ag_buf_json(&b, j) == 0 && ag_buf_putc(&b, '\n') == 0)
        ag_stream_chunk(c, b.p, b.len);
    ag_buf_free(&b);
    c->tick = ag_mono_ms() + 1000;
}

static void
metrics_start(struct ag_conn *c, bool watch)
{
    struct ag_cpu_sample now;
    ag_metrics_sample(&now);
    int64_t age = now.mono_ms - ag_srv.last.mono_ms;
    c->watch = watch ? W_WATCH : W_ONESHOT;
    if (watch)
        ag_stream_begin(c, "text/event-stream");
    else
        c->st = S_RESP; /* response comes from the timer */
    if (ag_srv.last.ok && age >= 50 && age < 60000) {
        c->prev = ag_srv.last;
        ag_metrics_send(c);
        return;
    }
    /* CPU% needs two samples; take the second one shortly. */
    c->prev = now;
    c->tick = ag_mono_ms() + 100;
}

void
ag_h_metrics(struct ag_conn *c, struct ag_req *r)
{
    metrics_start(c, false);
}

void
ag_h_metrics_watch(struct ag_conn *c, struct ag_req *r)
{
    metrics_start(c, true);
}
