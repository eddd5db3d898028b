/* OpenHands' Remote Runtime API (the API its SDK's APIRemoteWorkspace, its app server's
 * RemoteSandboxService and its legacy RemoteRuntime start agent servers with), served by
 * sbx-apid on the same listener. A runtime is an ordinary sandbox of the sandbox manager (same
 * store, expiry, pool, networking and cgroups) with a row in the store's `openhands` table: its
 * session id and the session API key set as SESSION_API_KEY inside it. The runtime id is the
 * sandbox id. Its `url` is apid's "path mode" proxy, <base>/<runtime_id>[/vscode|/work-1|
 * /work-2] → sandbox port 60000 [60001, 12000, 12001]. See docs/openhands.md. */
#ifndef SBX_APID_OPENHANDS_H
#define SBX_APID_OPENHANDS_H

#include "apid.h"

struct MHD_Connection;

void apid_oh_init(struct apid_ctx *ctx);
/* True for the runtime API's paths (/start, /sessions/..., /list, ...; any run of '/' counts as
 * one). */
bool apid_oh_is_route(const char *path);
/* Handles one runtime-API request, its own auth (X-API-Key) included; returns the HTTP status and
 * sets *reply (a JSON value, new reference; errors are {"detail": ...}). */
int apid_oh_handle(struct MHD_Connection *c, const char *method, const char *path, const char *body,
                   size_t len, bool too_large, json_t **reply);
/* Path mode: when raw_uri is /<runtime_id>[/rest] of a known runtime, 1 with the sandbox id, the
 * sandbox port and the path to send upstream (*rest, caller frees; query kept); -1 when its
 * first segment is a sandbox-id-like UUID that is no runtime (a 404: no apid route starts with
 * one); else 0. */
int apid_oh_proxy_target(const char *raw_uri, char id[65], int *port, char **rest);

#endif
