/* sbx-agent helpers: mode encoding, Range, search patterns, query decoding, JSON, paths, users. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>

#include "agent_util.h"
#include "unit.h"

UNIT_TEST(agent_mode, api_decimal_digits_are_octal)
{
    mode_t m = 1;
    CU_ASSERT_EQUAL(ag_mode_from_api(644, &m), 0);
    CU_ASSERT_EQUAL(m, 0644);
    CU_ASSERT_EQUAL(ag_mode_from_api(755, &m), 0);
    CU_ASSERT_EQUAL(m, 0755);
    CU_ASSERT_EQUAL(ag_mode_from_api(4755, &m), 0);
    CU_ASSERT_EQUAL(m, 04755);
    CU_ASSERT_EQUAL(ag_mode_from_api(0, &m), 0);
    CU_ASSERT_EQUAL(m, 0);
    CU_ASSERT_EQUAL(ag_mode_from_api(7, &m), 0);
    CU_ASSERT_EQUAL(m, 07);
    CU_ASSERT_EQUAL(ag_mode_from_api(648, &m), -1);
    CU_ASSERT_EQUAL(ag_mode_from_api(-1, &m), -1);
    CU_ASSERT_EQUAL(ag_mode_from_api(17777, &m), -1);
    CU_ASSERT_EQUAL(ag_mode_to_api(0600), 600);
    CU_ASSERT_EQUAL(ag_mode_to_api(0755), 755);
    CU_ASSERT_EQUAL(ag_mode_to_api(0100644), 644); /* type bits are not part of the API mode */
    CU_ASSERT_EQUAL(ag_mode_to_api(0), 0);
    for (mode_t x = 0; x <= 07777; x++) {
        mode_t back;
        CU_ASSERT_EQUAL(ag_mode_from_api(ag_mode_to_api(x), &back), 0);
        if (back != x) {
            CU_FAIL("mode round trip");
            break;
        }
    }
}

UNIT_TEST(agent_range, parse)
{
    uint64_t a, b;
    CU_ASSERT_EQUAL(ag_range_parse("bytes=0-1023", 5000, &a, &b), 0);
    CU_ASSERT(a == 0 && b == 1023);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=10-", 100, &a, &b), 0);
    CU_ASSERT(a == 10 && b == 99);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=-10", 100, &a, &b), 0);
    CU_ASSERT(a == 90 && b == 99);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=-500", 100, &a, &b), 0);
    CU_ASSERT(a == 0 && b == 99);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=50-5000", 100, &a, &b), 0); /* end clamped */
    CU_ASSERT(a == 50 && b == 99);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=1-2, 5-6", 100, &a, &b), 0); /* first range only */
    CU_ASSERT(a == 1 && b == 2);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=100-", 100, &a, &b), -1);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=-0", 100, &a, &b), -1);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=0-", 0, &a, &b), -1);
    CU_ASSERT_EQUAL(ag_range_parse(NULL, 100, &a, &b), 1);
    CU_ASSERT_EQUAL(ag_range_parse("items=0-1", 100, &a, &b), 1);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=5-1", 100, &a, &b), 1);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=-", 100, &a, &b), 1);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=a-b", 100, &a, &b), 1);
    CU_ASSERT_EQUAL(ag_range_parse("bytes=99999999999999999999-", 100, &a, &b), 1);
}

