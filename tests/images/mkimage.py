#!/usr/bin/env python3
"""mkimage.py: build deterministic OCI / Docker test images and special layer tars from files.

Standard library only (tarfile, json, hashlib, gzip, zlib); zstd compression shells out to the
`zstd` command and is refused with a message when that command is missing. Output is
deterministic: entries are sorted, mtimes fixed (--mtime, default $SOURCE_DATE_EPOCH or 0),
owners 0:0 unless --keep-owner, user/group names empty, gzip headers carry no name and mtime 0.
Building the same inputs twice gives byte-identical blobs and therefore identical digests.

SUBCOMMANDS

  mkimage.py layout DIR --tag TAG [IMAGE OPTIONS] [--multiarch]
      Write (or add to) an OCI image layout at DIR: oci-layout, index.json, blobs/sha256/*.
      The tag becomes the `org.opencontainers.image.ref.name` annotation of the entry in
      index.json (an existing entry with that tag is replaced; other tags are kept, so several
      images can share one layout and its blobs). Skopeo names it `oci:DIR:TAG`.
      --multiarch: the tag points to an image index (Docker: manifest list) with two platforms:
      the image described by the options (platform linux/--arch, which must not be arm64) and a
      tiny linux/arm64/v8 image whose only layer holds the file `arch` containing "arm64\\n"
      (same config otherwise), so a client has to pick its platform.
      With --format docker the index.json entry carries Docker media types: fine for the
      image-layout spec (and for sbx), but skopeo 1.9's oci: transport skips such entries
      ("no descriptor found for reference"); push those with `mkimage.py dir` + `dir:`.

  mkimage.py docker-archive FILE --tag NAME:TAG [IMAGE OPTIONS]
      Write a `docker save`-style tar: manifest.json ([{Config, RepoTags, Layers}]),
      repositories, <config-hex>.json, <diffid-hex>/layer.tar (uncompressed), <diffid-hex>/VERSION.
      Skopeo names it `docker-archive:FILE`. (--multiarch and --compression do not apply.)

  mkimage.py oci-archive LAYOUTDIR FILE
      Tar an OCI layout directory (deterministically) into FILE: `oci-archive:FILE:TAG`.

  mkimage.py dir LAYOUTDIR TAG OUTDIR
      Copy the image (or index) TAG names in a layout into skopeo's `dir:OUTDIR` format, bytes
      unchanged. Use it to push --format docker images: skopeo 1.9's oci: transport ignores
      index.json entries with Docker media types ("no descriptor found for reference").

  mkimage.py layer KIND FILE [--token TOKEN] [--count N] [--size BYTES] [--compression C]
      Write one layer tar with special entries (uncompressed unless --compression gzip|zstd;
      `bomb` is always gzip). Also writes FILE.diffid (the "sha256:..." of the uncompressed
      tar) so `--layer FILE` can use a compressed layer without decompressing it. Prints a JSON
      summary {path, digest, diff_id, size, uncompressed_size, entries}. KINDS:
        features-lower  the lower layer `features` refers to: removed-file, kept-file,
                        opaque-dir/lower-only.
        features        .wh.removed-file (whiteout of the lower file), opaque-dir/.wh..wh..opq
                        plus opaque-dir/upper-only, regular-file, hardlink-to-regular (hardlink
                        -> regular-file), symlink-relative -> regular-file, symlink-absolute ->
                        /regular-file, setuid-file (04755), cap-file (0755, PAX
                        SCHILY.xattr.security.capability = VFS_CAP_REVISION_2, effective,
                        permitted cap_net_bind_service), dev/char-null (char device 1:3),
                        owned-by-1000 (1000:1000), dir-owned-by-1000/ (1000:1000),
                        owned-by-0 (0:0).
        dotdot          benign-file, ../../escape-dotdot-TOKEN
        absolute        benign-file, /tmp/escape-abs-TOKEN
        symlink-escape  benign-file, etc -> /etc, etc/escape-symlink-TOKEN
        hardlink-host   benign-file, escape-hardlink-host-TOKEN (hardlink -> /etc/passwd)
        hardlink-dotdot benign-file, escape-hardlink-dotdot-TOKEN (hardlink -> ../../etc/passwd)
        bomb            gzip only: one regular file bomb-TOKEN whose header declares --size bytes
                        (default 8 GiB) of zeros; the gzip stream is assembled from one
                        precompressed deflate segment repeated, so it stays ~1/1000 of --size
                        (8 GiB -> ~8 MiB) and the only full pass is the sha256 for FILE.diffid
                        (a few seconds; --fake-diffid skips it and writes a wrong diff_id).
        many-entries    --count (default 10000) empty files many/f0000000..., after a dir many/.
      TOKEN (--token, default "sbxtest") lets a test search the host for escaped files by name.

IMAGE OPTIONS (layout, docker-archive)
  --layer PATH        repeatable, bottom layer first. A directory (tarred here), an uncompressed
                      tar, or a gzip/zstd-compressed tar (detected by magic bytes; used as is, its
                      diff_id taken from PATH.diffid when that exists, else computed by
                      decompressing). No --layer: one empty layer.
  --compression gzip|zstd|none   for layers that are not already compressed (default gzip)
  --format oci|docker  OCI media types (default) or Docker schema 2 (manifest
                      application/vnd.docker.distribution.manifest.v2+json, layers
                      application/vnd.docker.image.rootfs.diff.tar.gzip); zstd needs oci.
  --env K=V (repeat)  --entrypoint ARGV  --cmd ARGV  (ARGV: a JSON array, or a string split
                      like a shell would)  --workdir DIR  --user USER[:GROUP]
  --expose PORT/PROTO (repeat)  --label K=V (repeat)
  --arch ARCH (default amd64)  --os OS (default linux)  --variant V
  --mtime SECONDS     mtime of every tar entry; also the config's `created` time
  --keep-owner        keep on-disk uid/gid of files taken from directories (default 0:0)

`layout` and `docker-archive` print a JSON summary on stdout: {tag, digest (what the tag points
to: manifest, or index with --multiarch), mediaType, manifests: {"os/arch[/variant]": digest},
config, layers: [{digest, diff_id, size, mediaType}], ...}.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib

MT = {
    "oci": {
        "manifest": "application/vnd.oci.image.manifest.v1+json",
        "index": "application/vnd.oci.image.index.v1+json",
        "config": "application/vnd.oci.image.config.v1+json",
        "none": "application/vnd.oci.image.layer.v1.tar",
        "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
        "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    },
    "docker": {
        "manifest": "application/vnd.docker.distribution.manifest.v2+json",
        "index": "application/vnd.docker.distribution.manifest.list.v2+json",
        "config": "application/vnd.docker.container.image.v1+json",
        "none": "application/vnd.docker.image.rootfs.diff.tar",
        "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    },
}
REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20


def die(msg):
    print("mkimage: " + msg, file=sys.stderr)
    sys.exit(1)


def default_mtime():
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(CHUNK), b""):
            h.update(b)
    return "sha256:" + h.hexdigest()


def sniff(path):
    """Compression of a file by magic bytes: gzip, zstd or none."""
    with open(path, "rb") as f:
        m = f.read(4)
    if m[:2] == b"\x1f\x8b":
        return "gzip"
    if m == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return "none"


def have_zstd():
    return shutil.which("zstd") is not None


def decompress_stream(path, comp):
    """Yields the uncompressed bytes of a (possibly compressed) file chunk by chunk."""
    if comp == "none":
        with open(path, "rb") as f:
            yield from iter(lambda: f.read(CHUNK), b"")
    elif comp == "gzip":
        with gzip.open(path, "rb") as f:
            yield from iter(lambda: f.read(CHUNK), b"")
    else:
        if not have_zstd():
            die("zstd layer %s but no `zstd` command" % path)
        p = subprocess.Popen(["zstd", "-q", "-d", "-c", path], stdout=subprocess.PIPE)
        yield from iter(lambda: p.stdout.read(CHUNK), b"")
        if p.wait() != 0:
            die("zstd -d failed on " + path)


def compress_file(src, dst, comp):
    """Compresses src into dst deterministically."""
    if comp == "none":
        shutil.copyfile(src, dst)
    elif comp == "gzip":
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            # filename="" and mtime=0: nothing host- or time-dependent in the gzip header.
            with gzip.GzipFile(filename="", mode="wb", fileobj=fo, mtime=0, compresslevel=6) as g:
                shutil.copyfileobj(fi, g, CHUNK)
    elif comp == "zstd":
        if not have_zstd():
            die("--compression zstd needs the `zstd` command, which is not installed (skipping zstd)")
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            subprocess.run(["zstd", "-q", "-3", "-c", "--no-check"], stdin=fi, stdout=fo, check=True)
    else:
        die("unknown compression " + comp)


# ---------------------------------------------------------------- deterministic tars


def tar_dir(src, out, mtime, keep_owner):
    """Tars the contents of directory src (paths relative, no ./ prefix) into file out."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        paths = []
        for root, dirs, files in os.walk(src):
            dirs.sort()
            for n in sorted(dirs + files):
                paths.append(os.path.join(root, n))
        # os.walk yields a dir's children before the next sibling's, but sorting the full list
        # keeps the order independent of the walk (and puts a dir before its children).
        for p in sorted(paths, key=lambda p: os.path.relpath(p, src).split(os.sep)):
            rel = os.path.relpath(p, src)
            ti = tf.gettarinfo(p, arcname=rel)  # also turns later links to a seen inode into LNKTYPE
            if ti is None:  # sockets
                continue
            ti.mtime = mtime
            ti.uname = ti.gname = ""
            if not keep_owner:
                ti.uid = ti.gid = 0
            if ti.isreg():
                with open(p, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)


