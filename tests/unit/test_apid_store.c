/* sbx-apid's SQLite store on a temporary database: migrations (fresh, re-open, from version 1,
 * refusing a newer schema), CRUD, state history, listing filters/pagination and the expiry peek. */
#include "apid.h"
#include "unit.h"

#include <sqlite3.h>

static char tmpdir[64];

static char *
temp_db(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sbx-unit-store.XXXXXX");
    if (!mkdtemp(tmpdir))
        return NULL;
    return xasprintf("%s/apid.db", tmpdir);
}

static void
drop_temp(void)
{
    sbx_error_t err = NULL;
    rm_rf(tmpdir, &err);
    sbx_error_release(&err);
}

static struct apid_sandbox *
mk(const char *id, int64_t created, const char *team)
{
    struct apid_sandbox *sb = xmalloc0(sizeof(*sb));
    snprintf(sb->id, sizeof(sb->id), "%s", id);
    sb->state = ST_RUNNING;
    sb->reason = xstrdup("CONTAINER_RUNNING");
    sb->created_ms = sb->last_transition_ms = created;
    sb->image_uri = xstrdup("local/busybox");
    sb->entrypoint = json_pack("[s]", "sleep");
    sb->env = json_object();
    sb->metadata = json_pack("{s:s}", "team", team);
    sb->resource_limits = json_object();
    sb->limits = (struct apid_limits){1000, 1 << 20, 10, 0};
    return sb;
}

