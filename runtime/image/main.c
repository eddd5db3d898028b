/* sbx-image: the image verbs of sbxrun (`sbxrun pull|images|rmi|load|image ...` exec this
 * program, so that sbxrun itself stays a small static binary without libcurl, libarchive or
 * OpenSSL). Usable directly too: `sbx-image pull alpine`.
 *
 * Exit status: 0 done; 1 failed (message on stderr); 2 bad usage; 3 image not found (no such
 * tag or repository, or not in the store); 4 registry authentication failed. */
#include "image.h"
#include "utils.h"

#include <getopt.h>
#include <sys/file.h>
#include <time.h>

enum { EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_NOT_FOUND = 3, EXIT_AUTH = 4 };

static void
die_err(sbx_error_t *err)
{
    fprintf(stderr, "sbxrun: %s\n", err && *err ? (*err)->msg : "failed");
    sbx_error_release(err);
}

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: sbxrun pull [--creds USER:PASS] [--platform OS/ARCH[/VARIANT]] [-q]\n"
            "                   [--max-layer-size SIZE] REF\n"
            "       sbxrun images [--format table|json] [--digests]\n"
            "       sbxrun rmi REF...\n"
            "       sbxrun load [-q] [--max-layer-size SIZE] FILE\n"
            "                                        (docker save archive or OCI archive)\n"
            "       sbxrun image inspect REF | image prune | image ls\n\n"
            "OCI images live in $SBX_IMAGES/.oci (default "
            "/var/lib/sbx/images/.oci): each\n"
            "layer unpacked once and shared by every image that has it. REF is any image\n"
            "reference: alpine, python:3.12-slim, docker.io/library/alpine:3.20,\n"
            "host:5000/team/app@sha256:... Short names mean docker.io/library/NAME.\n\n"
            "Registries: /etc/sbx/registries.json (or $SBX_REGISTRIES_CONF) lists mirrors,\n"
            "insecure (plain HTTP) registries and the certs directory (certs.d/HOST:PORT/ca.crt,\n"
            "default /etc/sbx/certs.d). Credentials: --creds, else $REGISTRY_AUTH_FILE, else\n"
            "~/.docker/config.json. --max-layer-size bounds one layer's unpacked size (default\n"
            "64G): a larger layer (or a decompression bomb) stops the pull, nothing is kept.\n\n"
            "Exit status: 0 done; 1 failed; 2 bad usage; 3 image not found; 4 registry\n"
            "authentication failed.\n");
}

/* ---------- progress ---------- */

struct progress {
    bool tty, quiet;
    int last_layer;
    const char *last_state;
    int64_t last_ms;
};

static void
human(uint64_t b, char *out, size_t n)
{
    if (b >= (1ULL << 30))
        snprintf(out, n, "%.2f GiB", b / 1073741824.0);
    else if (b >= (1ULL << 20))
        snprintf(out, n, "%.1f MiB", b / 1048576.0);
    else if (b >= 1024)
        snprintf(out, n, "%.1f KiB", b / 1024.0);
    else
        snprintf(out, n, "%llu B", (unsigned long long)b);
}

