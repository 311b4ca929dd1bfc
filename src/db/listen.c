/* The LISTEN connection: one nonblocking libpq connection, one uv_poll_t, one timer.
 *
 * A small state machine (LISTEN_STATES) driven by listen_advance, like a pool connection but outside pipeline
 * mode: at most one query is outstanding (the LISTEN statements, or a keepalive), and notifications arrive
 * between them. Callbacks (on_notify, on_listening) run only from a poll or timer callback, never inside
 * db_listen_start or db_listen_close, and every place that calls one checks afterwards whether the callback
 * closed the listener.
 *
 * Lifetime: the listener owns its timer and poll handle; it is freed in the last close callback after
 * db_listen_close. The poll handle is allocated apart, because a socket that changes while connecting (libpq
 * trying the next host) needs a new handle before the old one's close callback has run. */
#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "db/listen.h"
#include "db/pgwatch.h"
#include "db/query.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char ACTION[] = "listening for database notifications";

#define LISTEN_STATES(X)                                                                                     \
    X(LISTEN_IDLE, "idle")             /* no connection; advancing starts one */                             \
    X(LISTEN_CONNECTING, "connecting") /* waits for the socket PQconnectPoll asked for; deadline: connect */ \
    X(LISTEN_SUBSCRIBING, "subscribing") /* waits for the LISTEN statements' results; same deadline */       \
    X(LISTEN_READY, "ready")             /* reads notifications; deadline: keepalive, then its answer */     \
    X(LISTEN_FAILED, "failed")           /* passing: drops the connection, picks the reconnect delay */      \
    X(LISTEN_BACKOFF, "backoff")         /* waits for the reconnect delay */                                 \
    X(LISTEN_CLOSED, "closed")           /* db_listen_close ran; handles are closing */

typedef enum {
#define LISTEN_STATE_ENUM(id, name) id,
    LISTEN_STATES(LISTEN_STATE_ENUM)
#undef LISTEN_STATE_ENUM
} listen_state_t;

static const char *const listen_state_names[] = {
#define LISTEN_STATE_NAME(id, name) name,
    LISTEN_STATES(LISTEN_STATE_NAME)
#undef LISTEN_STATE_NAME
};

struct st_db_listen_t {
    uv_loop_t *loop;
    db_listen_config_t cfg;
    char *conninfo;
    char *session_sql;
    char *target; /* host:port/dbname for logs, never the password */
    char **channels;
    size_t nchannels;
    listen_state_t state;
    PGconn *pg;
    pg_watch_t watch; /* the one poll handle on the current socket (pgwatch.h) */
    uv_timer_t timer; /* the deadline (or delay) of the current state */
    int timer_fired;
    int query_pending; /* LISTEN or keepalive sent, its final NULL result not yet read */
    int attempts;      /* failed connects since the last time it was ready */
    int ever_ready;    /* so on_listening can say "reconnected" */
    char *err;         /* why the current attempt failed */
    listen_state_t failed_from;
    int handles; /* initialized and not yet closed */
    int started;
    int closing;
    uint32_t rng;
    db_listen_notify_cb on_notify;
    db_listen_ready_cb on_listening;
    void *data;
    void (*close_cb)(void *data);
    void *close_data;
};

static void listen_advance(db_listen_t *l);
static void on_poll(uv_poll_t *handle, int status, int events);

static void check_uv(int rc, const char *what)
{
    if (rc != 0) {
        log_error(ACTION, "%s: %s", what, uv_strerror(rc));
        abort();
    }
}

/* libpq's messages end in a newline and may continue on indented lines; a log line is one line. */
static char *one_line(const char *msg)
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

static uint32_t next_random(db_listen_t *l)
{
    /* xorshift32: reconnect jitter needs spread, not secrecy. */
    uint32_t x = l->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return l->rng = x;
}

