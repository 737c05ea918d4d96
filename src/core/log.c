/* JSON-lines logger (see log.h). The role and level are set once at start-up, before any
 * thread starts, and only read afterwards. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

static const char *log_role = "eventops";
static _Thread_local const char *thread_role; /* overrides log_role on this thread */
static eo_log_level_t log_min = EO_LOG_INFO;

void eo_log_thread_role(const char *role)
{
    thread_role = role;
}

void eo_log_setup(const char *role, eo_log_level_t min_level)
{
    log_role = role;
    log_min = min_level;
}

eo_log_level_t eo_log_level_parse(const char *s)
{
    if (!s)
        return EO_LOG_INFO;
    if (!strcasecmp(s, "debug"))
        return EO_LOG_DEBUG;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        return EO_LOG_WARN;
    if (!strcasecmp(s, "error"))
        return EO_LOG_ERROR;
    return EO_LOG_INFO;
}

static const char *level_name(eo_log_level_t l)
{
    switch (l) {
    case EO_LOG_DEBUG:
        return "debug";
    case EO_LOG_INFO:
        return "info";
    case EO_LOG_WARN:
        return "warn";
    default:
        return "error";
    }
}

void eo_log(eo_log_level_t level, const char *msg, ...)
{
    if (level < log_min)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[96];
    snprintf(tbuf, sizeof tbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    eo_buf_t b;
    eo_buf_init(&b, 16384);
    eo_buf_putf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"role\":", tbuf, level_name(level));
    const char *role = thread_role ? thread_role : log_role;
    eo_buf_put_json_str(&b, role, strlen(role));
    eo_buf_puts(&b, ",\"msg\":");
    eo_buf_put_json_str(&b, msg, strlen(msg));
    va_list ap;
    va_start(ap, msg);
    const char *key;
    while (!eo_buf_error(&b) && (key = va_arg(ap, const char *))) {
        const char *val = va_arg(ap, const char *);
        eo_buf_putc(&b, ',');
        eo_buf_put_json_str(&b, key, strlen(key));
        eo_buf_putc(&b, ':');
        if (val)
            eo_buf_put_json_str(&b, val, strnlen(val, EO_LOG_VALUE_MAX));
        else
            eo_buf_puts(&b, "null");
    }
    va_end(ap);
    eo_buf_puts(&b, "}\n");
    if (!eo_buf_error(&b)) {
        ssize_t w = write(STDERR_FILENO, b.data, b.len);
        (void)w;
    }
    eo_buf_done(&b);
}
