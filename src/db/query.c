#include "db/query.h"
#include "core/alloc.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything a batch owns lives in one allocation: the struct, then the pointer-sized arrays, then the copied
 * text. Pool traffic is many small batches, so one malloc per batch instead of one per string matters. */
static size_t text_size(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

static const char *copy_text(char **cursor, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t len = strlen(s) + 1;
    char *dst = *cursor;
    memcpy(dst, s, len);
    *cursor += len;
    return dst;
}

static db_query_t *query_alloc(size_t n, size_t nparams_total, size_t text_bytes)
{
    size_t size = sizeof(db_query_t) + n * (sizeof(query_stmt_t) + sizeof(db_result_t) + sizeof(PGresult *)) +
                  nparams_total * sizeof(char *) + text_bytes;
    db_query_t *q = xcalloc(1, size);
    char *p = (char *)(q + 1);
    q->stmts = (query_stmt_t *)p;
    p += n * sizeof(query_stmt_t);
    q->results = (db_result_t *)p;
    p += n * sizeof(db_result_t);
    q->held = (PGresult **)p;
    q->n = n;
    q->place = QUERY_NEW;
    return q;
}

db_query_t *query_new(db_pool_t *pool, const db_stmt_t *stmts, size_t n, db_batch_cb cb, void *data)
{
    size_t nparams_total = 0, text_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        assert(stmts[i].nparams >= 0);
        assert(stmts[i].name != NULL || stmts[i].sql != NULL);
        nparams_total += (size_t)stmts[i].nparams;
        text_bytes += text_size(stmts[i].name != NULL ? stmts[i].name : stmts[i].sql);
        for (int j = 0; j < stmts[i].nparams; j++)
            text_bytes += text_size(stmts[i].params[j]);
    }
    db_query_t *q = query_alloc(n, nparams_total, text_bytes);
    const char **params = (const char **)(q->held + n);
    char *text = (char *)(params + nparams_total);
    for (size_t i = 0; i < n; i++) {
        query_stmt_t *s = &q->stmts[i];
        if (stmts[i].name != NULL) {
            s->kind = STMT_PREPARED;
            s->name = copy_text(&text, stmts[i].name);
        } else {
            s->kind = STMT_SQL;
            s->sql = copy_text(&text, stmts[i].sql);
        }
        s->nparams = stmts[i].nparams;
        s->params = params;
        for (int j = 0; j < stmts[i].nparams; j++)
            *params++ = copy_text(&text, stmts[i].params[j]);
    }
    q->pool = pool;
    q->cb = cb;
    q->data = data;
    return q;
}

db_query_t *query_new_prepare(db_pool_t *pool, const char *name, const char *sql, db_batch_cb cb, void *data)
{
    /* The registered strings outlive every connection, so they are referenced, not copied. */
    db_query_t *q = query_alloc(1, 0, 0);
    q->stmts[0] = (query_stmt_t){.kind = STMT_PREPARE, .name = name, .sql = sql};
    q->pool = pool;
    q->internal = 1;
    q->cb = cb;
    q->data = data;
    return q;
}

static void clear_result(db_query_t *q, size_t i)
{
    if (q->results[i].res != NULL)
        PQclear(q->results[i].res);
    if (q->held[i] != NULL)
        PQclear(q->held[i]);
    q->results[i] = (db_result_t){0};
    q->held[i] = NULL;
}

void query_free(db_query_t *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n; i++)
        clear_result(q, i);
    free(q->errtext);
    free(q);
}

void query_list_push(query_list_t *l, db_query_t *q)
{
    q->next = NULL;
    q->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
    l->count++;
}

void query_list_remove(query_list_t *l, db_query_t *q)
{
    assert(l->count > 0);
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    q->prev = q->next = NULL;
    l->count--;
}

db_query_t *query_list_shift(query_list_t *l)
{
    db_query_t *q = l->head;
    if (q != NULL)
        query_list_remove(l, q);
    return q;
}

/* Stores one result for statement i. A statement normally yields one result; should it yield more, the later
 * one wins, which keeps an error that follows partial output. */
static void store_result(db_query_t *q, size_t i, PGresult *res)
{
    clear_result(q, i);
    db_result_t *r = &q->results[i];
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        r->res = res;
        return;
    case PGRES_PIPELINE_ABORTED:
        /* An earlier statement failed, so the server skipped this one. */
        r->err = "aborted";
        PQclear(res);
        return;
    case PGRES_FATAL_ERROR: {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (msg == NULL || msg[0] == '\0')
            msg = PQresultErrorMessage(res);
        r->err = (msg != NULL && msg[0] != '\0') ? msg : "unknown database error";
        if (state != NULL)
            snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", state);
        q->held[i] = res;
        return;
    }
    default:
        /* Empty queries, COPY and the like have no place in a batch; say what came back. */
        r->err = PQresStatus(PQresultStatus(res));
        q->held[i] = res;
        return;
    }
}

query_feed_t query_list_feed(query_list_t *inflight, PGresult *res, db_query_t **done)
{
    db_query_t *q = inflight->head;
    *done = NULL;
    if (q == NULL) {
        if (res == NULL)
            return FEED_MORE;
        PQclear(res);
        return FEED_DESYNC;
    }
    if (res == NULL) {
        /* NULL ends one statement's results. After the last statement only the sync is due, but an error
         * raised while committing at the sync (a deferred constraint, a serialization failure) is itself
         * followed by a NULL, so one NULL is tolerated after such an error. */
        if (q->cursor < q->n) {
            q->cursor++;
            return FEED_MORE;
        }
        if (q->commit_error == 1) {
            q->commit_error = 2;
            return FEED_MORE;
        }
        return FEED_DESYNC;
    }
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_PIPELINE_SYNC) {
        PQclear(res);
        if (q->cursor < q->n)
            return FEED_DESYNC;
        query_list_remove(inflight, q);
        *done = q;
        return FEED_DONE;
    }
    if (q->cursor < q->n) {
        store_result(q, q->cursor, res);
        return FEED_MORE;
    }
    /* After the last statement: the commit at the sync failed. Every statement ran, but nothing was kept; the
     * error goes on the last statement, so results[n-1].err is set exactly when the batch failed. */
    if (st == PGRES_FATAL_ERROR && q->commit_error == 0) {
        store_result(q, q->n - 1, res);
        q->commit_error = 1;
        return FEED_MORE;
    }
    PQclear(res);
    return FEED_DESYNC;
}

void query_fail(db_query_t *q, const char *err)
{
    free(q->errtext);
    q->errtext = xstrdup(err);
    for (size_t i = 0; i < q->n; i++) {
        clear_result(q, i);
        q->results[i].err = q->errtext;
    }
}

int query_failed(const db_query_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        if (q->results[i].err != NULL)
            return 1;
    return 0;
}
