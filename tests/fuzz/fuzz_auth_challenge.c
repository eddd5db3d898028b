/* fuzz_auth_challenge: the WWW-Authenticate challenge a registry answers a 401 with, read by
 * sbx_registry_challenge_param() (runtime/lib/registry.c, exposed through registry_internal.h)
 * to find the token service: realm, service and scope, quoted or not, as Docker Hub sends
 * (Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="...") and
 * GHCR (Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="..."). Each input is the
 * header's value; the scheme ("Bearer ") is cut off first when present, as registry.c does.
 * Checks: every value found is a copy of bytes of the challenge (a quoted value holds no '"',
 * an unquoted one no ','); asking again gives the same answer; key matching ignores case. */
#include "fuzz.h"
#include "registry_internal.h"

#include <strings.h>

static void
check_param(const char *h, const char *key)
{
    char *v = sbx_registry_challenge_param(h, key);
    if (v == NULL)
        return;
    FUZZ_CHECK(strstr(h, v) != NULL);
    FUZZ_CHECK(!strchr(v, '"') || !strchr(v, ','));
    char upper[16];
    size_t i;
    for (i = 0; key[i] && i + 1 < sizeof(upper); i++)
        upper[i] = (char)(key[i] >= 'a' && key[i] <= 'z' ? key[i] - 32 : key[i]);
    upper[i] = '\0';
    char *again = sbx_registry_challenge_param(h, upper);
    FUZZ_CHECK(again && strcmp(again, v) == 0);
    free(again);
    free(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    const char *h = strncasecmp(s, "Bearer ", 7) == 0 ? s + 7 : s;
    check_param(h, "realm");
    check_param(h, "service");
    check_param(h, "scope");
    check_param(h, "error");
    free(s);
    return 0;
}
