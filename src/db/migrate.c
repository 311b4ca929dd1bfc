/* Blocking on purpose: migrations run before the loop serves anything, and a process must not serve a schema
 * it has not finished migrating. */
#include "db/migrate.h"
#include "core/alloc.h"
#include "core/log.h"
#include "db/conn.h"
#include "db/migrate_apply.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ACTION[] = "applying database migrations";

/* Every process running migrations against one database takes this session lock first, so concurrent starts
 * apply each file once. The key is "inkloop" in ASCII, unlikely to collide with another application's. */
#define MIGRATION_LOCK_SQL "SELECT pg_advisory_lock(29676280214417264)"
#define MIGRATION_UNLOCK_SQL "SELECT pg_advisory_unlock(29676280214417264)"

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char *msg = pgconn_message(message);
    log_debug(ACTION, "server notice: %s", msg);
    free(msg);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    pgconn_one_line(err);
}

/* The server's own words for a failed result: primary message and SQLSTATE, or libpq's message. */
static void result_err(PGconn *pg, const PGresult *res, const char *what, char *err, size_t errlen)
{
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (msg != NULL)
        set_err(err, errlen, "%s: %s (SQLSTATE %s)", what, msg, state != NULL ? state : "?");
    else
        set_err(err, errlen, "%s: %s", what, PQerrorMessage(pg));
}

/* Runs sql and checks its status; 0, or -1 with err set. Multi-statement text is fine (simple protocol). */
static int exec(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
    if (!ok)
        result_err(pg, res, what, err, errlen);
    PQclear(res);
    return ok ? 0 : -1;
}

static int apply_one(PGconn *pg, const migration_t *m, char *err, size_t errlen)
{
    char what[300];
    snprintf(what, sizeof(what), "migration %s", m->name);
    if (exec(pg, "BEGIN", what, err, errlen) != 0)
        return -1;
    if (exec(pg, m->sql, what, err, errlen) != 0)
        goto rollback;
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name};
    PGresult *res = PQexecParams(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL,
                                 params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        result_err(pg, res, what, err, errlen);
        PQclear(res);
        goto rollback;
    }
    PQclear(res);
    if (exec(pg, "COMMIT", what, err, errlen) != 0)
        goto rollback;
    return 0;
rollback:
    /* The error is already reported; a failed ROLLBACK means the connection is gone, which ends the
     * transaction anyway. */
    PQclear(PQexec(pg, "ROLLBACK"));
    return -1;
}

/* Reads the applied versions into a sorted array. Returns the count, or -1 with err set. */
static int applied_versions(PGconn *pg, int **out, char *err, size_t errlen)
{
    PGresult *res = PQexec(pg, "SELECT version FROM schema_migrations ORDER BY version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        result_err(pg, res, "reading schema_migrations", err, errlen);
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    *out = xcalloc((size_t)n + 1, sizeof(int));
    for (int i = 0; i < n; i++)
        (*out)[i] = atoi(PQgetvalue(res, i, 0));
    PQclear(res);
    return n;
}

static int contains(const int *sorted, int n, int v)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (sorted[mid] == v)
            return 1;
        if (sorted[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

int migrate_apply(const char *conninfo, const migration_t *list, size_t n, int *applied, char *err,
                  size_t errlen)
{
    *applied = 0;
    for (size_t i = 1; i < n; i++) {
        if (list[i].version <= list[i - 1].version) {
            set_err(err, errlen, "migrations out of order: %s after %s", list[i].name, list[i - 1].name);
            return -1;
        }
    }
    /* connect_timeout comes before the expanded conninfo, so a timeout given in DATABASE_URL wins. */
    const char *keys[] = {"connect_timeout", "dbname", "fallback_application_name", NULL};
    const char *values[] = {"10", conninfo, "inkloop-migrate", NULL};
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (pg == NULL) {
        log_error(ACTION, "out of memory");
        abort();
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        set_err(err, errlen, "connecting to database: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return -1;
    }
    PQsetNoticeProcessor(pg, on_notice, NULL);
    int rc = -1, *done = NULL;
    if (exec(pg, MIGRATION_LOCK_SQL, "taking the migration lock", err, errlen) != 0)
        goto out;
    if (exec(pg,
             "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
             "applied_at timestamptz NOT NULL DEFAULT now())",
             "creating schema_migrations", err, errlen) != 0)
        goto unlock;
    int ndone = applied_versions(pg, &done, err, errlen);
    if (ndone < 0)
        goto unlock;
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (contains(done, ndone, list[i].version))
            continue;
        if (apply_one(pg, &list[i], err, errlen) != 0) {
            rc = -1;
            break;
        }
        log_info(ACTION, "applied %s", list[i].name);
        (*applied)++;
    }
unlock:
    /* Closing the session releases the lock too; unlocking first keeps a pooled or proxied session clean. */
    if (exec(pg, MIGRATION_UNLOCK_SQL, "releasing the migration lock", rc == 0 ? err : NULL,
             rc == 0 ? errlen : 0) != 0)
        rc = -1;
out:
    free(done);
    PQfinish(pg);
    return rc;
}

int db_migrate(const char *conninfo, int *applied, char *err, size_t errlen)
{
    return migrate_apply(conninfo, migrations, migration_count, applied, err, errlen);
}
