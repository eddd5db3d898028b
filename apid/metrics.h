/* Prometheus metrics of sbx-apid (GET /metrics, text exposition format 0.0.4). Counters are
 * process-lifetime; gauges (sandboxes by state, pool sizes) are read at scrape time. */
#ifndef SBX_APID_METRICS_H
#define SBX_APID_METRICS_H

#include "apid.h"

/* A sandbox create that reached 202 (pooled: claimed from the warm pool). */
void apid_metrics_create(double ms, bool pooled);
void apid_metrics_pool(bool hit);
/* Hook for the /sandboxes/{id}/proxy/... route: one call per proxied request. */
void apid_metrics_proxy_request(int status);
/* Every non-2xx reply of the API, by HTTP status and contract error code. */
void apid_metrics_error(int status, const char *code);
/* Exposition text; caller frees. */
char *apid_metrics_render(struct apid_store *store);

#endif