UNIT_TEST(apid_store, migrations)
{
    sbx_error_t err = NULL;
    cleanup_free char *path = temp_db();
    struct apid_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(apid_store_open(path, &s, &err), 0);
    CU_ASSERT_EQUAL(apid_store_schema_version(s, &err), APID_SCHEMA_VERSION);
    apid_store_close(s);
    /* Re-opening an up-to-date database runs nothing and keeps the data. */
    CU_ASSERT_EQUAL_FATAL(apid_store_open(path, &s, &err), 0);
    CU_ASSERT_EQUAL(apid_store_schema_version(s, &err), APID_SCHEMA_VERSION);
    apid_store_close(s);

    /* A version-1 database with a row is upgraded in place. */
    cleanup_free char *p1 = xasprintf("%s/v1.db", tmpdir);
    sqlite3 *db;
    CU_ASSERT_FATAL(sqlite3_open(p1, &db) == SQLITE_OK);
    const char *v1 =
        "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version "
        "VALUES(1);"
        "CREATE TABLE sandboxes ( id TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT, message "
        "TEXT,"
        " last_transition_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER,"
        " image TEXT NOT NULL, entrypoint TEXT NOT NULL, env TEXT NOT NULL, metadata TEXT NOT NULL,"
        " resource_limits TEXT NOT NULL, cpu_milli INTEGER, memory INTEGER, pids INTEGER,"
        " pid INTEGER NOT NULL DEFAULT 0, pid_start INTEGER NOT NULL DEFAULT 0, cgroup TEXT, token "
        "TEXT);"
        "CREATE TABLE state_history ( seq INTEGER PRIMARY KEY AUTOINCREMENT, sandbox_id TEXT NOT "
        "NULL,"
        " state TEXT NOT NULL, reason TEXT, message TEXT, at_ms INTEGER NOT NULL);"
        "INSERT INTO "
        "sandboxes(id,state,last_transition_ms,created_ms,image,entrypoint,env,metadata,"
        "resource_limits) VALUES('old','Running',1,1,'busybox','[\"sh\"]','{}','{}','{}');";
    CU_ASSERT(sqlite3_exec(db, v1, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CU_ASSERT_EQUAL_FATAL(apid_store_open(p1, &s, &err), 0);
    CU_ASSERT_EQUAL(apid_store_schema_version(s, &err), APID_SCHEMA_VERSION);
    struct apid_sandbox *sb = NULL;
    CU_ASSERT_EQUAL(apid_store_get(s, "old", &sb, &err), 1);
    CU_ASSERT(sb && sb->monitor_pid == 0 && sb->state == ST_RUNNING && sb->volumes == NULL);
    apid_sandbox_free(sb);
    apid_store_close(s);

    /* A newer schema than this binary knows is refused, not clobbered. */
    CU_ASSERT_FATAL(sqlite3_open(p1, &db) == SQLITE_OK);
    sqlite3_exec(db, "UPDATE schema_version SET version=99", NULL, NULL, NULL);
    sqlite3_close(db);
    CU_ASSERT(apid_store_open(p1, &s, &err) < 0);
    CU_ASSERT(err && strstr(err->msg, "newer") != NULL);
    sbx_error_release(&err);
    drop_temp();
}

UNIT_TEST(apid_store, crud_history_list)
{
    sbx_error_t err = NULL;
    cleanup_free char *path = temp_db();
    struct apid_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(apid_store_open(path, &s, &err), 0);
    const char *teams[] = {"a", "b", "a", "a"};
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof(id), "s%d", i);
        struct apid_sandbox *sb = mk(id, 1000 + i, teams[i]);
        if (i == 1)
            sb->expires_ms = 5000;
        if (i == 2)
            sb->expires_ms = 3000;
        CU_ASSERT_EQUAL(apid_store_insert(s, sb, &err), 0);
        CU_ASSERT(apid_store_insert(s, sb, &err) < 0); /* duplicate id */
        sbx_error_release(&err);
        apid_sandbox_free(sb);
    }
    CU_ASSERT_EQUAL(apid_store_set_state(s, "s3", ST_PAUSED, "CONTAINER_PAUSED", "p", &err), 0);
    CU_ASSERT_EQUAL(apid_store_history_count(s, "s3", &err), 2);
    CU_ASSERT(apid_store_set_state(s, "nope", ST_PAUSED, NULL, NULL, &err) < 0);
    sbx_error_release(&err);

    struct apid_sandbox *sb = NULL;
    CU_ASSERT_EQUAL(apid_store_get(s, "s3", &sb, &err), 1);
    CU_ASSERT_EQUAL(sb->state, ST_PAUSED);
    CU_ASSERT_STRING_EQUAL(sb->reason, "CONTAINER_PAUSED");
    CU_ASSERT_EQUAL(sb->limits.pids, 10);
    apid_sandbox_free(sb);
    CU_ASSERT_EQUAL(apid_store_get(s, "nope", &sb, &err), 0);

    struct apid_sandbox **items;
    size_t n;
    int64_t total;
    CU_ASSERT_EQUAL(apid_store_list(s, 0, NULL, 1, 2, &items, &n, &total, &err), 0);
    CU_ASSERT(n == 2 && total == 4);
    CU_ASSERT_STRING_EQUAL(items[0]->id, "s3"); /* createdAt descending */
    CU_ASSERT_STRING_EQUAL(items[1]->id, "s2");
    apid_sandbox_list_free(items, n);
    CU_ASSERT_EQUAL(apid_store_list(s, 0, NULL, 2, 3, &items, &n, &total, &err), 0);
    CU_ASSERT(n == 1 && total == 4);
    CU_ASSERT_STRING_EQUAL(items[0]->id, "s0");
    apid_sandbox_list_free(items, n);
    json_t *md = json_pack("{s:s}", "team", "a");
    CU_ASSERT_EQUAL(apid_store_list(s, 1u << ST_RUNNING, md, 1, 20, &items, &n, &total, &err), 0);
    CU_ASSERT(n == 2 && total == 2);
    apid_sandbox_list_free(items, n);
    json_decref(md);

    char id[65];
    int64_t ms;
    CU_ASSERT_EQUAL(apid_store_next_expiry(s, id, &ms, &err), 1);
    CU_ASSERT_STRING_EQUAL(id, "s2");
    CU_ASSERT_EQUAL(ms, 3000);
    CU_ASSERT_EQUAL(apid_store_set_expiry(s, "s2", 9000, &err), 0);
    CU_ASSERT_EQUAL(apid_store_next_expiry(s, id, &ms, &err), 1);
    CU_ASSERT_STRING_EQUAL(id, "s1");

    json_t *nmd = json_pack("{s:s}", "x", "y");
    CU_ASSERT_EQUAL(apid_store_set_metadata(s, "s1", nmd, &err), 0);
    json_decref(nmd);
    CU_ASSERT_EQUAL(apid_store_set_runtime(s, "s1", 42, 7, 43, 8, "cg", &err), 0);
    CU_ASSERT_EQUAL(apid_store_get(s, "s1", &sb, &err), 1);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(sb->metadata, "x")), "y");
    CU_ASSERT(sb->pid == 42 && sb->pid_start == 7 && sb->monitor_pid == 43);
    CU_ASSERT_STRING_EQUAL(sb->cgroup, "cg");
    apid_sandbox_free(sb);

    CU_ASSERT_EQUAL(apid_store_delete(s, "s1", &err), 0);
    CU_ASSERT_EQUAL(apid_store_history_count(s, "s1", &err), 0);
    CU_ASSERT(apid_store_delete(s, "s1", &err) < 0);
    sbx_error_release(&err);
    apid_store_close(s);
    drop_temp();
}

