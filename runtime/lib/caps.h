/* Capability sets: named profiles (profiles/caps/NAME.json) and the child-side drop. */
#ifndef SBX_CAPS_H
#define SBX_CAPS_H

#include "spec.h"

/* Loads a capability profile by name ("default", "none") or path into a set mask. */
int sbx_caps_profile_load(const char *name_or_path, uint64_t *mask, sbx_error_t *err);
/* Parses a JSON array of "CAP_X" names into a mask; unknown names are an error. */
int sbx_caps_from_json(json_t *arr, uint64_t *mask, sbx_error_t *err);
/* Child side: after setresuid (with PR_SET_KEEPCAPS), apply all five sets. Returns -errno;
 * *failed (if not NULL) is then the capability that could not be raised, or -1 for the sets as a
 * whole (capset). */
int sbx_caps_apply(const struct sbx_caps *caps, int *failed);
/* Drops the bounding set to `bounding` (needs CAP_SETPCAP). Returns -errno, with the capability
 * that would not drop in *failed (if not NULL). */
int sbx_caps_drop_bounding(uint64_t bounding, int *failed);
/* Highest capability number the running kernel knows. */
int sbx_caps_last_cap(void);

#endif
