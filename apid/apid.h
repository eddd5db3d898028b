/* sbx-apid internals shared by its modules: configuration, logging, the API error convention,
 * request validation, the SQLite store, the launcher and the sandbox manager. */
#ifndef SBX_APID_H
#define SBX_APID_H

#include "strutil.h"
#include "utils.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* ---------- configuration (config.c) ---------- */

struct apid_config {
    char *listen;   /* host:port */
    char *data_dir; /* sqlite db + per-sandbox files */
    char *run_dir;  /* libsbx state_root */
    char *images_dir;
    char *agent_path; /* sbx-agent binary; "" or "none" runs the entrypoint directly */
    char *api_key;    /* NULL: auth off */
    char *api_key_file;
    char *config_file;
    char *bridge, *subnet;   /* "none" bridge: sandboxes get only lo */
    char *default_egress;    /* "deny" (default) or "allow": policy when a create names none */
    char *dns_upstream;      /* resolvers for sandboxes' allowed names; NULL: /etc/resolv.conf */
    char *open_to_sandboxes; /* host/link-local CIDR[:PORT] list the operator opens */
    char *cgroup_parent;
    char *public_host;   /* host part of endpoints; default: the listen host */
    char *public_url;    /* external base URL (OpenHands runtime urls); default from the above */
    int64_t min_timeout; /* seconds; 60 per contract, lowered only by tests */
    int64_t max_timeout; /* seconds; 0 = no maximum */
    int64_t default_cpu_milli, max_cpu_milli;
    int64_t default_memory, max_memory; /* bytes */
    int64_t default_pids, max_pids;
    int64_t max_body; /* request body limit, bytes */
    int log_level;    /* APID_LOG_* */
    bool log_json;
    /* warm pool and session API (pool.c, session_api.c) */
    char **pool_specs;            /* "IMAGE:COUNT" or "IMAGE:MIN:MAX", from --pool / "pool" */
    int64_t pool_concurrency;     /* pooled sandboxes started at once */
    int64_t pool_idle_shrink;     /* seconds without a claim before a pool shrinks to its min */
    int64_t session_idle_timeout; /* seconds */
    char *session_image;
    char **volume_roots; /* --volume-root: prefixes `host` volumes may come from; NULL: none */
};

void apid_config_init(struct apid_config *cfg);
void apid_config_free(struct apid_config *cfg);
/* Parses argv (and the --config file it names, flags win over the file). Returns 1 when
 * --help/--version was printed and the caller should exit 0. */
int apid_config_parse(struct apid_config *cfg, int argc, char **argv, sbx_error_t *err);
/* Re-reads only the settings that are safe to change at run time (SIGHUP). */
int apid_config_reload(struct apid_config *cfg, sbx_error_t *err);
int apid_config_load_file(struct apid_config *cfg, const char *path, sbx_error_t *err);
/* <run-dir>/.sandboxes: per-sandbox files (see sandbox.c); caller frees. */
char *apid_sandboxes_dir(const struct apid_config *cfg);

/* ---------- logging (log.c) ---------- */

enum { APID_LOG_ERROR, APID_LOG_WARN, APID_LOG_INFO, APID_LOG_DEBUG };
void apid_log_setup(int level, bool json);
int apid_log_level_parse(const char *s);
void apid_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One structured access-log line. */
void apid_log_access(const char *method, const char *path, int status, double ms,
                     const char *request_id);
#define log_err(...) apid_log(APID_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) apid_log(APID_LOG_WARN, __VA_ARGS__)
#define log_info(...) apid_log(APID_LOG_INFO, __VA_ARGS__)
#define log_debug(...) apid_log(APID_LOG_DEBUG, __VA_ARGS__)

/* ---------- API errors ----------
 * An API failure is an sbx error whose code (sbx_error_s.code) is the contract's machine-readable
 * code below; its message is what the client reads, with no code in it. Context added on the way
 * up (sbx_error_wrap) keeps the code, so it never turns a 4xx into a 500. The HTTP layer maps the
 * code, or a libsbx category (SBX_ERR_*), to a status; an error with neither is a 500
 * SANDBOX::UNKNOWN_ERROR. */
