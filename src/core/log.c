#include "core/log.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static log_level_t min_level = LOG_LEVEL_INFO;
static int json_format;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_setup(log_level_t level, int json)
{
    min_level = level;
    json_format = json;
}

int log_parse_level(const char *s, log_level_t *out)
{
    if (strcmp(s, "debug") == 0)
        *out = LOG_LEVEL_DEBUG;
    else if (strcmp(s, "info") == 0)
        *out = LOG_LEVEL_INFO;
    else if (strcmp(s, "warn") == 0 || strcmp(s, "warning") == 0)
        *out = LOG_LEVEL_WARN;
    else if (strcmp(s, "error") == 0)
        *out = LOG_LEVEL_ERROR;
    else
        return -1;
    return 0;
}

int log_enabled(log_level_t level)
{
    return level >= min_level;
}

void log_vwrite(log_level_t level, const char *action, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    char ts[40];
    time_format_iso(time_now_us(), ts, sizeof(ts));
    buf_t msg = BUF_INIT, line = BUF_INIT;
    buf_vprintf(&msg, fmt, ap);
    if (json_format) {
        buf_puts(&line, "{\"ts\":");
        json_put_string(&line, ts);
        buf_printf(&line, ",\"level\":\"%s\"", level_names[level]);
        if (action != NULL) {
            buf_puts(&line, ",\"action\":");
            json_put_string(&line, action);
        }
        buf_puts(&line, ",\"msg\":");
        json_put_string(&line, buf_cstr(&msg));
        buf_puts(&line, "}\n");
    } else {
        buf_printf(&line, "%s %-5s ", ts, level_names[level]);
        if (action != NULL)
            buf_printf(&line, "[%s] ", action);
        buf_puts(&line, buf_cstr(&msg));
        buf_putc(&line, '\n');
    }
    /* One write per line so lines from several processes sharing a terminal or pipe do not interleave. */
    ssize_t r = write(STDERR_FILENO, line.data, line.len);
    (void)r;
    buf_free(&msg);
    buf_free(&line);
}

void log_write(log_level_t level, const char *action, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, action, fmt, ap);
    va_end(ap);
}
