/* Schema migrations: the files of sql/ are compiled into the binary and applied in order, each once, each in
 * its own transaction, under an advisory lock so several processes starting together apply each once. */
#ifndef INKLOOP_DB_MIGRATE_H
#define INKLOOP_DB_MIGRATE_H

#include <stddef.h>

/** One migration compiled in from sql/NNNN_name.sql. */
typedef struct st_migration_t {
    int version;      /* NNNN */
    const char *name; /* file name */
    const char *sql;
} migration_t;

/** The compiled-in migrations, sorted by version (generated at build time). */
extern const migration_t migrations[];
extern const size_t migration_count;

/** Connects (blocking: this runs before the loop serves anything), applies what is pending, reports how many
 * were applied in *applied. Returns 0, or -1 with a message in err. */
int db_migrate(const char *conninfo, int *applied, char *err, size_t errlen);

#endif
