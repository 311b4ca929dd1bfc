/* Leveled logging to stderr, one line per event, as text or JSON. Every line names the action that was under
 * way (nginx's log->action), so an operator reading one line knows what the process was doing.
 *
 * Warnings and errors are rate-limited per kind, a kind being the call site's action and format strings
 * (their addresses: no hashing of text, no formatting of what is dropped): the first LOG_RATE_BURST lines of
 * a kind in a LOG_RATE_PERIOD_MS period are written, the rest only counted, and once the period is over one
 * summary line of that kind says how many were suppressed. So an outage that fails every request writes a few
 * lines a period, not one per request. The state is per thread (no locks); the loop thread does nearly all
 * logging. */
#ifndef INKLOOP_CORE_LOG_H
#define INKLOOP_CORE_LOG_H

#include <stdarg.h>

typedef enum { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR } log_level_t;

/** Sets the minimum level written and the format (json != 0: JSON lines). */
void log_setup(log_level_t min_level, int json);
/** Lines of one kind written per period before the rest are counted instead. */
#define LOG_RATE_BURST 5
/** The rate-limit period. */
#define LOG_RATE_PERIOD_MS 10000

/** Changes the rate limit of warnings and errors (burst 0 turns it off); for tests and tools. */
void log_set_rate_limit(unsigned burst, unsigned period_ms);
/** Writes the summary line of every kind with suppressed lines now, whether or not its period is over (also
 * done at exit). */
void log_flush_suppressed(void);
/** Parses "debug", "info", "warn"/"warning", "error"; returns 0 or -1. */
int log_parse_level(const char *s, log_level_t *out);
/** True when a line at this level would be written. */
int log_enabled(log_level_t level);
/** Writes one line: what was being done (action, e.g. "connecting to database") and what happened. */
void log_write(log_level_t level, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** va_list form of log_write. */
void log_vwrite(log_level_t level, const char *action, const char *fmt, va_list ap);

#define log_debug(action, ...) log_write(LOG_LEVEL_DEBUG, action, __VA_ARGS__)
#define log_info(action, ...) log_write(LOG_LEVEL_INFO, action, __VA_ARGS__)
#define log_warn(action, ...) log_write(LOG_LEVEL_WARN, action, __VA_ARGS__)
#define log_error(action, ...) log_write(LOG_LEVEL_ERROR, action, __VA_ARGS__)

#endif
