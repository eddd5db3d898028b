/* Pure helpers of registry.c, exposed for the unit tests and tests/fuzz/fuzz_auth_challenge.c
 * (as cgroup_internal.h does for cgroup.c): the registry's answers are untrusted bytes, and these
 * are the parts that read them without a network. */
#ifndef SBX_REGISTRY_INTERNAL_H
#define SBX_REGISTRY_INTERNAL_H

/* The value of `key` (case-insensitive) among the parameters of a WWW-Authenticate challenge
 * with its scheme already cut off: realm="https://auth.docker.io/token",service="...",scope=...
 * Quoted or token values; a malloc'd copy, or NULL when the key is absent or the list is
 * malformed. */
char *sbx_registry_challenge_param(const char *h, const char *key);

#endif