#define E_INVALID_PARAMETER "SANDBOX::INVALID_PARAMETER"
#define E_NOT_FOUND "SANDBOX::NOT_FOUND"
#define E_INVALID_METADATA_FORMAT "INVALID_METADATA_FORMAT"
#define E_INVALID_METADATA_LABEL "SANDBOX::INVALID_METADATA_LABEL"
#define E_INVALID_ENTRYPOINT "DOCKER::INVALID_ENTRYPOINT"
#define E_INVALID_EXPIRATION "DOCKER::INVALID_EXPIRATION"
#define E_NO_EXPIRATION "NO_EXPIRATION" /* sent as 409 DOCKER::INVALID_EXPIRATION */
#define E_NOT_RUNNING "DOCKER::SANDBOX_NOT_RUNNING"
#define E_NOT_PAUSED "DOCKER::SANDBOX_NOT_PAUSED"
#define E_CONFLICT "SANDBOX::STATE_CONFLICT"
#define E_NOT_SUPPORTED "SANDBOX::API_NOT_SUPPORTED"
#define E_IMAGE "DOCKER::SANDBOX_IMAGE_PULL_FAILED"
#define E_IMAGE_NOT_FOUND "SANDBOX::IMAGE_NOT_FOUND"
#define E_START_FAILED "DOCKER::SANDBOX_START_FAILED"
#define E_UNKNOWN "SANDBOX::UNKNOWN_ERROR"
#define E_MISSING_KEY "MISSING_API_KEY"
#define E_INVALID_KEY "INVALID_API_KEY"
#define E_ROUTE "SANDBOX::ROUTE_NOT_FOUND"
#define E_METHOD "SANDBOX::METHOD_NOT_ALLOWED"
#define E_TOO_LARGE "SANDBOX::REQUEST_TOO_LARGE"
#define E_UNAVAILABLE "SANDBOX::SERVICE_UNAVAILABLE"
#define E_STORAGE "SANDBOX::INSUFFICIENT_STORAGE" /* 507: the data directory is full */

#define apid_fail(err, code, fmt, ...) sbx_make_error_code((err), (code), 0, fmt, ##__VA_ARGS__)
/* An error's HTTP status, wire code and message (pointers into a static table / err). */
void apid_error_http(const sbx_error_t err, int *status, const char **code, const char **msg);

/* ---------- time (validate.c) ---------- */

int64_t apid_now_ms(void);
/* RFC 3339 UTC with milliseconds and a Z suffix; buf >= 32 bytes. */
void apid_format_time(int64_t ms, char *buf, size_t len);
/* RFC 3339 date-time with Z or an offset, optional fraction. */
int apid_parse_time(const char *s, int64_t *ms);

/* ---------- sandbox model and validation (validate.c) ---------- */

enum apid_state {
    ST_PENDING,
    ST_RUNNING,
    ST_PAUSING,
    ST_PAUSED,
    ST_RESUMING,
    ST_STOPPING,
    ST_TERMINATED,
    ST_FAILED,
    ST__COUNT
};
const char *apid_state_name(int st);
int apid_state_parse(const char *s); /* -1 unknown */
bool apid_state_transition_ok(int from, int to);
bool apid_state_terminal(int st);

struct apid_limits {
    int64_t cpu_milli; /* -1 unset */
    int64_t memory;
    int64_t pids;
    int64_t disk; /* ephemeral-storage: the writable layer's size; 0: libsbx's default. Applied
                   * at create only (a mount option), so not in the store. */
};

struct apid_create_req {
    char *image_uri;
    json_t *entrypoint; /* array of strings */
    json_t *env;        /* object string->string */
    json_t *metadata;   /* object string->string */
    int64_t timeout;    /* seconds, -1: no expiry */
    struct apid_limits limits;
    json_t *resource_limits; /* as requested, echoed in the stored spec */
    bool net_none;           /* extensions.network == "none": only lo */
    json_t *net_policy;      /* normalized: {defaultAction, egress:[{action, target, domain} or
                              * {action, target, cidr, port}]} (apid_parse_net_policy) */
    /* image.auth, for a pull only: kept in memory, never stored or echoed. */
    char *image_user, *image_pass;
    /* Not in the lifecycle API (OpenHands /start sets them): the workload's uid/gid instead of
     * the agent's default user, and a working directory created, if missing, owned by uid and
     * group fs_gid. Used at create only; a request with them never claims a pooled sandbox. */
    bool run_as;
    uint32_t uid, gid, fs_gid;
    char *workdir;
    /* volumes as requested, normalized (NULL: none); stored and shown in GET. */
    json_t *volumes;
    /* What apid_volumes_resolve() made of them (volumes.c): [{name, root, rel, mountPath,
     * readOnly, claim?}], root/rel as the runtime walks them (RESOLVE_BENEATH). */
    json_t *volume_mounts;
};
/* A deep copy (for a create that waits for its image's pull). */
void apid_create_req_copy(const struct apid_create_req *in, struct apid_create_req *out);
void apid_create_req_free(struct apid_create_req *r);
int apid_parse_create(const char *body, size_t len, const struct apid_config *cfg,
                      struct apid_create_req *out, sbx_error_t *err);
