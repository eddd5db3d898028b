/* Warm pool: pre-started sandboxes (namespaces, cgroup, rootfs, network, agent /ping-ready) per
 * key (image, resource class, network mode). A create that matches a key claims a ready member,
 * which is used once; background workers refill with bounded concurrency, grow a pool up to its
 * max under demand and shrink it back to its min after an idle period. */
#ifndef SBX_APID_POOL_H
#define SBX_APID_POOL_H

#include "apid.h"

/* Parses cfg->pool_specs ("IMAGE:COUNT" or "IMAGE:MIN:MAX"). */
int apid_pool_init(struct apid_ctx *ctx, sbx_error_t *err);
int apid_pool_start(sbx_error_t *err);
/* Stops the workers and removes every unclaimed member. */
void apid_pool_stop(void);
/* Creates a sandbox for a validated request: from a matching pool when a member is ready
 * (*pooled true), else cold through apid_mgr_create(). */
int apid_pool_create(const struct apid_create_req *req, bool *pooled, struct apid_sandbox **out,
                     sbx_error_t *err);
/* Adds pool_size and pools {key: {image, ready, starting, min, max, target}} to a /health object.
 */
void apid_pool_health(json_t *o);
typedef void (*apid_pool_visit_fn)(void *cls, const char *key, const char *image, size_t ready,
                                   size_t starting, size_t target);
void apid_pool_foreach(apid_pool_visit_fn fn, void *cls);

#endif
