#include "utils.h"

#include <stdarg.h>

static int
make_error(sbx_error_t *err, const char *code, int status, const char *fmt, va_list ap)
{
    char *msg = NULL;

    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    if (err == NULL) {
        free(msg);
        return -status - 1;
    }
    /* The message may quote the error it replaces, so that one goes only now. */
    sbx_error_release(err);
    *err = xmalloc0(sizeof(**err));
    (*err)->status = status;
    (*err)->code = code;
    if (status) {
        (*err)->msg = xasprintf("%s: %s", msg, strerror(status));
        free(msg);
    } else {
        (*err)->msg = msg;
    }
    return -status - 1;
}

int
sbx_make_error(sbx_error_t *err, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = make_error(err, NULL, status, fmt, ap);
    va_end(ap);
    return r;
}

int
sbx_make_error_code(sbx_error_t *err, const char *code, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = make_error(err, code, status, fmt, ap);
    va_end(ap);
    return r;
}

const char *
sbx_error_code(const sbx_error_t err)
{
    return err ? err->code : NULL;
}

bool
sbx_error_is(const sbx_error_t err, const char *code)
{
    return err && err->code && code && strcmp(err->code, code) == 0;
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
    /* Only the message grows: status and code stay, so a caller's answer does not change. */
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
