/* fuzz_quantity: the quantity parsers of runtime/lib/utils.c, which read sbxrun's flags, OCI
 * annotations (run.sbx.rootfs.size), apid's resourceLimits ("512Mi", "500m"), query parameters,
 * ports of image references and of network policies: parse_size(), parse_quantity(),
 * parse_cpus(), parse_int64() and parse_signal(), each on the input taken as a C string.
 * Checks: parse_int64 accepts exactly what utils.h promises, a strict decimal integer
 * (-?[0-9]+: no blanks, no '+', nothing after it) inside [min, max], and gives the value that
 * string names; parse_size gives 0..2^63 bytes for a plain decimal with an optional unit and
 * the exact value for digits alone; parse_quantity the same, plus -EDOM only for a number with
 * the suffix `m` and the exact value for any integer that fits; parse_cpus gives 1..10^9 millicpus;
 * parse_signal 1..SIGRTMAX; every failure is -EINVAL or -ERANGE. */
#include "fuzz.h"
#include "utils.h"

#include <signal.h>

static bool
all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

static void
check_int64(const char *s, int64_t min, int64_t max)
{
    int64_t v = 12345;
    int r = parse_int64(s, min, max, &v);
    FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
    if (r < 0) {
        FUZZ_CHECK(v == 12345);
        return;
    }
    FUZZ_CHECK(all_digits(s[0] == '-' ? s + 1 : s));
    FUZZ_CHECK(v >= min && v <= max);
    /* The value the digits name: compare without leading zeros. */
    char want[32];
    snprintf(want, sizeof(want), "%lld", (long long)(v < 0 ? -(v + 1) : v));
    const char *d = s + (s[0] == '-');
    while (d[0] == '0' && d[1])
        d++;
    if (v >= 0)
        FUZZ_CHECK(strcmp(d, want) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    int64_t v;
    int r;

    check_int64(s, INT64_MIN, INT64_MAX);
    check_int64(s, 0, 65535);
    check_int64(s, -10, 10);

    r = parse_size(s, &v);
    FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
    if (r == 0) {
        FUZZ_CHECK(v >= 0);
        size_t num = strspn(s, "0123456789.");
        FUZZ_CHECK(num > 0 &&
                   strspn(s + num, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") ==
                       strlen(s + num));
        if (all_digits(s) && strlen(s) <= 15)
            FUZZ_CHECK(v == strtoll(s, NULL, 10));
    }

    r = parse_quantity(s, &v);
    FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE || r == -EDOM);
    if (r == -EDOM)
        FUZZ_CHECK(strlen(s) >= 2 && s[strlen(s) - 1] == 'm');
    if (r == 0) {
        FUZZ_CHECK(v >= 0);
        if (all_digits(s) && strlen(s) <= 18)
            FUZZ_CHECK(v == strtoll(s, NULL, 10));
    }

    r = parse_cpus(s, &v);
    FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
    if (r == 0)
        FUZZ_CHECK(v >= 1 && v <= 1000000000);

    r = parse_signal(s);
    FUZZ_CHECK(r == -EINVAL || (r >= 1 && r <= SIGRTMAX));
    if (r > 0)
        FUZZ_CHECK(signal_name(r) != NULL);

    free(s);
    return 0;
}
