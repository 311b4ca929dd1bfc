/* The server-free half of the pool: batch copies, the FIFO lists, the pairing of pipeline results with
 * batches (results synthesized with PQmakeEmptyPGresult), and the reconnect backoff. */
#include "db/query.h"
#include "tap.h"

#include <stdlib.h>

static PGresult *result(ExecStatusType st)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, st);
    if (r == NULL)
        abort();
    return r;
}

static db_query_t *sql_batch(size_t n)
{
    db_stmt_t stmts[4];
    for (size_t i = 0; i < n; i++)
        stmts[i] = (db_stmt_t){.sql = "SELECT 1"};
    return query_new(NULL, stmts, n, NULL, NULL);
}

static void test_copy(void)
{
    char p0[] = "first", p1[] = "second";
    const char *params[] = {p0, NULL, p1};
    db_stmt_t stmts[] = {{.name = "named", .nparams = 3, .params = params},
                         {.sql = "SELECT $1", .nparams = 0}};
    db_query_t *q = query_new(NULL, stmts, 2, NULL, NULL);
    p0[0] = 'X';
    p1[0] = 'Y';
    TAP_IS_INT(q->n, 2, "copy: two statements");
    TAP_IS_INT(q->stmts[0].kind, STMT_PREPARED, "copy: a name makes a prepared statement");
    TAP_IS_STR(q->stmts[0].name, "named", "copy: name copied");
    TAP_IS_STR(q->stmts[0].params[0], "first", "copy: parameter copied, not referenced");
    TAP_OK(q->stmts[0].params[1] == NULL, "copy: SQL NULL parameter stays NULL");
    TAP_IS_STR(q->stmts[0].params[2], "second", "copy: third parameter");
    TAP_IS_INT(q->stmts[1].kind, STMT_SQL, "copy: no name makes SQL text");
    TAP_IS_STR(q->stmts[1].sql, "SELECT $1", "copy: SQL copied");
    query_free(q);
}

static void test_list(void)
{
    query_list_t l = {0};
    db_query_t *a = sql_batch(1), *b = sql_batch(1), *c = sql_batch(1);
    query_list_push(&l, a);
    query_list_push(&l, b);
    query_list_push(&l, c);
    TAP_IS_INT(l.count, 3, "list: three pushed");
    query_list_remove(&l, b);
    TAP_OK(l.head == a && l.tail == c && a->next == c && c->prev == a, "list: removing the middle relinks");
    TAP_OK(query_list_shift(&l) == a, "list: FIFO order (a)");
    query_list_remove(&l, c);
    TAP_OK(l.head == NULL && l.tail == NULL && l.count == 0, "list: empty after removing the last");
    TAP_OK(query_list_shift(&l) == NULL, "list: shift of empty is NULL");
    query_free(a);
    query_free(b);
    query_free(c);
}

/* Three batches in flight on one connection; the results arrive as libpq yields them in pipeline mode. */
static void test_pairing(void)
{
    query_list_t inflight = {0};
    db_query_t *a = sql_batch(2), *b = sql_batch(3), *c = sql_batch(1), *done = NULL;
    query_list_push(&inflight, a);
    query_list_push(&inflight, b);
    query_list_push(&inflight, c);

    /* a: two statements that succeed. */
    TAP_IS_INT(query_list_feed(&inflight, result(PGRES_TUPLES_OK), &done), FEED_MORE,
               "pair: a stmt 0 result");
    TAP_IS_INT(query_list_feed(&inflight, NULL, &done), FEED_MORE, "pair: a stmt 0 end");
    TAP_IS_INT(query_list_feed(&inflight, result(PGRES_COMMAND_OK), &done), FEED_MORE,
               "pair: a stmt 1 result");
    TAP_IS_INT(query_list_feed(&inflight, NULL, &done), FEED_MORE, "pair: a stmt 1 end");
    TAP_IS_INT(query_list_feed(&inflight, result(PGRES_PIPELINE_SYNC), &done), FEED_DONE, "pair: a sync");
    TAP_OK(done == a, "pair: the sync completes the head batch (a)");
    TAP_OK(!query_failed(a) && a->results[0].res != NULL && a->results[1].res != NULL, "pair: a succeeded");
    TAP_OK(PQresultStatus(a->results[0].res) == PGRES_TUPLES_OK, "pair: a stmt 0 kept its own result");
    TAP_IS_INT(inflight.count, 2, "pair: two left in flight");

    /* b: the middle statement fails; the server skips the last. */
    query_list_feed(&inflight, result(PGRES_COMMAND_OK), &done);
    query_list_feed(&inflight, NULL, &done);
    query_list_feed(&inflight, result(PGRES_FATAL_ERROR), &done);
    query_list_feed(&inflight, NULL, &done);
    query_list_feed(&inflight, result(PGRES_PIPELINE_ABORTED), &done);
    query_list_feed(&inflight, NULL, &done);
    TAP_IS_INT(query_list_feed(&inflight, result(PGRES_PIPELINE_SYNC), &done), FEED_DONE, "pair: b sync");
    TAP_OK(done == b, "pair: b completes second");
    TAP_OK(query_failed(b), "pair: b failed");
    TAP_OK(b->results[0].err == NULL && b->results[0].res != NULL,
           "pair: b stmt 0 succeeded before the error");
    TAP_OK(b->results[1].err != NULL && b->results[1].res == NULL, "pair: b stmt 1 carries the error");
    TAP_IS_STR(b->results[2].err, "aborted", "pair: b stmt 2 aborted");

    /* c: its statement succeeds but the commit at the sync fails (a deferred constraint). */
    query_list_feed(&inflight, result(PGRES_COMMAND_OK), &done);
    query_list_feed(&inflight, NULL, &done);
    TAP_IS_INT(query_list_feed(&inflight, result(PGRES_FATAL_ERROR), &done), FEED_MORE,
               "pair: c commit error");
    TAP_IS_INT(query_list_feed(&inflight, NULL, &done), FEED_MORE, "pair: c commit error's end");
    TAP_IS_INT(query_list_feed(&inflight, result(PGRES_PIPELINE_SYNC), &done), FEED_DONE, "pair: c sync");
    TAP_OK(done == c && c->results[0].err != NULL && c->results[0].res == NULL,
           "pair: a commit error lands on the last statement");
    TAP_IS_INT(inflight.count, 0, "pair: nothing left in flight");
    TAP_IS_INT(query_list_feed(&inflight, NULL, &done), FEED_MORE, "pair: idle NULL is harmless");
    TAP_IS_INT(query_list_feed(&inflight, result(PGRES_TUPLES_OK), &done), FEED_DESYNC,
               "pair: a result with nothing in flight is a desync");
    query_free(a);
    query_free(b);
    query_free(c);
}

