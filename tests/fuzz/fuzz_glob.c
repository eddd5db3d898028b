/* fuzz_glob: the sbx-agent's file-name patterns (GET /files/search?pattern=), matched by
 * ag_name_match() (apid/agent/agent_util.c, glibc's fnmatch) against every name below the
 * searched directory. Each input is a pattern and a name, split at the first newline.
 * The agent answers nothing else while it matches, so what is checked, through libFuzzer's
 * -timeout, is that no pattern takes long on a name of up to 255 bytes (the longest a file name
 * can be): the hand-written matcher fnmatch replaced once took 18 s on "*a*a*a*a*b" (the
 * regressions keep such inputs). The result itself is fnmatch's, and "**" matches every name. */
#include "agent_util.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (nl == NULL)
        return 0;
    size_t pl = (size_t)(nl - (const char *)data);
    char *pat = fuzz_cstr(data, pl);
    size_t nlen = size - pl - 1 > 255 ? 255 : size - pl - 1;
    char *name = fuzz_cstr((const uint8_t *)nl + 1, nlen);
    bool got = ag_name_match(pat, name);
    FUZZ_CHECK(got == ag_name_match(pat, name));
    FUZZ_CHECK(ag_name_match("**", name));
    free(pat);
    free(name);
    return 0;
}
