/* The IANA timezone names PostgreSQL knows (pg_timezone_names), loaded once per process. Campaigns (and any
 * other record with a timezone field) accept exactly these names. Listing them costs PostgreSQL tens of
 * milliseconds (it reads the zone directory), far too much per request, and the list only changes with a
 * PostgreSQL upgrade, which restarts nothing of ours but is rare enough that a process restart picks it up.
 */
#ifndef INKLOOP_HTTP_TIMEZONES_H
#define INKLOOP_HTTP_TIMEZONES_H

#include "app.h"
#include "db/db.h"

/** Called once the names are loaded (failure NULL), or when loading failed (failure says why: answer it with
 * kit_db_failed, which turns it into 503 or 500). */
typedef void (*timezones_ready_cb)(void *data, const db_result_t *failure);

/** Calls cb when the names are available: at once (synchronously) when they already are, otherwise after one
 * query that concurrent callers share. A failed load is retried by the next caller. */
void timezones_when_ready(app_t *app, timezones_ready_cb cb, void *data);
/** 1 once the names are loaded. */
int timezones_loaded(void);
/** 1 when name is one of the loaded names (exact case), 0 otherwise or before the names are loaded. */
int timezones_valid(const char *name);

#endif
