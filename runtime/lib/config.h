/* Builders for OCI configs: sbxrun's flags and apid's create requests both start from
 * sbx_config_new_default() and refine it with these helpers, so there is one policy for
 * defaults (namespaces, masks, mounts, id maps, seccomp, caps). */
#ifndef SBX_CONFIG_H
#define SBX_CONFIG_H

#include "spec.h"

#define SBX_DEFAULT_IMAGES_DIR "/var/lib/sbx/images"
#define SBX_DEFAULT_UID 1000
#define SBX_DEFAULT_GID 1000
#define SBX_DEFAULT_PIDS_LIMIT 512
#define SBX_ID_RANGE 65536
/* Used when /etc/subuid has no entry for user `sbx`: well above any regular account. */
#define SBX_DEFAULT_HOST_ID_BASE 1000000

/* A complete config: all namespaces, own init, overlay rootfs, OCI default masked/read-only
 * paths, /proc /dev /sys /tmp mounts, default id maps, seccomp "default", caps for uid/gid. */
json_t *sbx_config_new_default(const char *id, char *const *args, sbx_error_t *err);
/* Points the config at an image directory (images_dir/name, or an explicit rootfs when name
 * contains '/'), adding the read-only host binds listed in its sbx-image.json. */
int sbx_config_set_image(json_t *cfg, const char *images_dir, const char *name, sbx_error_t *err);
int sbx_config_set_rootfs(json_t *cfg, const char *dir, sbx_error_t *err);
/* Sets process.user and the capability sets that go with it (default caps for uid 0, none
 * otherwise), then applies cap_add/cap_drop names. */
int sbx_config_set_user(json_t *cfg, uid_t uid, gid_t gid, sbx_error_t *err);
int sbx_config_caps_adjust(json_t *cfg, char *const *add, char *const *drop, sbx_error_t *err);
/* "K=V": replaces an existing K. */
int sbx_config_setenv(json_t *cfg, const char *kv, sbx_error_t *err);
/* SRC:DST[:ro|rw] */
int sbx_config_add_bind(json_t *cfg, const char *spec, sbx_error_t *err);
/* A bind of root/rel (rel "" or ".": root itself) whose source the runtime resolves beneath
 * root at mount time (RESOLVE_BENEATH, the fd is bound: see volume.h), read-only or not, nosuid
 * and nodev. info (optional) is appended to the JSON array in annotation run.sbx.volumes, which
 * `sbxrun state`/`inspect` and apid show. */
int sbx_config_add_volume(json_t *cfg, const char *root, const char *rel, const char *dst, bool ro,
                          json_t *info, sbx_error_t *err);
/* DST[:SIZE]; SIZE defaults to SBX_DEFAULT_TMPFS_SIZE */
int sbx_config_add_tmpfs(json_t *cfg, const char *spec, sbx_error_t *err);
int sbx_config_set_net_host(json_t *cfg);
int sbx_config_set_seccomp(json_t *cfg, const char *name_or_path, sbx_error_t *err);
int sbx_config_set_rlimit(json_t *cfg, const char *name, uint64_t soft, uint64_t hard);
/* linux.resources: sbx_config_set_limits() (resources.h). */
void sbx_config_annotate(json_t *cfg, const char *key, const char *value);
/* Host id range for the sandbox's 0-65535: /etc/subuid entry of user `sbx`, else the default. */
int sbx_host_id_base(bool gid, uint32_t *base, uint32_t *count);
/* Home directory for uid from <rootfs>/etc/passwd (resolved inside rootfs), or NULL. */
char *sbx_passwd_home(const char *rootfs, uid_t uid);
char *sbx_passwd_home_in(const char *passwd, uid_t uid);
/* --image: a built image (plain name, or local/NAME) or a pulled one (any reference or image id
 * in the store). For a pulled image the rootfs is its layer stack and *image_config its config
 * (Env, Entrypoint, Cmd, WorkingDir, User, ExposedPorts...; caller frees), else NULL. */
int sbx_config_use_image(json_t *cfg, const char *images_dir, const char *name,
                         json_t **image_config, sbx_error_t *err);
/* The image config as the sandbox's defaults, as Docker applies them: Env, then WorkingDir,
 * Entrypoint + (cmd or Cmd), and User unless the caller chose one. entrypoint: NULL keeps the
 * image's, "" clears it. Call before the caller's own --env/--cwd/--user refinements. */
int sbx_config_apply_image_config(json_t *cfg, json_t *icfg, char *const *cmd,
                                  const char *entrypoint, bool user_given, sbx_error_t *err);
/* Docker's USER syntax resolved in the image's /etc/passwd and /etc/group. */
int sbx_config_image_user(json_t *cfg, const char *spec, uid_t *uid, gid_t *gid, sbx_error_t *err);

#endif
