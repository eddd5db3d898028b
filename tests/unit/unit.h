/* CUnit glue: each test file registers its tests with UNIT_TEST(suite, name) at load time, so adding
 * a test file needs no edit elsewhere. */
#ifndef SBX_UNIT_H
#define SBX_UNIT_H
#include <CUnit/CUnit.h>

void sbx_unit_register(const char *suite, const char *name, CU_TestFunc fn);

#define UNIT_TEST(suite, name)                                                                     \
    static void suite##__##name(void);                                                             \
    __attribute__((constructor)) static void suite##__##name##__reg(void)                          \
    {                                                                                              \
        sbx_unit_register(#suite, #name, suite##__##name);                                         \
    }                                                                                              \
    static void suite##__##name(void)

#endif