def tar_entries(out, entries, mtime):
    """Writes a tar from a list of dicts: name, type (file|dir|symlink|hardlink|chr), data,
    mode, uid, gid, linkname, major, minor, pax."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            # TarInfo built by hand (not gettarinfo) keeps names as given: "../x" and "/x" stay.
            ti = tarfile.TarInfo(e["name"])
            ti.mtime = mtime
            ti.uid = e.get("uid", 0)
            ti.gid = e.get("gid", 0)
            ti.uname = ti.gname = ""
            t = e.get("type", "file")
            data = e.get("data", b"")
            if t == "file":
                ti.type, ti.mode, ti.size = tarfile.REGTYPE, e.get("mode", 0o644), len(data)
            elif t == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, e.get("mode", 0o755)
            elif t == "symlink":
                ti.type, ti.mode, ti.linkname = tarfile.SYMTYPE, 0o777, e["linkname"]
            elif t == "hardlink":
                ti.type, ti.mode, ti.linkname = tarfile.LNKTYPE, e.get("mode", 0o644), e["linkname"]
            elif t == "chr":
                ti.type, ti.mode = tarfile.CHRTYPE, e.get("mode", 0o666)
                ti.devmajor, ti.devminor = e["major"], e["minor"]
            else:
                raise ValueError(t)
            if "pax" in e:
                ti.pax_headers = dict(e["pax"])
            tf.addfile(ti, io.BytesIO(data) if t == "file" else None)


def vfs_cap_net_bind_service():
    """struct vfs_cap_data, VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, permitted = bit 10
    (CAP_NET_BIND_SERVICE), inheritable 0, upper words 0: 20 bytes, little endian."""
    return struct.pack("<IIIII", 0x02000000 | 0x1, 1 << 10, 0, 0, 0)


def special_entries(kind, token, count):
    benign = {"name": "benign-file", "data": b"benign\n"}
    if kind == "features-lower":
        return [
            {"name": "kept-file", "data": b"kept\n"},
            {"name": "opaque-dir", "type": "dir"},
            {"name": "opaque-dir/lower-only", "data": b"lower\n"},
            {"name": "removed-file", "data": b"removed\n"},
        ]
    if kind == "features":
        # The xattr value is all bytes < 0x80, so it is valid UTF-8 and tarfile writes it raw
        # (no hdrcharset=BINARY record), byte for byte what GNU tar --xattrs writes.
        cap = vfs_cap_net_bind_service().decode("ascii")
        return [
            {"name": ".wh.removed-file", "data": b""},
            {"name": "cap-file", "mode": 0o755, "data": b"#!/bin/sh\necho cap\n",
             "pax": {"SCHILY.xattr.security.capability": cap}},
            {"name": "dev", "type": "dir"},
            {"name": "dev/char-null", "type": "chr", "major": 1, "minor": 3, "mode": 0o666},
            {"name": "dir-owned-by-1000", "type": "dir", "mode": 0o750, "uid": 1000, "gid": 1000},
            {"name": "opaque-dir", "type": "dir"},
            {"name": "opaque-dir/.wh..wh..opq", "data": b""},
            {"name": "opaque-dir/upper-only", "data": b"upper\n"},
            {"name": "owned-by-0", "data": b"root\n", "uid": 0, "gid": 0},
            {"name": "owned-by-1000", "data": b"user\n", "uid": 1000, "gid": 1000},
            {"name": "regular-file", "data": b"regular\n"},
            # after its target: a hardlink may only name an entry already extracted
            {"name": "hardlink-to-regular", "type": "hardlink", "linkname": "regular-file"},
            {"name": "setuid-file", "mode": 0o4755, "data": b"#!/bin/sh\necho setuid\n"},
            {"name": "symlink-absolute", "type": "symlink", "linkname": "/regular-file"},
            {"name": "symlink-relative", "type": "symlink", "linkname": "regular-file"},
        ]
    if kind == "dotdot":
        return [benign, {"name": "../../escape-dotdot-" + token, "data": b"escaped\n"}]
    if kind == "absolute":
        return [benign, {"name": "/tmp/escape-abs-" + token, "data": b"escaped\n"}]
    if kind == "symlink-escape":
        return [benign, {"name": "etc", "type": "symlink", "linkname": "/etc"},
                {"name": "etc/escape-symlink-" + token, "data": b"escaped\n"}]
    if kind == "hardlink-host":
        return [benign, {"name": "escape-hardlink-host-" + token, "type": "hardlink",
                         "linkname": "/etc/passwd"}]
    if kind == "hardlink-dotdot":
        return [benign, {"name": "escape-hardlink-dotdot-" + token, "type": "hardlink",
                         "linkname": "../../etc/passwd"}]
    if kind == "many-entries":
        return [{"name": "many", "type": "dir"}] + [
            {"name": "many/f%07d" % i, "data": b""} for i in range(count)]
    die("unknown layer kind " + kind)


# ---------------------------------------------------------------- the gzip bomb

def _gf2_times(mat, vec):
    s = 0
    i = 0
    while vec:
        if vec & 1:
            s ^= mat[i]
        vec >>= 1
        i += 1
    return s


def _gf2_square(mat):
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_zeros(crc, n):
    """crc32 of (data whose crc32 is `crc`) followed by n zero bytes, in O(log n): zlib's
    crc32_combine operator, which appending zeros is (python's zlib does not expose it)."""
    if n <= 0:
        return crc
    odd = [0xEDB88320] + [1 << i for i in range(31)]  # operator for one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    crc ^= 0xFFFFFFFF  # pre/post conditioning, as crc32_combine(crc1, crc(zeros)) works out
    while True:
        even = _gf2_square(odd)  # first pass: one zero byte
        if n & 1:
            crc = _gf2_times(even, crc)
        n >>= 1
        if not n:
            break
        odd = _gf2_square(even)
        if n & 1:
            crc = _gf2_times(odd, crc)
        n >>= 1
        if not n:
            break
    return crc ^ 0xFFFFFFFF


def write_bomb(out, name, size, mtime, fake_diffid):
    """A .tar.gz holding one regular file of `size` zero bytes. The deflate stream is built from
    independent segments (each from a fresh raw compressor, ended by a full flush, so none refers
    back to another): the tar header, one precompressed 1 MiB-of-zeros segment written
    size/1MiB times, then the tail. So writing costs ~size/1000 bytes of I/O; only the sha256
    (the diff_id) walks the full uncompressed size."""
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime, ti.uname, ti.gname = size, 0o644, mtime, "", ""
    head = ti.tobuf(format=tarfile.PAX_FORMAT)  # PAX `size` record when size >= 8 GiB
    pad = (-size) % 512
    tail = bytes(pad) + bytes(1024)  # end of archive: two zero blocks
    tail += bytes((-(len(head) + size + len(tail))) % tarfile.RECORDSIZE)

    def segment(data, final):
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)

    zeros = bytes(CHUNK)
    zseg = segment(zeros, False)
    nfull, rest = divmod(size, CHUNK)
    sha = hashlib.sha256(head)
    crc = zlib.crc32(head)
    total = len(head) + size + len(tail)
    with open(out, "wb") as f:
        # gzip member header: magic, deflate, no flags, mtime 0, xfl 2 (max compression), OS 255
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        f.write(segment(head, False))
        for _ in range(nfull):
            f.write(zseg)
            if not fake_diffid:
                sha.update(zeros)
        if rest:
            f.write(segment(bytes(rest), False))
            if not fake_diffid:
                sha.update(bytes(rest))
        f.write(segment(tail, True))
        crc = crc32_zeros(crc, size)
        crc = zlib.crc32(tail, crc)
        f.write(struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF))
    sha.update(tail)
    diff_id = "sha256:" + (hashlib.sha256(b"fake").hexdigest() if fake_diffid else sha.hexdigest())
    return diff_id, total