UNIT_TEST(agent_glob, match)
{
    CU_ASSERT(ag_name_match("**", "anything.txt"));
    CU_ASSERT(ag_name_match("*", ""));
    CU_ASSERT(ag_name_match("*.txt", "a.txt"));
    CU_ASSERT_FALSE(ag_name_match("*.txt", "a.txt.bak"));
    CU_ASSERT(ag_name_match("a?c", "abc"));
    CU_ASSERT_FALSE(ag_name_match("a?c", "ac"));
    CU_ASSERT(ag_name_match("[ab]*", "beta"));
    CU_ASSERT_FALSE(ag_name_match("[!ab]*", "beta"));
    CU_ASSERT(ag_name_match("[^ab]*", "gamma"));
    CU_ASSERT(ag_name_match("file[0-9].log", "file7.log"));
    CU_ASSERT_FALSE(ag_name_match("file[0-9].log", "fileX.log"));
    CU_ASSERT(ag_name_match("\\*lit", "*lit"));
    CU_ASSERT_FALSE(ag_name_match("\\*lit", "xlit"));
    CU_ASSERT(ag_name_match("[]]x", "]x"));
    CU_ASSERT(ag_name_match("a[", "a["));
    CU_ASSERT(ag_name_match("*a*b*c*", "xxaxxbxxcxx"));
    /* pathological pattern must terminate quickly */
    CU_ASSERT_FALSE(ag_name_match("*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    /* ... on a name of the longest length too (a recursive matcher took 18 s for 4 stars) */
    char name[256], pat[200] = "";
    memset(name, 'a', 255);
    name[255] = '\0';
    for (int i = 0; i < 40; i++)
        strcat(pat, "*a");
    strcat(pat, "*b");
    CU_ASSERT_FALSE(ag_name_match(pat, name));
    /* More than 64 stars still match (the old recursion gave up at depth 64). */
    memset(pat, '*', 100);
    strcpy(pat + 100, "a?");
    CU_ASSERT(ag_name_match(pat, "xyzab"));
}

UNIT_TEST(agent_query, percent_and_repeated_keys)
{
    struct ag_query q;
    const char *s = "path=%2Ftmp%2Fa%20b&path=/c+d&x&cursor=12&e=";
    CU_ASSERT_EQUAL_FATAL(ag_query_parse(s, strlen(s), &q), 0);
    CU_ASSERT_EQUAL(q.n, 5);
    CU_ASSERT_STRING_EQUAL(q.kv[0].v, "/tmp/a b");
    CU_ASSERT_STRING_EQUAL(q.kv[1].v, "/c d");
    CU_ASSERT_STRING_EQUAL(q.kv[2].k, "x");
    CU_ASSERT_STRING_EQUAL(q.kv[2].v, "");
    CU_ASSERT_STRING_EQUAL(ag_query_get(&q, "path"), "/tmp/a b");
    CU_ASSERT_STRING_EQUAL(ag_query_get(&q, "cursor"), "12");
    CU_ASSERT_PTR_NULL(ag_query_get(&q, "nope"));
    ag_query_free(&q);
    CU_ASSERT_EQUAL(ag_query_parse("a=%zz", 5, &q), -1);
    CU_ASSERT_EQUAL(ag_query_parse("a=%2", 4, &q), -1);
    CU_ASSERT_EQUAL(ag_query_parse("a=%00", 5, &q), -1); /* NUL never allowed */
    char out[16];
    CU_ASSERT_EQUAL(sbx_pct_decode("%41%62c", 7, out, false), 3);
    CU_ASSERT_EQUAL(memcmp(out, "Abc", 3), 0);
    CU_ASSERT_EQUAL(sbx_pct_decode("a+b", 3, out, false), 3);
    CU_ASSERT_EQUAL(out[1], '+');
    CU_ASSERT_EQUAL(sbx_pct_decode("%", 1, out, false), -1);
}

UNIT_TEST(agent_path, clean)
{
    const char *cases[][2] = {
        {"/a/b/../c", "/a/c"},
        {"/../../etc/passwd", "/etc/passwd"},
        {"//a//./b/", "/a/b"},
        {"/", "/"},
        {"", "/"},
        {"a/b", "/a/b"},
        {"/a/..", "/"},
        {"/..", "/"},
        {"/a/b/../../../..", "/"},
        {"/.../x", "/.../x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *o = ag_path_clean(cases[i][0]);
        CU_ASSERT_STRING_EQUAL(o, cases[i][1]);
        free(o);
    }
}

UNIT_TEST(agent_path, expand_home_and_variables)
{
    char *env[] = {"HOME=/home/u", "A=1", "LONG_NAME_2=x y", "EMPTY=", NULL};
    static const struct {
        const char *in, *home, *want;
    } cases[] = {
        {"~", NULL, "/home/u"},
        {"~/src", NULL, "/home/u/src"},
        {"~/src", "/root", "/root/src"},
        {"~user/x", NULL, "~user/x"}, /* no ~user lookup */
        {"a/~", NULL, "a/~"},
        {"$A/$LONG_NAME_2/${A}b", NULL, "1/x y/1b"},
        {"$UNSET/x", NULL, "/x"},
        {"${A", NULL, "${A"},
        {"$1/$/${}/x$", NULL, "$1/$/${}/x$"},
        {"$EMPTY.", NULL, "."},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *o = ag_expand(cases[i].in, env, cases[i].home);
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        if (strcmp(o, cases[i].want))
            fprintf(stderr, "ag_expand(%s) = %s, want %s\n", cases[i].in, o, cases[i].want);
        CU_ASSERT_STRING_EQUAL(o, cases[i].want);
        free(o);
    }
    char *noenv[] = {NULL};
    char *o = ag_expand("~/x", noenv, NULL);
    CU_ASSERT_STRING_EQUAL(o, "//x"); /* no home at all: "/" */
    free(o);
}

UNIT_TEST(agent_users, passwd_and_group_files)
{
    char dir[] = "/tmp/sbx-agent-unit.XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char p[256];
    snprintf(p, sizeof(p), "%s/etc", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/etc/passwd", dir);
    FILE *f = fopen(p, "w");
    fputs("root:x:0:0:root:/root:/bin/sh\n# comment\nbroken-line\nlong:x:7:7:", f);
    for (int i = 0; i < 3000; i++) /* longer than the entry buffer: skipped, not truncated */
        fputs("gecos.....", f);
    fputs(":/home/long:/bin/sh\nsandbox:x:1000:1001::/home/sandbox:/bin/sh\n", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/etc/group", dir);
    f = fopen(p, "w");
    fputs("root:x:0:\nsandbox:x:1001:\nwheel:x:10:root,sandbox\ndocker:x:999:sandboxx\n"
          "audio:x:29:sandbox\n",
          f);
    fclose(f);
    uid_t uid = 7;
    gid_t gid = 7;
    char name[64] = "", home[64] = "";
    CU_ASSERT_EQUAL(ag_user_by_name(dir, "sandbox", &uid, &gid, home, sizeof(home)), 0);
    CU_ASSERT(uid == 1000 && gid == 1001);
    CU_ASSERT_STRING_EQUAL(home, "/home/sandbox");
    CU_ASSERT_EQUAL(ag_user_by_uid(dir, 0, name, sizeof(name), &gid, NULL, 0), 0);
    CU_ASSERT_STRING_EQUAL(name, "root");
    CU_ASSERT_EQUAL(ag_user_by_uid(dir, 4242, name, sizeof(name), &gid, NULL, 0), -1);
    CU_ASSERT_EQUAL(ag_group_by_name(dir, "wheel", &gid), 0);
    CU_ASSERT_EQUAL(gid, 10);
    CU_ASSERT_EQUAL(ag_group_by_gid(dir, 1001, name, sizeof(name)), 0);
    CU_ASSERT_STRING_EQUAL(name, "sandbox");
    gid_t gl[8];
    CU_ASSERT_EQUAL(ag_user_groups(dir, "sandbox", gl, 8), 2); /* "sandboxx" is not "sandbox" */
    CU_ASSERT(gl[0] == 10 && gl[1] == 29);
    CU_ASSERT_EQUAL(ag_user_groups(dir, "sandbox", gl, 1), 1); /* bounded by the caller's array */
    CU_ASSERT_EQUAL(ag_user_by_uid(dir, 7, name, sizeof(name), &gid, NULL, 0), -1);
    snprintf(p, sizeof(p), "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(p), 0);
}
