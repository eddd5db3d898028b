/* Parsers and builders of the runtime core: sizes, quantities, signals, ids, mount options, the
 * OCI config parser and the flag-to-config builders. */
#include "config.h"
#include "spec.h"
#include "state.h"
#include "strutil.h"
#include "unit.h"
#include "utils.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

UNIT_TEST(runtime, buf_add)
{
    struct sbx_buf b = {0};
    sbx_buf_add(&b, "", 0);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_STRING_EQUAL(b.p, "");
    for (int i = 0; i < 1000; i++)
        sbx_buf_add(&b, "ab\0c", 4); /* bytes, not strings: the NUL is kept */
    CU_ASSERT_EQUAL(b.len, 4000);
    CU_ASSERT(b.cap > b.len);
    CU_ASSERT_EQUAL(b.p[4000], '\0');
    CU_ASSERT_EQUAL(memcmp(b.p + 3996, "ab\0c", 4), 0);
    free(b.p);
}

UNIT_TEST(runtime, parse_size)
{
    int64_t v;
    CU_ASSERT_EQUAL(parse_size("0", &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(parse_size("4096", &v), 0);
    CU_ASSERT_EQUAL(v, 4096);
    CU_ASSERT_EQUAL(parse_size("512M", &v), 0);
    CU_ASSERT_EQUAL(v, 512LL << 20);
    CU_ASSERT_EQUAL(parse_size("512Mi", &v), 0);
    CU_ASSERT_EQUAL(v, 512LL << 20);
    CU_ASSERT_EQUAL(parse_size("1.5G", &v), 0);
    CU_ASSERT_EQUAL(v, 3LL << 29);
    CU_ASSERT_EQUAL(parse_size("2gib", &v), 0);
    CU_ASSERT_EQUAL(v, 2LL << 30);
    CU_ASSERT_EQUAL(parse_size("1k", &v), 0);
    CU_ASSERT_EQUAL(v, 1024);
    CU_ASSERT_EQUAL(parse_size("1T", &v), 0);
    CU_ASSERT_EQUAL(v, 1LL << 40);
    /* Docker's meaning (sbxrun --help): every suffix binary, any case, `m` is MiB. */
    CU_ASSERT_EQUAL(parse_size("512m", &v), 0);
    CU_ASSERT_EQUAL(v, 512LL << 20);
    CU_ASSERT_EQUAL(parse_size("1g", &v), 0);
    CU_ASSERT_EQUAL(v, 1LL << 30);
    CU_ASSERT_EQUAL(parse_size("1G", &v), 0);
    CU_ASSERT_EQUAL(v, 1LL << 30);
    CU_ASSERT_EQUAL(parse_size("1GB", &v), 0);
    CU_ASSERT_EQUAL(v, 1LL << 30);
    CU_ASSERT_EQUAL(parse_size("64kb", &v), 0);
    CU_ASSERT_EQUAL(v, 64LL << 10);
    CU_ASSERT_EQUAL(parse_size("10b", &v), 0);
    CU_ASSERT_EQUAL(v, 10);
    const char *bad[] = {"",    "-1",  "+1",  "12x", "M",   "1..5G", "0x10",
                         "inf", "nan", "1.5", "1 G", "1e3", " 1"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        CU_ASSERT_EQUAL(parse_size(bad[i], &v), -EINVAL);
    CU_ASSERT_EQUAL(parse_size("9000000T", &v), -ERANGE);
}

/* The API's Kubernetes quantities: decimal suffixes are decimal, only `i` ones binary, case
 * matters, `m` is milli (an error of its own for bytes). */
UNIT_TEST(runtime, parse_quantity)
{
    int64_t v;
    static const struct {
        const char *s;
        int64_t bytes;
    } good[] = {
        {"0", 0},
        {"4096", 4096},
        {"9223372036854775807", INT64_MAX},
        {"1k", 1000},
        {"1M", 1000000},
        {"1G", 1000000000},
        {"2T", 2000000000000LL},
        {"1P", 1000000000000000LL},
        {"1E", 1000000000000000000LL},
        {"1Ki", 1024},
        {"512Mi", 512LL << 20},
        {"1Gi", 1LL << 30},
        {"1Ti", 1LL << 40},
        {"1Pi", 1LL << 50},
        {"1Ei", 1LL << 60},
        {"1.5Gi", 3LL << 29},
        {"0.5G", 500000000},
        {"1.0000000001Ki", 1024}, /* rounded down to a whole byte */
        {"2.0", 2},
    };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        v = -1;
        CU_ASSERT_EQUAL(parse_quantity(good[i].s, &v), 0);
        if (v != good[i].bytes)
            fprintf(stderr, "parse_quantity(%s) = %lld\n", good[i].s, (long long)v);
        CU_ASSERT_EQUAL(v, good[i].bytes);
    }
    /* Docker's spellings are not Kubernetes': lower-case g and K, B, iB. */
    const char *bad[] = {"",    "-1",  "+1",   "1g",    "1K",   "1GB",  "1GiB", "1gi",
                         "1b",  "Gi",  ".5Gi", "1..5G", "1.5",  "0x10", "1e9",  "1E3Mi",
                         "inf", "nan", " 1",   "1 Gi",  "1Gi ", "12XB", "1mi"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        int r = parse_quantity(bad[i], &v);
        if (r != -EINVAL)
            fprintf(stderr, "parse_quantity(\"%s\") = %d\n", bad[i], r);
        CU_ASSERT_EQUAL(r, -EINVAL);
    }
    CU_ASSERT_EQUAL(parse_quantity("500m", &v), -EDOM);
    CU_ASSERT_EQUAL(parse_quantity("512m", &v), -EDOM);
    CU_ASSERT_EQUAL(parse_quantity("9E", &v), 0);
    CU_ASSERT_EQUAL(v, 9000000000000000000LL);
    CU_ASSERT_EQUAL(parse_quantity("10E", &v), -ERANGE);
    CU_ASSERT_EQUAL(parse_quantity("8Ei", &v), -ERANGE);
    CU_ASSERT_EQUAL(parse_quantity("9223372036854775808", &v), -ERANGE);
    CU_ASSERT_EQUAL(parse_quantity("9.5E", &v), -ERANGE);
}

UNIT_TEST(runtime, parse_cpus)
{
    int64_t m;
    CU_ASSERT_EQUAL(parse_cpus("0.5", &m), 0);
    CU_ASSERT_EQUAL(m, 500);
    CU_ASSERT_EQUAL(parse_cpus("2", &m), 0);
    CU_ASSERT_EQUAL(m, 2000);
    CU_ASSERT_EQUAL(parse_cpus("500m", &m), 0);
    CU_ASSERT_EQUAL(m, 500);
    CU_ASSERT_EQUAL(parse_cpus("1.25", &m), 0);
    CU_ASSERT_EQUAL(m, 1250);
    CU_ASSERT_NOT_EQUAL(parse_cpus("0", &m), 0);
    CU_ASSERT_NOT_EQUAL(parse_cpus("-1", &m), 0);
    CU_ASSERT_NOT_EQUAL(parse_cpus("0m", &m), 0);
    CU_ASSERT_NOT_EQUAL(parse_cpus("abc", &m), 0);
    CU_ASSERT_NOT_EQUAL(parse_cpus("m", &m), 0);
    CU_ASSERT_NOT_EQUAL(parse_cpus("", &m), 0);
    CU_ASSERT_NOT_EQUAL(parse_cpus("0.0001", &m), 0);
}

UNIT_TEST(runtime, parse_int_signal_id)
{
    int64_t v;
    CU_ASSERT_EQUAL(parse_int64("42", 0, 100, &v), 0);
    CU_ASSERT_EQUAL(v, 42);
    CU_ASSERT_EQUAL(parse_int64("101", 0, 100, &v), -ERANGE);
    CU_ASSERT_EQUAL(parse_int64("4x", 0, 100, &v), -EINVAL);
    CU_ASSERT_EQUAL(parse_int64("", 0, 100, &v), -EINVAL);
    /* Strict: no blanks, no '+' (tests/fuzz/regressions/quantity). */
    CU_ASSERT_EQUAL(parse_int64("+5", 0, 100, &v), -EINVAL);
    CU_ASSERT_EQUAL(parse_int64(" 5", 0, 100, &v), -EINVAL);
    CU_ASSERT_EQUAL(parse_int64("\t5", 0, 100, &v), -EINVAL);
    CU_ASSERT_EQUAL(parse_int64("-", -100, 100, &v), -EINVAL);
    CU_ASSERT_EQUAL(parse_int64("- 5", -100, 100, &v), -EINVAL);
    CU_ASSERT_EQUAL(parse_int64("-5", -100, 100, &v), 0);
    CU_ASSERT_EQUAL(v, -5);
    CU_ASSERT_EQUAL(parse_signal("TERM"), SIGTERM);
    CU_ASSERT_EQUAL(parse_signal("sigkill"), SIGKILL);
    CU_ASSERT_EQUAL(parse_signal("9"), 9);
    CU_ASSERT_EQUAL(parse_signal("RTMIN+1"), SIGRTMIN + 1);
    CU_ASSERT(parse_signal("NOPE") < 0);
    CU_ASSERT(parse_signal("65") < 0);
    CU_ASSERT_STRING_EQUAL(signal_name(SIGHUP), "HUP");
    CU_ASSERT(id_is_valid("abc-1.2_3"));
    CU_ASSERT(!id_is_valid(""));
    CU_ASSERT(!id_is_valid("-abc"));
    CU_ASSERT(!id_is_valid("../x"));
    CU_ASSERT(!id_is_valid("a/b"));
    char longid[70];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    CU_ASSERT(!id_is_valid(longid));
    char hex[17];
    random_hex(hex, 16);
    CU_ASSERT_EQUAL(strlen(hex), 16);
    CU_ASSERT(id_is_valid(hex));
}

UNIT_TEST(runtime, mount_options)
{
    struct sbx_mount m = {.destination = "/x"};
    json_t *o = json_pack("[s,s,s,s,s,s,s]", "ro", "nosuid", "rbind", "rprivate", "mode=0755",
                          "size=1M", "noexec");
    CU_ASSERT_EQUAL(sbx_parse_mount_options(o, &m, NULL), 0);
    CU_ASSERT(m.flags & MS_RDONLY);
    CU_ASSERT(m.flags & MS_NOSUID);
    CU_ASSERT(m.flags & MS_NOEXEC);
    CU_ASSERT(m.bind && m.recursive);
    CU_ASSERT_EQUAL(m.propagation, MS_PRIVATE | MS_REC);
    CU_ASSERT_STRING_EQUAL(m.data, "mode=0755,size=1M");
    free(m.data);
    json_decref(o);

    struct sbx_mount m2 = {.destination = "/y"};
    o = json_pack("[s,s]", "ro", "rw");
    CU_ASSERT_EQUAL(sbx_parse_mount_options(o, &m2, NULL), 0);
    CU_ASSERT_FALSE(m2.flags & MS_RDONLY);
    CU_ASSERT(m2.clear & MS_RDONLY);
    json_decref(o);

    sbx_error_t err = NULL;
    o = json_pack("[i]", 3);
    CU_ASSERT(sbx_parse_mount_options(o, &m2, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(err);
    sbx_error_release(&err);
    json_decref(o);
}

static const char *minimal_config =
    "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
    "\"hostname\":\"h\",\"process\":{\"args\":[\"sh\",\"-c\",\"true\"],\"cwd\":\"/tmp\","
    "\"env\":[\"A=1\"],\"user\":{\"uid\":5,\"gid\":6,\"additionalGids\":[7,8]},"
    "\"noNewPrivileges\":true,\"oomScoreAdj\":100,"
    "\"capabilities\":{\"bounding\":[\"CAP_KILL\",\"CAP_CHOWN\"],\"effective\":[\"CAP_KILL\"]},"
    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":20}]},"
    "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
    "{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"data\",\"options\":[\"ro\"]}],"
    "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"},{\"type\":\"user\"},"
    "{\"type\":\"network\",\"path\":\"/proc/1/ns/net\"}],"
    "\"uidMappings\":[{\"containerID\":0,\"hostID\":1000,\"size\":10}],"
    "\"gidMappings\":[{\"containerID\":0,\"hostID\":2000,\"size\":10}],"
    "\"maskedPaths\":[\"/proc/kcore\"],\"readonlyPaths\":[\"/proc/sys\"],"
    "\"resources\":{\"memory\":{\"limit\":1048576},\"cpu\":{\"quota\":50000,\"period\":100000},"
    "\"pids\":{\"limit\":7}},\"cgroupsPath\":\"/a/b\"},"
    "\"annotations\":{\"run.sbx.init\":\"true\",\"run.sbx.rootfs.size\":\"1M\"}}";

static int
parse_text(const char *text, sbx_spec_t **out, sbx_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    int r = sbx_spec_parse(root, "/tmp", out, err);
    json_decref(root);
    return r;
}

UNIT_TEST(runtime, oci_config_parse)
{
    sbx_spec_t *s = NULL;
    sbx_error_t err = NULL;
    CU_ASSERT_EQUAL_FATAL(parse_text(minimal_config, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s->rootfs, "/tmp/rootfs");
    CU_ASSERT(s->root_readonly);
    CU_ASSERT_STRING_EQUAL(s->args[2], "true");
    CU_ASSERT_STRING_EQUAL(s->cwd, "/tmp");
    CU_ASSERT_EQUAL(s->uid, 5);
    CU_ASSERT_EQUAL(s->gid, 6);
    CU_ASSERT_EQUAL(s->n_additional_gids, 2);
    CU_ASSERT(s->no_new_privileges);
    CU_ASSERT(s->has_oom_score_adj && s->oom_score_adj == 100);
    CU_ASSERT_EQUAL(s->caps.bounding, (1ULL << 5) | (1ULL << 0));
    CU_ASSERT_EQUAL(s->caps.effective, 1ULL << 5);
    CU_ASSERT_EQUAL(s->n_rlimits, 1);
    CU_ASSERT_EQUAL(s->rlimits[0].limit.rlim_max, 20);
    CU_ASSERT_EQUAL(s->n_mounts, 2);
    CU_ASSERT_STRING_EQUAL(s->mounts[1].source, "/tmp/data");
    CU_ASSERT(s->mounts[1].bind);
    CU_ASSERT(s->ns_enabled[SBX_NS_PID] && s->ns_enabled[SBX_NS_USER]);
    CU_ASSERT_FALSE(s->ns_enabled[SBX_NS_UTS]);
    CU_ASSERT_STRING_EQUAL(s->ns_path[SBX_NS_NET], "/proc/1/ns/net");
    CU_ASSERT_EQUAL(s->uid_maps[0].host_id, 1000);
    CU_ASSERT_EQUAL(s->gid_maps[0].size, 10);
    CU_ASSERT_EQUAL(s->resources.memory_limit, 1048576);
    CU_ASSERT_EQUAL(s->resources.cpu_quota, 50000);
    CU_ASSERT_EQUAL(s->resources.pids_limit, 7);
    CU_ASSERT_EQUAL(s->resources.memory_swap, -1);
    CU_ASSERT_STRING_EQUAL(s->cgroups_path, "/a/b");
    CU_ASSERT(s->own_init);
    CU_ASSERT_FALSE(s->overlay_rootfs);
    CU_ASSERT_EQUAL(s->overlay_size, 1 << 20);
    sbx_spec_free(s);
}

static void
expect_parse_error(const char *from, const char *to, const char *needle)
{
    char *text = xstrdup(minimal_config);
    char *p = strstr(text, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char *mod = xasprintf("%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
    sbx_spec_t *s = NULL;
    sbx_error_t err = NULL;
    CU_ASSERT(parse_text(mod, &s, &err) < 0);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    if (strstr(err->msg, needle) == NULL)
        fprintf(stderr, "\n  error `%s` lacks `%s`\n", err->msg, needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, needle));
    sbx_error_release(&err);
    free(mod);
    free(text);
}

UNIT_TEST(runtime, oci_config_errors)
{
    expect_parse_error("\"1.0.2\"", "\"2.0.0\"", "ociVersion");
    expect_parse_error("\"path\":\"rootfs\"", "\"path\":\"\"", "root.path");
    expect_parse_error("\"cwd\":\"/tmp\"", "\"cwd\":\"tmp\"", "process.cwd");
    expect_parse_error("\"args\":[\"sh\",\"-c\",\"true\"]", "\"args\":[]", "process.args");
    expect_parse_error("\"args\":[\"sh\",", "\"args\":[1,", "process.args[0]");
    expect_parse_error("CAP_KILL\",\"CAP_CHOWN", "CAP_KILL\",\"CAP_BOGUS", "CAP_BOGUS");
    expect_parse_error("RLIMIT_NOFILE", "RLIMIT_BOGUS", "RLIMIT_BOGUS");
    expect_parse_error("\"soft\":10", "\"soft\":30", "soft limit above hard");
    expect_parse_error("{\"type\":\"pid\"}", "{\"type\":\"bogus\"}", "bogus");
    expect_parse_error("{\"type\":\"mount\"}", "{\"type\":\"pid\"}", "listed twice");
    expect_parse_error("\"destination\":\"/data\"", "\"destination\":\"data\"", "destination");
    expect_parse_error("\"source\":\"data\"", "\"source\":\"\"", "no source");
    expect_parse_error("\"size\":10}]", "\"size\":0}]", "uidMappings");
    expect_parse_error("\"limit\":7", "\"limit\":0", "pids limit");
    expect_parse_error("\"run.sbx.rootfs.size\":\"1M\"", "\"run.sbx.rootfs.size\":\"big\"",
                       "run.sbx.rootfs.size");
    expect_parse_error("\"run.sbx.init\":\"true\"",
                       "\"run.sbx.init\":\"true\",\"run.sbx.seccomp\":\"bogus\"",
                       "run.sbx.seccomp `bogus` names no built-in profile");
    expect_parse_error("\"run.sbx.init\":\"true\"",
                       "\"run.sbx.init\":\"true\",\"run.sbx.seccomp\":\"../default\"",
                       "names no built-in profile");
    expect_parse_error("\"run.sbx.init\":\"true\"",
                       "\"run.sbx.init\":\"true\",\"run.sbx.seccomp\":1",
                       "run.sbx.seccomp `(not a string)`");
}

UNIT_TEST(runtime, config_builders)
{
    sbx_error_t err = NULL;
    char *args[] = {"echo", "hi", NULL};
    json_t *cfg = sbx_config_new_default("0123456789abcdef", args, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(cfg, "hostname")), "sbx-0123456789ab");
    CU_ASSERT_EQUAL(sbx_config_setenv(cfg, "FOO=bar", &err), 0);
    CU_ASSERT_EQUAL(sbx_config_setenv(cfg, "FOO=baz", &err), 0);
    CU_ASSERT(sbx_config_setenv(cfg, "NOEQ", &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT(sbx_config_setenv(cfg, "=x", &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT_EQUAL(sbx_config_add_bind(cfg, "/tmp:/data:ro", &err), 0);
    CU_ASSERT(sbx_config_add_bind(cfg, "/tmp:/data:rx", &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT(sbx_config_add_bind(cfg, "/tmp:relative", &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT(sbx_config_add_bind(cfg, "/nonexistent-sbx:/x", &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "/nonexistent-sbx"));
    sbx_error_release(&err);
    CU_ASSERT(sbx_config_add_bind(cfg, "nocolon", &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT_EQUAL(sbx_config_add_tmpfs(cfg, "/scratch:64M", &err), 0);
    CU_ASSERT(sbx_config_add_tmpfs(cfg, "/scratch:64Q", &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT_EQUAL(sbx_config_set_user(cfg, 0, 0, &err), 0);
    char *no[] = {"CAP_CHOWN", NULL}, *yes[] = {"NET_ADMIN", NULL}, *bogus[] = {"CAP_NOPE", NULL};
    CU_ASSERT_EQUAL(sbx_config_caps_adjust(cfg, yes, no, &err), 0);
    CU_ASSERT(sbx_config_caps_adjust(cfg, bogus, NULL, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "CAP_NOPE"));
    sbx_error_release(&err);

    sbx_spec_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(sbx_spec_parse(cfg, NULL, &s, &err), 0);
    bool foo = false;
    for (char **e = s->env; *e; e++)
        if (strcmp(*e, "FOO=baz") == 0)
            foo = true;
    CU_ASSERT(foo);
    CU_ASSERT(s->caps.effective & (1ULL << 12));      /* NET_ADMIN */
    CU_ASSERT_FALSE(s->caps.effective & (1ULL << 0)); /* CHOWN */
    CU_ASSERT(s->overlay_rootfs && s->own_init);
    CU_ASSERT_EQUAL(s->resources.pids_limit, SBX_DEFAULT_PIDS_LIMIT);
    CU_ASSERT(s->ns_enabled[SBX_NS_NET] && s->ns_enabled[SBX_NS_CGROUP]);
    /* The default profile by name, parsed only when its filter is not cached. */
    CU_ASSERT_PTR_NULL(s->seccomp);
    CU_ASSERT_STRING_EQUAL(s->seccomp_builtin ? s->seccomp_builtin : "", "default");
    bool ro_bind = false, tmpfs = false, tmp = false;
    for (size_t i = 0; i < s->n_mounts; i++) {
        if (strcmp(s->mounts[i].destination, "/data") == 0)
            ro_bind = s->mounts[i].bind && (s->mounts[i].flags & MS_RDONLY);
        if (strcmp(s->mounts[i].destination, "/scratch") == 0)
            tmpfs = strstr(s->mounts[i].data, "size=67108864") != NULL;
        if (strcmp(s->mounts[i].destination, "/tmp") == 0)
            tmp = strstr(s->mounts[i].data, "size=268435456") != NULL;
    }
    CU_ASSERT(ro_bind);
    CU_ASSERT(tmpfs);
    /* Bounded scratch space by default (issue 17): /tmp 256 MiB, the writable layer 1 GiB. */
    CU_ASSERT(tmp);
    CU_ASSERT_EQUAL(s->overlay_size, INT64_C(1) << 30);
    /* Root callers map the sandbox's 0-65535 onto one unprivileged host range. */
    if (geteuid() == 0) {
        CU_ASSERT_EQUAL(s->uid_maps[0].container_id, 0);
        CU_ASSERT(s->uid_maps[0].host_id >= 65536);
        CU_ASSERT_EQUAL(s->uid_maps[0].size, SBX_ID_RANGE);
    } else { /* others map their own uid first (to 0 with sub-ids, else to the sandbox user) */
        CU_ASSERT_EQUAL(s->uid_maps[0].host_id, geteuid());
    }
    sbx_spec_free(s);
    /* A profile file is copied in instead, and replaces the name. */
    char path[] = "/tmp/sbx-unit-profile-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    const char *p = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[]}";
    CU_ASSERT_EQUAL(write(fd, p, strlen(p)), (ssize_t)strlen(p));
    close(fd);
    CU_ASSERT_EQUAL(sbx_config_set_seccomp(cfg, path, &err), 0);
    unlink(path);
    CU_ASSERT_EQUAL_FATAL(sbx_spec_parse(cfg, NULL, &s, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(s->seccomp);
    CU_ASSERT_PTR_NULL(s->seccomp_builtin);
    sbx_spec_free(s);
    CU_ASSERT_EQUAL(sbx_config_set_seccomp(cfg, "none", &err), 0);
    CU_ASSERT_EQUAL_FATAL(sbx_spec_parse(cfg, NULL, &s, &err), 0);
    CU_ASSERT(s->seccomp == NULL && s->seccomp_builtin == NULL);
    sbx_spec_free(s);
    CU_ASSERT_EQUAL(sbx_config_set_seccomp(cfg, "strict", &err), 0);
    CU_ASSERT_EQUAL_FATAL(sbx_spec_parse(cfg, NULL, &s, &err), 0);
    CU_ASSERT_STRING_EQUAL(s->seccomp_builtin ? s->seccomp_builtin : "", "strict");
    sbx_spec_free(s);
    /* Both at once (a hand-written bundle) is refused rather than guessed at. */
    json_object_set_new(json_object_get(cfg, "linux"), "seccomp",
                        json_pack("{s:s}", "defaultAction", "SCMP_ACT_ALLOW"));
    CU_ASSERT(sbx_spec_parse(cfg, NULL, &s, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(err ? strstr(err->msg, "cannot be combined with linux.seccomp") : NULL);
    sbx_error_release(&err);
    CU_ASSERT_EQUAL(sbx_config_set_seccomp(cfg, "default", &err), 0);
    sbx_config_set_net_host(cfg);
    CU_ASSERT_EQUAL_FATAL(sbx_spec_parse(cfg, NULL, &s, &err), 0);
    CU_ASSERT_FALSE(s->ns_enabled[SBX_NS_NET]);
    sbx_spec_free(s);
    json_decref(cfg);
}

/* The hand-made UTC conversion agrees with gmtime_r() across leap years, centuries and eras. */
UNIT_TEST(runtime, rfc3339_matches_gmtime)
{
    static const long long fixed[] = {0,
                                      59,
                                      86399,
                                      86400,
                                      951782400 /* 2000-02-29 */,
                                      951868800,
                                      4107542400LL /* 2100-03-01 */,
                                      1798761599,
                                      253402300799LL /* 9999-12-31T23:59:59 */};
    unsigned seed = 42;
    for (int i = 0; i < 2000; i++) {
        long long t =
            i < (int)ARRAY_SIZE(fixed) ? fixed[i] : (long long)(rand_r(&seed) % 2000000) * 12343;
        struct timespec ts = {.tv_sec = t, .tv_nsec = 123456789};
        struct tm tm;
        time_t tt = t;
        char want[64];
        gmtime_r(&tt, &tm);
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S.123456789Z", &tm);
        char *got = sbx_rfc3339(&ts);
        if (strcmp(got, want) != 0)
            fprintf(stderr, "\n  %lld: got %s, want %s\n", t, got, want);
        CU_ASSERT_STRING_EQUAL(got, want);
        free(got);
        /* The same formatter at apid's precision (milliseconds, truncated) and at none. */
        char buf[48];
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S.123Z", &tm);
        sbx_format_rfc3339(&ts, 3, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, want);
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
        sbx_format_rfc3339(&ts, 0, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, want);
    }
}

UNIT_TEST(runtime, passwd_home)
{
    char dir[] = "/tmp/sbx-unit-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char *etc = xasprintf("%s/etc", dir), *pw = xasprintf("%s/etc/passwd", dir);
    mkdir(etc, 0755);
    const char *text = "root:x:0:0:root:/root:/bin/sh\nsandbox::1000:1000::/home/sandbox:/bin/sh\n";
    CU_ASSERT_EQUAL(write_file(pw, text, strlen(text), NULL), 0);
    char *h = sbx_passwd_home(dir, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_STRING_EQUAL(h, "/home/sandbox");
    free(h);
    CU_ASSERT_PTR_NULL(sbx_passwd_home(dir, 4242));
    CU_ASSERT_EQUAL(rm_rf(dir, NULL), 0);
    CU_ASSERT_NOT_EQUAL(access(dir, F_OK), 0);
    free(etc);
    free(pw);
}
