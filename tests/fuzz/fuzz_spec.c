/* fuzz_spec: OCI config.json -> sbx_spec_parse() (runtime/lib/spec.c), the path every sandbox's
 * configuration takes: bundles handed to sbxrun (or by containerd), the config sbxrun makes of
 * its flags, the one apid writes per sandbox. Each input is read as JSON with duplicate keys
 * refused (as sbx_spec_load_bundle() reads config.json), then parsed as a spec twice: without a
 * bundle and with "/" as the bundle (relative root and bind sources are then resolved).
 * Checks: the error convention, and what a parsed spec promises runtime/lib/linux.c and
 * container.c: an absolute rootfs (with a bundle), non-empty args and an absolute cwd when there
 * is a process, absolute mount destinations with type and source set, bind mounts with a source,
 * id maps of size >= 1, absolute device and hook paths, positive memory and pids limits, and
 * the layer annotations hex-only with an absolute directory. */
#include "fuzz.h"
#include "spec.h"
#include "utils.h"

static void
check_spec(const sbx_spec_t *s, bool bundle)
{
    FUZZ_CHECK(s->root && s->oci_version && strncmp(s->oci_version, "1.", 2) == 0);
    FUZZ_CHECK(s->rootfs && *s->rootfs && (!bundle || s->rootfs[0] == '/'));
    if (s->has_process) {
        FUZZ_CHECK(s->args && s->args[0] && s->env);
        FUZZ_CHECK(s->cwd && s->cwd[0] == '/');
    }
    for (size_t i = 0; i < s->n_mounts; i++) {
        const struct sbx_mount *m = &s->mounts[i];
        FUZZ_CHECK(m->destination && m->destination[0] == '/' && m->type && m->source);
        FUZZ_CHECK(!m->bind || *m->source);
        FUZZ_CHECK(!m->recursive || m->bind);
        FUZZ_CHECK((m->flags & m->clear) == 0);
    }
    for (size_t i = 0; i < s->n_uid_maps; i++)
        FUZZ_CHECK(s->uid_maps[i].size >= 1);
    for (size_t i = 0; i < s->n_gid_maps; i++)
        FUZZ_CHECK(s->gid_maps[i].size >= 1);
    for (size_t i = 0; i < s->n_devices; i++)
        FUZZ_CHECK(s->devices[i].path && s->devices[i].path[0] == '/' &&
                   strchr("cbup", s->devices[i].type));
    const struct sbx_hook *hooks[] = {s->hooks_prestart,         s->hooks_create_runtime,
                                      s->hooks_create_container, s->hooks_start_container,
                                      s->hooks_poststart,        s->hooks_poststop};
    const size_t n_hooks[] = {s->n_hooks_prestart,         s->n_hooks_create_runtime,
                              s->n_hooks_create_container, s->n_hooks_start_container,
                              s->n_hooks_poststart,        s->n_hooks_poststop};
    for (size_t k = 0; k < ARRAY_SIZE(hooks); k++)
        for (size_t i = 0; i < n_hooks[k]; i++)
            FUZZ_CHECK(hooks[k][i].path && hooks[k][i].path[0] == '/' && hooks[k][i].args &&
                       hooks[k][i].env);
    FUZZ_CHECK(s->resources.memory_limit == -1 || s->resources.memory_limit > 0);
    FUZZ_CHECK(s->resources.pids_limit == -1 || s->resources.pids_limit > 0);
    FUZZ_CHECK(s->resources.cpu_weight == -1 ||
               (s->resources.cpu_weight >= 1 && s->resources.cpu_weight <= 10000));
    for (char **d = s->resources.devices; d && *d; d++)
        FUZZ_CHECK(strncmp(*d, "allow ", 6) == 0 || strncmp(*d, "deny ", 5) == 0);
    FUZZ_CHECK(s->overlay_size >= 0);
    FUZZ_CHECK((s->rootfs_layers == NULL) == (s->rootfs_layers_dir == NULL));
    if (s->rootfs_layers)
        FUZZ_CHECK(strspn(s->rootfs_layers, "0123456789abcdef:") == strlen(s->rootfs_layers) &&
                   s->rootfs_layers_dir[0] == '/');
    FUZZ_CHECK(!(s->seccomp_builtin && s->seccomp));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return 0;
    for (int pass = 0; pass < 2; pass++) {
        sbx_spec_t *spec = NULL;
        sbx_error_t err = NULL;
        int r = sbx_spec_parse(root, pass ? "/" : NULL, &spec, &err);
        FUZZ_CHECK_ERR(r, err);
        FUZZ_CHECK((r == 0) == (spec != NULL));
        if (r == 0) {
            FUZZ_CHECK(spec->root == root);
            check_spec(spec, pass);
        }
        sbx_spec_free(spec);
        sbx_error_release(&err);
    }
    json_decref(root);
    return 0;
}
