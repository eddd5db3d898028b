/* One builder for linux.resources, and the checks and merge of an update (see resources.h). */
#include "resources.h"
#include "utils.h"

#include <inttypes.h>

static void
set_int(json_t *o, const char *key, int64_t v)
{
    if (v >= 0)
        json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* o if it has members, else NULL (o released). */
static json_t *
nonempty(json_t *o)
{
    if (json_object_size(o) > 0)
        return o;
    json_decref(o);
    return NULL;
}

static json_t *
memory_section(const struct sbx_limits *l)
{
    json_t *mem = json_object();
    set_int(mem, "limit", l->memory);
    /* Swap is off unless asked for: memory+swap equal to memory means no swap. */
    set_int(mem, "swap", l->memory_swap >= 0 ? l->memory_swap : l->memory);
    set_int(mem, "reservation", l->memory_reservation);
    return nonempty(mem);
}

static json_t *
cpu_section(const struct sbx_limits *l)
{
    json_t *cpu = json_object();
    set_int(cpu, "shares", l->cpu_shares);
    if (l->cpu_milli >= 0) {
        set_int(cpu, "quota", l->cpu_milli * 100);
        set_int(cpu, "period", 100000);
    }
    set_int(cpu, "quota", l->cpu_quota);
    set_int(cpu, "period", l->cpu_period);
    if (l->cpuset_cpus)
        json_object_set_new(cpu, "cpus", json_string(l->cpuset_cpus));
    if (l->cpuset_mems)
        json_object_set_new(cpu, "mems", json_string(l->cpuset_mems));
    return nonempty(cpu);
}

json_t *
sbx_limits_resources(const struct sbx_limits *l, sbx_error_t *err)
{
    if (l->cpu_milli >= 0 && (l->cpu_quota >= 0 || l->cpu_period >= 0)) {
        sbx_make_error(err, 0,
                       "CPU limit given twice: as %" PRId64 " milli-CPUs and as a "
                       "quota/period",
                       l->cpu_milli);
        return NULL;
    }
    json_t *res = json_object(), *s;
    if ((s = memory_section(l)))
        json_object_set_new(res, "memory", s);
    if ((s = cpu_section(l)))
        json_object_set_new(res, "cpu", s);
    if (l->cpu_weight >= 0) {
        char w[24];
        snprintf(w, sizeof(w), "%" PRId64, l->cpu_weight);
        json_object_set_new(res, "unified", json_pack("{s:s}", "cpu.weight", w));
    }
    if (l->pids >= 0)
        json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)l->pids));
    if (l->io_weight >= 0)
        json_object_set_new(res, "blockIO", json_pack("{s:I}", "weight", (json_int_t)l->io_weight));
    return res;
}

int
sbx_config_set_limits(json_t *cfg, const struct sbx_limits *l, sbx_error_t *err)
{
    if (!json_is_object(cfg))
        return sbx_make_error(err, 0, "config: top level must be a JSON object");
    json_t *add = sbx_limits_resources(l, err);
    if (add == NULL)
        return -1;
    if (json_object_size(add) == 0) {
        json_decref(add);
        return 0;
    }
    json_t *lx = json_object_get(cfg, "linux"), *res = json_object_get(lx, "resources");
    if ((lx && !json_is_object(lx)) || (res && !json_is_object(res))) {
        json_decref(add);
        return sbx_make_error(err, 0, "config: `linux%s` must be an object",
                              res ? ".resources" : "");
    }
    if (lx == NULL)
        json_object_set_new(cfg, "linux", lx = json_object());
    if (res == NULL)
        json_object_set_new(lx, "resources", res = json_object());
    const char *key;
    json_t *v;
    json_object_foreach (add, key, v) {
        json_t *have = json_object_get(res, key);
        if (strcmp(key, "unified") == 0 && json_is_object(have))
            json_object_update(have, v);
        else
            json_object_set(res, key, v);
    }
    json_decref(add);
    return 0;
}

/* ---- checking an update ---- */

/* A value that asks for nothing: null, false, 0, "", [] or {}. */
static bool
is_empty(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE: return true;
    case JSON_INTEGER: return json_integer_value(v) == 0;
    case JSON_REAL: return json_real_value(v) == 0;
    case JSON_STRING: return json_string_length(v) == 0;
    case JSON_ARRAY: return json_array_size(v) == 0;
    case JSON_OBJECT: return json_object_size(v) == 0;
    default: return false;
    }
}

/* The value as JSON text, for messages; caller frees. */
static char *
shown(json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (s && strlen(s) > 64)
        strcpy(s + 60, "...");
    return s ? s : xstrdup("?");
}

enum kind { K_BYTES, K_INT, K_CPUSET };

