#include "utils.h"

#include <stdarg.h>

int
sbx_make_error(sbx_error_t *err, int status, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    if (err == NULL) {
        free(msg);
        return -status - 1;
    }
    if (*err) {
        free((*err)->msg);
        free(*err);
    }
    *err = xmalloc0(sizeof(**err));
    (*err)->status = status;
    if (status) {
        (*err)->msg = xasprintf("%s: %s", msg, strerror(status));
        free(msg);
    } else {
        (*err)->msg = msg;
    }
    return -status - 1;
}

int
sbx_error_wrap(sbx_error_t *err, const char *fmt, ...)
{
    va_list ap;
    char *prefix = NULL;

    if (err == NULL || *err == NULL)
        return -1;
    va_start(ap, fmt);
    if (vasprintf(&prefix, fmt, ap) < 0)
        abort();
    va_end(ap);
    char *msg = xasprintf("%s: %s", prefix, (*err)->msg);
    free(prefix);
    free((*err)->msg);
    (*err)->msg = msg;
    return -(*err)->status - 1;
}

void
sbx_error_release(sbx_error_t *err)
{
    if (err == NULL || *err == NULL)
        return;
    free((*err)->msg);
    free(*err);
    *err = NULL;
}

void
sbx_error_print(const char *prog, sbx_error_t *err)
{
    if (err && *err)
        fprintf(stderr, "%s: %s\n", prog, (*err)->msg);
    sbx_error_release(err);
}
