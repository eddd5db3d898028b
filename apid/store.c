/* The durable sandbox store: SQLite in WAL mode with synchronous=NORMAL (a committed state change
 * survives an apid crash; only an OS crash can lose the last transactions, and restart recovery
 * re-derives state from the processes anyway). The schema is versioned: migrations[i] moves the
 * database from version i to i+1 inside one transaction, so an interrupted upgrade is retried.
 * One connection is shared by every thread behind a mutex; statements are short. */
#include "apid.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <sys/stat.h>

struct apid_store {
    sqlite3 *db;
    pthread_mutex_t lock;
};

static const char *const migrations[APID_SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE sandboxes ("
    " id TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT, message TEXT,"
    " last_transition_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER,"
    " image TEXT NOT NULL, entrypoint TEXT NOT NULL, env TEXT NOT NULL, metadata TEXT NOT NULL,"
    " resource_limits TEXT NOT NULL, cpu_milli INTEGER, memory INTEGER, pids INTEGER,"
    " pid INTEGER NOT NULL DEFAULT 0, pid_start INTEGER NOT NULL DEFAULT 0,"
    " cgroup TEXT, token TEXT);"
    "CREATE TABLE state_history ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, sandbox_id TEXT NOT NULL, state TEXT NOT NULL,"
    " reason TEXT, message TEXT, at_ms INTEGER NOT NULL);",
    /* 1 -> 2: indexes for listing/expiry, the monitor process identity (restart recovery of a
     * create in flight) and the network resources of the networking issue. */
    "CREATE INDEX sandboxes_created ON sandboxes(created_ms DESC);"
    "CREATE INDEX sandboxes_expires ON sandboxes(expires_ms) WHERE expires_ms IS NOT NULL;"
    "CREATE INDEX history_sandbox ON state_history(sandbox_id);"
    "ALTER TABLE sandboxes ADD COLUMN monitor_pid INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE sandboxes ADD COLUMN monitor_start INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE sandboxes ADD COLUMN address TEXT;"
    "ALTER TABLE sandboxes ADD COLUMN veth TEXT;",
    /* 2 -> 3: OpenHands runtimes (openhands.c): the session a sandbox serves and the key its
     * agent server was started with. The row goes with its sandbox's. */
    "CREATE TABLE openhands ("
    " runtime_id TEXT PRIMARY KEY REFERENCES sandboxes(id) ON DELETE CASCADE,"
    " session_id TEXT NOT NULL UNIQUE, session_api_key TEXT NOT NULL);",
    /* 3 -> 4: the create's volumes, so a named volume in use is known after a restart. */
    "ALTER TABLE sandboxes ADD COLUMN volumes TEXT;",
};

/* The API code of a store failure that the client can act on: a full data directory is 507 (the
 * operation may work once space returns), a write lock held past busy_timeout by another process
 * is 503 (retry); anything else stays a 500. Without the prefix both were 500 UNKNOWN_ERROR. */
static const char *
db_code(struct apid_store *s)
{
    int rc = sqlite3_errcode(s->db) & 0xff;
    if (rc == SQLITE_FULL || sqlite3_system_errno(s->db) == ENOSPC ||
        sqlite3_system_errno(s->db) == EDQUOT)
        return E_STORAGE;
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return E_UNAVAILABLE;
    return NULL;
}

static int
db_fail(struct apid_store *s, const char *what, sbx_error_t *err)
{
    const char *code = db_code(s);
    if (code)
        return apid_fail(err, code, "store: %s: %s (data directory %s)", what,
                         sqlite3_errmsg(s->db), strcmp(code, E_STORAGE) ? "busy, retry" : "full");
    return sbx_make_error(err, 0, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int
exec_sql(struct apid_store *s, const char *sql, sbx_error_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        const char *code = db_code(s);
        int r = code ? apid_fail(err, code, "store: %s (data directory %s)",
                                 msg ? msg : sqlite3_errmsg(s->db),
                                 strcmp(code, E_STORAGE) ? "busy, retry" : "full")
                     : sbx_make_error(err, 0, "store: %s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return r;
    }
    return 0;
}

static int
get_version(struct apid_store *s, sbx_error_t *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT version FROM schema_version", -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "schema version", err);
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return v;
}

static int
migrate(struct apid_store *s, sbx_error_t *err)
{
    int r =
        exec_sql(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);", err);
    if (r < 0)
        return r;
    int v = get_version(s, err);
    if (v < 0)
        return v;
    if (v > APID_SCHEMA_VERSION)
        return sbx_make_error(err, 0,
                              "store: database schema version %d is newer than this apid (%d)", v,
                              APID_SCHEMA_VERSION);
    for (; v < APID_SCHEMA_VERSION; v++) {
        cleanup_free char *sql = xasprintf("BEGIN IMMEDIATE; %s DELETE FROM schema_version;"
                                           " INSERT INTO schema_version VALUES (%d); COMMIT;",
                                           migrations[v], v + 1);
        if ((r = exec_sql(s, sql, err)) < 0) {
            exec_sql(s, "ROLLBACK", NULL);
            return sbx_error_wrap(err, "migrating the store to version %d", v + 1);
        }
        log_info("store: migrated schema to version %d", v + 1);
    }
    return 0;
}

int
apid_store_open(const char *path, struct apid_store **out, sbx_error_t *err)
{
    struct apid_store *s = xmalloc0(sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        int r = sbx_make_error(err, 0, "store: open `%s`: %s", path,
                               s->db ? sqlite3_errmsg(s->db) : "out of memory");
        apid_store_close(s);
        return r;
    }
    /* It holds the sandboxes' agent tokens, and the data directory is traversable by
     * sandboxes (named volumes): owner-only, and SQLite gives its -wal and -shm files the same
     * mode. */
    if (chmod(path, 0600) < 0 && errno != ENOENT)
        log_warn("store: chmod 0600 `%s`: %s", path, strerror(errno));
    sqlite3_busy_timeout(s->db, 5000);
    int r = exec_sql(
        s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err);
    if (r == 0)
        r = migrate(s, err);
    if (r < 0) {
        apid_store_close(s);
        return r;
    }
    *out = s;
    return 0;
}

void
apid_store_close(struct apid_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int
apid_store_schema_version(struct apid_store *s, sbx_error_t *err)
{
    pthread_mutex_lock(&s->lock);
    int v = get_version(s, err);
    pthread_mutex_unlock(&s->lock);
    return v;
}

void
apid_sandbox_free(struct apid_sandbox *sb)
{
    if (!sb)
        return;
    free(sb->reason);
    free(sb->message);
    free(sb->image_uri);
    json_decref(sb->entrypoint);
    json_decref(sb->env);
    json_decref(sb->metadata);
    json_decref(sb->resource_limits);
    free(sb->cgroup);
    free(sb->token);
    free(sb->address);
    free(sb->veth);
    json_decref(sb->volumes);
    free(sb);
}

void
apid_sandbox_list_free(struct apid_sandbox **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        apid_sandbox_free(v[i]);
    free(v);
}

static void
bind_json(sqlite3_stmt *st, int i, json_t *j)
{
    char *s = json_dumps(j ? j : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    sqlite3_bind_text(st, i, s ? s : "null", -1, SQLITE_TRANSIENT);
    free(s);
}

static void
bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static int
history_add(struct apid_store *s, const char *id, int state, const char *reason, const char *msg,
            int64_t at, sbx_error_t *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO state_history(sandbox_id,state,reason,message,at_ms)"
                           " VALUES(?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "history", err);
    bind_text(st, 1, id);
    bind_text(st, 2, apid_state_name(state));
    bind_text(st, 3, reason);
    bind_text(st, 4, msg);
    sqlite3_bind_int64(st, 5, at);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(s, "history insert", err);
}

int
apid_store_insert(struct apid_store *s, const struct apid_sandbox *sb, sbx_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int r = 0;
    pthread_mutex_lock(&s->lock);
    if ((r = exec_sql(s, "BEGIN IMMEDIATE", err)) < 0)
        goto out;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO sandboxes(id,state,reason,message,last_transition_ms,"
                           "created_ms,expires_ms,image,entrypoint,env,metadata,resource_limits,"
                           "cpu_milli,memory,pids,token,address,veth,pid,pid_start,monitor_pid,"
                           "monitor_start,cgroup,volumes)"
                           " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        r = db_fail(s, "insert", err);
        goto rollback;
    }
    bind_text(st, 1, sb->id);
    bind_text(st, 2, apid_state_name(sb->state));
    bind_text(st, 3, sb->reason);
    bind_text(st, 4, sb->message);
    sqlite3_bind_int64(st, 5, sb->last_transition_ms);
    sqlite3_bind_int64(st, 6, sb->created_ms);
    if (sb->expires_ms)
        sqlite3_bind_int64(st, 7, sb->expires_ms);
    else
        sqlite3_bind_null(st, 7);
    bind_text(st, 8, sb->image_uri);
    bind_json(st, 9, sb->entrypoint);
    bind_json(st, 10, sb->env);
    bind_json(st, 11, sb->metadata);
    bind_json(st, 12, sb->resource_limits);
    sqlite3_bind_int64(st, 13, sb->limits.cpu_milli);
    sqlite3_bind_int64(st, 14, sb->limits.memory);
    sqlite3_bind_int64(st, 15, sb->limits.pids);
    bind_text(st, 16, sb->token);
    bind_text(st, 17, sb->address);
    bind_text(st, 18, sb->veth);
    sqlite3_bind_int64(st, 19, sb->pid);
    sqlite3_bind_int64(st, 20, (sqlite3_int64)sb->pid_start);
    sqlite3_bind_int64(st, 21, sb->monitor_pid);
    sqlite3_bind_int64(st, 22, (sqlite3_int64)sb->monitor_start);
    bind_text(st, 23, sb->cgroup);
    if (json_array_size(sb->volumes))
        bind_json(st, 24, sb->volumes);
    else
        sqlite3_bind_null(st, 24);
    if (sqlite3_step(st) != SQLITE_DONE) {
        r = db_fail(s, "insert", err);
        goto rollback;
    }
    if ((r = history_add(s, sb->id, sb->state, sb->reason, sb->message, sb->last_transition_ms,
                         err)) < 0)
        goto rollback;
    r = exec_sql(s, "COMMIT", err);
    goto out;
rollback:
    exec_sql(s, "ROLLBACK", NULL);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return r;
}

#define SB_COLS                                                                                    \
    "id,state,reason,message,last_transition_ms,created_ms,expires_ms,image,entrypoint,env,"       \
    "metadata,resource_limits,cpu_milli,memory,pids,pid,pid_start,monitor_pid,monitor_start,"      \
    "cgroup,token,address,veth,volumes"

static char *
col_str(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static json_t *
col_json(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    json_t *j = t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

static struct apid_sandbox *
row_to_sandbox(sqlite3_stmt *st)
{
    struct apid_sandbox *sb = xmalloc0(sizeof(*sb));
    const char *id = (const char *)sqlite3_column_text(st, 0);
    snprintf(sb->id, sizeof(sb->id), "%s", id ? id : "");
    sb->state = apid_state_parse((const char *)sqlite3_column_text(st, 1));
    sb->reason = col_str(st, 2);
    sb->message = col_str(st, 3);
    sb->last_transition_ms = sqlite3_column_int64(st, 4);
    sb->created_ms = sqlite3_column_int64(st, 5);
    sb->expires_ms = sqlite3_column_int64(st, 6);
    sb->image_uri = col_str(st, 7);
    sb->entrypoint = col_json(st, 8);
    sb->env = col_json(st, 9);
    sb->metadata = col_json(st, 10);
    sb->resource_limits = col_json(st, 11);
    sb->limits.cpu_milli = sqlite3_column_int64(st, 12);
    sb->limits.memory = sqlite3_column_int64(st, 13);
    sb->limits.pids = sqlite3_column_int64(st, 14);
    sb->pid = (pid_t)sqlite3_column_int64(st, 15);
    sb->pid_start = (unsigned long long)sqlite3_column_int64(st, 16);
    sb->monitor_pid = (pid_t)sqlite3_column_int64(st, 17);
    sb->monitor_start = (unsigned long long)sqlite3_column_int64(st, 18);
    sb->cgroup = col_str(st, 19);
    sb->token = col_str(st, 20);
    sb->address = col_str(st, 21);
    sb->veth = col_str(st, 22);
    if (sqlite3_column_type(st, 23) != SQLITE_NULL)
        sb->volumes = col_json(st, 23);
    return sb;
}

int
apid_store_get(struct apid_store *s, const char *id, struct apid_sandbox **out, sbx_error_t *err)
{
    sqlite3_stmt *st;
    int r = 0;
    *out = NULL;
    pthread_mutex_lock(&s->lock);
    if (sqlite3_prepare_v2(s->db, "SELECT " SB_COLS " FROM sandboxes WHERE id=?", -1, &st, NULL) !=
        SQLITE_OK) {
        r = db_fail(s, "get", err);
        goto out;
    }
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = row_to_sandbox(st);
        r = 1;
    } else if (rc != SQLITE_DONE) {
        r = db_fail(s, "get", err);
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Runs one UPDATE/DELETE with the given binds (b: 't' text, 'i' int64, 'n' null) and requires it
 * to touch a row; 0 rows → -ENOENT-style error. */
static int
update(struct apid_store *s, const char *sql, const char *what, sbx_error_t *err, const char *b,
       ...)
{
    sqlite3_stmt *st;
    va_list ap;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, what, err);
    va_start(ap, b);
    for (int i = 0; b[i]; i++) {
        if (b[i] == 't')
            bind_text(st, i + 1, va_arg(ap, const char *));
        else if (b[i] == 'i')
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        else
            sqlite3_bind_null(st, i + 1);
    }
    va_end(ap);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, what, err);
    if (sqlite3_changes(s->db) == 0)
        return apid_fail(err, E_NOT_FOUND, "sandbox not found");
    return 0;
}

int
apid_store_set_state(struct apid_store *s, const char *id, int state, const char *reason,
                     const char *message, sbx_error_t *err)
{
    int64_t now = apid_now_ms();
    pthread_mutex_lock(&s->lock);
    int r = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (r == 0)
        r = update(
            s, "UPDATE sandboxes SET state=?,reason=?,message=?,last_transition_ms=? WHERE id=?",
            "set state", err,
            "ttti"
            "t",
            apid_state_name(state), reason, message, now, id);
    if (r == 0)
        r = history_add(s, id, state, reason, message, now, err);
    if (r == 0)
        r = exec_sql(s, "COMMIT", err);
    else
        exec_sql(s, "ROLLBACK", NULL);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
apid_store_set_runtime(struct apid_store *s, const char *id, pid_t pid,
                       unsigned long long pid_start, pid_t mon, unsigned long long mon_start,
                       const char *cgroup, sbx_error_t *err)
{
    pthread_mutex_lock(&s->lock);
    int r = update(s,
                   "UPDATE sandboxes SET pid=?,pid_start=?,monitor_pid=?,monitor_start=?,"
                   "cgroup=coalesce(?,cgroup) WHERE id=?",
                   "set runtime", err, "iiiitt", (int64_t)pid, (int64_t)pid_start, (int64_t)mon,
                   (int64_t)mon_start, cgroup, id);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
apid_store_set_expiry(struct apid_store *s, const char *id, int64_t expires_ms, sbx_error_t *err)
{
    pthread_mutex_lock(&s->lock);
    int r = update(s, "UPDATE sandboxes SET expires_ms=? WHERE id=?", "set expiry", err, "it",
                   expires_ms, id);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
apid_store_set_metadata(struct apid_store *s, const char *id, json_t *md, sbx_error_t *err)
{
    cleanup_free char *txt = json_dumps(md, JSON_COMPACT);
    pthread_mutex_lock(&s->lock);
    int r =
        update(s, "UPDATE sandboxes SET metadata=? WHERE id=?", "set metadata", err, "tt", txt, id);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
apid_store_delete(struct apid_store *s, const char *id, sbx_error_t *err)
{
    pthread_mutex_lock(&s->lock);
    int r = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (r == 0)
        r = update(s, "DELETE FROM sandboxes WHERE id=?", "delete", err, "t", id);
    if (r == 0) {
        /* History goes with the row; the removal itself is in the log. */
        sbx_error_t e2 = NULL;
        update(s, "DELETE FROM state_history WHERE sandbox_id=?", "delete history", &e2, "t", id);
        sbx_error_release(&e2);
        r = exec_sql(s, "COMMIT", err);
    } else {
        exec_sql(s, "ROLLBACK", NULL);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static bool
metadata_matches(json_t *have, json_t *want)
{
    const char *k;
    json_t *v;
    json_object_foreach (want, k, v) {
        json_t *h = json_object_get(have, k);
        if (!json_is_string(h) || strcmp(json_string_value(h), json_string_value(v)) != 0)
            return false;
    }
    return true;
}

int
apid_store_list(struct apid_store *s, unsigned states, json_t *metadata, int64_t page,
                int64_t page_size, struct apid_sandbox ***items, size_t *n, int64_t *total,
                sbx_error_t *err)
{
    sqlite3_stmt *st;
    *items = NULL;
    *n = 0;
    *total = 0;
    pthread_mutex_lock(&s->lock);
    if (sqlite3_prepare_v2(s->db, "SELECT " SB_COLS " FROM sandboxes ORDER BY created_ms DESC, id",
                           -1, &st, NULL) != SQLITE_OK) {
        int r = db_fail(s, "list", err);
        pthread_mutex_unlock(&s->lock);
        return r;
    }
    /* Filters run here rather than in SQL: metadata keys are arbitrary strings and the table is
     * small (one row per live sandbox on this host). */
    int64_t first = (page - 1) * page_size;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = apid_state_parse((const char *)sqlite3_column_text(st, 1));
        if (states && (state < 0 || !((states >> state) & 1)))
            continue;
        if (metadata && json_object_size(metadata)) {
            json_t *md = col_json(st, 10);
            bool m = metadata_matches(md, metadata);
            json_decref(md);
            if (!m)
                continue;
        }
        if (*total >= first && *total < first + page_size) {
            *items = xrealloc(*items, (*n + 1) * sizeof(**items));
            (*items)[(*n)++] = row_to_sandbox(st);
        }
        (*total)++;
    }
    int r = rc == SQLITE_DONE ? 0 : db_fail(s, "list", err);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    if (r < 0) {
        apid_sandbox_list_free(*items, *n);
        *items = NULL;
        *n = 0;
    }
    return r;
}

int
apid_store_all(struct apid_store *s, struct apid_sandbox ***items, size_t *n, sbx_error_t *err)
{
    int64_t total;
    return apid_store_list(s, 0, NULL, 1, INT32_MAX, items, n, &total, err);
}

int
apid_store_next_expiry(struct apid_store *s, char id[65], int64_t *ms, sbx_error_t *err)
{
    sqlite3_stmt *st;
    int r = 0;
    pthread_mutex_lock(&s->lock);
    /* The partial index on expires_ms makes this the priority queue's "peek min". */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, expires_ms FROM sandboxes WHERE expires_ms IS NOT NULL"
                           " AND state != 'Stopping' ORDER BY expires_ms LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        r = db_fail(s, "next expiry", err);
        goto out;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(id, 65, "%s", (const char *)sqlite3_column_text(st, 0));
        *ms = sqlite3_column_int64(st, 1);
        r = 1;
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
apid_store_history_count(struct apid_store *s, const char *id, sbx_error_t *err)
{
    sqlite3_stmt *st;
    pthread_mutex_lock(&s->lock);
    int r;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM state_history WHERE sandbox_id=?", -1, &st,
                           NULL) != SQLITE_OK) {
        r = db_fail(s, "history", err);
    } else {
        bind_text(st, 1, id);
        r = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : db_fail(s, "history", err);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
apid_store_set_net(struct apid_store *s, const char *id, const char *address, const char *veth,
                   sbx_error_t *err)
{
    pthread_mutex_lock(&s->lock);
    int r = update(s, "UPDATE sandboxes SET address=?,veth=? WHERE id=?", "set net", err, "ttt",
                   address, veth, id);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ---------- OpenHands runtimes (openhands.c) ---------- */

int
apid_store_oh_insert(struct apid_store *s, const char *runtime_id, const char *session_id,
                     const char *key, sbx_error_t *err)
{
    pthread_mutex_lock(&s->lock);
    int r = update(s, "INSERT INTO openhands(runtime_id,session_id,session_api_key) VALUES(?,?,?)",
                   "openhands insert", err, "ttt", runtime_id, session_id, key);
    pthread_mutex_unlock(&s->lock);
    return r;
}

void
apid_oh_runtime_free(struct apid_oh_runtime *rt)
{
    free(rt->session_id);
    if (rt->key)
        explicit_bzero(rt->key, strlen(rt->key));
    free(rt->key);
    memset(rt, 0, sizeof(*rt));
}

static void
oh_row(sqlite3_stmt *st, struct apid_oh_runtime *out)
{
    const char *id = (const char *)sqlite3_column_text(st, 0);
    snprintf(out->runtime_id, sizeof(out->runtime_id), "%s", id ? id : "");
    out->session_id = col_str(st, 1);
    out->key = col_str(st, 2);
}

int
apid_store_oh_find(struct apid_store *s, const char *runtime_id, const char *session_id,
                   struct apid_oh_runtime *out, sbx_error_t *err)
{
    sqlite3_stmt *st;
    int r = 0;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->lock);
    if (sqlite3_prepare_v2(s->db,
                           runtime_id ? "SELECT runtime_id,session_id,session_api_key FROM"
                                        " openhands WHERE runtime_id=?"
                                      : "SELECT runtime_id,session_id,session_api_key FROM"
                                        " openhands WHERE session_id=?",
                           -1, &st, NULL) != SQLITE_OK) {
        r = db_fail(s, "openhands find", err);
        goto out;
    }
    bind_text(st, 1, runtime_id ? runtime_id : session_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        oh_row(st, out);
        r = 1;
    } else if (rc != SQLITE_DONE) {
        r = db_fail(s, "openhands find", err);
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
apid_store_oh_list(struct apid_store *s, struct apid_oh_runtime **out, size_t *n, sbx_error_t *err)
{
    sqlite3_stmt *st;
    int r = 0;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    if (sqlite3_prepare_v2(s->db,
                           "SELECT o.runtime_id,o.session_id,o.session_api_key FROM openhands o"
                           " JOIN sandboxes s ON s.id=o.runtime_id ORDER BY s.created_ms",
                           -1, &st, NULL) != SQLITE_OK) {
        r = db_fail(s, "openhands list", err);
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        oh_row(st, &(*out)[(*n)++]);
    }
    if (rc != SQLITE_DONE)
        r = db_fail(s, "openhands list", err);
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}
