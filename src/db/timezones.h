/* The IANA timezone names PostgreSQL knows (pg_timezone_names), loaded once per process. Campaigns and
 * articles (any record with a timezone field) accept exactly these names. Listing them costs PostgreSQL tens
 * of milliseconds (it reads the zone directory), far too much per request, and the list only changes with a
 * PostgreSQL upgrade, rare enough that a process restart picks it up. */
#ifndef INKLOOP_DB_TIMEZONES_H
#define INKLOOP_DB_TIMEZONES_H

#include "db/db.h"

/** Called once the names are loaded (failure NULL), or when loading failed (failure says why; a refused query
 * has no SQLSTATE, like an unreachable database). */
typedef void (*db_timezones_ready_cb)(void *data, const db_result_t *failure);

/** Registers timezones_list (sql/queries/timezones.sql). */
int db_timezones_prepare(db_pool_t *pool);
/** Calls cb when the names are available: at once (synchronously) when they already are, otherwise after one
 * query on db that concurrent callers share, in the order they asked. A failed load is retried by the next
 * caller. */
void db_timezones_when_ready(db_pool_t *db, db_timezones_ready_cb cb, void *data);
/** 1 once the names are loaded. */
int db_timezones_loaded(void);
/** 1 when name is one of the loaded names (exact case), 0 otherwise or before the names are loaded. */
int db_timezones_valid(const char *name);

#endif