/* OpenHands runtime rows: found by runtime or session id, one per session, gone with their
 * sandbox (ON DELETE CASCADE), and never for a sandbox that does not exist. */
UNIT_TEST(apid_store, openhands_rows)
{
    sbx_error_t err = NULL;
    cleanup_free char *path = temp_db();
    struct apid_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(apid_store_open(path, &s, &err), 0);
    for (int i = 0; i < 2; i++) {
        struct apid_sandbox *sb = mk(i ? "r2" : "r1", 1000 + i, "t");
        CU_ASSERT_EQUAL(apid_store_insert(s, sb, &err), 0);
        apid_sandbox_free(sb);
    }
    CU_ASSERT_EQUAL(apid_store_oh_insert(s, "r1", "sess-1", "k1", &err), 0);
    CU_ASSERT(apid_store_oh_insert(s, "r2", "sess-1", "k2", &err) < 0); /* session taken */
    sbx_error_release(&err);
    CU_ASSERT(apid_store_oh_insert(s, "nope", "sess-3", "k3", &err) < 0); /* no such sandbox */
    sbx_error_release(&err);
    CU_ASSERT_EQUAL(apid_store_oh_insert(s, "r2", "sess-2", "k2", &err), 0);

    struct apid_oh_runtime rt;
    CU_ASSERT_EQUAL(apid_store_oh_find(s, "r1", NULL, &rt, &err), 1);
    CU_ASSERT_STRING_EQUAL(rt.session_id, "sess-1");
    CU_ASSERT_STRING_EQUAL(rt.key, "k1");
    apid_oh_runtime_free(&rt);
    CU_ASSERT_EQUAL(apid_store_oh_find(s, NULL, "sess-2", &rt, &err), 1);
    CU_ASSERT_STRING_EQUAL(rt.runtime_id, "r2");
    apid_oh_runtime_free(&rt);
    CU_ASSERT_EQUAL(apid_store_oh_find(s, NULL, "sess-9", &rt, &err), 0);

    struct apid_oh_runtime *v = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(apid_store_oh_list(s, &v, &n, &err), 0);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(v[0].runtime_id, "r1"); /* oldest first */
    for (size_t i = 0; i < n; i++)
        apid_oh_runtime_free(&v[i]);
    free(v);

    CU_ASSERT_EQUAL(apid_store_delete(s, "r1", &err), 0);
    CU_ASSERT_EQUAL(apid_store_oh_find(s, NULL, "sess-1", &rt, &err), 0);
    CU_ASSERT_EQUAL(apid_store_oh_list(s, &v, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 1);
    for (size_t i = 0; i < n; i++)
        apid_oh_runtime_free(&v[i]);
    free(v);
    apid_store_close(s);
    drop_temp();
}