/* Resource limit map ({"cpu":"500m","memory":"512Mi","pids":"128"}) with server defaults/maxima. */
int apid_parse_limits(json_t *map, const struct apid_config *cfg, struct apid_limits *out,
                      sbx_error_t *err);
int apid_validate_metadata_key(const char *key, sbx_error_t *err);
int apid_validate_metadata(json_t *md, bool allow_null, sbx_error_t *err);
/* ?metadata=k1%3Dv1%26k2%3Dv2 after the HTTP layer decoded it once → object of pairs. */
int apid_parse_metadata_filter(const char *s, json_t **out, sbx_error_t *err);
int apid_parse_page(const char *page, const char *size, int64_t *p, int64_t *ps, sbx_error_t *err);
/* The create request's `volumes` (the spec's Volume): shape, names, mount paths, subPath and the
 * backend (host or pvc; any other is refused by name). No I/O: apid_volumes_resolve() checks the
 * paths. *out: normalized array, NULL when none. */
int apid_parse_volumes(json_t *v, json_t **out, sbx_error_t *err);
/* The request target as sent: true when it encodes a NUL byte (%00), which libmicrohttpd decodes
 * into the C string it hands over, cutting the path short ("/sandboxes/ID%00/proxy/1" was routed
 * as GET /sandboxes/ID). */
bool apid_uri_has_nul(const char *raw_uri);
int apid_parse_renew(const char *body, size_t len, int64_t now_ms, int64_t *expires_ms,
                     sbx_error_t *err);
/* Resolves image.uri: a built image (*name: its directory below images_dir), a pulled image in
 * the store (*name: its manifest digest), or a reference not pulled yet (returns
 * APID_IMAGE_PULL, *name: the canonical reference). */
#define APID_IMAGE_PULL 1
int apid_resolve_image(const char *images_dir, const char *uri, char **name, sbx_error_t *err);
void apid_new_id(char out[37]);

/* ---------- store (store.c) ---------- */

struct apid_sandbox {
    char id[65];
    int state;
    char *reason, *message;
    int64_t last_transition_ms, created_ms, expires_ms; /* expires_ms 0: none */
    char *image_uri;
    json_t *entrypoint, *env, *metadata, *resource_limits;
    struct apid_limits limits;
    pid_t pid;
    unsigned long long pid_start;
    pid_t monitor_pid;
    unsigned long long monitor_start;
    char *cgroup;
    char *token;
    char *address, *veth; /* NULL without networking */
    json_t *volumes;      /* the create's normalized volumes, or NULL */
};
void apid_sandbox_free(struct apid_sandbox *sb);
void apid_sandbox_list_free(struct apid_sandbox **v, size_t n);

struct apid_store;
#define APID_SCHEMA_VERSION 4
int apid_store_open(const char *path, struct apid_store **out, sbx_error_t *err);
void apid_store_close(struct apid_store *s);
int apid_store_schema_version(struct apid_store *s, sbx_error_t *err);
int apid_store_insert(struct apid_store *s, const struct apid_sandbox *sb, sbx_error_t *err);
/* 1 found, 0 not found. */
int apid_store_get(struct apid_store *s, const char *id, struct apid_sandbox **out,
                   sbx_error_t *err);
/* Records a state change and its history row in one transaction. */
int apid_store_set_state(struct apid_store *s, const char *id, int state, const char *reason,
                         const char *message, sbx_error_t *err);
int apid_store_set_runtime(struct apid_store *s, const char *id, pid_t pid,
                           unsigned long long pid_start, pid_t mon, unsigned long long mon_start,
                           const char *cgroup, sbx_error_t *err);
int apid_store_set_expiry(struct apid_store *s, const char *id, int64_t expires_ms,
                          sbx_error_t *err);
int apid_store_set_metadata(struct apid_store *s, const char *id, json_t *md, sbx_error_t *err);
int apid_store_delete(struct apid_store *s, const char *id, sbx_error_t *err);
/* states: bitmask of 1<<ST_*, 0 = all; metadata: object of required pairs or NULL. Items are
 * createdAt descending; *total counts every match. */
