/* The connection pool: N libpq connections in pipeline mode on the libuv loop.
 *
 * Each connection is a small state machine (CONN_STATES below) driven by one function, conn_advance. Batches
 * travel through lists: the pool's wait FIFO, a connection's in-flight FIFO (results pair with batches in
 * send order), and the pool's "doomed" list of batches that failed outside a result read (connection lost,
 * pool down, wait deadline, pool closing), whose callbacks run from a timer. Callers' callbacks therefore run
 * only at the top of a loop callback (a result read, or a timer), never inside db_batch, db_query_cancel or
 * db_pool_close, so a callback may call any of them.
 *
 * Lifetime: the pool owns every handle; each is counted in `handles` and the pool is freed in the last close
 * callback after db_pool_close. A connection's poll handle is allocated apart from the connection, because a
 * socket that changes while connecting needs a new handle before the old one's close callback has run. */
#include "core/alloc.h"
#include "core/log.h"
#include "db/db.h"
#include "db/pgwatch.h"
#include "db/query.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 10000
/* How much longer than statement_timeout a connection may stay silent with batches in flight before it is
 * taken for dead (a peer gone without a FIN never answers, and statement_timeout is enforced by that peer).
 */
#define RESULT_GRACE_MS 10000

static const char ACTION_CONNECT[] = "connecting to database";
static const char ACTION_QUERY[] = "running database queries";

#define CONN_STATES(X)                                                                                       \
    X(CONN_IDLE, "idle")             /* no connection; advancing starts one */                               \
    X(CONN_CONNECTING, "connecting") /* waits for the socket PQconnectPoll asked for; deadline: connect */   \
    X(CONN_PREPARING, "preparing")   /* waits for the registered statements to be prepared; same deadline */ \
    X(CONN_READY, "ready")           /* takes batches; with some in flight, deadline: statement timeout */   \
    X(CONN_FAILED, "failed")         /* passing: drops the connection and its batches, picks the delay */    \
    X(CONN_BACKOFF, "backoff")       /* waits for the reconnect delay */                                     \
    X(CONN_CLOSED, "closed")         /* the pool is closing; this connection's handles are closed */

typedef enum {
#define CONN_STATE_ENUM(id, name) id,
    CONN_STATES(CONN_STATE_ENUM)
#undef CONN_STATE_ENUM
} conn_state_t;

static const char *const conn_state_names[] = {
#define CONN_STATE_NAME(id, name) name,
    CONN_STATES(CONN_STATE_NAME)
#undef CONN_STATE_NAME
};

typedef struct st_db_conn_t {
    db_pool_t *pool;
    int index;
    conn_state_t state;
    PGconn *pg;
    pg_watch_t watch; /* the one poll handle on the current socket (pgwatch.h) */
    uv_timer_t timer; /* the deadline (or delay) of the current state */
    int timer_fired;
    query_list_t inflight;
    int pending_prepares;
    int attempts; /* failed connects since the last time this connection was ready */
    char *err;    /* why the current attempt failed, for the log */
    conn_state_t failed_from;
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
    int handles;            /* initialized and not yet closed */
    int started;
    int closing;
    int timers_closed;
    int down; /* no connection ready and the last connect failed: batches fail at once */
    int ready;
    int in_flight;
    uint64_t completed, failed, reconnects;
    uint64_t turn; /* counts flushes of the doomed list */
    uint32_t rng;
    void (*close_cb)(void *data);
    void *close_data;
};

static void conn_advance(db_conn_t *conn);
static void on_poll(uv_poll_t *handle, int status, int events);
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

static uint32_t next_random(db_pool_t *pool)
{
    /* xorshift32: jitter needs spread, not secrecy. */
    uint32_t x = pool->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return pool->rng = x;
}

/* libpq's messages end in a newline and may continue on tab-indented lines (a hint); log lines and err
 * strings are one line each. */
