/* The one builder of linux.resources (resources.h), the checks and merge of an update, and
 * sbx_container_update()'s refusals, which change nothing. */
#include "unit.h"

#include "apid.h"
#include "config.h"
#include "resources.h"
#include "update.h"
#include "utils.h"

#include <sys/stat.h>

/* res equals the JSON text want. */
static bool
json_is(json_t *res, const char *want)
{
    json_error_t jerr;
    json_t *w = json_loads(want, 0, &jerr);
    bool eq = w && res && json_equal(res, w);
    if (!eq) {
        char *got = res ? json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        fprintf(stderr, "\n    want %s\n    got  %s\n", want, got ? got : "NULL");
        free(got);
    }
    json_decref(w);
    return eq;
}

static json_t *
built(const struct sbx_limits *l)
{
    return sbx_limits_resources(l, NULL);
}

UNIT_TEST(limits, builder_maps_each_limit)
{
    struct sbx_limits l = SBX_LIMITS_UNSET;
    json_t *r = built(&l);
    CU_ASSERT(json_is(r, "{}"));
    json_decref(r);

    /* sbxrun run's flags: swap off unless asked for, --cpus 0.5 as 50000/100000. */
    l.memory = 512 << 20;
    l.cpu_milli = 500;
    l.cpu_weight = 200;
    l.pids = 64;
    l.io_weight = 100;
    r = built(&l);
    CU_ASSERT(json_is(r, "{\"memory\":{\"limit\":536870912,\"swap\":536870912},"
                         "\"cpu\":{\"quota\":50000,\"period\":100000},"
                         "\"unified\":{\"cpu.weight\":\"200\"},\"pids\":{\"limit\":64},"
                         "\"blockIO\":{\"weight\":100}}"));
    json_decref(r);

    l = (struct sbx_limits)SBX_LIMITS_UNSET;
    l.memory = 1 << 30;
    l.memory_swap = 2LL << 30;
    l.memory_reservation = 256 << 20;
    l.cpu_quota = 20000;
    l.cpu_period = 50000;
    l.cpu_shares = 512;
    l.cpuset_cpus = "0-1";
    r = built(&l);
    CU_ASSERT(json_is(r, "{\"memory\":{\"limit\":1073741824,\"swap\":2147483648,"
                         "\"reservation\":268435456},\"cpu\":{\"quota\":20000,\"period\":50000,"
                         "\"shares\":512,\"cpus\":\"0-1\"}}"));
    json_decref(r);

    /* --memory-swap alone stays alone: the cgroup layer refuses it at create. */
    l = (struct sbx_limits)SBX_LIMITS_UNSET;
    l.memory_swap = 1 << 30;
    r = built(&l);
    CU_ASSERT(json_is(r, "{\"memory\":{\"swap\":1073741824}}"));
    json_decref(r);

    /* A CPU given twice is a caller's bug, said. */
    l = (struct sbx_limits)SBX_LIMITS_UNSET;
    l.cpu_milli = 1000;
    l.cpu_quota = 5000;
    sbx_error_t err = NULL;
    CU_ASSERT_PTR_NULL(sbx_limits_resources(&l, &err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "1000 milli-CPUs"));
    sbx_error_release(&err);
}

UNIT_TEST(limits, apid_and_sbxrun_map_alike)
{
    /* apid's request limits and sbxrun's flags for the same limits give the same resources. */
    struct apid_limits a = {.cpu_milli = 1500, .memory = 256 << 20, .pids = 100, .disk = 0};
    struct sbx_limits from_apid, from_cli = SBX_LIMITS_UNSET;
    apid_limits_to_sbx(&a, &from_apid);
    from_cli.cpu_milli = 1500;
    from_cli.memory = 256 << 20;
    from_cli.pids = 100;
    json_t *x = built(&from_apid), *y = built(&from_cli);
    CU_ASSERT(json_equal(x, y));
    CU_ASSERT(json_is(x, "{\"memory\":{\"limit\":268435456,\"swap\":268435456},"
                         "\"cpu\":{\"quota\":150000,\"period\":100000},\"pids\":{\"limit\":100}}"));
    json_decref(x);
    json_decref(y);
    /* 0 and -1 are "no limit" in apid_limits. */
    a = (struct apid_limits){.cpu_milli = -1, .memory = 0, .pids = 0};
    apid_limits_to_sbx(&a, &from_apid);
    x = built(&from_apid);
    CU_ASSERT(json_is(x, "{}"));
    json_decref(x);
}