static void
on_progress(int layer, int n, const char *digest, uint64_t done, uint64_t total, const char *state,
            void *data)
{
    struct progress *p = data;
    if (p->quiet || layer < 0)
        return;
    char d[32], t[32];
    human(done, d, sizeof(d));
    human(total, t, sizeof(t));
    const char *short_digest = digest ? digest + 7 : "";
    bool final = strcmp(state, "done") == 0 || strcmp(state, "present") == 0;
    if (p->tty) {
        int64_t now = sbx_monotonic_ms();
        /* Redraw at most 10 times a second, and always on a state change. */
        if (!final && p->last_layer == layer && p->last_state == state && now - p->last_ms < 100)
            return;
        p->last_ms = now;
        int width = 30, fill = total ? (int)(done * width / total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r\033[Klayer %d/%d %.12s [%s] %s / %s %s", layer + 1, n, short_digest,
                bar, d, t, state);
        if (final)
            fputc('\n', stderr);
    } else if (p->last_layer != layer || p->last_state != state) {
        if (strcmp(state, "downloading") != 0 || done == 0 || p->last_layer != layer)
            fprintf(stderr, "layer %d/%d %.12s: %s (%s)\n", layer + 1, n, short_digest, state, t);
    }
    p->last_layer = layer;
    p->last_state = state;
}

static int
exit_for(enum sbx_pull_error k)
{
    return k == SBX_PULL_NOT_FOUND ? EXIT_NOT_FOUND : k == SBX_PULL_AUTH ? EXIT_AUTH : EXIT_FAIL;
}

/* Pulls and loads create the store; rmi and prune only lock one that exists (create: false),
 * so that they never leave an empty store behind. */
static int
gc_lock(int how, bool create)
{
    struct sbx_store st;
    sbx_error_t err = NULL;
    if (sbx_store_open(NULL, create, &st, &err) < 0) {
        if (create)
            die_err(&err);
        sbx_error_release(&err);
        return -ENOENT;
    }
    int fd = sbx_store_gc_lock(&st, how, &err);
    sbx_store_close(&st);
    if (fd < 0)
        die_err(&err);
    return fd;
}

static int
parse_max(const char *s, uint64_t *out)
{
    int64_t v;
    if (parse_size(s, &v) < 0 || v < 1024) {
        fprintf(stderr, "sbxrun: invalid --max-layer-size `%s`: want a size like 512M or 8G\n", s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int
parse_creds(const char *s, struct sbx_registry_opts *ro)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL || colon == s) {
        fprintf(stderr, "sbxrun: invalid --creds: want USER:PASS\n");
        return -1;
    }
    ro->username = strndup(s, (size_t)(colon - s));
    ro->password = colon + 1;
    return 0;
}

static int
cmd_pull(int argc, char **argv)
{
    static const struct option opts[] = {{"creds", required_argument, NULL, 'c'},
                                         {"platform", required_argument, NULL, 'p'},
                                         {"max-layer-size", required_argument, NULL, 'm'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct progress pr = {.tty = isatty(2), .last_layer = -2};
    struct sbx_pull_opts o = {.progress = {on_progress, &pr}};
    int c;
    while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (parse_creds(optarg, &o.reg) < 0)
                return EXIT_USAGE;
            break;
        case 'p': o.platform = optarg; break;
        case 'm':
            if (parse_max(optarg, &o.max_layer_bytes) < 0)
                return EXIT_USAGE;
            break;
        case 'q': pr.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "sbxrun: pull takes one image reference\n");
        return EXIT_USAGE;
    }
    cleanup_close int lock = gc_lock(LOCK_SH, true);
    if (lock < 0)
        return EXIT_FAIL;
    sbx_error_t err = NULL;
    struct sbx_pull_result res;
    int64_t t0 = sbx_monotonic_ms();
    int r = sbx_image_pull(argv[optind], &o, &res, &err);
    /* libsbx says the registry wants credentials; here they are given with an option. */
    if (r < 0 && res.kind == SBX_PULL_AUTH && !o.reg.username)
        sbx_error_wrap(&err, "without --creds");
    free((char *)o.reg.username);
    if (r < 0) {
        int code = exit_for(res.kind);
        die_err(&err);
        sbx_pull_result_free(&res);
        return code;
    }
    char b[32];
    human(res.bytes_fetched, b, sizeof(b));
    if (!pr.quiet)
        fprintf(stderr, "%s: %d layers, %d fetched (%s) in %.1f s\n", res.ref, res.layers,
                res.layers_fetched, b, (sbx_monotonic_ms() - t0) / 1000.0);
    printf("%s\n", res.digest);
    sbx_pull_result_free(&res);
    return 0;
}

static int
cmd_load(int argc, char **argv)
{
    struct progress pr = {.tty = isatty(2), .last_layer = -2};
    struct sbx_pull_opts o = {.progress = {on_progress, &pr}};
    int c;
    static const struct option opts[] = {{"input", required_argument, NULL, 'i'},
                                         {"max-layer-size", required_argument, NULL, 'm'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL;
    while ((c = getopt_long(argc, argv, "+i:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'i': file = optarg; break;
        case 'm':
            if (parse_max(optarg, &o.max_layer_bytes) < 0)
                return EXIT_USAGE;
            break;
        case 'q': pr.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (file == NULL && optind == argc - 1)
        file = argv[optind];
    else if (optind != argc) {
        fprintf(stderr, "sbxrun: load takes one archive\n");
        return EXIT_USAGE;
    }
    if (file == NULL) {
        fprintf(stderr, "sbxrun: load: name the archive (sbxrun load FILE)\n");
        return EXIT_USAGE;
    }
    cleanup_close int lock = gc_lock(LOCK_SH, true);
    if (lock < 0)
        return EXIT_FAIL;
    sbx_error_t err = NULL;
    cleanup_strv char **refs = NULL;
    if (sbx_image_load(file, &o, &refs, &err) < 0) {
        die_err(&err);
        return EXIT_FAIL;
    }
    for (char **r = refs; r && *r; r++)
        printf("Loaded image: %s\n", *r);
    return 0;
}

/* refs grouped by digest, for listing and removal */
static json_t *
open_refs(struct sbx_store *st, sbx_error_t *err)
{
    if (sbx_store_open(NULL, false, st, err) < 0) {
        if (errno == ENOENT || (err && *err && strstr((*err)->msg, "No such file"))) {
            sbx_error_release(err);
            return json_object(); /* no store yet: no images */
        }
        return NULL;
    }
    return sbx_store_refs(st, err);
}

static int
cmd_images(int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"digests", no_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool json_out = false, digests = false;
    int c;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (strcmp(optarg, "json") && strcmp(optarg, "table")) {
                fprintf(stderr, "sbxrun: invalid --format `%s` (want table or json)\n", optarg);
                return EXIT_USAGE;
            }
            json_out = strcmp(optarg, "json") == 0;
            break;
        case 'd': digests = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    sbx_error_t err = NULL;
    struct sbx_store st = {.dirfd = -1};
    json_t *refs = open_refs(&st, &err);
    if (refs == NULL) {
        die_err(&err);
        return EXIT_FAIL;
    }
    json_t *out = st.dirfd >= 0 ? sbx_store_list(&st) : json_array();
    json_t *v;
    if (json_out) {
        char *s = json_dumps(out, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
    } else {
        printf("%-50s %-*s %10s %s\n", "REFERENCE", digests ? 71 : 12, "IMAGE ID", "SIZE",
               "LAYERS");
        size_t i;
        json_array_foreach (out, i, v) {
            char sz[32];
            human((uint64_t)json_integer_value(json_object_get(v, "size")), sz, sizeof(sz));
            const char *d = json_string_value(json_object_get(v, "digest"));
            printf("%-50s %-*.*s %10s %zu\n", json_string_value(json_object_get(v, "name")),
                   digests ? 71 : 12, digests ? 71 : 12, digests ? d : d + 7, sz,
                   json_array_size(json_object_get(v, "layers")));
        }
    }
    json_decref(out);
    json_decref(refs);
    sbx_store_close(&st);
    return 0;
}

static int
cmd_rmi(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    cleanup_close int lock = gc_lock(LOCK_EX, false);
    if (lock == -ENOENT) {
        for (int i = 1; i < argc; i++)
            fprintf(stderr, "sbxrun: image `%s` is not in the store (no image has been pulled)\n",
                    argv[i]);
        return EXIT_NOT_FOUND;
    }
    if (lock < 0)
        return EXIT_FAIL;
    sbx_error_t err = NULL;
    struct sbx_store st;
    if (sbx_store_open(NULL, false, &st, &err) < 0) {
        die_err(&err);
        return EXIT_NOT_FOUND;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        cleanup_strv char **untagged = NULL;
        int r = sbx_store_remove(&st, argv[i], &untagged, &err);
        for (char **u = untagged; u && *u; u++)
            printf("Untagged: %s\n", *u);
        if (r < 0) {
            rc = r == -ENOENT ? EXIT_NOT_FOUND : EXIT_FAIL;
            die_err(&err);
        }
    }
    sbx_store_gc(&st, stdout);
    sbx_store_close(&st);
    return rc;
}

static int
cmd_image(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return cmd_images(argc - 1, argv + 1);
    if (strcmp(sub, "rm") == 0)
        return cmd_rmi(argc - 1, argv + 1);
    if (strcmp(sub, "pull") == 0)
        return cmd_pull(argc - 1, argv + 1);
    if (strcmp(sub, "load") == 0)
        return cmd_load(argc - 1, argv + 1);
    if (strcmp(sub, "prune") == 0) {
        cleanup_close int lock = gc_lock(LOCK_EX, false);
        if (lock == -ENOENT) {
            printf("nothing to prune\n");
            return 0;
        }
        if (lock < 0)
            return EXIT_FAIL;
        sbx_error_t err = NULL;
        struct sbx_store st;
        if (sbx_store_open(NULL, false, &st, &err) < 0) {
            sbx_error_release(&err);
            printf("nothing to prune\n");
            return 0;
        }
        int n = sbx_store_gc(&st, stdout);
        sbx_store_close(&st);
        printf("%d removed\n", n < 0 ? 0 : n);
        return n < 0 ? EXIT_FAIL : 0;
    }
    if (strcmp(sub, "inspect") == 0 && argc == 3) {
        sbx_error_t err = NULL;
        struct sbx_store st;
        if (sbx_store_open(NULL, false, &st, &err) < 0) {
            die_err(&err);
            return EXIT_NOT_FOUND;
        }
        cleanup_free char *digest = NULL;
        json_t *rec = sbx_store_resolve(&st, argv[2], &digest, &err);
        sbx_store_close(&st);
        if (rec == NULL) {
            die_err(&err);
            return EXIT_NOT_FOUND;
        }
        char *s = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", s);
        free(s);
        json_decref(rec);
        return 0;
    }
    fprintf(stderr,
            "sbxrun: unknown image command `%s` (ls, pull, load, rm, prune, inspect "
            "REF)\n",
            sub);
    return EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    /* Called as `sbx-image VERB ...` or by sbxrun with the same arguments. */
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } verbs[] = {{"pull", cmd_pull},
                 {"images", cmd_images},
                 {"rmi", cmd_rmi},
                 {"load", cmd_load},
                 {"image", cmd_image}};
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        if (strcmp(argv[1], verbs[i].name) == 0) {
            optind = 0;
            return verbs[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "sbxrun: unknown image command `%s`\n", argv[1]);
    return EXIT_USAGE;
}
