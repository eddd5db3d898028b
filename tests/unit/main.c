#include "unit.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    const char *suite, *name;
    CU_TestFunc fn;
};
static struct entry *entries;
static size_t n_entries;
static unsigned n_skipped;

bool
sbx_unit_skip(const char *test, const char *why)
{
    const char *must = getenv("SBX_MUST_WORK");
    bool fail = must && strcmp(must, "1") == 0;
    fprintf(stderr, "\n    SKIP %s: %s%s\n", test, why, fail ? " (SBX_MUST_WORK=1: failed)" : "");
    if (!fail)
        n_skipped++;
    return fail;
}

void
sbx_unit_register(const char *suite, const char *name, CU_TestFunc fn)
{
    entries = realloc(entries, (n_entries + 1) * sizeof(*entries));
    if (entries == NULL)
        abort();
    entries[n_entries++] = (struct entry){suite, name, fn};
}

int
main(int argc, char **argv)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (size_t i = 0; i < n_entries; i++) {
        if (argc > 1 && strcmp(argv[1], entries[i].suite) != 0)
            continue;
        CU_pSuite s = CU_get_suite(entries[i].suite);
        if (s == NULL)
            s = CU_add_suite(entries[i].suite, NULL, NULL);
        CU_add_test(s, entries[i].name, entries[i].fn);
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    /* A skipped test ran and returned, so CUnit counts it as passed: it is not. */
    printf("unit: %u passed, %u failed, %u skipped\n", run - failed - n_skipped, failed, n_skipped);
    CU_cleanup_registry();
    free(entries);
    return failed ? 1 : 0;
}
