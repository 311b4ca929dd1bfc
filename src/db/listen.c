/* The LISTEN connection: the connection machine (conn.h) outside pipeline mode.
 *
 * The machine connects, watches the socket, backs off and reconnects; the listener adds its session setup
 * (the machine's PGCONN_SETUP: the LISTEN statements and the owner's session SQL, sent on every connect) and,
 * once ready, reads notifications and sends a keepalive after keepalive_ms of quiet (the machine's deadline).
 * At most one query is outstanding (the subscription, or a keepalive), and notifications arrive between
 * them. Callbacks (on_notify, on_listening) run only from a poll or timer callback, never inside
 * db_listen_start or db_listen_close, and every place that calls one checks afterwards whether the callback
 * closed the listener.
 *
 * Lifetime: the machine owns the handles; the listener is freed in its on_closed hook after
 * db_listen_close. */
#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "db/conn.h"
#include "db/listen.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

static const char ACTION[] = "listening for database notifications";

struct st_db_listen_t {
    pgconn_t pc;
    db_listen_config_t cfg;
    char *conninfo;
    char *session_sql;
    char *target; /* user@host:port/dbname for logs, never the password */
    char **channels;
    size_t nchannels;
    int query_pending; /* LISTEN or keepalive sent, its final NULL result not yet read */
    int started;
    int closing;
    db_listen_notify_cb on_notify;
    db_listen_ready_cb on_listening;
    void *data;
    void (*close_cb)(void *data);
    void *close_data;
};

static void listen_free(db_listen_t *l)
{
    for (size_t i = 0; i < l->nchannels; i++)
        free(l->channels[i]);
    free(l->channels);
    free(l->conninfo);
    free(l->session_sql);
    free(l->target);
    free(l);
}

/* Sends one query (the subscriptions, or a keepalive) outside pipeline mode. Returns 0, or -1 after the
 * connection failed. */
static int send_query(db_listen_t *l, const char *sql, const char *what)
{
    if (!PQsendQuery(l->pc.pg, sql)) {
        pgconn_fail(&l->pc, what, PQerrorMessage(l->pc.pg));
        return -1;
    }
    if (pgconn_flush(&l->pc) != 0)
        return -1;
    l->query_pending = 1;
    return 0;
}

/* ---- the connection's hooks (conn.h) ---- */

/* Connected: subscribes, then runs the owner's session SQL (e.g. taking a session lock), on every connect.
 */
static void on_connect(pgconn_t *pc)
{
    db_listen_t *l = pc->data;
    buf_t sql = BUF_INIT;
    for (size_t i = 0; i < l->nchannels; i++) {
        char *quoted = PQescapeIdentifier(pc->pg, l->channels[i], strlen(l->channels[i]));
        if (quoted == NULL) {
            buf_free(&sql);
            pgconn_fail(pc, "quoting a channel name", PQerrorMessage(pc->pg));
            return;
        }
        buf_printf(&sql, "LISTEN %s;", quoted);
        PQfreemem(quoted);
    }
    if (l->session_sql != NULL)
        buf_printf(&sql, "%s;", l->session_sql);
    /* With no channel an empty query still completes, so the machine needs no special case. */
    send_query(l, buf_cstr(&sql), "subscribing");
    buf_free(&sql);
}

/* Reads the results of the outstanding query that have fully arrived. Returns -1 when the connection failed
 * (the machine has moved on and the PGconn is gone). */
static int read_results(db_listen_t *l)
{
    while (l->query_pending && !PQisBusy(l->pc.pg)) {
        PGresult *res = PQgetResult(l->pc.pg);
        if (res == NULL) {
            l->query_pending = 0;
            if (l->pc.state == PGCONN_READY)
                pgconn_set_deadline(&l->pc, (uint64_t)l->cfg.keepalive_ms); /* the keepalive was answered */
            break;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
            char *msg = pgconn_message(PQresultErrorMessage(res));
            PQclear(res);
            pgconn_fail(&l->pc, l->pc.state == PGCONN_SETUP ? "subscribing" : "keepalive", msg);
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
    while (l->pc.pg != NULL && !l->closing && (n = PQnotifies(l->pc.pg)) != NULL) {
        log_debug(ACTION, "notification on %s: %s", n->relname, n->extra);
        l->on_notify(n->relname, n->extra != NULL ? n->extra : "", l->data);
        PQfreemem(n);
    }
    return l->closing ? -1 : 0;
}

static void on_readable(pgconn_t *pc)
{
    db_listen_t *l = pc->data;
    if (read_results(l) != 0)
        return;
    if (pc->state == PGCONN_SETUP && !l->query_pending) {
        /* Subscribed: on_listening runs, which may close us. */
        int reconnected = pc->ever_ready;
        pgconn_ready(pc);
        pgconn_set_deadline(pc, (uint64_t)l->cfg.keepalive_ms);
        if (l->on_listening != NULL)
            l->on_listening(reconnected, l->data);
        if (l->closing)
            return;
    }
    deliver_notifies(l);
}

/* keepalive_ms of quiet: a keepalive, answered within connect_timeout_ms, tells a vanished peer apart. */
static void on_deadline(pgconn_t *pc)
{
    db_listen_t *l = pc->data;
    if (l->query_pending) {
        pgconn_fail(pc, "keepalive", "no answer from the server");
        return;
    }
    if (send_query(l, "SELECT 1", "keepalive") != 0)
        return;
    pgconn_set_deadline(pc, (uint64_t)l->cfg.connect_timeout_ms);
}

static void on_lost(pgconn_t *pc, const char *err, int was_ready)
{
    (void)err;
    (void)was_ready;
    ((db_listen_t *)pc->data)->query_pending = 0;
}

static void on_closed(pgconn_t *pc)
{
    db_listen_t *l = pc->data;
    log_debug(ACTION, "LISTEN connection to %s closed", l->target);
    if (l->close_cb != NULL)
        l->close_cb(l->close_data);
    listen_free(l);
}

static const pgconn_hooks_t hooks = {
    .on_connect = on_connect,
    .on_readable = on_readable,
    .on_deadline = on_deadline,
    .on_lost = on_lost,
    .on_closed = on_closed,
};

/* ---- the interface ---- */

db_listen_t *db_listen_create(uv_loop_t *loop, const db_listen_config_t *cfg, db_listen_notify_cb on_notify,
                              db_listen_ready_cb on_listening, void *data)
{
    char *target = pgconn_describe(cfg->conninfo, "configuring the LISTEN connection", NULL);
    if (target == NULL)
        return NULL;
    db_listen_t *l = xcalloc(1, sizeof(*l));
    l->target = target;
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
    pgconn_config_t pc = {
        .conninfo = l->conninfo,
        .application_name = "inkloop-listen",
        .name = "LISTEN connection",
        .target = l->target,
        .action = ACTION,
        .connect_timeout_ms = l->cfg.connect_timeout_ms,
        .backoff_min_ms = l->cfg.backoff_min_ms,
        .backoff_max_ms = l->cfg.backoff_max_ms,
    };
    pgconn_init(&l->pc, loop, &pc, &hooks, l);
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
    pgconn_start(&l->pc);
}

int db_listen_ready(const db_listen_t *l)
{
    return l->pc.state == PGCONN_READY;
}

void db_listen_close(db_listen_t *l, void (*cb)(void *data), void *data)
{
    if (l->closing)
        return;
    l->closing = 1;
    l->close_cb = cb;
    l->close_data = data;
    pgconn_close(&l->pc);
}