int apid_store_list(struct apid_store *s, unsigned states, json_t *metadata, int64_t page,
                    int64_t page_size, struct apid_sandbox ***items, size_t *n, int64_t *total,
                    sbx_error_t *err);
int apid_store_all(struct apid_store *s, struct apid_sandbox ***items, size_t *n, sbx_error_t *err);
/* Earliest expiry among non-terminal sandboxes: 1 and id, ms set; 0 none. */
int apid_store_next_expiry(struct apid_store *s, char id[65], int64_t *ms, sbx_error_t *err);
int apid_store_history_count(struct apid_store *s, const char *id, sbx_error_t *err);
/* Records (or with NULLs clears) a sandbox's address and host veth. */
int apid_store_set_net(struct apid_store *s, const char *id, const char *address, const char *veth,
                       sbx_error_t *err);

/* OpenHands runtimes (openhands.c): a sandbox id with its session id and session API key. */
struct apid_oh_runtime {
    char runtime_id[65];
    char *session_id, *key;
};
void apid_oh_runtime_free(struct apid_oh_runtime *rt);
int apid_store_oh_insert(struct apid_store *s, const char *runtime_id, const char *session_id,
                         const char *key, sbx_error_t *err);
/* By runtime_id, or (runtime_id NULL) by session_id: 1 found, 0 not found. */
int apid_store_oh_find(struct apid_store *s, const char *runtime_id, const char *session_id,
                       struct apid_oh_runtime *out, sbx_error_t *err);
/* Every runtime, oldest sandbox first; free each item and the array. */
int apid_store_oh_list(struct apid_store *s, struct apid_oh_runtime **out, size_t *n,
                       sbx_error_t *err);

/* ---------- networking (net.c) ---------- */

int apid_net_parse_subnet(const char *cidr, uint32_t *net, int *prefix, sbx_error_t *err);
/* One owner per network namespace for the bridge and for the nft table `inet sbx` (whose name is
 * fixed): exclusive locks on APID_NET_LOCK_DIR/ns<netns inode>-bridge-<name>.lock and
 * .../ns<netns inode>-nft-sbx.lock, held for the daemon's life. A second apid in the same
 * network namespace would hand out the same addresses on the bridge and rebuild the table under
 * the first one's sandboxes. Refused with the holder's pid; a no-op with --bridge none. Taken
 * before anything else of networking, and apid_net_init() needs it. */
#define APID_NET_LOCK_DIR "/run/sbx/.net"
int apid_net_lock(const struct apid_config *cfg, sbx_error_t *err);
/* Bridge + nft table; a no-op with --bridge none. */
int apid_net_init(const struct apid_config *cfg, sbx_error_t *err);
bool apid_net_enabled(void);
/* IPAM: re-learns live addresses from the store (start-up); hands out a free one. */
int apid_net_load(struct apid_store *st, sbx_error_t *err);
int apid_net_alloc(const char *id, char **addr, char **veth, sbx_error_t *err);
size_t apid_net_live_count(void);
void apid_net_veth_name(const char *id, char out[16]);
/* What the monitor needs to plumb the sandbox (written to <dir>/net.json). */
json_t *apid_net_plan(const char *id, const char *addr, json_t *policy);
int apid_net_attach(const char *id, const char *addr, json_t *policy, sbx_error_t *err);
/* The sandbox's chain rebuilt for a new policy, `extra` nft commands in the same transaction. */
int apid_net_apply_policy(const char *id, const char *addr, json_t *policy, const char *extra,
                          sbx_error_t *err);
void apid_net_set_name(const char *id, char out[32]);
int apid_net_nft(const char *cmds, sbx_error_t *err);
const char *apid_net_gateway(void);
int apid_net_open_dns(sbx_error_t *err);

/* ---------- egress by domain (egress.c) and the resolver (dns.c) ---------- */

/* The sandbox port whose proxy route is apid's own egress API (OpenSandbox's egress sidecar port).
 */
#define APID_EGRESS_PORT 18080
int apid_egress_init(const char *sandboxes_dir, const char *data_dir, sbx_error_t *err);
void apid_egress_register(const char *id, const char *addr, json_t *policy);
bool apid_egress_known(const char *id);
void apid_egress_forget(const char *id);
bool apid_egress_name_allowed(json_t *policy, const char *name);
bool apid_egress_has_domains(json_t *policy);
/* 1: allowed, 0: denied, -1: no sandbox has that (network-order) address. */
int apid_egress_query(uint32_t src, const char *name, char id_out[65]);
void apid_egress_learn(uint32_t src, const char *name, const uint8_t ip[4], uint32_t ttl);
char *apid_egress_token(const char *id);
int apid_egress_get(const char *id, json_t **out, sbx_error_t *err);
int apid_egress_patch(const char *id, json_t *body, json_t **out, sbx_error_t *err);
int apid_egress_delete(const char *id, json_t *body, json_t **out, sbx_error_t *err);
char *apid_egress_metrics(void);
/* Listens on the gateway's port 53 (UDP and TCP) and forwards allowed names to `upstreams`
 * (comma-separated IPV4[:PORT]; NULL: the host's /etc/resolv.conf). */
