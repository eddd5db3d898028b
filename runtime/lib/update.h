/* Changing the limits of a live sandbox, as `runc update` does: its cgroup and its recorded
 * config.json together, so that the record says what the sandbox has. */
#ifndef SBX_UPDATE_H
#define SBX_UPDATE_H

#include "container.h"

/* Changes the resource limits of a created, running or paused sandbox. resources: the
 * linux.resources fields to change, the others stay (see sbx_resources_check_update() for what
 * is accepted, and sbx_resources_merge() for how the record changes). config_path: the config
 * recorded for the sandbox; NULL means <state_root>/<id>/config.json, the copy that `create` and
 * `run --detach` keep. Without config_path, a sandbox that has no recorded config (a plain
 * `sbxrun run`) has only its cgroup changed.
 *
 * Holds the id's state lock (sbx_state_lock()) throughout. Steps, and what a failure leaves:
 *   1. check the change and the merged record (memory.swap >= memory.limit...): a failure
 *      changes nothing;
 *   2. write the new record to a temporary file beside the old one (same mode and owner): a
 *      failure changes nothing;
 *   3. write the cgroup (sbx_cgroup_update(), which checks ranges before its first write): if it
 *      fails part way, the fields it touched are set back to the recorded values (a field the
 *      record had no value for cannot be set back; the error says so), and the record stays;
 *   4. rename the temporary file over the record. If that fails (a broken filesystem: it is one
 *      directory), the cgroup is set back as in 3 and the error says whether that worked.
 * memory.checkBeforeUpdate: true refuses a memory limit below the sandbox's current usage. An
 * update that changes nothing writes nothing. */
int sbx_container_update(const char *state_root, const char *id, const char *config_path,
                         json_t *resources, sbx_error_t *err);

#endif
