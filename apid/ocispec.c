/* Turns a validated create request into the sandbox's OCI config.json. The policy (namespaces,
 * masks, id maps, seccomp, caps, overlay root, own init) is libsbx's default config, shared with
 * sbxrun; apid only adds the agent, its token, the environment and the resource limits. */
#include "apid.h"
#include "config.h"
#include "resources.h"

#define AGENT_PORT "44772"

void
apid_limits_to_sbx(const struct apid_limits *in, struct sbx_limits *out)
{
    *out = (struct sbx_limits)SBX_LIMITS_UNSET;
    out->memory = in->memory > 0 ? in->memory : -1;
    out->cpu_milli = in->cpu_milli > 0 ? in->cpu_milli : -1;
    out->pids = in->pids > 0 ? in->pids : -1;
}

int
apid_build_oci(const struct apid_spec_in *in, json_t **out, sbx_error_t *err)
{
    cleanup_strv char **args = NULL;
    size_t i;
    json_t *x;
    /* The agent is PID 1's child and the sandbox's main process: it serves execd and runs the
     * entrypoint as the sandbox user, exiting with its status. Without an agent binary the
     * entrypoint itself is the main process. */
    if (in->agent_path) {
        strv_append(&args, "/.sbx/sbx-agent");
        strv_append(&args, "--listen");
        strv_append(&args, "0.0.0.0:" AGENT_PORT);
        strv_append(&args, "--token-file");
        strv_append(&args, "/.sbx/token");
        if (in->run_as) {
            cleanup_free char *u = xasprintf("%u:%u", in->uid, in->gid);
            strv_append(&args, "--user");
            strv_append(&args, u);
        }
        if (in->workdir) {
            /* The agent (root) creates it: the image may not have it, and only root can give
             * it to the workload's uid and fs group. */
            cleanup_free char *g = xasprintf("%u", in->run_as ? in->fs_gid : 1000u);
            strv_append(&args, "--workdir");
            strv_append(&args, in->workdir);
            strv_append(&args, "--workdir-group");
            strv_append(&args, g);
        }
        strv_append(&args, "--");
    }
    json_array_foreach (in->entrypoint, i, x)
        strv_append(&args, json_string_value(x));

    json_t *cfg = sbx_config_new_default(in->id, args, err);
    if (!cfg)
        return -1;
    /* A built image by name, or a pulled one by digest (apid_resolve_image()). A pulled image's
     * Env and WorkingDir are the defaults; the entrypoint is the request's (the API requires
     * one), and the request's env wins. */
    json_t *icfg = NULL;
    int r = sbx_config_use_image(cfg, in->images_dir, in->image_name, &icfg, err);
    if (r < 0)
        goto fail;
    if (icfg) {
        size_t j;
        json_t *e;
        json_array_foreach (json_object_get(icfg, "Env"), j, e)
            if (json_is_string(e) && strchr(json_string_value(e), '=') &&
                (r = sbx_config_setenv(cfg, json_string_value(e), err)) < 0)
                break;
        const char *wd = json_string_value(json_object_get(icfg, "WorkingDir"));
        if (r == 0 && wd && wd[0] == '/')
            json_object_set_new(json_object_get(cfg, "process"), "cwd", json_string(wd));
        json_decref(icfg);
        if (r < 0)
            goto fail;
    }
    if (in->agent_path) {
        if ((r = sbx_config_set_user(cfg, 0, 0, err)) < 0)
            goto fail;
        cleanup_free char *a = xasprintf("%s:/.sbx/sbx-agent:ro", in->agent_path);
        if ((r = sbx_config_add_bind(cfg, a, err)) < 0)
            goto fail;
        cleanup_free char *t = xasprintf("%s:/.sbx/token:ro", in->token_path);
        if ((r = sbx_config_add_bind(cfg, t, err)) < 0)
            goto fail;
    } else {
        /* No agent to create the directory: it must exist in the image. */
        if (in->run_as && (r = sbx_config_set_user(cfg, in->uid, in->gid, err)) < 0)
            goto fail;
        if (in->workdir)
            json_object_set_new(json_object_get(cfg, "process"), "cwd", json_string(in->workdir));
    }
    if (in->resolv_path) {
        cleanup_free char *b = xasprintf("%s:/etc/resolv.conf:ro", in->resolv_path);
        if ((r = sbx_config_add_bind(cfg, b, err)) < 0)
            goto fail;
    }
    const char *k;
    json_object_foreach (in->env, k, x) {
        cleanup_free char *kv = xasprintf("%s=%s", k, json_string_value(x));
        if ((r = sbx_config_setenv(cfg, kv, err)) < 0)
            goto fail;
    }
    struct sbx_limits lim;
    apid_limits_to_sbx(&in->limits, &lim);
    if ((r = sbx_config_set_limits(cfg, &lim, err)) < 0)
        goto fail;
    /* Without it the writable layer gets libsbx's default size (SBX_DEFAULT_DISK_SIZE), and /tmp
     * its default tmpfs size, as with sbxrun. */
    if (in->limits.disk > 0) {
        cleanup_free char *d = xasprintf("%lld", (long long)in->limits.disk);
        sbx_config_annotate(cfg, "run.sbx.rootfs.size", d);
    }
    json_array_foreach (in->volume_mounts, i, x) {
        json_t *info =
            json_pack("{s:O, s:O, s:O}", "name", json_object_get(x, "name"), "mountPath",
                      json_object_get(x, "mountPath"), "readOnly", json_object_get(x, "readOnly"));
        if (json_object_get(x, "claim"))
            json_object_set(info, "claimName", json_object_get(x, "claim"));
        r = sbx_config_add_volume(cfg, json_string_value(json_object_get(x, "root")),
                                  json_string_value(json_object_get(x, "rel")),
                                  json_string_value(json_object_get(x, "mountPath")),
                                  json_is_true(json_object_get(x, "readOnly")), info, err);
        json_decref(info);
        if (r < 0)
            goto fail;
    }
    sbx_config_annotate(cfg, "run.sbx.apid", "true");
    *out = cfg;
    return 0;
fail:
    json_decref(cfg);
    return r;
}