int apid_dns_start(const char *gateway, const char *upstreams, sbx_error_t *err);
/* "IPV4[:PORT],..." (at most APID_DNS_MAX_UPSTREAMS) into out; -1 when malformed. */
#define APID_DNS_MAX_UPSTREAMS 4
struct sockaddr_in;
int apid_dns_parse_upstreams(const char *list, struct sockaddr_in *out, size_t *n);
void apid_dns_stop(void);
bool apid_dns_running(void);
void apid_net_release(const char *id, const char *addr, const char *veth);
int apid_net_resync(struct apid_store *st, const char *sandboxes_dir, sbx_error_t *err);
void apid_net_shutdown(bool in_use);
/* Validates a create request's networkPolicy into the normalized form. */
int apid_parse_net_policy(json_t *v, const char *server_default, json_t **out, sbx_error_t *err);
/* One NetworkRule ({action, target}) into its normalized form; field names it in errors. */
int apid_parse_net_rule(json_t *rule, const char *field, json_t **out, sbx_error_t *err);
#define APID_MAX_EGRESS_RULES 4096

/* ---------- launcher (launcher.c) ---------- */

/* Forks the single-threaded launcher; must run before any thread exists. */
int apid_launcher_start(sbx_error_t *err);
/* Asks the launcher to start a monitor for sandbox `id`: sandbox dir `dir` holds config.json.
 * *status_fd receives the read end of the monitor's JSON status pipe. */
int apid_launcher_spawn(const char *id, const char *dir, const char *state_root,
                        const char *cgroup_parent, pid_t *monitor, int *status_fd,
                        sbx_error_t *err);
void apid_launcher_stop(void);

/* ---------- OCI config (ocispec.c) ---------- */

struct apid_spec_in {
    const char *id;
    const char *images_dir;
    const char *image_name; /* entry below images_dir (apid_resolve_image() checked it) */
    const char *agent_path; /* NULL: run the entrypoint directly */
    const char *token_path;
    const char *resolv_path; /* bound on /etc/resolv.conf; NULL: the image's own */
    json_t *entrypoint, *env;
    struct apid_limits limits;
    bool run_as; /* see struct apid_create_req */
    uint32_t uid, gid, fs_gid;
    const char *workdir;
    json_t *volume_mounts; /* apid_create_req.volume_mounts, or NULL */
};
int apid_build_oci(const struct apid_spec_in *in, json_t **out, sbx_error_t *err);
/* The limits of a request as libsbx's neutral ones (resources.h), the one mapping both the config
 * of a new sandbox and a pool claim's sbx_container_update() use; disk is not among them (it is
 * a mount option, fixed at create). */
struct sbx_limits;
void apid_limits_to_sbx(const struct apid_limits *in, struct sbx_limits *out);

/* ---------- volumes (volumes.c) ---------- */

/* Checks --volume-root directories and makes <data-dir>/volumes. */
int apid_volumes_init(struct apid_config *cfg, struct apid_store *store, sbx_error_t *err);
/* The host paths and named volumes of a parsed create request, resolved beneath their roots
 * (a 400 naming the path or volume for anything else); fills req->volume_mounts. Creates
 * nothing. */
int apid_volumes_resolve(const struct apid_config *cfg, struct apid_create_req *req,
                         sbx_error_t *err);
/* Held from making a request's named volumes (apid_volumes_make) until its sandbox row is in
 * the store, and by a volume's DELETE, so a volume is never removed under a new sandbox. */
void apid_volumes_lock(void);
void apid_volumes_unlock(void);
int apid_volumes_make(const struct apid_create_req *req, sbx_error_t *err);
/* sbx extension /v1/volumes. */
int apid_volume_list(json_t **out, sbx_error_t *err);
int apid_volume_get(const char *name, json_t **out, sbx_error_t *err);
int apid_volume_create(const char *body, size_t len, json_t **out, sbx_error_t *err);
int apid_volume_delete(const char *name, sbx_error_t *err);