UNIT_TEST(limits, config_set_limits)
{
    json_t *cfg = json_loads("{\"linux\":{\"resources\":{\"memory\":{\"limit\":1,\"swap\":2},"
                             "\"unified\":{\"io.max\":\"x\"},\"devices\":[]}}}",
                             0, NULL);
    struct sbx_limits l = SBX_LIMITS_UNSET;
    CU_ASSERT_EQUAL(sbx_config_set_limits(cfg, &l, NULL), 0);
    CU_ASSERT(json_is(json_object_get(json_object_get(cfg, "linux"), "resources"),
                      "{\"memory\":{\"limit\":1,\"swap\":2},\"unified\":{\"io.max\":\"x\"},"
                      "\"devices\":[]}"));
    /* A section is replaced whole; unified keys are added one by one. */
    l.memory = 4 << 20;
    l.cpu_weight = 10;
    CU_ASSERT_EQUAL(sbx_config_set_limits(cfg, &l, NULL), 0);
    CU_ASSERT(json_is(json_object_get(json_object_get(cfg, "linux"), "resources"),
                      "{\"memory\":{\"limit\":4194304,\"swap\":4194304},"
                      "\"unified\":{\"io.max\":\"x\",\"cpu.weight\":\"10\"},\"devices\":[]}"));
    json_decref(cfg);
    /* No `linux` object: made, rather than the limits lost. */
    cfg = json_object();
    l = (struct sbx_limits)SBX_LIMITS_UNSET;
    CU_ASSERT_EQUAL(sbx_config_set_limits(cfg, &l, NULL), 0);
    CU_ASSERT(json_is(cfg, "{}"));
    l.pids = 7;
    CU_ASSERT_EQUAL(sbx_config_set_limits(cfg, &l, NULL), 0);
    CU_ASSERT(json_is(cfg, "{\"linux\":{\"resources\":{\"pids\":{\"limit\":7}}}}"));
    json_decref(cfg);
    /* A malformed one is said, not overwritten. */
    cfg = json_loads("{\"linux\":{\"resources\":[]}}", 0, NULL);
    sbx_error_t err = NULL;
    CU_ASSERT(sbx_config_set_limits(cfg, &l, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err->msg, "`linux.resources` must be an object"));
    sbx_error_release(&err);
    json_decref(cfg);
}

/* The check of an update's text: the normalized change, or NULL with the error's message in
 * *msg (caller frees). */
static json_t *
checked(const char *text, char **msg)
{
    json_t *in = json_loads(text, 0, NULL), *out = NULL;
    sbx_error_t err = NULL;
    *msg = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    if (sbx_resources_check_update(in, &out, &err) < 0) {
        CU_ASSERT_PTR_NOT_NULL(err);
        *msg = err ? xstrdup(err->msg) : NULL;
        sbx_error_release(&err);
    }
    json_decref(in);
    return out;
}

/* text is refused with a message containing each of the words. */
static void
refused(const char *text, const char *w1, const char *w2)
{
    char *msg = NULL;
    json_t *out = checked(text, &msg);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
    if (!strstr(msg, w1) || (w2 && !strstr(msg, w2))) {
        fprintf(stderr, "\n    %s: `%s` lacks `%s`/`%s`\n", text, msg, w1, w2 ? w2 : "");
        CU_FAIL("message does not name the field and value");
    }
    CU_ASSERT_PTR_NULL(strstr(msg, "--")); /* no command-line flag: apid's users see it too */
    json_decref(out);
    free(msg);
}

