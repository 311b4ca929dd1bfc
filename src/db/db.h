/* PostgreSQL connection pool on the libuv loop.
 *
 * N nonblocking libpq connections, each watched by one uv_poll_t, in pipeline mode. Statements are registered
 * once with db_pool_prepare and prepared on every connection right after it connects (and again after every
 * reconnect). Each connection keeps a FIFO of the batches it has sent, so results pair with callers in order.
 * Callers past the per-connection pipeline depth wait in one bounded FIFO; when it is full, db_batch returns
 * NULL and the caller answers 503. A lost connection fails its in-flight batches, and is reopened with
 * exponential backoff. */
#ifndef INKLOOP_DB_H
#define INKLOOP_DB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_db_pool_t db_pool_t;
typedef struct st_db_query_t db_query_t;

/** One statement of a batch: a registered statement's name, or SQL text sent as an unnamed statement. */
typedef struct st_db_stmt_t {
    const char *name; /* registered with db_pool_prepare; NULL to use sql */
    const char *sql;  /* used when name is NULL */
    int nparams;
    const char *const *params; /* text form; NULL entries are SQL NULL; copied by db_batch */
} db_stmt_t;

/** The outcome of one statement. */
typedef struct st_db_result_t {
    PGresult *res;    /* PGRES_TUPLES_OK or PGRES_COMMAND_OK result; NULL when err is set */
    const char *err;  /* NULL on success; otherwise what went wrong (server message or "connection lost") */
    char sqlstate[6]; /* the server's SQLSTATE when it reported the error, "" otherwise */
} db_result_t;

/** Completion of a batch: one result per statement, in order. Results (and their PGresults) are valid only
 * during the call. When the batch failed, the failing statement carries the error and every later one has
 * err "aborted" (the batch ran in one implicit transaction and was rolled back); an error at commit (a
 * deferred constraint) is on the last statement; a batch that never ran ("connection lost", "database
 * unavailable", "timed out waiting for a database connection", "pool closing") has the error on every
 * statement. So results[n - 1].err is set exactly when the batch failed. */
typedef void (*db_batch_cb)(const db_result_t *results, size_t n, void *data);

typedef struct st_db_pool_config_t {
    const char *conninfo;     /* libpq connection string or URL */
    int size;                 /* connections */
    int max_waiting;          /* batches waiting for a connection before db_batch refuses */
    int pipeline_depth;       /* batches in flight per connection (default 16) */
    int statement_timeout_ms; /* sent as the session's statement_timeout (default 30000) */
    int wait_timeout_ms;      /* how long a batch may wait for a connection (default 10000) */
    int backoff_min_ms;       /* first reconnect delay (default 100) */
    int backoff_max_ms;       /* reconnect delay cap (default 5000) */
} db_pool_config_t;

typedef struct st_db_pool_stats_t {
    int size;      /* configured connections */
    int ready;     /* connected and prepared */
    int in_flight; /* batches sent and not yet answered */
    int waiting;   /* batches queued for a connection */
    uint64_t completed;
    uint64_t failed;
    uint64_t reconnects;
} db_pool_stats_t;

/** Creates the pool; nothing connects until db_pool_start. The config strings are copied. Returns NULL (and
 * logs why) when conninfo cannot be parsed. Zero config fields take the defaults above (size 4). */
db_pool_t *db_pool_create(uv_loop_t *loop, const db_pool_config_t *cfg);
/** Registers a statement prepared on every connection. Only before db_pool_start. Returns 0 or -1. */
int db_pool_prepare(db_pool_t *pool, const char *name, const char *sql);
/** The SQL text a statement was registered with (db_pool_prepare), NULL when no statement has that name. */
const char *db_pool_statement_sql(const db_pool_t *pool, const char *name);
/** A statement to register: a module keeps a table of these and registers it with db_pool_prepare_all. */
typedef struct st_db_named_sql_t {
    const char *name;
    const char *sql;
} db_named_sql_t;

/** Registers every statement of a table (db_pool_prepare each). Returns 0 or -1 at the first refusal. */
int db_pool_prepare_all(db_pool_t *pool, const db_named_sql_t *stmts, size_t n);
/** Opens the connections (asynchronously). */
void db_pool_start(db_pool_t *pool);
/** 1 when at least one connection is ready to take queries. */
int db_pool_available(const db_pool_t *pool);
/** Fills stats. */
void db_pool_stats(const db_pool_t *pool, db_pool_stats_t *stats);

/** Runs the statements in order as one atomic unit (one pipeline sync). Returns NULL, without calling cb,
 * when the wait queue is full or the pool is closing; the caller answers 503. When no connection has been up
 * since the last failure, the batch fails at once with err "database unavailable" (through cb, on a later
 * loop turn). */
db_query_t *db_batch(db_pool_t *pool, const db_stmt_t *stmts, size_t n, db_batch_cb cb, void *data);
/** One statement: db_batch with n = 1. */
db_query_t *db_query(db_pool_t *pool, const char *name, int nparams, const char *const *params,
                     db_batch_cb cb, void *data);
/** After this returns, cb of q will never be called. The statement may still run on the server. */
void db_query_cancel(db_query_t *q);

/** Fails waiting batches, lets in-flight ones finish (or fail), closes every connection and handle, then
 * calls cb. The pool is freed after cb returns. */
void db_pool_close(db_pool_t *pool, void (*cb)(void *data), void *data);

/* Retry timing, for reconnects here and for anyone else who retries (one copy in the tree). */
/** The next value of a caller-held xorshift32 generator, seeded on first use (when *state is 0): the one
 * source of retry and reconnect jitter, which needs spread, not secrecy. */
uint32_t db_jitter_next(uint32_t *state);
/** Delay before retry number `attempt` (0 for the first retry): min_ms doubled per attempt, capped at max_ms,
 * then "equal jitter": half of it fixed and half drawn from rnd (db_jitter_next), so clients that failed
 * together spread out but never retry sooner than half the nominal delay. */
int db_backoff_ms(int attempt, int min_ms, int max_ms, uint32_t rnd);

/* Helpers for reading results. */
/** The text of a field, NULL when SQL NULL. */
const char *db_value(const PGresult *res, int row, const char *column);
/** A field as an integer (0 when NULL). */
int64_t db_int(const PGresult *res, int row, const char *column);
/** A boolean field ('t'). */
int db_bool(const PGresult *res, int row, const char *column);

#endif
