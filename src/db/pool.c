/* The connection pool: N libpq connections in pipeline mode on the libuv loop.
 *
 * Each connection embeds the connection machine (conn.h), which connects, watches the socket, backs off and
 * reconnects; the pool adds what a pooled connection does once connected: it prepares the registered
 * statements (the machine's session setup), then takes batches. Batches travel through lists: the pool's
 * wait FIFO, a connection's in-flight FIFO (results pair with batches in send order), and the pool's
 * "doomed" list of batches that failed outside a result read (connection lost, pool down, wait deadline,
 * pool closing), whose callbacks run from a timer. Callers' callbacks therefore run only at the top of a
 * loop callback (a result read, or a timer), never inside db_batch, db_query_cancel or db_pool_close, so a
 * callback may call any of them.
 *
 * Lifetime: the pool owns every handle; its two timers and each connection (until the machine's on_closed)
 * are counted in `handles`, and the pool is freed in the last close callback after db_pool_close. */
#include "core/alloc.h"
#include "core/log.h"
#include "db/conn.h"
#include "db/db.h"
#include "db/query.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 10000
/* How much longer than statement_timeout a connection may stay silent with batches in flight before it is
 * taken for dead (a peer gone without a FIN never answers, and statement_timeout is enforced by that peer).
 */
#define RESULT_GRACE_MS 10000

static const char ACTION_CONNECT[] = "connecting to database";
static const char ACTION_QUERY[] = "running database queries";

/* A pooled connection: the machine's PGCONN_SETUP is "preparing the registered statements", PGCONN_READY is
 * "takes batches" (with some in flight, the machine's deadline is the statement timeout). */
typedef struct st_db_conn_t {
    pgconn_t pc;
    db_pool_t *pool;
    int index;
    char name[32]; /* "connection N", for the machine's logs */
    query_list_t inflight;
    int pending_prepares;
} db_conn_t;

typedef struct st_registered_t {
    char *name;
    char *sql;
} registered_t;

struct st_db_pool_t {
    uv_loop_t *loop;
    db_pool_config_t cfg;
    char *conninfo;
    char *options; /* the conninfo's own options plus statement_timeout */
    char *target;  /* user@host:port/db, for logs: never the password */
    db_conn_t *conns;
    registered_t *stmts;
    size_t nstmts;
    query_list_t waiting;
    query_list_t doomed;
    uv_timer_t wait_timer;  /* fires at the deadline of the oldest waiting batch */
    uv_timer_t defer_timer; /* zero delay: runs doomed callbacks and close steps at the top of the loop */
    int handles;            /* the timers and connections not yet closed */
    int started;
    int closing;
    int timers_closed;
    int down; /* no connection ready and the last connect failed: batches fail at once */
    int in_flight;
    uint64_t completed, failed, reconnects;
    uint64_t turn; /* counts flushes of the doomed list */
    void (*close_cb)(void *data);
    void *close_data;
};

static void on_defer(uv_timer_t *timer);
static void on_wait_timeout(uv_timer_t *timer);

/* Failures of uv calls that cannot fail with valid arguments (timer init and start) are bugs. */
static void check_uv(int rc, const char *what)
{
    if (rc != 0) {
        log_error("running database pool", "%s: %s", what, uv_strerror(rc));
        abort();
    }
}

static int is_ready(const db_conn_t *conn)
{
    return conn->pc.state == PGCONN_READY;
}

static int count_ready(const db_pool_t *pool)
{
    int n = 0;
    for (int i = 0; i < pool->cfg.size; i++)
        n += is_ready(&pool->conns[i]);
    return n;
}

/* ---- handles and teardown ---- */

static void pool_free(db_pool_t *pool)
{
    for (size_t i = 0; i < pool->nstmts; i++) {
        free(pool->stmts[i].name);
        free(pool->stmts[i].sql);
    }
    free(pool->stmts);
    free(pool->conns);
    free(pool->conninfo);
    free(pool->options);
    free(pool->target);
    free(pool);
}