struct field {
    const char *section, *key;
    enum kind kind;
    int64_t min, max;
    const char *what;    /* said after the value when it is out of range */
    bool zero_unchanged; /* 0 means "unchanged" (runc); else 0 is checked like any value */
};

static const struct field fields[] = {
    {"memory", "limit", K_BYTES, 1, INT64_MAX, "a memory limit in bytes", true},
    {"memory", "swap", K_BYTES, 1, INT64_MAX, "a memory+swap limit in bytes", true},
    {"memory", "reservation", K_BYTES, 1, INT64_MAX, "a memory reservation in bytes", true},
    {"cpu", "shares", K_INT, 2, 262144, "CPU shares 2-262144", true},
    {"cpu", "quota", K_INT, 1000, INT64_MAX, "a CFS quota of at least 1000 usec", true},
    {"cpu", "period", K_INT, 1000, 1000000, "a CFS period of 1000-1000000 usec", true},
    {"cpu", "cpus", K_CPUSET, 0, 0, "a CPU list like 0-3,6", true},
    {"cpu", "mems", K_CPUSET, 0, 0, "a memory node list like 0,1", true},
    /* OCI reads a pids limit of 0 as "unlimited". */
    {"pids", "limit", K_INT, 1, INT64_MAX, "a pids limit of at least 1", false},
    {"blockIO", "weight", K_INT, 10, 1000, "a block IO weight 10-1000", true},
};

static const struct field *
find_field(const char *section, const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        if (!strcmp(fields[i].section, section) && !strcmp(fields[i].key, key))
            return &fields[i];
    return NULL;
}

/* One supported field: 1 when it changes something (its value then goes into the update), 0
 * when it asks for "unchanged". */
static int
check_field(const struct field *f, json_t *v, sbx_error_t *err)
{
    cleanup_free char *txt = shown(v);
    if (is_empty(v) && (f->zero_unchanged || json_is_null(v)))
        return 0;
    if (f->kind == K_CPUSET) {
        const char *s = json_string_value(v);
        if (s == NULL || strspn(s, "0123456789,-") != strlen(s))
            return sbx_make_error(err, 0, "%s.%s %s: want %s", f->section, f->key, txt, f->what);
        return 1;
    }
    if (!json_is_integer(v))
        return sbx_make_error(err, 0, "%s.%s %s: want an integer, %s", f->section, f->key, txt,
                              f->what);
    int64_t n = json_integer_value(v);
    if (n == -1 || (n == 0 && !f->zero_unchanged))
        return sbx_make_error(err, 0,
                              "%s.%s %s: sbx cannot lift a limit (\"unlimited\" is not "
                              "supported); want %s",
                              f->section, f->key, txt, f->what);
    if (n < f->min || n > f->max)
        return sbx_make_error(err, 0, "%s.%s %s: want %s", f->section, f->key, txt, f->what);
    return 1;
}

static int
refuse_unsupported(const char *section, const char *key, json_t *v, sbx_error_t *err)
{
    cleanup_free char *txt = shown(v);
    return sbx_make_error(err, 0, "%s%s%s %s: not supported by sbx", section, key ? "." : "",
                          key ? key : "", txt);
}

static int
check_unified(json_t *u, json_t *out, sbx_error_t *err)
{
    if (!json_is_object(u)) {
        cleanup_free char *txt = shown(u);
        return sbx_make_error(err, 0, "unified %s: want an object of strings", txt);
    }
    const char *key;
    json_t *v;
    json_object_foreach (u, key, v) {
        cleanup_free char *txt = shown(v);
        if (!json_is_string(v))
            return sbx_make_error(err, 0, "unified.%s %s: want a string", key, txt);
        if (strchr(key, '/') || key[0] == '.' || key[0] == '\0' || !strncmp(key, "cgroup.", 7))
            return sbx_make_error(err, 0, "unified: refusing key `%s`", key);
        if (json_string_length(v) == 0)
            continue;
        int64_t w;
        if (!strcmp(key, "cpu.weight") && parse_int64(json_string_value(v), 1, 10000, &w) < 0)
            return sbx_make_error(err, 0, "unified.cpu.weight %s: want a weight 1-10000", txt);
        json_object_set(out, key, v);
    }
    return 0;
}

static int
check_section(const char *name, json_t *sec, json_t *out, sbx_error_t *err)
{
    if (!json_is_object(sec)) {
        cleanup_free char *txt = shown(sec);
        return sbx_make_error(err, 0, "%s %s: want an object", name, txt);
    }
    const char *key;
    json_t *v;
    json_object_foreach (sec, key, v) {
        const struct field *f = find_field(name, key);
        int r;
        if (f == NULL) {
            /* checkBeforeUpdate is an instruction, not a limit: not recorded. */
            if (!strcmp(name, "memory") && !strcmp(key, "checkBeforeUpdate") &&
                (json_is_boolean(v) || json_is_null(v)))
                continue;
            if (is_empty(v))
                continue;
            return refuse_unsupported(name, key, v, err);
        }
        if ((r = check_field(f, v, err)) < 0)
            return r;
        if (r > 0)
            json_object_set(out, key, v);
    }
    return 0;
}

