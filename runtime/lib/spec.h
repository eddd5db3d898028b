/* The one data model: an OCI runtime-spec config.json parsed into C structures. sbxrun flags are
 * first turned into a config.json (flags.c), apid writes one per sandbox, and OCI bundles are
 * read as they are; all three then go through sbx_spec_parse(). */
#ifndef SBX_SPEC_H
#define SBX_SPEC_H

#include "sbx.h"
#include <jansson.h>
#include <sys/resource.h>

enum sbx_ns_type {
    SBX_NS_USER,
    SBX_NS_PID,
    SBX_NS_MOUNT,
    SBX_NS_NET,
    SBX_NS_UTS,
    SBX_NS_IPC,
    SBX_NS_CGROUP,
    SBX_NS_TIME,
    SBX_NS_COUNT
};

/* Each namespace type's names and clone flag: the one table the parser, clone, the checks of
 * linux.namespaces[].path and both joiners (the first process, `sbxrun exec`) read. */
struct sbx_ns_info {
    const char *oci_name;  /* linux.namespaces[].type */
    const char *proc_name; /* /proc/PID/ns/NAME */
    int clone_flag;        /* CLONE_NEW*, also what NS_GET_NSTYPE says */
};
extern const struct sbx_ns_info sbx_ns_info[SBX_NS_COUNT];
/* The order of setns() calls: the user namespace first, since it grants the rights to join the
 * others, and the mount namespace last, since the others' /proc paths are opened before it.
 * A time namespace is never joined (spec validation refuses a path for it). */
#define SBX_NS_JOIN_COUNT 7
extern const enum sbx_ns_type sbx_ns_join_order[SBX_NS_JOIN_COUNT];

/* Sizes of the tmpfs a sandbox writes into when its config names none. A tmpfs without size= may
 * take half of the host's RAM, each one, and its pages count against no limit unless the sandbox
 * has a memory limit (then they are charged to its memory cgroup like any other page): a default
 * sandbox once wrote 6 GB into host RAM through /tmp and its writable layer (issue 17). The
 * bounds cost nothing until pages are written. */
#define SBX_DEFAULT_DISK_SIZE (INT64_C(1) << 30)    /* the private writable layer (--disk) */
#define SBX_DEFAULT_TMPFS_SIZE (INT64_C(256) << 20) /* /tmp, and --tmpfs without a size */

struct sbx_idmap {
    uint32_t container_id;
    uint32_t host_id;
    uint32_t size;
};

struct sbx_mount {
    char *destination;
    char *type; /* "bind", "tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "overlay"... */
    char *source;
    unsigned long flags;       /* MS_* set by options */
    unsigned long clear;       /* MS_* cleared by options ("rw", "suid"...) */
    unsigned long propagation; /* MS_PRIVATE/MS_SLAVE/MS_SHARED (+MS_REC) or 0 */
    char *data;                /* remaining options joined with ',' for the filesystem */
    bool bind;                 /* bind or rbind */
    bool recursive;            /* rbind */
    char *beneath;             /* option sbx.beneath=ROOT: source resolved below ROOT (volume.h) */
};

struct sbx_rlimit {
    int resource;
    struct rlimit limit;
};

/* Capability sets as bitmasks of CAP_* numbers. */
struct sbx_caps {
    uint64_t bounding, effective, permitted, inheritable, ambient;
};

/* -1 means "not set" for every signed field. */
struct sbx_resources {
    int64_t memory_limit; /* bytes */
    int64_t memory_swap;  /* memory+swap bytes (OCI semantics); -1 unset */
    int64_t memory_reservation;
    int64_t cpu_quota;  /* usec per period */
    int64_t cpu_period; /* usec */
    int64_t cpu_shares; /* v1 shares (2..262144) */
    int64_t cpu_weight; /* v2 weight (1..10000), sbx extension via unified */
    int64_t pids_limit;
    int64_t io_weight; /* blkio weight / io.weight */
    char *cpuset_cpus, *cpuset_mems;
    json_t *unified; /* linux.resources.unified map, borrowed */
    /* linux.resources.devices as v1 device-cgroup writes, in order: "allow c 1:3 rwm",
     * "deny a *:* rwm"; NULL when the config has no rules (the cgroup then inherits). */
    char **devices;
};