static void handle_closed(db_pool_t *pool)
{
    if (--pool->handles > 0 || !pool->closing)
        return;
    log_info("closing database pool", "closed");
    if (pool->close_cb != NULL)
        pool->close_cb(pool->close_data);
    pool_free(pool);
}

static void on_conn_closed(pgconn_t *pc)
{
    db_conn_t *conn = pc->data;
    handle_closed(conn->pool);
}

static void on_pool_timer_closed(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

static void arm_defer(db_pool_t *pool)
{
    if (!pool->timers_closed && !uv_is_active((uv_handle_t *)&pool->defer_timer))
        check_uv(uv_timer_start(&pool->defer_timer, on_defer, 0, 0), "scheduling callbacks");
}

/* ---- batches ---- */
/* Runs the callback, unless cancelled, and frees the batch. The batch is out of every list by now, so a
 * callback that cancels it, or starts, cancels or closes anything else, finds consistent lists. */
static void deliver(db_pool_t *pool, db_query_t *q)
{
    if (!q->internal) {
        if (query_failed(q))
            pool->failed++;
        else
            pool->completed++;
    }
    q->place = QUERY_IN_CALLBACK;
    if (!q->cancelled && q->cb != NULL)
        q->cb(q->results, q->n, q->data);
    query_free(q);
}

static void doom(db_pool_t *pool, db_query_t *q, const char *err)
{
    if (err != NULL)
        query_fail(q, err);
    q->place = QUERY_DOOMED;
    q->turn = pool->turn;
    query_list_push(&pool->doomed, q);
    arm_defer(pool);
}

/* Runs the callbacks of the batches doomed so far. Those doomed by the callbacks themselves (a caller
 * retrying at once against a pool that is down) wait for the next turn, so the loop is never starved. The
 * batches stay in pool->doomed until their turn, so a callback can still cancel any of them. */
static void flush_doomed(db_pool_t *pool)
{
    uint64_t turn = pool->turn++;
    while (pool->doomed.count > 0 && pool->doomed.head->turn <= turn)
        deliver(pool, query_list_shift(&pool->doomed));
}

/* Fails the batches in flight on a dropped connection. A batch the server already failed keeps that error;
 * statements it never answered are "aborted". Others get err. */
static void fail_inflight(db_conn_t *conn, const char *err)
{
    db_pool_t *pool = conn->pool;
    db_query_t *q;
    while ((q = query_list_shift(&conn->inflight)) != NULL) {
        q->conn = NULL;
        if (!q->internal)
            pool->in_flight--;
        if (q->internal || q->cancelled) {
            query_free(q);
            continue;
        }
        if (query_failed(q)) {
            for (size_t i = 0; i < q->n; i++)
                if (q->results[i].res == NULL && q->results[i].err == NULL)
                    q->results[i].err = "aborted";
            doom(pool, q, NULL);
        } else {
            doom(pool, q, err);
        }
    }
    conn->pending_prepares = 0;
}

static void arm_wait_timer(db_pool_t *pool)
{
    if (pool->timers_closed)
        return;
    if (pool->waiting.count == 0) {
        check_uv(uv_timer_stop(&pool->wait_timer), "stopping wait deadline");
        return;
    }
    uint64_t now = uv_now(pool->loop), deadline = pool->waiting.head->deadline;
    check_uv(uv_timer_start(&pool->wait_timer, on_wait_timeout, deadline > now ? deadline - now : 0, 0),
             "arming wait deadline");
}

/* Sends one batch as one pipeline segment: its statements, then a sync, which makes them one implicit
 * transaction. On failure the connection fails, and the batch with it. Returns 0 or -1. */
static int send_batch(db_conn_t *conn, db_query_t *q)
{
    db_pool_t *pool = conn->pool;
    PGconn *pg = conn->pc.pg;
    q->conn = conn;
    q->place = QUERY_IN_FLIGHT;
    query_list_push(&conn->inflight, q);
    if (!q->internal)
        pool->in_flight++;
    for (size_t i = 0; i < q->n; i++) {
        const query_stmt_t *s = &q->stmts[i];
        int ok = 0;
        switch (s->kind) {
        case STMT_PREPARED:
            ok = PQsendQueryPrepared(pg, s->name, s->nparams, s->params, NULL, NULL, 0);
            break;
        case STMT_SQL:
            ok = PQsendQueryParams(pg, s->sql, s->nparams, NULL, s->params, NULL, NULL, 0);
            break;
        case STMT_PREPARE:
            ok = PQsendPrepare(pg, s->name, s->sql, 0, NULL);
            break;
        }
        if (!ok) {
            pgconn_fail(&conn->pc, "sending a query", PQerrorMessage(pg));
            return -1;
        }
    }
    if (!PQpipelineSync(pg)) {
        pgconn_fail(&conn->pc, "sending a query", PQerrorMessage(pg));
        return -1;
    }
    if (pgconn_flush(&conn->pc) != 0)
        return -1;
    if (is_ready(conn) && conn->inflight.count == 1)
        pgconn_set_deadline(&conn->pc, (uint64_t)pool->cfg.statement_timeout_ms + RESULT_GRACE_MS);
    return 0;
}

/* Sends waiting batches, oldest first, each to the ready connection with the fewest in flight, while any has
 * room below the pipeline depth. */
static void dispatch(db_pool_t *pool)
{
    while (pool->waiting.count > 0 && !pool->closing) {
        db_conn_t *best = NULL;
        for (int i = 0; i < pool->cfg.size; i++) {
            db_conn_t *c = &pool->conns[i];
            if (is_ready(c) && c->inflight.count < (size_t)pool->cfg.pipeline_depth &&
                (best == NULL || c->inflight.count < best->inflight.count))
                best = c;
        }
        if (best == NULL)
            break;
        send_batch(best, query_list_shift(&pool->waiting));
    }
    arm_wait_timer(pool);
}

/* The pool has been down since a connect failed with nothing ready: waiting batches fail now rather than at
 * their deadline, so /health and callers hear about it promptly. */
static void set_down(db_pool_t *pool, const char *why)
{
    if (!pool->down)
        log_error(ACTION_CONNECT, "no connection to %s is up (%s); failing queries until one is",
                  pool->target, why);
    pool->down = 1;
    db_query_t *q;
    while ((q = query_list_shift(&pool->waiting)) != NULL)
        doom(pool, q, "database unavailable");
    arm_wait_timer(pool);
}

/* ---- results ---- */

static void complete(db_conn_t *conn, db_query_t *q)
{
    db_pool_t *pool = conn->pool;
    q->conn = NULL;
    if (!q->internal)
        pool->in_flight--;
    deliver(pool, q);
}

/* Reads every result that has fully arrived. Returns -1 when the connection was dropped meanwhile (by a
 * callback, or because the stream made no sense); the caller must not touch the connection's PGconn then. */
static int read_results(db_conn_t *conn)
{
    int progressed = 0;
    while (conn->pc.pg != NULL && conn->inflight.count > 0 && !PQisBusy(conn->pc.pg)) {
        db_query_t *done;
        progressed = 1;
        switch (query_list_feed(&conn->inflight, PQgetResult(conn->pc.pg), &done)) {
        case FEED_MORE:
            break;
        case FEED_DESYNC:
            pgconn_fail(&conn->pc, "reading results", "results out of step with the pipeline");
            return -1;
        case FEED_DONE:
            complete(conn, done);
            /* The callback may have sent more here, dropped this connection, or closed the pool. */
            if (is_ready(conn))
                dispatch(conn->pool);
            break;
        }
    }
    if (conn->pc.pg == NULL)
        return -1;
    if (is_ready(conn) && progressed) {
        if (conn->inflight.count > 0)
            pgconn_set_deadline(&conn->pc, (uint64_t)conn->pool->cfg.statement_timeout_ms + RESULT_GRACE_MS);
        else
            pgconn_clear_deadline(&conn->pc);
    }
    return 0;
}

/* ---- the connection's hooks (conn.h) ---- */

static void on_conn_readable(pgconn_t *pc)
{
    db_conn_t *conn = pc->data;
    if (read_results(conn) != 0)
        return;
    if (conn->pool->closing && conn->inflight.count == 0)
        arm_defer(conn->pool); /* the close step can close this connection now */
}

/* The last registered statement is prepared: the connection takes batches. */
static void prepared_all(db_conn_t *conn)
{
    db_pool_t *pool = conn->pool;
    pgconn_ready(&conn->pc);
    if (pool->down) {
        pool->down = 0;
        log_info(ACTION_CONNECT, "database %s is reachable again", pool->target);
    }
    dispatch(pool);
}

static void on_prepared(const db_result_t *results, size_t n, void *data)
{
    db_conn_t *conn = data;
    (void)n;
    if (results[0].err != NULL)
        log_error(ACTION_CONNECT, "connection %d: preparing a statement failed: %s", conn->index,
                  results[0].err);
    if (conn->pc.state != PGCONN_SETUP)
        return;
    if (--conn->pending_prepares == 0)
        prepared_all(conn);
}

/* Connected: enters pipeline mode and pipelines one prepare per registered statement, each with its own
 * sync, so a statement that does not prepare (a bug, logged) does not abort the others. */
static void on_conn_connect(pgconn_t *pc)
{
    db_conn_t *conn = pc->data;
    db_pool_t *pool = conn->pool;
    if (PQenterPipelineMode(pc->pg) != 1) {
        pgconn_fail(pc, "entering pipeline mode", PQerrorMessage(pc->pg));
        return;
    }
    conn->pending_prepares = (int)pool->nstmts;
    if (pool->nstmts == 0) {
        prepared_all(conn);
        return;
    }
    for (size_t i = 0; i < pool->nstmts; i++)
        if (send_batch(conn, query_new_prepare(pool, pool->stmts[i].name, pool->stmts[i].sql, on_prepared,
                                               conn)) != 0)
            return; /* the connection failed and moved on */
}

/* Batches in flight and no answer within statement_timeout plus the grace: the peer is taken for dead. */
static void on_conn_deadline(pgconn_t *pc)
{
    db_conn_t *conn = pc->data;
    if (conn->inflight.count > 0)
        pgconn_fail(pc, "waiting for results", "no answer within statement_timeout");
}

static void close_conn(db_conn_t *conn)
{
    if (conn->pc.state == PGCONN_CLOSED)
        return;
    pgconn_close(&conn->pc);
    fail_inflight(conn, "pool closing");
}

static void on_conn_lost(pgconn_t *pc, const char *err, int was_ready)
{
    db_conn_t *conn = pc->data;
    db_pool_t *pool = conn->pool;
    fail_inflight(conn, "connection lost");
    if (pool->closing) {
        close_conn(conn);
        arm_defer(pool);
        return;
    }
    if (!was_ready && count_ready(pool) == 0)
        set_down(pool, err);
    pool->reconnects++;
}

static const pgconn_hooks_t conn_hooks = {
    .on_connect = on_conn_connect,
    .on_readable = on_conn_readable,
    .on_deadline = on_conn_deadline,
    .on_lost = on_conn_lost,
    .on_closed = on_conn_closed,
};

/* ---- closing ---- */

static void close_step(db_pool_t *pool)
{
    int open = 0;
    for (int i = 0; i < pool->cfg.size; i++) {
        db_conn_t *conn = &pool->conns[i];
        if (is_ready(conn) && conn->inflight.count > 0)
            open++; /* finishing what it was sent; its deadline still runs */
        else
            close_conn(conn);
    }
    flush_doomed(pool);
    if (open > 0 || pool->timers_closed)
        return;
    pool->timers_closed = 1;
    check_uv(uv_timer_stop(&pool->wait_timer), "stopping wait deadline");
    check_uv(uv_timer_stop(&pool->defer_timer), "stopping callbacks");
    uv_close((uv_handle_t *)&pool->wait_timer, on_pool_timer_closed);
    uv_close((uv_handle_t *)&pool->defer_timer, on_pool_timer_closed);
}

static void on_defer(uv_timer_t *timer)
{
    db_pool_t *pool = timer->data;
    flush_doomed(pool);
    if (pool->closing)
        close_step(pool);
}

static void on_wait_timeout(uv_timer_t *timer)
{
    db_pool_t *pool = timer->data;
    uint64_t now = uv_now(pool->loop);
    while (pool->waiting.count > 0 && pool->waiting.head->deadline <= now)
        doom(pool, query_list_shift(&pool->waiting), "timed out waiting for a database connection");
    arm_wait_timer(pool);
    flush_doomed(pool);
}

/* ---- the interface ---- */

/* ---- the interface ---- */

db_pool_t *db_pool_create(uv_loop_t *loop, const db_pool_config_t *cfg)
{
    char *own_options = NULL;
    char *target = pgconn_describe(cfg->conninfo, "configuring database pool", &own_options);
    if (target == NULL)
        return NULL;
    db_pool_t *pool = xcalloc(1, sizeof(*pool));
    pool->loop = loop;
    pool->cfg = *cfg;
    db_pool_config_t *c = &pool->cfg;
    if (c->size <= 0)
        c->size = 4;
    if (c->max_waiting < 0)
        c->max_waiting = 0;
    if (c->pipeline_depth <= 0)
        c->pipeline_depth = 16;
    if (c->statement_timeout_ms <= 0)
        c->statement_timeout_ms = 30000;
    if (c->wait_timeout_ms <= 0)
        c->wait_timeout_ms = 10000;
    if (c->backoff_min_ms <= 0)
        c->backoff_min_ms = 100;
    if (c->backoff_max_ms <= 0)
        c->backoff_max_ms = 5000;
    pool->conninfo = xstrdup(cfg->conninfo != NULL ? cfg->conninfo : "");
    c->conninfo = pool->conninfo;
    pool->target = target;
    /* Timestamps cross the API as UTC ISO-8601: the session's TimeZone and DateStyle fix their text form
     * whatever the server's defaults are. */
    pool->options =
        xasprintf("%s%s-c statement_timeout=%d -c TimeZone=UTC -c DateStyle=ISO",
                  own_options ? own_options : "", own_options ? " " : "", c->statement_timeout_ms);
    free(own_options);

    check_uv(uv_timer_init(loop, &pool->wait_timer), "creating wait deadline");
    check_uv(uv_timer_init(loop, &pool->defer_timer), "creating callback timer");
    pool->wait_timer.data = pool;
    pool->defer_timer.data = pool;
    pool->handles = 2;
    pool->conns = xcalloc((size_t)c->size, sizeof(*pool->conns));
    for (int i = 0; i < c->size; i++) {
        db_conn_t *conn = &pool->conns[i];
        conn->pool = pool;
        conn->index = i;
        snprintf(conn->name, sizeof(conn->name), "connection %d", i);
        pgconn_config_t pc = {
            .conninfo = pool->conninfo,
            .options = pool->options,
            .application_name = "inkloop",
            .name = conn->name,
            .target = pool->target,
            .action = ACTION_QUERY,
            .connect_timeout_ms = CONNECT_TIMEOUT_MS,
            .backoff_min_ms = c->backoff_min_ms,
            .backoff_max_ms = c->backoff_max_ms,
        };
        pgconn_init(&conn->pc, loop, &pc, &conn_hooks, conn);
        pool->handles++;
    }
    return pool;
}

int db_pool_prepare(db_pool_t *pool, const char *name, const char *sql)
{
    if (pool->started || name == NULL || sql == NULL || name[0] == '\0')
        return -1;
    for (size_t i = 0; i < pool->nstmts; i++)
        if (strcmp(pool->stmts[i].name, name) == 0)
            return -1;
    pool->stmts = xrealloc(pool->stmts, (pool->nstmts + 1) * sizeof(*pool->stmts));
    pool->stmts[pool->nstmts++] = (registered_t){xstrdup(name), xstrdup(sql)};
    return 0;
}

const char *db_pool_statement_sql(const db_pool_t *pool, const char *name)
{
    for (size_t i = 0; i < pool->nstmts; i++)
        if (strcmp(pool->stmts[i].name, name) == 0)
            return pool->stmts[i].sql;
    return NULL;
}

int db_pool_prepare_all(db_pool_t *pool, const db_named_sql_t *stmts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (db_pool_prepare(pool, stmts[i].name, stmts[i].sql) != 0)
            return -1;
    return 0;
}

void db_pool_start(db_pool_t *pool)
{
    if (pool->started || pool->closing)
        return;
    pool->started = 1;
    log_info(ACTION_CONNECT, "opening %d connections to %s", pool->cfg.size, pool->target);
    for (int i = 0; i < pool->cfg.size; i++)
        pgconn_start(&pool->conns[i].pc);
}

int db_pool_available(const db_pool_t *pool)
{
    return count_ready(pool) > 0;
}

void db_pool_stats(const db_pool_t *pool, db_pool_stats_t *stats)
{
    *stats = (db_pool_stats_t){
        .size = pool->cfg.size,
        .ready = count_ready(pool),
        .in_flight = pool->in_flight,
        .waiting = (int)pool->waiting.count,
        .completed = pool->completed,
        .failed = pool->failed,
        .reconnects = pool->reconnects,
    };
}

db_query_t *db_batch(db_pool_t *pool, const db_stmt_t *stmts, size_t n, db_batch_cb cb, void *data)
{
    if (pool->closing || n == 0)
        return NULL;
    if (!pool->down && pool->waiting.count >= (size_t)pool->cfg.max_waiting) {
        /* Full only if no connection has room either; the wait FIFO is empty whenever one has. */
        int room = 0;
        for (int i = 0; i < pool->cfg.size && !room; i++)
            room =
                is_ready(&pool->conns[i]) && pool->conns[i].inflight.count < (size_t)pool->cfg.pipeline_depth;
        if (!room)
            return NULL;
    }
    db_query_t *q = query_new(pool, stmts, n, cb, data);
    if (pool->down) {
        doom(pool, q, "database unavailable");
        return q;
    }
    q->deadline = uv_now(pool->loop) + (uint64_t)pool->cfg.wait_timeout_ms;
    q->place = QUERY_WAITING;
    query_list_push(&pool->waiting, q);
    dispatch(pool);
    return q;
}

db_query_t *db_query(db_pool_t *pool, const char *name, int nparams, const char *const *params,
                     db_batch_cb cb, void *data)
{
    db_stmt_t stmt = {.name = name, .nparams = nparams, .params = params};
    return db_batch(pool, &stmt, 1, cb, data);
}

void db_query_cancel(db_query_t *q)
{
    if (q == NULL)
        return;
    db_pool_t *pool = q->pool;
    switch (q->place) {
    case QUERY_WAITING:
        query_list_remove(&pool->waiting, q);
        query_free(q);
        break;
    case QUERY_DOOMED:
        query_list_remove(&pool->doomed, q);
        query_free(q);
        break;
    case QUERY_IN_FLIGHT:
        /* Its results still arrive in order and must be read to keep the pipeline paired; they are dropped.
         */
        q->cancelled = 1;
        break;
    case QUERY_IN_CALLBACK:
    case QUERY_NEW:
        q->cancelled = 1;
        break;
    }
}

void db_pool_close(db_pool_t *pool, void (*cb)(void *data), void *data)
{
    if (pool->closing)
        return;
    log_info("closing database pool", "%d in flight, %zu waiting", pool->in_flight, pool->waiting.count);
    pool->closing = 1;
    pool->close_cb = cb;
    pool->close_data = data;
    db_query_t *q;
    while ((q = query_list_shift(&pool->waiting)) != NULL)
        doom(pool, q, "pool closing");
    arm_wait_timer(pool);
    arm_defer(pool);
}