static void test_desync(void)
{
    query_list_t inflight = {0};
    db_query_t *q = sql_batch(2), *done = NULL;
    query_list_push(&inflight, q);
    query_list_feed(&inflight, result(PGRES_TUPLES_OK), &done);
    query_list_feed(&inflight, NULL, &done);
    TAP_IS_INT(query_list_feed(&inflight, result(PGRES_PIPELINE_SYNC), &done), FEED_DESYNC,
               "desync: a sync before the last statement");
    query_list_remove(&inflight, q);
    query_free(q);

    q = sql_batch(1);
    query_list_push(&inflight, q);
    query_list_feed(&inflight, result(PGRES_TUPLES_OK), &done);
    query_list_feed(&inflight, NULL, &done);
    TAP_IS_INT(query_list_feed(&inflight, NULL, &done), FEED_DESYNC, "desync: a NULL where the sync is due");
    query_list_remove(&inflight, q);
    query_free(q);
}

static void test_fail(void)
{
    db_query_t *q = sql_batch(3), *done = NULL;
    query_list_t inflight = {0};
    query_list_push(&inflight, q);
    query_list_feed(&inflight, result(PGRES_TUPLES_OK), &done);
    query_fail(q, "connection lost");
    for (size_t i = 0; i < 3; i++)
        TAP_IS_STR(q->results[i].err, "connection lost", "fail: statement %zu carries the error", i);
    TAP_OK(q->results[0].res == NULL, "fail: a received result is dropped");
    query_list_remove(&inflight, q);
    query_free(q);
}

static void test_backoff(void)
{
    TAP_IS_INT(db_backoff_ms(0, 100, 5000, 0), 50, "backoff: first retry at least half the minimum");
    TAP_IS_INT(db_backoff_ms(0, 100, 5000, 50), 100, "backoff: and at most the minimum");
    TAP_IS_INT(db_backoff_ms(1, 100, 5000, 50), 150, "backoff: doubles (100..200)");
    TAP_IS_INT(db_backoff_ms(3, 100, 5000, 0), 400, "backoff: 800 nominal, half fixed");
    TAP_IS_INT(db_backoff_ms(10, 100, 5000, 0), 2500, "backoff: capped at the maximum");
    TAP_IS_INT(db_backoff_ms(1000, 100, 5000, 2500), 5000, "backoff: no overflow on long outages");
    int in_range = 1;
    for (uint32_t r = 0; r < 100000; r += 7) {
        int d = db_backoff_ms(4, 100, 5000, r * 2654435761u);
        if (d < 800 || d > 1600)
            in_range = 0;
    }
    TAP_OK(in_range, "backoff: jitter stays within [delay/2, delay]");
    TAP_IS_INT(db_backoff_ms(0, 0, 0, 12345), 1, "backoff: degenerate bounds still give a delay");
}

int main(void)
{
    test_copy();
    test_list();
    test_pairing();
    test_desync();
    test_fail();
    test_backoff();
    return tap_done();
}
