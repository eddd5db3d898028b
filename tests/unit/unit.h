/* CUnit glue: each test file registers its tests with UNIT_TEST(suite, name) at load time, so
 * adding a test file needs no edit elsewhere. */
#ifndef SBX_UNIT_H
#define SBX_UNIT_H
#include <CUnit/CUnit.h>

#include <stdbool.h>

void sbx_unit_register(const char *suite, const char *name, CU_TestFunc fn);

/* A test that cannot run here (no root, say) must not pass silently: UNIT_SKIP(why) prints
 * "SKIP <test>: why" on stderr, counts it as skipped (the summary says how many) and returns;
 * with SBX_MUST_WORK=1 (CI) the test fails instead. True from sbx_unit_skip() means "fail". */
bool sbx_unit_skip(const char *test, const char *why);
#define UNIT_SKIP(why)                                                                             \
    do {                                                                                           \
        if (sbx_unit_skip(__func__, why))                                                          \
            CU_FAIL("skipped, but SBX_MUST_WORK=1: " why);                                         \
        return;                                                                                    \
    } while (0)

#define UNIT_TEST(suite, name)                                                                     \
    static void suite##__##name(void);                                                             \
    __attribute__((constructor)) static void suite##__##name##__reg(void)                          \
    {                                                                                              \
        sbx_unit_register(#suite, #name, suite##__##name);                                         \
    }                                                                                              \
    static void suite##__##name(void)

#endif
