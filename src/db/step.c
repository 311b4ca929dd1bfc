#include "db/step.h"
#include "core/alloc.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static db_query_t *pool_batch(void *ctx, const db_stmt_t *stmts, size_t n, db_batch_cb cb, void *data)
{
    return db_batch(ctx, stmts, n, cb, data);
}

static void pool_cancel(void *ctx, db_query_t *q)
{
    (void)ctx;
    db_query_cancel(q);
}

db_target_t db_target_pool(db_pool_t *pool)
{
    return (db_target_t){.batch = pool_batch, .cancel = pool_cancel, .ctx = pool};
}

static void on_fired(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    if (r[0].err != NULL)
        log_warn(data, "%s", r[0].err);
}

int db_target_fire(const db_target_t *t, const char *action, const char *name, int nparams,
                   const char *const *params)
{
    db_stmt_t s = {name, NULL, nparams, params};
    /* action is a string literal: it outlives the query. */
    return t->batch(t->ctx, &s, 1, on_fired, (void *)action) != NULL ? 0 : -1;
}

static void set_err(db_step_t *s, const char *err, const char *sqlstate)
{
    snprintf(s->_errbuf, sizeof(s->_errbuf), "%s", err);
    s->err = s->_errbuf;
    snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", sqlstate != NULL ? sqlstate : "");
}

static void reset(db_step_t *s)
{
    PQclear(s->res);
    s->res = NULL;
    s->rows = 0;
    s->err = NULL;
    s->sqlstate[0] = '\0';
    s->cmd_tuples[0] = '\0';
}

void db_step_init(db_step_t *s, const db_target_t *target, db_step_cb cb, void *data)
{
    memset(s, 0, sizeof(*s));
    s->target = target;
    s->cb = cb;
    s->data = data;
}

static void on_batch(const db_result_t *r, size_t n, void *data)
{
    db_step_t *s = data;
    s->q = NULL;
    reset(s);
    for (size_t i = 0; i < n; i++) {
        if (r[i].err != NULL) {
            set_err(s, r[i].err, r[i].sqlstate);
            break;
        }
    }
    if (s->err == NULL && s->keep < n && r[s->keep].res != NULL) {
        const PGresult *res = r[s->keep].res;
        s->res = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
        if (s->res == NULL)
            abort(); /* out of memory */
        s->rows = PQntuples(res);
        snprintf(s->cmd_tuples, sizeof(s->cmd_tuples), "%s", PQcmdTuples((PGresult *)res));
    }
    s->cb(s);
}

int db_step_start(db_step_t *s, const db_stmt_t *stmts, size_t n, size_t keep)
{
    db_step_cancel(s);
    reset(s);
    s->keep = keep;
    s->q = s->target->batch(s->target->ctx, stmts, n, on_batch, s);
    if (s->q == NULL) {
        set_err(s, "database busy", NULL);
        return -1;
    }
    return 0;
}

void db_step_cancel(db_step_t *s)
{
    if (s->q != NULL) {
        s->target->cancel(s->target->ctx, s->q);
        s->q = NULL;
    }
}

void db_step_give_up(db_step_t *s, const char *err)
{
    db_step_cancel(s);
    reset(s);
    set_err(s, err, NULL);
}

void db_step_clear(db_step_t *s)
{
    db_step_cancel(s);
    reset(s);
}