static char *message_dup(const char *msg)
{
    if (msg == NULL || msg[0] == '\0')
        return xstrdup("unknown error");
    char *out = xstrdup(msg), *w = out;
    for (const char *r = msg; *r != '\0'; r++) {
        if (*r == '\n') {
            while (r[1] == '\t' || r[1] == ' ' || r[1] == '\n')
                r++;
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    while (w > out && w[-1] == ' ')
        w--;
    *w = '\0';
    return out;
}

static void on_notice(void *arg, const char *message)
{
    db_conn_t *conn = arg;
    char *msg = message_dup(message);
    log_debug(ACTION_QUERY, "connection %d: server notice: %s", conn->index, msg);
    free(msg);
}

/* ---- handles and teardown ---- */

static void pool_free(db_pool_t *pool)
{
    for (size_t i = 0; i < pool->nstmts; i++) {
        free(pool->stmts[i].name);
        free(pool->stmts[i].sql);
    }
    for (int i = 0; i < pool->cfg.size; i++)
        free(pool->conns[i].err);
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

static void on_poll_closed(uv_handle_t *handle)
{
    db_conn_t *conn = handle->data;
    free(handle);
    handle_closed(conn->pool);
}

static void on_conn_timer_closed(uv_handle_t *handle)
{
    db_conn_t *conn = handle->data;
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

/* Stops and closes the poll handle. It must happen before PQfinish closes the socket: epoll forgets a closed
 * descriptor by itself, and libuv would then fail to modify a registration that no longer exists. */
static void drop_poll(db_conn_t *conn)
{
    pg_watch_drop(&conn->watch, on_poll_closed);
}

static void drop_pg(db_conn_t *conn)
{
    drop_poll(conn);
    if (conn->pg != NULL) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }
}

/* Watches the connection's socket for events (pgwatch.h: a new socket while connecting gets a new handle). */
static int watch_socket(db_conn_t *conn, int events)
{
    int created;
    int rc = pg_watch(&conn->watch, conn->pool->loop, conn->pg, conn->state == CONN_CONNECTING, events,
                      on_poll, on_poll_closed, conn, &created);
    if (created)
        conn->pool->handles++;
    return rc;
}

static void on_conn_timer(uv_timer_t *timer)
{
    db_conn_t *conn = timer->data;
    conn->timer_fired = 1;
    conn_advance(conn);
}

static void arm_timer(db_conn_t *conn, uint64_t ms)
{
    conn->timer_fired = 0;
    check_uv(uv_timer_start(&conn->timer, on_conn_timer, ms, 0), "arming connection deadline");
}

static void stop_timer(db_conn_t *conn)
{
    conn->timer_fired = 0;
    check_uv(uv_timer_stop(&conn->timer), "stopping connection deadline");
}

static void set_state(db_conn_t *conn, conn_state_t state)
{
    if (conn->state == state)
        return;
    log_debug(ACTION_CONNECT, "connection %d: %s -> %s", conn->index, conn_state_names[conn->state],
              conn_state_names[state]);
    if (conn->state == CONN_READY)
        conn->pool->ready--;
    if (state == CONN_READY)
        conn->pool->ready++;
    conn->state = state;
}

/* Records why the connection failed and moves it to CONN_FAILED; the caller loops or calls conn_advance. */
static void fail_now(db_conn_t *conn, const char *why, const char *detail)
{
    free(conn->err);
    char *msg = message_dup(detail);
    conn->err = xasprintf("%s: %s", why, msg);
    free(msg);
    conn->failed_from = conn->state;
    set_state(conn, CONN_FAILED);
}

static void conn_fail(db_conn_t *conn, const char *why, const char *detail)
{
    if (conn->state != CONN_CONNECTING && conn->state != CONN_PREPARING && conn->state != CONN_READY)
        return;
    fail_now(conn, why, detail);
    conn_advance(conn);
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

static int flush_and_watch(db_conn_t *conn)
{
    int r = PQflush(conn->pg);
    if (r < 0)
        return -1;
    /* libpq could not write everything without blocking: wait until the socket drains. Reading stays on,
     * since the server may be blocked writing results to us. */
    return watch_socket(conn, UV_READABLE | (r == 1 ? UV_WRITABLE : 0)) == 0 ? 0 : -1;
}

/* Sends one batch as one pipeline segment: its statements, then a sync, which makes them one implicit
 * transaction. On failure the connection fails, and the batch with it. Returns 0 or -1. */
static int send_batch(db_conn_t *conn, db_query_t *q)
{
    db_pool_t *pool = conn->pool;
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
            ok = PQsendQueryPrepared(conn->pg, s->name, s->nparams, s->params, NULL, NULL, 0);
            break;
        case STMT_SQL:
            ok = PQsendQueryParams(conn->pg, s->sql, s->nparams, NULL, s->params, NULL, NULL, 0);
            break;
        case STMT_PREPARE:
            ok = PQsendPrepare(conn->pg, s->name, s->sql, 0, NULL);
            break;
        }
        if (!ok) {
            conn_fail(conn, "sending a query", PQerrorMessage(conn->pg));
            return -1;
        }
    }
    if (!PQpipelineSync(conn->pg) || flush_and_watch(conn) != 0) {
        conn_fail(conn, "sending a query", PQerrorMessage(conn->pg));
        return -1;
    }
    if (conn->state == CONN_READY && conn->inflight.count == 1)
        arm_timer(conn, (uint64_t)pool->cfg.statement_timeout_ms + RESULT_GRACE_MS);
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
            if (c->state == CONN_READY && c->inflight.count < (size_t)pool->cfg.pipeline_depth &&
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
 * callback, or because the stream made no sense); the caller must not touch conn->pg then. */
static int read_results(db_conn_t *conn)
{
    int progressed = 0;
    while (conn->pg != NULL && conn->inflight.count > 0 && !PQisBusy(conn->pg)) {
        db_query_t *done;
        progressed = 1;
        switch (query_list_feed(&conn->inflight, PQgetResult(conn->pg), &done)) {
        case FEED_MORE:
            break;
        case FEED_DESYNC:
            conn_fail(conn, "reading results", "results out of step with the pipeline");
            return -1;
        case FEED_DONE:
            complete(conn, done);
            /* The callback may have sent more here, dropped this connection, or closed the pool. */
            if (conn->state == CONN_READY)
                dispatch(conn->pool);
            break;
        }
    }
    if (conn->pg == NULL)
        return -1;
    if (conn->state == CONN_READY && progressed) {
        if (conn->inflight.count > 0)
            arm_timer(conn, (uint64_t)conn->pool->cfg.statement_timeout_ms + RESULT_GRACE_MS);
        else
            stop_timer(conn);
    }
    return 0;
}

static void conn_io(db_conn_t *conn, int events)
{
    if ((events & UV_READABLE) != 0) {
        if (!PQconsumeInput(conn->pg)) {
            conn_fail(conn, "connection lost", PQerrorMessage(conn->pg));
            return;
        }
        if (read_results(conn) != 0)
            return;
    }
    if (conn->state != CONN_PREPARING && conn->state != CONN_READY)
        return;
    if (flush_and_watch(conn) != 0) {
        conn_fail(conn, "connection lost", PQerrorMessage(conn->pg));
        return;
    }
    if (conn->pool->closing && conn->inflight.count == 0)
        arm_defer(conn->pool);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    db_conn_t *conn = handle->data;
    if (status < 0) {
        /* libuv reports POLLERR as UV_EBADF and stops the handle. While connecting that is an ordinary
         * refused connect: PQconnectPoll reads the socket's error and moves on to the next host or address.
         */
        conn->watch.events = 0;
        if (conn->state == CONN_CONNECTING) {
            conn_advance(conn);
            return;
        }
        /* On an open connection the socket has failed; first read what arrived before (the server's own
         * FATAL message, complete results), then drop it with libpq's account of the error. */
        if (conn->state != CONN_PREPARING && conn->state != CONN_READY)
            return;
        if (PQconsumeInput(conn->pg) && read_results(conn) != 0)
            return;
        const char *msg = PQerrorMessage(conn->pg);
        conn_fail(conn, "connection lost", msg[0] != '\0' ? msg : uv_strerror(status));
        return;
    }
    switch (conn->state) {
    case CONN_CONNECTING:
        conn_advance(conn);
        break;
    case CONN_PREPARING:
    case CONN_READY:
        conn_io(conn, events);
        break;
    default:
        break;
    }
}

static void on_prepared(const db_result_t *results, size_t n, void *data)
{
    db_conn_t *conn = data;
    (void)n;
    if (results[0].err != NULL)
        log_error(ACTION_CONNECT, "connection %d: preparing a statement failed: %s", conn->index,
                  results[0].err);
    if (conn->state != CONN_PREPARING)
        return;
    if (--conn->pending_prepares == 0)
        conn_advance(conn);
}

/* Pipelines one prepare per registered statement, each with its own sync, so a statement that does not
 * prepare (a bug, logged) does not abort the others. */
static int send_prepares(db_conn_t *conn)
{
    db_pool_t *pool = conn->pool;
    conn->pending_prepares = (int)pool->nstmts;
    for (size_t i = 0; i < pool->nstmts; i++)
        if (send_batch(conn, query_new_prepare(pool, pool->stmts[i].name, pool->stmts[i].sql, on_prepared,
                                               conn)) != 0)
            return -1;
    return 0;
}

static void close_conn(db_conn_t *conn)
{
    if (conn->state == CONN_CLOSED)
        return;
    drop_pg(conn);
    fail_inflight(conn, "pool closing");
    check_uv(uv_timer_stop(&conn->timer), "stopping connection deadline");
    uv_close((uv_handle_t *)&conn->timer, on_conn_timer_closed);
    set_state(conn, CONN_CLOSED);
}

/* ---- the connection's state machine ---- */

static void conn_advance(db_conn_t *conn)
{
    db_pool_t *pool = conn->pool;
    for (;;) {
        switch (conn->state) {
        case CONN_IDLE: {
            if (pool->closing)
                return;
            /* The conninfo goes in as an expanded dbname so URLs and key=value strings both work; options
             * follows it, so the merged options (the URL's own plus statement_timeout) win. */
            const char *keys[] = {"dbname", "options", "fallback_application_name", NULL};
            const char *values[] = {pool->conninfo, pool->options, "inkloop", NULL};
            conn->pg = PQconnectStartParams(keys, values, 1);
            if (conn->pg == NULL) {
                log_error(ACTION_CONNECT, "out of memory");
                abort();
            }
            PQsetNoticeProcessor(conn->pg, on_notice, conn);
            log_debug(ACTION_CONNECT, "connection %d to %s", conn->index, pool->target);
            set_state(conn, CONN_CONNECTING);
            arm_timer(conn, CONNECT_TIMEOUT_MS);
            if (PQstatus(conn->pg) == CONNECTION_BAD) {
                fail_now(conn, "connecting", PQerrorMessage(conn->pg));
                continue;
            }
            /* libpq's contract for a fresh connection: behave as if PQconnectPoll said "writing". */
            int rc = watch_socket(conn, UV_WRITABLE);
            if (rc != 0) {
                fail_now(conn, "polling the socket", uv_strerror(rc));
                continue;
            }
            return;
        }
        case CONN_CONNECTING: {
            if (conn->timer_fired) {
                fail_now(conn, "connecting", "timed out");
                continue;
            }
            PostgresPollingStatusType st = PQconnectPoll(conn->pg);
            int rc = 0;
            switch (st) {
            case PGRES_POLLING_FAILED:
                fail_now(conn, "connecting", PQerrorMessage(conn->pg));
                continue;
            case PGRES_POLLING_READING:
                rc = watch_socket(conn, UV_READABLE);
                break;
            case PGRES_POLLING_OK:
                if (PQsetnonblocking(conn->pg, 1) != 0 || PQenterPipelineMode(conn->pg) != 1) {
                    fail_now(conn, "entering pipeline mode", PQerrorMessage(conn->pg));
                    continue;
                }
                rc = watch_socket(conn, UV_READABLE);
                if (rc != 0)
                    break;
                set_state(conn, CONN_PREPARING);
                if (send_prepares(conn) != 0)
                    return; /* the connection failed and moved on */
                continue;
            default: /* PGRES_POLLING_WRITING */
                rc = watch_socket(conn, UV_WRITABLE);
                break;
            }
            if (rc != 0) {
                fail_now(conn, "polling the socket", uv_strerror(rc));
                continue;
            }
            return;
        }
        case CONN_PREPARING:
            if (conn->timer_fired) {
                fail_now(conn, "preparing statements", "timed out");
                continue;
            }
            if (conn->pending_prepares > 0)
                return;
            stop_timer(conn);
            set_state(conn, CONN_READY);
            conn->attempts = 0;
            log_info(ACTION_CONNECT, "connection %d to %s is ready", conn->index, pool->target);
            if (pool->down) {
                pool->down = 0;
                log_info(ACTION_CONNECT, "database %s is reachable again", pool->target);
            }
            continue;
        case CONN_READY:
            if (conn->timer_fired) {
                conn->timer_fired = 0;
                if (conn->inflight.count > 0) {
                    fail_now(conn, "waiting for results", "no answer within statement_timeout");
                    continue;
                }
            }
            dispatch(pool);
            return;
        case CONN_FAILED: {
            int was_ready = conn->failed_from == CONN_READY;
            if (was_ready || pool->closing)
                log_warn(ACTION_QUERY, "connection %d to %s lost: %s", conn->index, pool->target, conn->err);
            else
                /* A long outage repeats the same failure every backoff_max_ms per connection: the first one
                 * (and the pool going down) are worth a warning, the rest only while debugging. */
                log_write(conn->attempts == 0 ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, ACTION_CONNECT,
                          "connection %d to %s failed (attempt %d): %s", conn->index, pool->target,
                          conn->attempts + 1, conn->err);
            drop_pg(conn);
            fail_inflight(conn, "connection lost");
            if (pool->closing) {
                close_conn(conn);
                arm_defer(pool);
                return;
            }
            if (!was_ready && pool->ready == 0)
                set_down(pool, conn->err);
            int delay = backoff_delay_ms(conn->attempts++, pool->cfg.backoff_min_ms, pool->cfg.backoff_max_ms,
                                         next_random(pool));
            pool->reconnects++;
            set_state(conn, CONN_BACKOFF);
            arm_timer(conn, (uint64_t)delay);
            return;
        }
        case CONN_BACKOFF:
            if (!conn->timer_fired)
                return;
            conn->timer_fired = 0;
            if (pool->closing)
                return;
            set_state(conn, CONN_IDLE);
            continue;
        case CONN_CLOSED:
            return;
        }
    }
}

/* ---- closing ---- */

static void close_step(db_pool_t *pool)
{
    int open = 0;
    for (int i = 0; i < pool->cfg.size; i++) {
        db_conn_t *conn = &pool->conns[i];
        if (conn->state == CONN_READY && conn->inflight.count > 0)
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

/* user@host:port/dbname from the parsed conninfo, so logs say where without saying the password. */
static char *describe_target(PQconninfoOption *opts, char **options)
{
    const char *user = NULL, *host = NULL, *hostaddr = NULL, *port = NULL, *dbname = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *v = (o->val != NULL && o->val[0] != '\0') ? o->val : NULL;
        if (strcmp(o->keyword, "user") == 0)
            user = v;
        else if (strcmp(o->keyword, "host") == 0)
            host = v;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = v;
        else if (strcmp(o->keyword, "port") == 0)
            port = v;
        else if (strcmp(o->keyword, "dbname") == 0)
            dbname = v;
        else if (strcmp(o->keyword, "options") == 0)
            *options = xstrdup(v);
    }
    if (host == NULL)
        host = hostaddr;
    return xasprintf("%s%s%s%s%s/%s", user ? user : "", user ? "@" : "", host ? host : "(default host)",
                     port ? ":" : "", port ? port : "", dbname ? dbname : "");
}

db_pool_t *db_pool_create(uv_loop_t *loop, const db_pool_config_t *cfg)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->conninfo != NULL ? cfg->conninfo : "", &errmsg);
    if (opts == NULL) {
        char *msg = message_dup(errmsg);
        log_error("configuring database pool", "invalid connection string: %s", msg);
        free(msg);
        PQfreemem(errmsg);
        return NULL;
    }
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
    char *own_options = NULL;
    pool->target = describe_target(opts, &own_options);
    PQconninfoFree(opts);
    /* Timestamps cross the API as UTC ISO-8601: the session's TimeZone and DateStyle fix their text form
     * whatever the server's defaults are. */
    pool->options =
        xasprintf("%s%s-c statement_timeout=%d -c TimeZone=UTC -c DateStyle=ISO",
                  own_options ? own_options : "", own_options ? " " : "", c->statement_timeout_ms);
    free(own_options);
    pool->rng = (uint32_t)uv_hrtime() ^ ((uint32_t)getpid() << 16) ^ 0x9e3779b9u;
    if (pool->rng == 0)
        pool->rng = 1;

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
        conn->state = CONN_IDLE;
        check_uv(uv_timer_init(loop, &conn->timer), "creating connection deadline");
        conn->timer.data = conn;
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
        conn_advance(&pool->conns[i]);
}

int db_pool_available(const db_pool_t *pool)
{
    return pool->ready > 0;
}

void db_pool_stats(const db_pool_t *pool, db_pool_stats_t *stats)
{
    *stats = (db_pool_stats_t){
        .size = pool->cfg.size,
        .ready = pool->ready,
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
            room = pool->conns[i].state == CONN_READY &&
                   pool->conns[i].inflight.count < (size_t)pool->cfg.pipeline_depth;
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
