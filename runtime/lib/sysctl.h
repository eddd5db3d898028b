/* OCI linux.sysctl: which kernel parameters a sandbox may set (only those of namespaces it owns,
 * checked before anything is created) and the child-side write through its own /proc/sys. */
#ifndef SBX_SYSCTL_H
#define SBX_SYSCTL_H

#include "spec.h"

#include <stdbool.h>

#define SBX_SYSCTL_NAME_MAX 255
#define SBX_SYSCTL_VALUE_MAX 4096

/* The namespace a parameter belongs to: SBX_NS_IPC, SBX_NS_NET or SBX_NS_UTS; -1 for one that
 * is global to the host (vm.*, kernel.* but the IPC and UTS ones, fs.* but fs.mqueue.*...). */
int sbx_sysctl_namespace(const char *name);

/* One entry against the namespaces the sandbox owns (own[t]: a new namespace of type t, or a
 * joined one that is not the caller's). hostname: the config's own, or NULL. 0 if it may be
 * set; otherwise an error that names the parameter and says why not. */
int sbx_sysctl_check(const char *name, const char *value, const bool own[SBX_NS_COUNT],
                     const char *hostname, sbx_error_t *err);

/* Every linux.sysctl entry of s, with own[] worked out from s (a linux.namespaces[].path is
 * compared with the caller's namespace of that type). */
int sbx_sysctl_check_spec(const sbx_spec_t *s, sbx_error_t *err);

/* Child side: writes value to name under procsys (an fd of a /proc/sys), never following a
 * symlink nor leaving it. Allocates nothing (runs in the child after the mounts). -errno. */
int sbx_sysctl_write(int procsys, const char *name, const char *value);

#endif
