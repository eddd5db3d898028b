/* Logging for sbx-apid: plain "LEVEL message" lines or one JSON object per line (--log-json), to
 * stderr so that journald or the test harness collects them. */
#include "apid.h"

#include <stdarg.h>
#include <time.h>

static int log_level = APID_LOG_INFO;
static bool log_json;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
apid_log_setup(int level, bool json)
{
    log_level = level;
    log_json = json;
}

int
apid_log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
        if (s && strcasecmp(s, level_names[i]) == 0)
            return (int)i;
    if (s && strcasecmp(s, "warning") == 0)
        return APID_LOG_WARN;
    return -1;
}

static void
emit(int level, json_t *fields, const char *text)
{
    char ts[40];
    apid_format_time(apid_now_ms(), ts, sizeof(ts));
    pthread_mutex_lock(&log_lock);
    if (log_json) {
        json_t *o = fields ? fields : json_object();
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "level", json_string(level_names[level]));
        if (text)
            json_object_set_new(o, "msg", json_string(text));
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (line)
            fprintf(stderr, "%s\n", line);
        free(line);
        if (!fields)
            json_decref(o);
    } else {
        fprintf(stderr, "%s %-5s %s\n", ts, level_names[level], text ? text : "");
    }
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

void
apid_log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    va_list ap;
    char *msg = NULL;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    emit(level, NULL, msg);
    free(msg);
}

void
apid_log_access(const char *method, const char *path, int status, double ms, const char *request_id)
{
    if (APID_LOG_INFO > log_level)
        return;
    if (log_json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:f, s:s}", "type", "access", "method", method,
                              "path", path, "status", status, "durationMs", ms, "requestId",
                              request_id ? request_id : "");
        emit(APID_LOG_INFO, o, NULL);
        json_decref(o);
        return;
    }
    cleanup_free char *line = xasprintf("access %s %s %d %.1fms rid=%s", method, path, status, ms,
                                        request_id ? request_id : "-");
    emit(APID_LOG_INFO, NULL, line);
}
