/* The per-sandbox record in the run directory: <state_root>/<id>/state.json, written atomically
 * (rename). Readers trust a pid only together with its start time (/proc/<pid>/stat field 22), so
 * a recycled pid is never mistaken for a live sandbox. */
#ifndef SBX_STATE_H
#define SBX_STATE_H

#include "sbx.h"
#include "utils.h"
#include <jansson.h>
#include <time.h>

struct sbx_state {
    char *id;
    pid_t pid;                    /* host pid of the sandbox's PID 1 (our init or the workload) */
    unsigned long long pid_start; /* start time of pid, clock ticks since boot */
    char *status;                 /* "creating", "created", "running", "paused", "stopped" */
    char *bundle;
    char *rootfs;
    char *cgroup;  /* sbx_cgroup_serialize() form, NULL if none */
    char *created; /* RFC 3339 UTC */
    int exit_code; /* valid when status is "stopped" */
    bool oom;
    json_t *annotations; /* owned, may be NULL */
    json_t *extra;       /* owned; free-form fields for callers (apid), may be NULL */
};

int sbx_state_save(const char *state_root, const struct sbx_state *st, sbx_error_t *err);
int sbx_state_load(const char *state_root, const char *id, struct sbx_state **out,
                   sbx_error_t *err);
int sbx_state_remove(const char *state_root, const char *id, sbx_error_t *err);
/* Serialises the changes of one id's record among processes (sbxrun run, create, start, delete,
 * pause, resume; apid's monitors and deletes): an exclusive lock on <state_root>/.locks/<id>
 * (see sbx_lockfile_take(); the file exists only while held). A claim holds it from the check
 * that the id is free until the record names the live sandbox, so two `run --id X` cannot both
 * win and `delete --force X` cannot remove a record that a run is still creating. Waits up to
 * SBX_STATE_LOCK_WAIT_MS for another holder, then fails with EBUSY. */
#define SBX_STATE_LOCK_WAIT_MS 30000
int sbx_state_lock(const char *state_root, const char *id, struct sbx_lockfile *lock,
                   sbx_error_t *err);
int sbx_state_list(const char *state_root, char ***ids, sbx_error_t *err);
void sbx_state_free(struct sbx_state *st);
/* True if st->pid is alive and still the same process (start time matches). */
bool sbx_state_alive(const struct sbx_state *st);
/* Start time of a pid (clock ticks since boot), 0 if it does not exist. */
unsigned long long sbx_pid_start_time(pid_t pid);
/* "running"/"paused"/"stopped"... as seen now (pid liveness + cgroup freezer). */
const char *sbx_state_current_status(const struct sbx_state *st);
char *sbx_now_rfc3339(void);
/* ts as UTC, "2006-01-02T15:04:05.000000000Z". */
char *sbx_rfc3339(const struct timespec *ts);

#endif
