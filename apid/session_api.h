/* The "simple session API" of pooled-Docker sandbox servers, served by sbx-apid on the same
 * daemon, auth and warm pool: POST /create_session, /execute, /execute_batch, /upload_file,
 * /cleanup. A session is a sandbox (its id is the session id) created with the metadata label
 * sbx-session=true, no entrypoint (the agent alone), and an expiry that every call pushes to
 * now + the idle timeout, so the existing expiry timer removes idle sessions (also across apid
 * restarts). Commands and uploads go to the sandbox's agent through agent_client. */
#ifndef SBX_APID_SESSION_API_H
#define SBX_APID_SESSION_API_H

#include "apid.h"

struct MHD_Connection;

#define APID_SESSION_LABEL "sbx-session"

void apid_session_init(struct apid_ctx *ctx);
/* True for the session API's paths (with or without the /v1 prefix). */
bool apid_session_is_route(const char *path);
/* Handles one request; returns the HTTP status and sets *reply (a JSON value, new reference).
 * conn is needed for multipart parsing of /upload_file only. */
int apid_session_handle(struct MHD_Connection *conn, const char *method, const char *path,
                        const char *body, size_t len, json_t **reply);
/* Sessions whose sandbox is not terminal. */
int64_t apid_session_active(struct apid_store *store);

#endif