int
sbx_resources_check_update(json_t *update, json_t **out, sbx_error_t *err)
{
    *out = NULL;
    if (!json_is_object(update))
        return sbx_make_error(err, 0, "linux.resources must be a JSON object");
    json_t *norm = json_object();
    const char *name;
    json_t *sec;
    int r = 0;
    json_object_foreach (update, name, sec) {
        if (!strcmp(name, "devices") || json_is_null(sec))
            continue;
        bool known = !strcmp(name, "memory") || !strcmp(name, "cpu") || !strcmp(name, "pids") ||
                     !strcmp(name, "blockIO") || !strcmp(name, "unified");
        if (!known) {
            if (is_empty(sec))
                continue;
            r = refuse_unsupported(name, NULL, sec, err);
            break;
        }
        json_t *o = json_object();
        r = !strcmp(name, "unified") ? check_unified(sec, o, err)
                                     : check_section(name, sec, o, err);
        if (r < 0) {
            json_decref(o);
            break;
        }
        if (json_object_size(o) > 0)
            json_object_set_new(norm, name, o);
        else
            json_decref(o);
    }
    if (r < 0) {
        json_decref(norm);
        return r;
    }
    *out = norm;
    return 0;
}

/* ---- merging it into the record ---- */

static json_t *
section_of(json_t *res, const char *name)
{
    json_t *s = json_object_get(res, name);
    if (!json_is_object(s))
        json_object_set_new(res, name, s = json_object());
    return s;
}

static void
drop_key(json_t *res, const char *section, const char *key)
{
    json_t *s = json_object_get(res, section);
    json_object_del(s, key);
    if (json_is_object(s) && json_object_size(s) == 0)
        json_object_del(res, section);
}

static bool
has(json_t *res, const char *section, const char *key)
{
    return json_object_get(json_object_get(res, section), key) != NULL;
}

json_t *
sbx_resources_merge(json_t *old, json_t *update)
{
    json_t *m = json_is_object(old) ? json_deep_copy(old) : json_object();
    const char *name;
    json_t *sec;
    json_object_foreach (update, name, sec)
        json_object_update(section_of(m, name), sec);
    if (has(update, "memory", "limit") && !has(update, "memory", "swap"))
        json_object_set(section_of(m, "memory"), "swap",
                        json_object_get(json_object_get(update, "memory"), "limit"));
    if (has(update, "cpu", "shares") && !has(update, "unified", "cpu.weight"))
        drop_key(m, "unified", "cpu.weight");
    if (has(update, "unified", "cpu.weight") && !has(update, "cpu", "shares"))
        drop_key(m, "cpu", "shares");
    return m;
}

static void
pick_key(json_t *out, json_t *from, const char *section, const char *key)
{
    json_t *v = json_object_get(json_object_get(from, section), key);
    if (v)
        json_object_set(section_of(out, section), key, v);
}

json_t *
sbx_resources_pick(json_t *from, json_t *which)
{
    static const char *const partners[][3] = {
        {"memory", "limit", "swap"},
        {"memory", "swap", "limit"},
        {"cpu", "quota", "period"},
        {"cpu", "period", "quota"},
    };
    json_t *out = json_object();
    const char *name, *key;
    json_t *sec, *v;
    json_object_foreach (which, name, sec) {
        json_object_foreach (sec, key, v) {
            pick_key(out, from, name, key);
            for (size_t i = 0; i < ARRAY_SIZE(partners); i++)
                if (!strcmp(partners[i][0], name) && !strcmp(partners[i][1], key))
                    pick_key(out, from, name, partners[i][2]);
        }
    }
    return out;
}

int
sbx_resources_check_merged(json_t *merged, sbx_error_t *err)
{
    json_t *mem = json_object_get(merged, "memory");
    json_t *limit = json_object_get(mem, "limit"), *swap = json_object_get(mem, "swap");
    if (!json_is_integer(swap))
        return 0;
    if (!json_is_integer(limit))
        return sbx_make_error(err, 0,
                              "memory.swap %" JSON_INTEGER_FORMAT
                              ": a memory+swap limit needs a memory limit (memory.limit)",
                              json_integer_value(swap));
    if (json_integer_value(swap) < json_integer_value(limit))
        return sbx_make_error(err, 0,
                              "memory.swap %" JSON_INTEGER_FORMAT
                              " is below memory.limit %" JSON_INTEGER_FORMAT
                              " (it is memory+swap, so at least the memory limit)",
                              json_integer_value(swap), json_integer_value(limit));
    return 0;
}