/* Messages the server sends outside a query (its FATAL on termination, while idle, comes this way) belong in
 * the log, not on stderr, which libpq's default processor would use. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char *msg = one_line(message);
    log_debug(ACTION, "server notice: %s", msg);
    free(msg);
}

/* ---- handles ---- */

static void listen_free(db_listen_t *l)
{
    for (size_t i = 0; i < l->nchannels; i++)
        free(l->channels[i]);
    free(l->channels);
    free(l->conninfo);
    free(l->session_sql);
    free(l->target);
    free(l->err);
    free(l);
}

static void handle_closed(db_listen_t *l)
{
    if (--l->handles > 0 || !l->closing)
        return;
    log_debug(ACTION, "LISTEN connection to %s closed", l->target);
    if (l->close_cb != NULL)
        l->close_cb(l->close_data);
    listen_free(l);
}

static void on_poll_closed(uv_handle_t *handle)
{
    db_listen_t *l = handle->data;
    free(handle);
    handle_closed(l);
}

static void on_timer_closed(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

/* Stops and closes the poll handle. It must happen before PQfinish closes the socket: epoll forgets a closed
 * descriptor by itself, and libuv would then fail to modify a registration that no longer exists. */
static void drop_poll(db_listen_t *l)
{
    pg_watch_drop(&l->watch, on_poll_closed);
}

static void drop_pg(db_listen_t *l)
{
    drop_poll(l);
    if (l->pg != NULL) {
        PQfinish(l->pg);
        l->pg = NULL;
    }
    l->query_pending = 0;
}

/* Watches the socket for events (pgwatch.h: a new socket while connecting gets a new handle). */
static int watch_socket(db_listen_t *l, int events)
{
    int created;
    int rc = pg_watch(&l->watch, l->loop, l->pg, l->state == LISTEN_CONNECTING, events, on_poll,
                      on_poll_closed, l, &created);
    if (created)
        l->handles++;
    return rc;
}

static void on_timer(uv_timer_t *timer)
{
    db_listen_t *l = timer->data;
    l->timer_fired = 1;
    listen_advance(l);
}

static void arm_timer(db_listen_t *l, int ms)
{
    l->timer_fired = 0;
    check_uv(uv_timer_start(&l->timer, on_timer, (uint64_t)ms, 0), "arming deadline");
}

static void set_state(db_listen_t *l, listen_state_t state)
{
    if (l->state != state)
        log_debug(ACTION, "%s -> %s", listen_state_names[l->state], listen_state_names[state]);
    l->state = state;
}

/* Records why the connection failed and moves to LISTEN_FAILED; the caller loops or advances. */
static void fail_now(db_listen_t *l, const char *why, const char *detail)
{
    free(l->err);
    char *msg = one_line(detail);
    l->err = xasprintf("%s: %s", why, msg);
    free(msg);
    l->failed_from = l->state;
    set_state(l, LISTEN_FAILED);
}

static void listen_fail(db_listen_t *l, const char *why, const char *detail)
{
    fail_now(l, why, detail);
    listen_advance(l);
}

/* Pushes what libpq buffered; keeps reading on, since the server may be writing to us meanwhile. */
static int flush_and_watch(db_listen_t *l)
{
    int r = PQflush(l->pg);
    if (r < 0)
        return -1;
    return watch_socket(l, UV_READABLE | (r == 1 ? UV_WRITABLE : 0)) == 0 ? 0 : -1;
}

/* Sends one query (the subscriptions, or a keepalive) outside pipeline mode. Returns 0 or -1 (state FAILED).
 */
static int send_query(db_listen_t *l, const char *sql, const char *what)
{
    if (!PQsendQuery(l->pg, sql) || flush_and_watch(l) != 0) {
        fail_now(l, what, PQerrorMessage(l->pg));
        return -1;
    }
    l->query_pending = 1;
    return 0;
}

static int send_listen(db_listen_t *l)
{
    buf_t sql = BUF_INIT;
    for (size_t i = 0; i < l->nchannels; i++) {
        char *quoted = PQescapeIdentifier(l->pg, l->channels[i], strlen(l->channels[i]));
        if (quoted == NULL) {
            buf_free(&sql);
            fail_now(l, "quoting a channel name", PQerrorMessage(l->pg));
            return -1;
        }
        buf_printf(&sql, "LISTEN %s;", quoted);
        PQfreemem(quoted);
    }
    if (l->session_sql != NULL)
        buf_printf(&sql, "%s;", l->session_sql);
    /* With no channel an empty query still completes, so the machine needs no special case. */
    int rc = send_query(l, buf_cstr(&sql), "subscribing");
    buf_free(&sql);
    return rc;
}

/* ---- reading ---- */

/* Reads the results of the outstanding query that have fully arrived. Returns -1 when the connection failed
 * (the machine has moved on and l->pg may be gone). */
static int read_results(db_listen_t *l)
{
    while (l->query_pending && !PQisBusy(l->pg)) {
        PGresult *res = PQgetResult(l->pg);
        if (res == NULL) {
            l->query_pending = 0;
            if (l->state == LISTEN_READY)
                arm_timer(l, l->cfg.keepalive_ms); /* the keepalive was answered */
            break;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
            char *msg = one_line(PQresultErrorMessage(res));
            PQclear(res);
            listen_fail(l, l->state == LISTEN_SUBSCRIBING ? "subscribing" : "keepalive", msg);
            free(msg);
            return -1;
        }
        PQclear(res);
    }
    return 0;
}

/* Hands every buffered notification to the owner. Returns -1 when a callback closed the listener. */
static int deliver_notifies(db_listen_t *l)
{
    PGnotify *n;
    while (l->pg != NULL && !l->closing && (n = PQnotifies(l->pg)) != NULL) {
        log_debug(ACTION, "notification on %s: %s", n->relname, n->extra);
        l->on_notify(n->relname, n->extra != NULL ? n->extra : "", l->data);
        PQfreemem(n);
    }
    return l->closing ? -1 : 0;
}

static void listen_io(db_listen_t *l, int events)
{
    if ((events & UV_READABLE) != 0) {
        if (!PQconsumeInput(l->pg)) {
            listen_fail(l, "connection lost", PQerrorMessage(l->pg));
            return;
        }
        if (read_results(l) != 0)
            return;
        if (l->state == LISTEN_SUBSCRIBING && !l->query_pending) {
            listen_advance(l); /* subscribed: on_listening runs, which may close us */
            if (l->state != LISTEN_READY)
                return;
        }
        if (deliver_notifies(l) != 0)
            return;
    }
    if (flush_and_watch(l) != 0)
        listen_fail(l, "connection lost", PQerrorMessage(l->pg));
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    db_listen_t *l = handle->data;
    if (status < 0) {
        /* libuv reports POLLERR as an error and stops the handle. While connecting that is an ordinary
         * refused connect that PQconnectPoll reads and moves past; afterwards the socket has failed. */
        l->watch.events = 0;
        if (l->state == LISTEN_CONNECTING) {
            listen_advance(l);
            return;
        }
        if (l->state != LISTEN_SUBSCRIBING && l->state != LISTEN_READY)
            return;
        if (PQconsumeInput(l->pg) && read_results(l) != 0)
            return;
        const char *msg = PQerrorMessage(l->pg);
        listen_fail(l, "connection lost", msg[0] != '\0' ? msg : uv_strerror(status));
        return;
    }
    switch (l->state) {
    case LISTEN_CONNECTING:
        listen_advance(l);
        break;
    case LISTEN_SUBSCRIBING:
    case LISTEN_READY:
        listen_io(l, events);
        break;
    default:
        break;
    }
}

/* ---- the machine ---- */

static void listen_advance(db_listen_t *l)
{
    for (;;) {
        switch (l->state) {
        case LISTEN_IDLE: {
            if (l->closing)
                return;
            const char *keys[] = {"dbname", "fallback_application_name", NULL};
            const char *values[] = {l->conninfo, "inkloop-listen", NULL};
            l->pg = PQconnectStartParams(keys, values, 1);
            if (l->pg == NULL) {
                log_error(ACTION, "out of memory");
                abort();
            }
            PQsetNoticeProcessor(l->pg, on_notice, l);
            set_state(l, LISTEN_CONNECTING);
            arm_timer(l, l->cfg.connect_timeout_ms);
            if (PQstatus(l->pg) == CONNECTION_BAD) {
                fail_now(l, "connecting", PQerrorMessage(l->pg));
                continue;
            }
            /* libpq's contract for a fresh connection: behave as if PQconnectPoll said "writing". */
            int rc = watch_socket(l, UV_WRITABLE);
            if (rc != 0) {
                fail_now(l, "polling the socket", uv_strerror(rc));
                continue;
            }
            return;
        }
        case LISTEN_CONNECTING: {
            if (l->timer_fired) {
                fail_now(l, "connecting", "timed out");
                continue;
            }
            int rc = 0;
            switch (PQconnectPoll(l->pg)) {
            case PGRES_POLLING_FAILED:
                fail_now(l, "connecting", PQerrorMessage(l->pg));
                continue;
            case PGRES_POLLING_READING:
                rc = watch_socket(l, UV_READABLE);
                break;
            case PGRES_POLLING_OK:
                if (PQsetnonblocking(l->pg, 1) != 0) {
                    fail_now(l, "making the connection nonblocking", PQerrorMessage(l->pg));
                    continue;
                }
                /* The subscription shares the connect deadline, which is still running. */
                set_state(l, LISTEN_SUBSCRIBING);
                if (send_listen(l) != 0)
                    continue;
                return;
            default: /* PGRES_POLLING_WRITING */
                rc = watch_socket(l, UV_WRITABLE);
                break;
            }
            if (rc != 0) {
                fail_now(l, "polling the socket", uv_strerror(rc));
                continue;
            }
            return;
        }
        case LISTEN_SUBSCRIBING: {
            if (l->timer_fired) {
                fail_now(l, "subscribing", "timed out");
                continue;
            }
            if (l->query_pending)
                return;
            int reconnected = l->ever_ready;
            l->ever_ready = 1;
            l->attempts = 0;
            set_state(l, LISTEN_READY);
            arm_timer(l, l->cfg.keepalive_ms);
            log_info(ACTION, "LISTEN connection to %s is %s (%zu channel%s)", l->target,
                     reconnected ? "back" : "ready", l->nchannels, l->nchannels == 1 ? "" : "s");
            if (l->on_listening != NULL)
                l->on_listening(reconnected, l->data);
            return;
        }
        case LISTEN_READY:
            if (!l->timer_fired)
                return;
            l->timer_fired = 0;
            if (l->query_pending) {
                fail_now(l, "keepalive", "no answer from the server");
                continue;
            }
            if (send_query(l, "SELECT 1", "keepalive") != 0)
                continue;
            arm_timer(l, l->cfg.connect_timeout_ms);
            return;
        case LISTEN_FAILED: {
            if (l->failed_from == LISTEN_READY || l->attempts == 0)
                log_warn(ACTION, "LISTEN connection to %s %s: %s", l->target,
                         l->failed_from == LISTEN_READY ? "lost" : "failed", l->err);
            else
                /* A long outage repeats the same failure every backoff_max_ms: the first one is worth a
                 * warning, the rest only while debugging. */
                log_debug(ACTION, "LISTEN connection to %s failed (attempt %d): %s", l->target,
                          l->attempts + 1, l->err);
            drop_pg(l);
            if (l->closing)
                return;
            int delay =
                backoff_delay_ms(l->attempts++, l->cfg.backoff_min_ms, l->cfg.backoff_max_ms, next_random(l));
            set_state(l, LISTEN_BACKOFF);
            arm_timer(l, delay);
            return;
        }
        case LISTEN_BACKOFF:
            if (!l->timer_fired)
                return;
            l->timer_fired = 0;
            set_state(l, LISTEN_IDLE);
            continue;
        case LISTEN_CLOSED:
            return;
        }
    }
}

/* ---- the interface ---- */

db_listen_t *db_listen_create(uv_loop_t *loop, const db_listen_config_t *cfg, db_listen_notify_cb on_notify,
                              db_listen_ready_cb on_listening, void *data)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->conninfo != NULL ? cfg->conninfo : "", &errmsg);
    if (opts == NULL) {
        char *msg = one_line(errmsg);
        log_error("configuring the LISTEN connection", "invalid connection string: %s", msg);
        free(msg);
        PQfreemem(errmsg);
        return NULL;
    }
    const char *host = NULL, *port = NULL, *dbname = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *v = (o->val != NULL && o->val[0] != '\0') ? o->val : NULL;
        if (strcmp(o->keyword, "host") == 0 || (strcmp(o->keyword, "hostaddr") == 0 && host == NULL))
            host = v != NULL ? v : host;
        else if (strcmp(o->keyword, "port") == 0)
            port = v;
        else if (strcmp(o->keyword, "dbname") == 0)
            dbname = v;
    }
    db_listen_t *l = xcalloc(1, sizeof(*l));
    l->target = xasprintf("%s%s%s/%s", host ? host : "(default host)", port ? ":" : "", port ? port : "",
                          dbname ? dbname : "");
    PQconninfoFree(opts);
    l->loop = loop;
    l->cfg = *cfg;
    if (l->cfg.connect_timeout_ms <= 0)
        l->cfg.connect_timeout_ms = 10000;
    if (l->cfg.keepalive_ms <= 0)
        l->cfg.keepalive_ms = 30000;
    if (l->cfg.backoff_min_ms <= 0)
        l->cfg.backoff_min_ms = 100;
    if (l->cfg.backoff_max_ms <= 0)
        l->cfg.backoff_max_ms = 5000;
    l->conninfo = xstrdup(cfg->conninfo != NULL ? cfg->conninfo : "");
    l->cfg.conninfo = l->conninfo;
    l->session_sql = cfg->session_sql != NULL ? xstrdup(cfg->session_sql) : NULL;
    l->cfg.session_sql = l->session_sql;
    l->on_notify = on_notify;
    l->on_listening = on_listening;
    l->data = data;
    l->state = LISTEN_IDLE;
    l->rng = (uint32_t)uv_hrtime() ^ ((uint32_t)getpid() << 16) ^ 0x85ebca6bu;
    if (l->rng == 0)
        l->rng = 1;
    check_uv(uv_timer_init(loop, &l->timer), "creating deadline");
    l->timer.data = l;
    l->handles = 1;
    return l;
}

int db_listen_add(db_listen_t *l, const char *channel)
{
    if (l->started || channel == NULL || channel[0] == '\0')
        return -1;
    l->channels = xrealloc(l->channels, (l->nchannels + 1) * sizeof(*l->channels));
    l->channels[l->nchannels++] = xstrdup(channel);
    return 0;
}

void db_listen_start(db_listen_t *l)
{
    if (l->started || l->closing)
        return;
    l->started = 1;
    listen_advance(l);
}

int db_listen_ready(const db_listen_t *l)
{
    return l->state == LISTEN_READY;
}

void db_listen_close(db_listen_t *l, void (*cb)(void *data), void *data)
{
    if (l->closing)
        return;
    l->closing = 1;
    l->close_cb = cb;
    l->close_data = data;
    drop_pg(l);
    set_state(l, LISTEN_CLOSED);
    check_uv(uv_timer_stop(&l->timer), "stopping deadline");
    uv_close((uv_handle_t *)&l->timer, on_timer_closed);
}