UNIT_TEST(limits, check_update)
{
    char *msg = NULL;
    /* runc's own template (update --help): zeros, "", and checkBeforeUpdate change nothing. */
    json_t *out = checked("{\"memory\":{\"limit\":0,\"reservation\":0,\"swap\":0,"
                          "\"checkBeforeUpdate\":true},\"cpu\":{\"shares\":0,\"quota\":0,"
                          "\"burst\":0,\"period\":0,\"realtimeRuntime\":0,\"realtimePeriod\":0,"
                          "\"cpus\":\"\",\"mems\":\"\",\"idle\":0},\"blockIO\":{\"weight\":0}}",
                          &msg);
    CU_ASSERT(json_is(out, "{}"));
    json_decref(out);
    /* containerd sends the whole object: devices are ignored, as runc ignores them. */
    out = checked("{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}],\"memory\":{\"limit\":"
                  "268435456},\"pids\":{\"limit\":50},\"hugepageLimits\":[],\"unified\":{"
                  "\"memory.high\":\"max\"}}",
                  &msg);
    CU_ASSERT(json_is(out, "{\"memory\":{\"limit\":268435456},\"pids\":{\"limit\":50},"
                           "\"unified\":{\"memory.high\":\"max\"}}"));
    json_decref(out);
    CU_ASSERT_PTR_NULL(msg);

    refused("[]", "must be a JSON object", NULL);
    refused("{\"memory\":{\"limit\":-1}}", "memory.limit -1", "unlimited");
    refused("{\"memory\":{\"limit\":\"512M\"}}", "memory.limit \"512M\"", "integer");
    refused("{\"memory\":{\"swap\":1.5}}", "memory.swap 1.5", NULL);
    refused("{\"pids\":{\"limit\":0}}", "pids.limit 0", "unlimited");
    refused("{\"pids\":{\"limit\":-5}}", "pids.limit -5", "at least 1");
    refused("{\"blockIO\":{\"weight\":5}}", "blockIO.weight 5", "10-1000");
    refused("{\"cpu\":{\"shares\":1}}", "cpu.shares 1", "2-262144");
    refused("{\"cpu\":{\"quota\":999}}", "cpu.quota 999", "1000");
    refused("{\"cpu\":{\"quota\":-1}}", "cpu.quota -1", "unlimited");
    refused("{\"cpu\":{\"period\":2000000}}", "cpu.period 2000000", NULL);
    refused("{\"cpu\":{\"cpus\":\"0-1;x\"}}", "cpu.cpus \"0-1;x\"", NULL);
    refused("{\"cpu\":{\"burst\":1000}}", "cpu.burst 1000", "not supported");
    refused("{\"memory\":{\"swappiness\":10}}", "memory.swappiness 10", "not supported");
    refused("{\"hugepageLimits\":[{\"pageSize\":\"2MB\",\"limit\":1}]}", "hugepageLimits",
            "not supported");
    refused("{\"rdma\":{\"mlx\":{}}}", "rdma", "not supported");
    refused("{\"memory\":12}", "memory 12", "object");
    refused("{\"unified\":{\"../x\":\"1\"}}", "../x", NULL);
    refused("{\"unified\":{\"cgroup.procs\":\"1\"}}", "cgroup.procs", NULL);
    refused("{\"unified\":{\"pids.max\":5}}", "unified.pids.max 5", "string");
    refused("{\"unified\":{\"cpu.weight\":\"0\"}}", "unified.cpu.weight \"0\"", "1-10000");
}

static json_t *
J(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL(j);
    return j;
}