struct sbx_hook {
    char *path;
    char **args;
    char **env;
    int timeout; /* seconds, 0 = none */
};

struct sbx_device {
    char *path;
    char type; /* 'c', 'b', 'u', 'p' */
    int64_t major, minor;
    mode_t mode;
    uid_t uid;
    gid_t gid;
};

struct sbx_spec {
    json_t *root; /* the whole config, owned */
    char *bundle; /* bundle dir, absolute; NULL when built from flags */
    char *oci_version;

    /* process */
    char **args;
    char **env;
    char *cwd;
    uid_t uid;
    gid_t gid;
    gid_t *additional_gids;
    size_t n_additional_gids;
    mode_t umask; /* (mode_t)-1 unset */
    bool terminal;
    bool has_process;
    bool no_new_privileges;
    bool has_oom_score_adj;
    int oom_score_adj;
    struct sbx_caps caps;
    struct sbx_rlimit *rlimits;
    size_t n_rlimits;
    char *apparmor_profile, *selinux_label;

    /* root */
    char *rootfs; /* absolute */
    bool root_readonly;

    char *hostname, *domainname;

    struct sbx_mount *mounts;
    size_t n_mounts;

    /* linux */
    bool ns_enabled[SBX_NS_COUNT];
    char *ns_path[SBX_NS_COUNT]; /* join an existing namespace */
    struct sbx_idmap *uid_maps, *gid_maps;
    size_t n_uid_maps, n_gid_maps;
    char **masked_paths;
    char **readonly_paths;
    struct sbx_resources resources;
    char *cgroups_path;
    json_t *seccomp;       /* linux.seccomp, borrowed from root */
    char *seccomp_builtin; /* or annotation run.sbx.seccomp: a built-in profile's name */
    json_t *sysctl;        /* borrowed */
    struct sbx_device *devices;
    size_t n_devices;
    char *rootfs_propagation;
    char *mount_label;

    /* hooks */
    struct sbx_hook *hooks_prestart, *hooks_create_runtime, *hooks_create_container,
        *hooks_start_container, *hooks_poststart, *hooks_poststop;
    size_t n_hooks_prestart, n_hooks_create_runtime, n_hooks_create_container,
        n_hooks_start_container, n_hooks_poststart, n_hooks_poststop;

    /* sbx extensions, carried as annotations "run.sbx.*" so a config stays valid OCI */
    bool overlay_rootfs;  /* run.sbx.rootfs.overlay: writable private overlay on root */
    int64_t overlay_size; /* run.sbx.rootfs.size: bytes for the overlay's tmpfs; 0: no cap */
    bool own_init;        /* run.sbx.init: tiny init as PID 1 */
    char *image_dir;      /* run.sbx.image */
    /* A pulled image: its layers (diff_id hex, top first, ':'-separated) in layers_dir, and
     * the store record the sandbox holds while it runs (image_store.h). */
    char *rootfs_layers, *rootfs_layers_dir, *image_digest, *image_store;
};

SBX_PUBLIC int sbx_spec_parse(json_t *root, const char *bundle, sbx_spec_t **out, sbx_error_t *err);
SBX_PUBLIC int sbx_spec_load_bundle(const char *bundle, sbx_spec_t **out, sbx_error_t *err);
SBX_PUBLIC void sbx_spec_free(sbx_spec_t *spec);
/* linux.resources (NULL: none) into *r, devices left out (those need the whole config); the
 * cpuset strings are r's own (sbx_resources_free(), also after a failure), unified is borrowed
 * from res. */
int sbx_resources_parse(json_t *res, struct sbx_resources *r, sbx_error_t *err);
void sbx_resources_free(struct sbx_resources *r);

int sbx_parse_mount_options(json_t *options, struct sbx_mount *m, sbx_error_t *err);
int sbx_cap_from_name(const char *name);
const char *sbx_cap_name(int cap);
int sbx_rlimit_from_name(const char *name);
const char *sbx_rlimit_name(int resource); /* "RLIMIT_NOFILE" */

#endif
