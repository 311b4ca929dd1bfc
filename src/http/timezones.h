/* IANA timezone names as PostgreSQL knows them (pg_timezone_names), cached once per process so request
 * validation costs a binary search, not the 30 ms that reading pg_timezone_names takes. */
#ifndef INKLOOP_HTTP_TIMEZONES_H
#define INKLOOP_HTTP_TIMEZONES_H

#include "app.h"

/** Called when the set is loaded (ok = 1) or could not be loaded (ok = 0). */
typedef void (*tz_ready_cb)(void *data, int ok);

/** Registers the statements of this file. */
int tz_prepare(db_pool_t *pool);
/** 1 when name is a known timezone, 0 when not, -1 when the set is not loaded yet. "UTC" is always known. */
int tz_known(const char *name);
/** Makes sure the set is loaded, then calls cb: at once (synchronously) when it already is, otherwise when
 * the one shared load finishes. ok = 0 means the database could not be asked; callers then rely on the
 * database's own check (the check_timezone trigger, SQLSTATE 22023). */
void tz_ensure(app_t *app, tz_ready_cb cb, void *data);

#endif
