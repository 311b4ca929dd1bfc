/* Private to src/db (and its tests): the migration runner over any list of migrations, so tests can apply
 * their own files to a scratch database while db_migrate applies the compiled-in ones. */
#ifndef INKLOOP_DB_MIGRATE_APPLY_H
#define INKLOOP_DB_MIGRATE_APPLY_H

#include "db/migrate.h"

/** db_migrate over list[0..n), which must be sorted by version without repeats. */
int migrate_apply(const char *conninfo, const migration_t *list, size_t n, int *applied, char *err,
                  size_t errlen);

#endif
