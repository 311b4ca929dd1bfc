#include "core/log.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/timeutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static log_level_t min_level = LOG_LEVEL_INFO;
static int json_format;
static unsigned rate_burst = LOG_RATE_BURST;
static uint64_t rate_period_ms = LOG_RATE_PERIOD_MS;

static const char *level_names[] = {"debug", "info", "warn", "error"};

/* ---- rate limiting of warnings and errors ---- */

/* Kinds tracked at once per thread. A kind that finds its probe window full evicts the oldest (after writing
 * its summary), so a process with more noisy call sites than slots still writes each summary once. */
#define RATE_SLOTS 64
#define RATE_PROBE 4

typedef struct {
    const char *action, *fmt; /* the kind; fmt NULL: free slot */
    log_level_t level;
    uint64_t start_ms;   /* start of the current period */
    unsigned written;    /* lines written in it */
    uint64_t suppressed; /* lines counted instead */
} rate_slot_t;

static _Thread_local rate_slot_t rate_slots[RATE_SLOTS];
/* Earliest end of a period with suppressed lines (0: none), so most calls look at no slot but their own. */
static _Thread_local uint64_t rate_next_flush_ms;

static void write_line(log_level_t level, const char *action, const char *msg);

static void write_summary(rate_slot_t *sl, uint64_t now_ms)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%llu more lines like \"%.300s\" suppressed in the last %llu s",
             (unsigned long long)sl->suppressed, sl->fmt,
             (unsigned long long)(now_ms - sl->start_ms < 1000 ? 1 : (now_ms - sl->start_ms + 999) / 1000));
    sl->suppressed = 0;
    write_line(sl->level, sl->action, msg);
}

/* Writes the summaries of periods that ended (every one when all is set). */
static void rate_flush(uint64_t now_ms, int all)
{
    uint64_t next = 0;
    for (size_t i = 0; i < RATE_SLOTS; i++) {
        rate_slot_t *sl = &rate_slots[i];
        if (sl->fmt == NULL || sl->suppressed == 0)
            continue;
        uint64_t end = sl->start_ms + rate_period_ms;
        if (all || now_ms >= end) {
            write_summary(sl, now_ms);
            /* A new period starts with the summary: a kind that keeps going writes burst lines again then. */
            sl->start_ms = now_ms;
            sl->written = 0;
        } else if (next == 0 || end < next) {
            next = end;
        }
    }
    rate_next_flush_ms = next;
}

/* 1 when a line of this kind is to be written now, 0 when it is counted instead. */
static int rate_admit(log_level_t level, const char *action, const char *fmt)
{
    uint64_t now = time_mono_ms();
    if (rate_next_flush_ms != 0 && now >= rate_next_flush_ms)
        rate_flush(now, 0);
    uintptr_t h = ((uintptr_t)fmt >> 3) ^ ((uintptr_t)action >> 3) * 31u ^ (uintptr_t)level;
    h ^= h >> 7;
    rate_slot_t *sl = NULL, *victim = NULL;
    for (size_t i = 0; i < RATE_PROBE; i++) {
        rate_slot_t *c = &rate_slots[(h + i) % RATE_SLOTS];
        if (c->fmt == fmt && c->action == action && c->level == level) {
            sl = c;
            break;
        }
        if (victim == NULL || c->fmt == NULL || (victim->fmt != NULL && c->start_ms < victim->start_ms))
            victim = c;
    }
    if (sl == NULL) {
        if (victim->fmt != NULL && victim->suppressed > 0)
            write_summary(victim, now);
        sl = victim;
        sl->action = action;
        sl->fmt = fmt;
        sl->level = level;
        sl->start_ms = now;
        sl->written = 0;
        sl->suppressed = 0;
    } else if (now - sl->start_ms >= rate_period_ms) {
        if (sl->suppressed > 0)
            write_summary(sl, now);
        sl->start_ms = now;
        sl->written = 0;
    }
    if (sl->written < rate_burst) {
        sl->written++;
        return 1;
    }
    if (sl->suppressed++ == 0) {
        uint64_t end = sl->start_ms + rate_period_ms;
        if (rate_next_flush_ms == 0 || end < rate_next_flush_ms)
            rate_next_flush_ms = end;
    }
    return 0;
}

void log_flush_suppressed(void)
{
    rate_flush(time_mono_ms(), 1);
}

void log_set_rate_limit(unsigned burst, unsigned period_ms)
{
    rate_burst = burst;
    rate_period_ms = period_ms;
}

static void flush_at_exit(void)
{
    log_flush_suppressed();
}

void log_setup(log_level_t level, int json)
{
    static int registered;
    min_level = level;
    json_format = json;
    if (!registered) {
        registered = 1;
        atexit(flush_at_exit);
    }
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

static void write_line(log_level_t level, const char *action, const char *text)
{
    char ts[40];
    time_format_iso(time_now_us(), ts, sizeof(ts));
    buf_t line = BUF_INIT;
    if (json_format) {
        buf_puts(&line, "{\"ts\":");
        json_put_string(&line, ts);
        buf_printf(&line, ",\"level\":\"%s\"", level_names[level]);
        if (action != NULL) {
            buf_puts(&line, ",\"action\":");
            json_put_string(&line, action);
        }
        buf_puts(&line, ",\"msg\":");
        json_put_string(&line, text);
        buf_puts(&line, "}\n");
    } else {
        buf_printf(&line, "%s %-5s ", ts, level_names[level]);
        if (action != NULL)
            buf_printf(&line, "[%s] ", action);
        buf_puts(&line, text);
        buf_putc(&line, '\n');
    }
    /* One write per line so lines from several processes sharing a terminal or pipe do not interleave. */
    ssize_t r = write(STDERR_FILENO, line.data, line.len);
    (void)r;
    buf_free(&line);
}

void log_vwrite(log_level_t level, const char *action, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    if (rate_burst > 0) {
        if (level >= LOG_LEVEL_WARN) {
            if (!rate_admit(level, action, fmt))
                return;
        } else if (rate_next_flush_ms != 0 && time_mono_ms() >= rate_next_flush_ms) {
            /* Any line (say, "database reachable again") writes the summaries of periods that ended. */
            rate_flush(time_mono_ms(), 0);
        }
    }
    buf_t msg = BUF_INIT;
    buf_vprintf(&msg, fmt, ap);
    write_line(level, action, buf_cstr(&msg));
    buf_free(&msg);
}

void log_write(log_level_t level, const char *action, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, action, fmt, ap);
    va_end(ap);
}
