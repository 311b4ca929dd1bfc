/* One database step of a machine: a batch in flight and, once it answers, its outcome copied out of the
 * pool's callback (which owns the results only during the call): the rows of one chosen statement, the first
 * error and its SQLSTATE. The generation, delivery and scheduler machines each embed one per operation.
 *
 * A step sends through a db_target_t: the pool in production, a fake in unit tests. */
#ifndef INKLOOP_DB_STEP_H
#define INKLOOP_DB_STEP_H

#include "db/db.h"

#include <stddef.h>

/** Where batches go: db_batch and db_query_cancel of a pool, or a test's fake with the same contract (cb
 * never runs synchronously and never after cancel; NULL when refused). */
typedef struct st_db_target_t {
    db_query_t *(*batch)(void *ctx, const db_stmt_t *stmts, size_t n, db_batch_cb cb, void *data);
    void (*cancel)(void *ctx, db_query_t *q);
    void *ctx;
} db_target_t;

/** The pool as a target. */
db_target_t db_target_pool(db_pool_t *pool);
/** A single statement through a target whose outcome nobody waits for (progress notes); errors are logged
 * with `action`. Returns 0, or -1 when the target refused it. */
int db_target_fire(const db_target_t *t, const char *action, const char *name, int nparams,
                   const char *const *params);

typedef struct st_db_step_t db_step_t;
/** Completion of a step: the outcome is in the step until the next db_step_start or db_step_clear. */
typedef void (*db_step_cb)(db_step_t *step);

struct st_db_step_t {
    const db_target_t *target;
    db_step_cb cb;
    void *data;
    db_query_t *q;       /* the batch in flight, NULL when none */
    size_t keep;         /* the statement whose rows are copied */
    PGresult *res;       /* those rows (copied), NULL when the batch failed or the statement returned none */
    int rows;            /* PQntuples(res) */
    const char *err;     /* NULL on success; else the first error (points into _errbuf) */
    char sqlstate[6];    /* the server's SQLSTATE of err, "" when none */
    char cmd_tuples[24]; /* PQcmdTuples of the kept statement ("" when none) */
    char _errbuf[400];
};

/** Prepares an idle step; cb gets data through step->data. */
void db_step_init(db_step_t *s, const db_target_t *target, db_step_cb cb, void *data);
/** Sends the batch (db_stmt_t arrays are copied by the target) and keeps the rows of statement `keep`.
 * Returns 0, or -1 when the target refused it: then err is "database busy" and cb will not run. */
int db_step_start(db_step_t *s, const db_stmt_t *stmts, size_t n, size_t keep);
/** The batch in flight (if any) is cancelled: cb will not run. The last outcome is kept. */
void db_step_cancel(db_step_t *s);
/** Records err (copied) as the outcome, for a step its owner gave up on (a deadline); cancels first. */
void db_step_give_up(db_step_t *s, const char *err);
/** Cancels and frees the kept rows. */
void db_step_clear(db_step_t *s);

#endif