def cmd_layer(a):
    info = {"path": a.file, "kind": a.kind}
    if a.kind == "bomb":
        if a.compression not in (None, "gzip"):
            die("bomb is gzip only")
        diff_id, usize = write_bomb(a.file, "bomb-" + a.token, a.size, a.mtime, a.fake_diffid)
        info.update(diff_id=diff_id, uncompressed_size=usize, entries=1,
                    declared_file_size=a.size, diff_id_fake=a.fake_diffid)
    else:
        entries = special_entries(a.kind, a.token, a.count)
        comp = a.compression or "none"
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(a.file))) as td:
            raw = os.path.join(td, "layer.tar")
            tar_entries(raw, entries, a.mtime)
            info.update(diff_id=sha256_file(raw), uncompressed_size=os.path.getsize(raw),
                        entries=len(entries))
            compress_file(raw, a.file, comp)
    with open(a.file + ".diffid", "w") as f:
        f.write(info["diff_id"] + "\n")
    info.update(digest=sha256_file(a.file), size=os.path.getsize(a.file))
    print(json.dumps(info, indent=1))


# ---------------------------------------------------------------- images


class Blobs:
    """Content-addressed blob store: an OCI layout's blobs/sha256, or a scratch dir."""

    def __init__(self, root):
        self.dir = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.dir, exist_ok=True)

    def put_bytes(self, data):
        d = hashlib.sha256(data).hexdigest()
        p = os.path.join(self.dir, d)
        if not os.path.exists(p):
            with open(p + ".tmp", "wb") as f:
                f.write(data)
            os.rename(p + ".tmp", p)
        return "sha256:" + d, len(data)

    def put_file(self, path):
        """Moves path into the store (it is a temp file of ours)."""
        d = sha256_file(path)
        dst = os.path.join(self.dir, d.split(":")[1])
        size = os.path.getsize(path)
        if os.path.exists(dst):
            os.unlink(path)
        else:
            shutil.move(path, dst)
        return d, size

    def path(self, digest):
        return os.path.join(self.dir, digest.split(":")[1])


