/* Named volumes (directories that sbx keeps under a volumes directory and binds into sandboxes)
 * and the one resolution rule every volume bind follows: a path below a trusted root, walked
 * with openat2(RESOLVE_BENEATH) so that no symlink or ".." leads out of it. apid checks a
 * request with it, and the runtime repeats the walk at mount time and binds the fd it got, so
 * a path swapped for a symlink in between cannot redirect the bind (see SECURITY.md). */
#ifndef SBX_VOLUME_H
#define SBX_VOLUME_H

#include "utils.h"

#include <jansson.h>
#include <stdbool.h>
#include <sys/stat.h>

/* sbxrun's default, the same directory as sbx-apid's default <data-dir>/volumes. */
#define SBX_DEFAULT_VOLUMES_DIR "/var/lib/sbx/volumes"
#define SBX_VOLUME_NAME_MAX 63
/* Mount option carrying the root a bind source must stay beneath (runtime side). */
#define SBX_BENEATH_OPT "sbx.beneath="

/* DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63. */
bool sbx_volume_name_ok(const char *name);
/* `rel` (relative; "" or "." is the root itself) opened O_PATH below the directory rootfd with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS. Returns the fd, or -errno (EXDEV: it leads out). */
int sbx_open_beneath(int rootfd, const char *rel);
/* The same from a root path (the root itself is trusted and may be reached through symlinks).
 * Returns the fd and its stat, or fails with a message naming what escaped or is missing. */
int sbx_resolve_beneath(const char *root, const char *rel, struct stat *st, sbx_error_t *err);
/* dir: the flag's value, else $SBX_VOLUMES_DIR, else SBX_DEFAULT_VOLUMES_DIR; caller frees. */
char *sbx_volumes_dir(const char *flag);
/* Host uid/gid that owns a new volume: the sandbox user's (SBX_DEFAULT_UID inside) mapped into
 * sbx's host id range. */
void sbx_volume_owner(uid_t *uid, gid_t *gid);
/* Creates <dir>/<name> (and dir, 0711) owned by sbx_volume_owner(), mode 0775; *created false
 * when it existed already. The new directory appears complete or not at all (made under a
 * temporary name, then renamed). */
int sbx_volume_create(const char *dir, const char *name, bool *created, sbx_error_t *err);
/* 1 exists (a directory), 0 not. */
int sbx_volume_exists(const char *dir, const char *name);
int sbx_volume_remove(const char *dir, const char *name, sbx_error_t *err);
/* [{name}] sorted by name. */
json_t *sbx_volume_list(const char *dir);

#endif