/* ---------- sandbox manager (sandbox.c) ---------- */

struct apid_ctx {
    struct apid_config *cfg;
    struct apid_store *store;
    pthread_mutex_t cfg_lock;
};

int apid_mgr_init(struct apid_ctx *ctx, sbx_error_t *err);
/* Re-adopts, reaps and cleans up after a restart. */
int apid_mgr_recover(sbx_error_t *err);
int apid_mgr_start_threads(sbx_error_t *err);
void apid_mgr_stop(void);
int apid_mgr_create(const struct apid_create_req *req, struct apid_sandbox **out, sbx_error_t *err);
/* images.c: a create whose image `ref` is not pulled yet waits for its pull (shared by creates
 * of one image with the same credentials); then apid_mgr_image_ready() starts it with the
 * image's digest, or ends it Failed with reason and message (digest NULL). */
int apid_images_pull_for(const char *images_dir, const char *ref, const char *id,
                         const struct apid_create_req *req, sbx_error_t *err);
void apid_mgr_image_ready(const char *id, const struct apid_create_req *req, const char *digest,
                          const char *reason, const char *message);
/* A pull's progress in a waiting sandbox's status message. */
void apid_mgr_pending_message(const char *id, const char *message);
/* Prometheus lines of the pulls (metrics.c calls it). */
char *apid_images_metrics_text(void);
/* Warm pool (pool.c): start a sandbox that is not in the store yet; adopt it into the store
 * (Running, watched, expiry armed) once claimed with the claimant's fields set; or discard it. */
int apid_mgr_prestart(const struct apid_create_req *req, struct apid_sandbox **out,
                      sbx_error_t *err);
int apid_mgr_adopt(struct apid_sandbox *sb, sbx_error_t *err);
void apid_mgr_discard(const struct apid_sandbox *sb);
int apid_mgr_delete(const char *id, const char *reason, sbx_error_t *err);
int apid_mgr_pause(const char *id, sbx_error_t *err);
int apid_mgr_resume(const char *id, sbx_error_t *err);
int apid_mgr_renew(const char *id, int64_t expires_ms, sbx_error_t *err);
int apid_mgr_patch_metadata(const char *id, json_t *patch, struct apid_sandbox **out,
                            sbx_error_t *err);
/* Loads a sandbox or fails with 404. */
int apid_mgr_get(const char *id, struct apid_sandbox **out, sbx_error_t *err);
/* JSON shape of a sandbox; full adds image. */
json_t *apid_sandbox_json(const struct apid_sandbox *sb, bool full);

/* ---------- reverse proxy to sandbox ports (proxy.c) ---------- */

struct apid_proxy;
struct MHD_Connection;
struct MHD_Response;
void apid_proxy_setup(struct apid_store *store);
/* Connects to the sandbox port and sends the request head. 0, or an HTTP status with *code and
 * msg set (404 unknown, 409 paused, 503 not running / no network, 502 nothing listening). */
/* flags: APID_PROXY_OPENHANDS for OpenHands' path mode (openhands.c): the agent's token is not
 * added, and X-API-Key (apid's key, which OpenHands clients send on every call) is dropped. */
#define APID_PROXY_OPENHANDS 1u
int apid_proxy_open(struct MHD_Connection *c, const char *id, int port, const char *rest,
                    const char *method, unsigned flags, struct apid_proxy **out, const char **code,
                    char *msg, size_t msglen);
/* True when something accepts TCP connections on address:port within timeout_ms. */
bool apid_proxy_probe(const char *address, int port, int timeout_ms);
void apid_proxy_body(struct apid_proxy *px, const char *data, size_t len);
/* The streamed response (takes *px, setting it NULL), or NULL with *status and msg. */
struct MHD_Response *apid_proxy_response(struct apid_proxy **px, int *status, char *msg,
                                         size_t msglen);
void apid_proxy_free(struct apid_proxy *px);
/* Ends every proxied connection to sandbox `id` (it is being deleted). */
void apid_proxy_abort(const char *id);

/* ---------- HTTP (http.c) ---------- */

int apid_http_start(struct apid_ctx *ctx, sbx_error_t *err);
/* Whether `got` (NULL: no key sent) passes the configured --api-key (compared in constant time);
 * without one, anything does. */
bool apid_api_key_ok(const char *got);
/* The external base URL of apid without a trailing '/': --public-url, else
 * http://<public host or listen host>:<port>. Caller frees. */
char *apid_http_base_url(void);
void apid_http_stop(void);

#endif
