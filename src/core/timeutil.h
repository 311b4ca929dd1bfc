/* Wall-clock time, ISO-8601 formatting and parsing. Times travel inside the program as microseconds since the
 * Unix epoch (UTC), the resolution PostgreSQL keeps. */
#ifndef INKLOOP_CORE_TIMEUTIL_H
#define INKLOOP_CORE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/** Current wall-clock time in microseconds since the epoch. */
int64_t time_now_us(void);
/** Monotonic clock in milliseconds, for durations. */
uint64_t time_mono_ms(void);
/** Formats as "2026-11-25T09:00:00.123456Z"; returns the length written (needs 28 bytes). */
size_t time_format_iso(int64_t us, char *out, size_t outlen);
/** Converts PostgreSQL's text form of timestamptz with the session in UTC ("2026-11-25 09:00:00.123+00") to
 * the contract's form ("2026-11-25T09:00:00.123000Z"); returns 0 or -1 when it is not such a timestamp. */
int time_pg_to_iso(const char *pg, char *out, size_t outlen);

#endif