def canon(obj):
    """JSON bytes for a manifest/config: sorted keys, no spaces, so digests are stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build_layer(src, a, blobs, tmp):
    """Returns the layer descriptor dict (+diff_id, uncompressed path when we made one)."""
    if os.path.isdir(src):
        raw = os.path.join(tmp, "dir.tar")
        tar_dir(src, raw, a.mtime, a.keep_owner)
        comp_in = "none"
    elif os.path.isfile(src):
        raw = src
        comp_in = sniff(src)
    else:
        die("--layer %s: no such file or directory" % src)
    if comp_in == "none":
        diff_id = sha256_file(raw)
        comp = a.compression
        out = os.path.join(tmp, "layer.blob")
        compress_file(raw, out, comp)
        digest, size = blobs.put_file(out)
    else:
        comp = comp_in
        side = src + ".diffid"
        if os.path.exists(side):
            diff_id = open(side).read().strip()
        else:
            h = hashlib.sha256()
            for b in decompress_stream(src, comp_in):
                h.update(b)
            diff_id = "sha256:" + h.hexdigest()
        cp = os.path.join(tmp, "layer.blob")
        shutil.copyfile(src, cp)
        digest, size = blobs.put_file(cp)
    if comp not in MT[a.format]:
        die("%s compression has no %s media type (use --format oci)" % (comp, a.format))
    return {"mediaType": MT[a.format][comp], "digest": digest, "size": size, "diff_id": diff_id,
            "comp": comp}


def parse_argv(s):
    if s is None:
        return None
    try:
        v = json.loads(s)
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
    except ValueError:
        pass
    return shlex.split(s)


def make_config(a, layers, arch, variant):
    cfg = {}
    if a.env:
        cfg["Env"] = list(a.env)
    if a.entrypoint is not None:
        cfg["Entrypoint"] = parse_argv(a.entrypoint)
    if a.cmd is not None:
        cfg["Cmd"] = parse_argv(a.cmd)
    if a.workdir:
        cfg["WorkingDir"] = a.workdir
    if a.user:
        cfg["User"] = a.user
    if a.expose:
        cfg["ExposedPorts"] = {p if "/" in p else p + "/tcp": {} for p in a.expose}
    if a.label:
        cfg["Labels"] = dict(kv.split("=", 1) for kv in a.label)
    img = {
        "architecture": arch,
        "os": a.os,
        "created": rfc3339(a.mtime),
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
        "history": [{"created": rfc3339(a.mtime), "created_by": "mkimage.py layer %d" % i}
                    for i in range(len(layers))],
    }
    if variant:
        img["variant"] = variant
    return img


def build_image(a, layer_srcs, blobs, tmp, arch, variant):
    """Stores layers, config and manifest; returns (manifest descriptor, summary)."""
    layers = [build_layer(s, a, blobs, tmp) for s in layer_srcs]
    cfg = make_config(a, layers, arch, variant)
    cdig, csize = blobs.put_bytes(canon(cfg))
    m = {
        "schemaVersion": 2,
        "mediaType": MT[a.format]["manifest"],
        "config": {"mediaType": MT[a.format]["config"], "digest": cdig, "size": csize},
        "layers": [{k: l[k] for k in ("mediaType", "digest", "size")} for l in layers],
    }
    mdig, msize = blobs.put_bytes(canon(m))
    plat = {"architecture": arch, "os": a.os}
    if variant:
        plat["variant"] = variant
    desc = {"mediaType": m["mediaType"], "digest": mdig, "size": msize, "platform": plat}
    summary = {"digest": mdig, "config": cdig, "platform": "/".join(
        [a.os, arch] + ([variant] if variant else [])),
        "layers": [{k: l[k] for k in ("digest", "diff_id", "size", "mediaType")} for l in layers]}
    return desc, summary, layers, cfg


def layer_srcs(a, tmp):
    if a.layer:
        return a.layer
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty, exist_ok=True)
    return [empty]


def cmd_layout(a):
    os.makedirs(a.dir, exist_ok=True)
    blobs = Blobs(a.dir)
    with tempfile.TemporaryDirectory(dir=a.dir, prefix=".tmp") as tmp:
        desc, summary, _, _ = build_image(a, layer_srcs(a, tmp), blobs, tmp, a.arch, a.variant)
        out = dict(summary, tag=a.tag, mediaType=desc["mediaType"],
                   manifests={summary["platform"]: desc["digest"]})
        if a.multiarch:
            if a.arch == "arm64":
                die("--multiarch adds the arm64 image itself; use another --arch")
            adir = os.path.join(tmp, "arm64")
            os.makedirs(adir)
            with open(os.path.join(adir, "arch"), "w") as f:
                f.write("arm64\n")
            adesc, asum, _, _ = build_image(a, [adir], blobs, tmp, "arm64", "v8")
            idx = {"schemaVersion": 2, "mediaType": MT[a.format]["index"],
                   "manifests": [desc, adesc]}
            idig, isize = blobs.put_bytes(canon(idx))
            top = {"mediaType": idx["mediaType"], "digest": idig, "size": isize}
            out.update(digest=idig, mediaType=idx["mediaType"],
                       manifests={summary["platform"]: desc["digest"],
                                  asum["platform"]: adesc["digest"]},
                       arm64=asum)
        else:
            top = {k: desc[k] for k in ("mediaType", "digest", "size")}
    top["annotations"] = {REF_NAME: a.tag}
    ipath = os.path.join(a.dir, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(ipath):
        with open(ipath) as f:
            index = json.load(f)
    index["manifests"] = [m for m in index.get("manifests", [])
                          if m.get("annotations", {}).get(REF_NAME) != a.tag] + [top]
    index["manifests"].sort(key=lambda m: m["annotations"][REF_NAME])
    index["mediaType"] = MT["oci"]["index"]
    with open(os.path.join(a.dir, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(ipath + ".tmp", "wb") as f:
        f.write(canon(index))
    os.rename(ipath + ".tmp", ipath)
    print(json.dumps(out, indent=1))


def add_file(tf, name, path=None, data=None, mtime=0, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.mode, ti.uname, ti.gname = mtime, mode, "", ""
    if data is not None:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        ti.size = os.path.getsize(path)
        with open(path, "rb") as f:
            tf.addfile(ti, f)


def cmd_docker_archive(a):
    if ":" not in a.tag.rsplit("/", 1)[-1]:
        die("--tag must be NAME:TAG for docker-archive")
    a.compression = "none"  # docker save layers are plain tars
    a.format = "docker"
    outdir = os.path.dirname(os.path.abspath(a.file))
    with tempfile.TemporaryDirectory(dir=outdir, prefix=".mkimage") as tmp:
        blobs = Blobs(tmp)
        _, summary, layers, cfg = build_image(a, layer_srcs(a, tmp), blobs, tmp, a.arch, a.variant)
        chex = summary["config"].split(":")[1]
        with tarfile.open(a.file + ".tmp", "w", format=tarfile.PAX_FORMAT) as tf:
            names = []
            seen = set()
            for l in layers:
                lid = l["diff_id"].split(":")[1]
                names.append(lid + "/layer.tar")
                if lid in seen:
                    continue
                seen.add(lid)
                d = tarfile.TarInfo(lid)
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, a.mtime
                tf.addfile(d)
                add_file(tf, lid + "/VERSION", data=b"1.0", mtime=a.mtime)
                if l["comp"] == "none":
                    add_file(tf, lid + "/layer.tar", path=blobs.path(l["digest"]), mtime=a.mtime)
                else:  # a compressed --layer file: docker save layers are plain tars
                    raw = os.path.join(tmp, "raw.tar")
                    with open(raw, "wb") as f:
                        for b in decompress_stream(blobs.path(l["digest"]), l["comp"]):
                            f.write(b)
                    add_file(tf, lid + "/layer.tar", path=raw, mtime=a.mtime)
                    os.unlink(raw)
            add_file(tf, chex + ".json", data=canon(cfg), mtime=a.mtime)
            repo, tag = a.tag.rsplit(":", 1)
            man = [{"Config": chex + ".json", "RepoTags": [a.tag], "Layers": names}]
            add_file(tf, "manifest.json", data=canon(man), mtime=a.mtime)
            last = names[-1].split("/")[0]
            add_file(tf, "repositories", data=canon({repo: {tag: last}}), mtime=a.mtime)
        os.rename(a.file + ".tmp", a.file)
    print(json.dumps(dict(summary, tag=a.tag, file=a.file), indent=1))


def cmd_oci_archive(a):
    if not os.path.exists(os.path.join(a.layoutdir, "oci-layout")):
        die(a.layoutdir + " is not an OCI layout")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(a.file))) as tmp:
        t = os.path.join(tmp, "a.tar")
        tar_dir(a.layoutdir, t, a.mtime, False)
        os.rename(t, a.file)
    print(json.dumps({"file": a.file, "digest": sha256_file(a.file)}))


def cmd_dir(a):
    """Copies what TAG names in an OCI layout into skopeo's dir: transport layout: version,
    manifest.json (the tagged manifest or index), <hex>.manifest.json per index entry, and every
    config/layer blob as <hex>. Skopeo's oci: transport (1.9) skips index.json entries with
    Docker media types; dir: takes any manifest type and keeps the bytes (so the digests)."""
    with open(os.path.join(a.layoutdir, "index.json")) as f:
        index = json.load(f)
    top = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == a.tag]
    if not top:
        die("no tag %s in %s" % (a.tag, a.layoutdir))
    src = Blobs(a.layoutdir)
    os.makedirs(a.outdir, exist_ok=True)

    def copy_blob(digest, name=None):
        shutil.copyfile(src.path(digest), os.path.join(a.outdir, name or digest.split(":")[1]))

    def copy_manifest(digest, name):
        copy_blob(digest, name)
        with open(src.path(digest)) as f:
            m = json.load(f)
        for d in [m["config"]] + m["layers"]:
            copy_blob(d["digest"])

    tdesc = top[0]
    if tdesc["mediaType"] in (MT["oci"]["index"], MT["docker"]["index"]):
        copy_blob(tdesc["digest"], "manifest.json")
        with open(src.path(tdesc["digest"])) as f:
            for m in json.load(f)["manifests"]:
                copy_manifest(m["digest"], m["digest"].split(":")[1] + ".manifest.json")
    else:
        copy_manifest(tdesc["digest"], "manifest.json")
    with open(os.path.join(a.outdir, "version"), "w") as f:
        f.write("Directory Transport Version: 1.1\n")
    print(json.dumps({"dir": a.outdir, "digest": tdesc["digest"], "mediaType": tdesc["mediaType"]}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring (head of this file) for details.")
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mtime", type=int, default=default_mtime())
    img = argparse.ArgumentParser(add_help=False)
    img.add_argument("--tag", required=True)
    img.add_argument("--layer", action="append", default=[])
    img.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    img.add_argument("--format", choices=["oci", "docker"], default="oci")
    img.add_argument("--env", action="append", default=[])
    img.add_argument("--entrypoint")
    img.add_argument("--cmd")
    img.add_argument("--workdir")
    img.add_argument("--user")
    img.add_argument("--expose", action="append", default=[])
    img.add_argument("--label", action="append", default=[])
    img.add_argument("--arch", default="amd64")
    img.add_argument("--os", default="linux")
    img.add_argument("--variant")
    img.add_argument("--keep-owner", action="store_true")

    s = sub.add_parser("layout", parents=[common, img], help="write/extend an OCI image layout")
    s.add_argument("dir")
    s.add_argument("--multiarch", action="store_true")
    s.set_defaults(fn=cmd_layout)

    s = sub.add_parser("docker-archive", parents=[common, img], help="write a docker save tar")
    s.add_argument("file")
    s.set_defaults(fn=cmd_docker_archive)

    s = sub.add_parser("oci-archive", parents=[common], help="tar an OCI layout")
    s.add_argument("layoutdir")
    s.add_argument("file")
    s.set_defaults(fn=cmd_oci_archive)

    s = sub.add_parser("dir", help="copy a layout's tag into skopeo's dir: format")
    s.add_argument("layoutdir")
    s.add_argument("tag")
    s.add_argument("outdir")
    s.set_defaults(fn=cmd_dir)

    s = sub.add_parser("layer", parents=[common], help="write a special layer tar")
    s.add_argument("kind", choices=["features-lower", "features", "dotdot", "absolute",
                                    "symlink-escape", "hardlink-host", "hardlink-dotdot",
                                    "bomb", "many-entries"])
    s.add_argument("file")
    s.add_argument("--token", default="sbxtest")
    s.add_argument("--count", type=int, default=10000)
    s.add_argument("--size", type=int, default=8 << 30)
    s.add_argument("--compression", choices=["gzip", "zstd", "none"])
    s.add_argument("--fake-diffid", action="store_true")
    s.set_defaults(fn=cmd_layer)

    a = p.parse_args()
    if getattr(a, "compression", None) == "zstd" and not have_zstd():
        print("mkimage: skipping: --compression zstd needs the `zstd` command", file=sys.stderr)
        sys.exit(2)
    if a.cmd in ("layout", "docker-archive") and a.format == "docker" and a.compression == "zstd":
        die("zstd layers need --format oci (Docker schema 2 has no zstd media type)")
    a.fn(a)


if __name__ == "__main__":
    main()
