/* Grammar (distribution/reference): a path is components of [a-z0-9] runs joined by '.', '_',
 * "__" or '-'s, separated by '/'; a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; a domain is
 * host[:port]. Everything is checked: the canonical string becomes a key of the store's index
 * and part of registry URLs, so nothing odd may reach either. */
#include "image_ref.h"
#include "utils.h"

#include <ctype.h>

#define REF_MAX 512

bool
sbx_digest_valid(const char *d)
{
    if (d == NULL || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static bool
is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: alnum runs joined by one '.', one or two '_', or any number of '-'. */
static bool
component_valid(const char *s, size_t n)
{
    if (n == 0 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1]))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (is_alnum_lower(s[i]))
            continue;
        size_t j = i;
        while (j < n && !is_alnum_lower(s[j]))
            j++;
        size_t len = j - i;
        bool ok = (len == 1 && (s[i] == '.' || s[i] == '_' || s[i] == '-')) ||
                  (len == 2 && s[i] == '_' && s[i + 1] == '_');
        for (size_t k = i; !ok && k < j && s[k] == '-'; k++)
            ok = k == j - 1;
        if (!ok)
            return false;
        i = j - 1;
    }
    return true;
}

static bool
path_valid(const char *p)
{
    /* "ghcr.io/:1.0" left nothing for the path, which was taken as valid: the canonical name
     * "ghcr.io/:1.0" then named no repository (and did not parse again). */
    if (*p == '\0')
        return false;
    while (*p) {
        const char *end = strchrnul(p, '/');
        if (!component_valid(p, (size_t)(end - p)))
            return false;
        p = *end ? end + 1 : end;
        if (*p == '\0' && end[0] == '/')
            return false;
    }
    return true;
}

static bool
tag_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
            return false;
    return true;
}

/* host (letters, digits, '-', '.'), an IPv6 literal in brackets, and an optional :port. */
static bool
domain_valid(const char *d)
{
    const char *p = d;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL || close == p + 1)
            return false;
        for (const char *q = p + 1; q < close; q++)
            if (!(isxdigit((unsigned char)*q) || *q == ':'))
                return false;
        p = close + 1;
    } else {
        if (!isalnum((unsigned char)*p))
            return false;
        while (isalnum((unsigned char)*p) || *p == '-' || *p == '.')
            p++;
        if (p[-1] == '-' || p[-1] == '.')
            return false;
    }
    if (*p == ':') {
        int64_t port;
        return parse_int64(p + 1, 1, 65535, &port) == 0;
    }
    return *p == '\0';
}

void
sbx_image_ref_free(struct sbx_image_ref *ref)
{
    free(ref->domain);
    free(ref->path);
    free(ref->tag);
    free(ref->digest);
    memset(ref, 0, sizeof(*ref));
}

int
sbx_image_ref_parse(const char *s, struct sbx_image_ref *ref, sbx_error_t *err)
{
    memset(ref, 0, sizeof(*ref));
    if (s == NULL || *s == '\0')
        return sbx_make_error(err, 0, "empty image reference");
    if (strlen(s) > REF_MAX)
        return sbx_make_error(err, 0, "image reference longer than %d characters", REF_MAX);
    cleanup_free char *buf = xstrdup(s);
    char *at = strchr(buf, '@');
    if (at) {
        *at = '\0';
        if (!sbx_digest_valid(at + 1))
            return sbx_make_error(err, 0,
                                  "image reference `%s`: digest must be sha256:<64 "
                                  "lowercase hex digits>",
                                  s);
        ref->digest = xstrdup(at + 1);
    }
    char *name = buf;
    char *slash = strchr(name, '/');
    if (slash &&
        (memchr(name, '.', (size_t)(slash - name)) || memchr(name, ':', (size_t)(slash - name)) ||
         memchr(name, '[', 1) || (slash - name == 9 && strncmp(name, "localhost", 9) == 0))) {
        *slash = '\0';
        ref->domain = xstrdup(name);
        name = slash + 1;
    } else {
        ref->domain = xstrdup(SBX_DOCKER_DOMAIN);
    }
    if (strcmp(ref->domain, "index.docker.io") == 0 ||
        strcmp(ref->domain, "registry-1.docker.io") == 0) {
        free(ref->domain);
        ref->domain = xstrdup(SBX_DOCKER_DOMAIN);
    }
    char *colon = strrchr(name, ':');
    if (colon) {
        *colon = '\0';
        if (!tag_valid(colon + 1)) {
            sbx_image_ref_free(ref);
            return sbx_make_error(err, 0, "image reference `%s`: invalid tag `%s`", s, colon + 1);
        }
        ref->tag = xstrdup(colon + 1);
    }
    if (!domain_valid(ref->domain) || !path_valid(name)) {
        bool upper = false;
        for (const char *p = name; *p; p++)
            upper |= isupper((unsigned char)*p);
        sbx_image_ref_free(ref);
        return sbx_make_error(err, 0, "invalid image reference `%s`%s", s,
                              upper ? " (repository names must be lowercase)" : "");
    }
    if (strcmp(ref->domain, SBX_DOCKER_DOMAIN) == 0 && strchr(name, '/') == NULL)
        ref->path = xasprintf("library/%s", name);
    else
        ref->path = xstrdup(name);
    if (ref->tag == NULL && ref->digest == NULL)
        ref->tag = xstrdup("latest");
    /* The bound holds for the canonical name too, the store's key: "docker.io/library/" and
     * ":latest" made a 500-character short name one that sbx_image_ref_parse() refuses, so an
     * image listed under it could not be named again (rmi, run). */
    size_t canon = strlen(ref->domain) + 1 + strlen(ref->path) +
                   (ref->tag ? 1 + strlen(ref->tag) : 0) +
                   (ref->digest ? 1 + strlen(ref->digest) : 0);
    if (canon > REF_MAX) {
        sbx_image_ref_free(ref);
        return sbx_make_error(err, 0,
                              "image reference `%s`: its full name is longer than %d "
                              "characters",
                              s, REF_MAX);
    }
    return 0;
}

char *
sbx_image_ref_repo(const struct sbx_image_ref *ref)
{
    return xasprintf("%s/%s", ref->domain, ref->path);
}

char *
sbx_image_ref_string(const struct sbx_image_ref *ref)
{
    return xasprintf("%s/%s%s%s%s%s", ref->domain, ref->path, ref->tag ? ":" : "",
                     ref->tag ? ref->tag : "", ref->digest ? "@" : "",
                     ref->digest ? ref->digest : "");
}