UNIT_TEST(limits, merge_and_pick)
{
    json_t *old = J("{\"memory\":{\"limit\":1000000000,\"swap\":1000000000,\"reservation\":5},"
                    "\"cpu\":{\"quota\":50000,\"period\":100000,\"cpus\":\"0\"},"
                    "\"pids\":{\"limit\":512},\"unified\":{\"cpu.weight\":\"100\"},"
                    "\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}");
    /* A memory limit alone turns swap off (swap = limit), as at create; a quota alone keeps the
     * recorded period; the rest of the record stays. */
    json_t *upd = J("{\"memory\":{\"limit\":500000000},\"cpu\":{\"quota\":20000}}");
    json_t *m = sbx_resources_merge(old, upd);
    CU_ASSERT(json_is(m, "{\"memory\":{\"limit\":500000000,\"swap\":500000000,\"reservation\":5},"
                         "\"cpu\":{\"quota\":20000,\"period\":100000,\"cpus\":\"0\"},"
                         "\"pids\":{\"limit\":512},\"unified\":{\"cpu.weight\":\"100\"},"
                         "\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}"));
    /* What the cgroup gets: the changed fields and their partners, nothing else. */
    json_t *p = sbx_resources_pick(m, upd);
    CU_ASSERT(json_is(p, "{\"memory\":{\"limit\":500000000,\"swap\":500000000},"
                         "\"cpu\":{\"quota\":20000,\"period\":100000}}"));
    /* Setting back: the recorded values of the same fields. */
    json_t *back = sbx_resources_pick(old, p);
    CU_ASSERT(json_is(back, "{\"memory\":{\"limit\":1000000000,\"swap\":1000000000},"
                            "\"cpu\":{\"quota\":50000,\"period\":100000}}"));
    CU_ASSERT_EQUAL(sbx_resources_check_merged(m, NULL), 0);
    json_decref(back);
    json_decref(p);
    json_decref(m);
    json_decref(upd);

    /* Swap given: kept as given, and checked against the recorded limit. */
    upd = J("{\"memory\":{\"swap\":2000000000}}");
    m = sbx_resources_merge(old, upd);
    p = sbx_resources_pick(m, upd);
    CU_ASSERT(json_is(p, "{\"memory\":{\"swap\":2000000000,\"limit\":1000000000}}"));
    CU_ASSERT_EQUAL(sbx_resources_check_merged(m, NULL), 0);
    json_decref(p);
    json_decref(m);
    json_decref(upd);
    upd = J("{\"memory\":{\"swap\":2000}}");
    m = sbx_resources_merge(old, upd);
    sbx_error_t err = NULL;
    CU_ASSERT(sbx_resources_check_merged(m, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "memory.swap 2000 is below memory.limit 1000000000"));
    sbx_error_release(&err);
    json_decref(m);
    /* ... and with no memory limit recorded at all. */
    m = sbx_resources_merge(NULL, upd);
    CU_ASSERT(sbx_resources_check_merged(m, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err->msg, "needs a memory limit"));
    sbx_error_release(&err);
    json_decref(m);
    json_decref(upd);

    /* cpu.shares replaces a recorded unified cpu.weight, and the other way round. */
    upd = J("{\"cpu\":{\"shares\":1024}}");
    m = sbx_resources_merge(old, upd);
    CU_ASSERT_PTR_NULL(json_object_get(m, "unified"));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(m, "cpu"), "shares")), 1024);
    json_t *upd2 = J("{\"unified\":{\"cpu.weight\":\"50\"}}");
    json_t *m2 = sbx_resources_merge(m, upd2);
    CU_ASSERT_PTR_NULL(json_object_get(json_object_get(m2, "cpu"), "shares"));
    CU_ASSERT(json_is(json_object_get(m2, "unified"), "{\"cpu.weight\":\"50\"}"));
    json_decref(m2);
    json_decref(upd2);
    json_decref(m);
    json_decref(upd);
    json_decref(old);
}

UNIT_TEST(limits, update_refusals_change_nothing)
{
    char root[] = "/tmp/sbx-unit-update.XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(root));
    char *dir = xasprintf("%s/u1", root), *st = xasprintf("%s/state.json", dir),
         *cfgp = xasprintf("%s/config.json", dir);
    mkdir(dir, 0700);
    /* A sandbox whose process is gone (pid 0 never names one): stopped. */
    const char *state = "{\"id\":\"u1\",\"pid\":0,\"pidStart\":1,\"status\":\"running\","
                        "\"cgroup\":\"x\"}";
    const char *cfg = "{\"ociVersion\":\"1.0.2\",\"linux\":{\"resources\":{\"pids\":{\"limit\":"
                      "512}}}}";
    CU_ASSERT_EQUAL(write_file(st, state, strlen(state), NULL), 0);
    CU_ASSERT_EQUAL(write_file(cfgp, cfg, strlen(cfg), NULL), 0);

    sbx_error_t err = NULL;
    json_t *res = J("{\"pids\":{\"limit\":64}}");
    CU_ASSERT(sbx_container_update(root, "u1", NULL, res, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "sandbox `u1` is stopped"));
    sbx_error_release(&err);
    json_decref(res);

    res = J("{\"pids\":{\"limit\":-3}}");
    CU_ASSERT(sbx_container_update(root, "u1", NULL, res, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err->msg, "pids.limit -3"));
    sbx_error_release(&err);
    json_decref(res);

    res = J("{\"pids\":{\"limit\":64}}");
    CU_ASSERT(sbx_container_update(root, "nosuch", NULL, res, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err->msg, "does not exist"));
    sbx_error_release(&err);
    json_decref(res);

    char *now = NULL;
    CU_ASSERT_EQUAL(read_file(cfgp, &now, NULL, NULL), 0);
    CU_ASSERT_STRING_EQUAL(now ? now : "", cfg);
    free(now);
    /* No temporary file left beside the record. */
    char *cmd = xasprintf("ls -A %s | grep -v -x -e state.json -e config.json | grep -q .", dir);
    CU_ASSERT_NOT_EQUAL(system(cmd), 0);
    free(cmd);
    rm_rf(root, NULL);
    free(dir);
    free(st);
    free(cfgp);
}
