/* OCI image layers: one layer (a tar stream, gzip, zstd or uncompressed) is unpacked once into a
 * directory of its own, owned by the sandboxes' id range; an image is a stack of those
 * directories mounted as overlayfs lower layers. The layer is untrusted and this runs as host
 * root: see the comment at the top of layer.c for what is checked and what is not. */
#ifndef SBX_LAYER_H
#define SBX_LAYER_H

#include "digest.h"
#include "sbx.h"

#include <stdbool.h>
#include <stdint.h>

#define SBX_LAYER_MAX_BYTES_DEFAULT (UINT64_C(64) << 30)
#define SBX_LAYER_MAX_ENTRIES_DEFAULT UINT64_C(2000000)
/* Tar ids 0..SBX_LAYER_ID_COUNT-1 are shifted by uid_base/gid_base; others become
 * SBX_LAYER_ID_NOBODY (shifted too). */
#define SBX_LAYER_ID_COUNT 65536
#define SBX_LAYER_ID_NOBODY 65534

struct sbx_layer_opts {
    uint32_t uid_base, gid_base; /* host uid/gid of the sandbox's id 0 (e.g. 1000000) */
    uint64_t max_bytes;          /* bound on the uncompressed tar stream; 0: the default */
    uint64_t max_entries;        /* bound on the tar entries; 0: the default */
    /* The caller is not host root (unprivileged image work, the unit tests without root):
     * nothing is chowned (uid_base/gid_base are ignored, files stay the caller's), trusted.* and
     * security.capability are dropped and counted, opaque directories get user.overlay.opaque
     * only. Refused when the caller is root: root-owned setuid files would be the result. */
    bool rootless;
    /* Optional: called as the (compressed) input is read, with the bytes read so far. */
    void (*progress)(uint64_t in_bytes, void *data);
    void *progress_data;
};

struct sbx_layer_stats {
    uint64_t entries;         /* tar entries read (every kind, skipped ones too) */
    uint64_t bytes;           /* size of the uncompressed tar stream, padding included */
    uint64_t in_bytes;        /* bytes read from the input fd */
    uint64_t whiteouts;       /* .wh.NAME made into overlayfs whiteouts */
    uint64_t opaque_dirs;     /* .wh..wh..opq markers */
    uint64_t skipped_devices; /* block and character devices (sandboxes get their own /dev) */
    uint64_t skipped_other;   /* sockets, AUFS metadata (.wh..wh.*) */
    uint64_t unmapped_ids;    /* uids and gids outside 0..65535, made nobody (65534) */
    uint64_t dropped_xattrs;  /* security.* (but the capability), system.*, overlay metadata */
};

/* Unpacks the layer read from fd (to its end) into dirfd, an empty directory, and writes its
 * diff_id: the sha256 of the uncompressed tar stream ("sha256:<hex>"). The compression (gzip,
 * zstd or none) is told by content. The caller must compare the diff_id with the image config's
 * rootfs.diff_ids before using the directory: it is the integrity check of what was unpacked
 * (libarchive does not verify gzip's CRC). On failure the directory holds part of the layer: the
 * caller removes it. o may be NULL (defaults, no id shift), st too (filled on failure as well). */
int sbx_layer_unpack(int fd, int dirfd, const struct sbx_layer_opts *o,
                     char diff_id[SBX_DIGEST_LEN + 1], struct sbx_layer_stats *st,
                     sbx_error_t *err);

#endif
