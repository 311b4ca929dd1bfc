/* The libpq connection machine (conn.h): one nonblocking connection on one uv_poll_t and one timer, driven
 * by advance() through PGCONN_STATES. The owner's hooks run at fixed points, and after each one the machine
 * returns at once or looks at its state again, since a hook may have failed or closed the connection. */
#include "db/conn.h"
#include "core/alloc.h"
#include "core/log.h"
#include "db/db.h"
#include "db/query.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char ACTION_CONNECT[] = "connecting to database";

static const char *const state_names[] = {
#define PGCONN_STATE_NAME(id, name) name,
    PGCONN_STATES(PGCONN_STATE_NAME)
#undef PGCONN_STATE_NAME
};

static void advance(pgconn_t *c);
static void on_poll(uv_poll_t *handle, int status, int events);

const char *pgconn_state_name(pgconn_state_t state)
{
    return state_names[state];
}

/* Timer calls cannot fail on an initialized timer; a failure is a bug. */
static void check_uv(int rc, const char *what)
{
    if (rc != 0) {
        log_error(ACTION_CONNECT, "%s: %s", what, uv_strerror(rc));
        abort();
    }
}

uint32_t db_jitter_next(uint32_t *state)
{
    if (*state == 0) {
        *state = (uint32_t)uv_hrtime() ^ ((uint32_t)getpid() << 16) ^ (uint32_t)(uintptr_t)state;
        if (*state == 0)
            *state = 1;
    }
    /* xorshift32: jitter needs spread, not secrecy. */
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

int db_backoff_ms(int attempt, int min_ms, int max_ms, uint32_t rnd)
{
    if (min_ms < 1)
        min_ms = 1;
    if (max_ms < min_ms)
        max_ms = min_ms;
    int64_t delay = min_ms;
    for (int i = 0; i < attempt && delay < max_ms; i++)
        delay *= 2;
    if (delay > max_ms)
        delay = max_ms;
    int64_t half = delay / 2;
    return (int)(delay - half + (int64_t)(rnd % (uint32_t)(half + 1)));
}

void pgconn_one_line(char *s)
{
    char *w = s;
    for (const char *r = s; *r != '\0'; r++) {
        if (*r == '\n') {
            while (r[1] == '\t' || r[1] == ' ' || r[1] == '\n')
                r++;
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    while (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
}

char *pgconn_message(const char *msg)
{
    if (msg == NULL || msg[0] == '\0')
        return xstrdup("unknown error");
    char *out = xstrdup(msg);
    pgconn_one_line(out);
    return out;
}

char *pgconn_describe(const char *conninfo, const char *action, char **options)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo != NULL ? conninfo : "", &errmsg);
    if (options != NULL)
        *options = NULL;
    if (opts == NULL) {
        char *msg = pgconn_message(errmsg);
        log_error(action, "invalid connection string: %s", msg);
        free(msg);
        PQfreemem(errmsg);
        return NULL;
    }
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
        else if (strcmp(o->keyword, "options") == 0 && options != NULL && v != NULL)
            *options = xstrdup(v);
    }
    if (host == NULL)
        host = hostaddr;
    char *target =
        xasprintf("%s%s%s%s%s/%s", user ? user : "", user ? "@" : "", host ? host : "(default host)",
                  port ? ":" : "", port ? port : "", dbname ? dbname : "");
    PQconninfoFree(opts);
    return target;
}

/* Messages the server sends outside a query (its FATAL on termination, while idle, comes this way) belong in
 * the log, not on stderr, where libpq's default processor would put them. */
static void on_notice(void *arg, const char *message)
{
    pgconn_t *c = arg;
    char *msg = pgconn_message(message);
    log_debug(c->cfg.action, "%s: server notice: %s", c->cfg.name, msg);
    free(msg);
}

/* ---- handles ---- */

static void handle_closed(pgconn_t *c)
{
    if (--c->_handles > 0 || c->state != PGCONN_CLOSED)
        return;
    free(c->_err);
    c->_err = NULL;
    if (c->hooks->on_closed != NULL)
        c->hooks->on_closed(c); /* may free c */
}

static void on_poll_closed(uv_handle_t *handle)
{
    pgconn_t *c = handle->data;
    free(handle);
    handle_closed(c);
}

static void on_timer_closed(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

/* Stops and closes the poll handle. It must happen before PQfinish closes the socket: epoll forgets a closed
 * descriptor by itself, and libuv would then fail to modify a registration that no longer exists. */
static void drop_poll(pgconn_t *c)
{
    if (c->_poll == NULL)
        return;
    check_uv(uv_poll_stop(c->_poll), "stopping the socket watch");
    uv_close((uv_handle_t *)c->_poll, on_poll_closed);
    c->_poll = NULL;
    c->_events = 0;
}

static void drop_pg(pgconn_t *c)
{
    drop_poll(c);
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
}

/* Watches the current socket for events. While connecting, PQsocket is read again and the socket told apart
 * by its inode, since libpq may have opened a new one under the same number: a new socket gets a new handle,
 * and there are never two handles on one descriptor. Returns 0 or a uv error. */
static int watch(pgconn_t *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return UV_EBADF;
    if (c->state == PGCONN_CONNECTING || c->_poll == NULL) {
        struct stat st;
        if (fstat(fd, &st) != 0)
            return UV_EBADF;
        if (c->_poll != NULL && (c->_fd != fd || c->_dev != st.st_dev || c->_ino != st.st_ino))
            drop_poll(c);
        if (c->_poll == NULL) {
            uv_poll_t *poll = xmalloc(sizeof(*poll));
            int rc = uv_poll_init(c->_loop, poll, fd);
            if (rc != 0) {
                free(poll);
                return rc;
            }
            poll->data = c;
            c->_handles++;
            c->_poll = poll;
            c->_fd = fd;
            c->_dev = st.st_dev;
            c->_ino = st.st_ino;
            c->_events = 0;
        }
    }
    if (events != c->_events) {
        int rc = uv_poll_start(c->_poll, events, on_poll);
        if (rc != 0)
            return rc;
        c->_events = events;
    }
    return 0;
}

static void on_timer(uv_timer_t *timer)
{
    pgconn_t *c = timer->data;
    c->_timer_fired = 1;
    advance(c);
}

static void arm_timer(pgconn_t *c, uint64_t ms)
{
    c->_timer_fired = 0;
    check_uv(uv_timer_start(&c->_timer, on_timer, ms, 0), "arming the connection deadline");
}

static void stop_timer(pgconn_t *c)
{
    c->_timer_fired = 0;
    check_uv(uv_timer_stop(&c->_timer), "stopping the connection deadline");
}

static void set_state(pgconn_t *c, pgconn_state_t state)
{
    if (c->state != state)
        log_debug(ACTION_CONNECT, "%s: %s -> %s", c->cfg.name, state_names[c->state], state_names[state]);
    c->state = state;
}

/* Records why the connection failed and moves to PGCONN_LOST; the caller loops or calls advance. */
static void lose(pgconn_t *c, const char *why, const char *detail)
{
    free(c->_err);
    char *msg = pgconn_message(detail);
    c->_err = xasprintf("%s: %s", why, msg);
    free(msg);
    c->_failed_ready = c->state == PGCONN_READY;
    set_state(c, PGCONN_LOST);
}

static int is_open(const pgconn_t *c)
{
    return c->state == PGCONN_SETUP || c->state == PGCONN_READY;
}

/* ---- socket events ---- */

static void on_io(pgconn_t *c, int events)
{
    if ((events & UV_READABLE) != 0) {
        if (!PQconsumeInput(c->pg)) {
            pgconn_fail(c, "connection lost", PQerrorMessage(c->pg));
            return;
        }
        c->hooks->on_readable(c);
        if (!is_open(c))
            return;
    }
    pgconn_flush(c);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    pgconn_t *c = handle->data;
    if (status < 0) {
        /* libuv reports POLLERR as an error and stops the handle. While connecting that is an ordinary
         * refused connect: PQconnectPoll reads the socket's error and moves on to the next host or address.
         */
        c->_events = 0;
        if (c->state == PGCONN_CONNECTING) {
            advance(c);
            return;
        }
        if (!is_open(c))
            return;
        /* On an open connection the socket has failed; first the owner reads what arrived before (the
         * server's own FATAL message, complete results), then the connection drops with libpq's account. */
        if (PQconsumeInput(c->pg)) {
            c->hooks->on_readable(c);
            if (!is_open(c))
                return;
        }
        const char *msg = PQerrorMessage(c->pg);
        pgconn_fail(c, "connection lost", msg[0] != '\0' ? msg : uv_strerror(status));
        return;
    }
    if (c->state == PGCONN_CONNECTING)
        advance(c);
    else if (is_open(c))
        on_io(c, events);
}

/* ---- the machine ---- */

static void advance(pgconn_t *c)
{
    for (;;) {
        switch (c->state) {
        case PGCONN_IDLE: {
            const char *keys[4], *values[4];
            int n = 0;
            keys[n] = "dbname", values[n++] = c->cfg.conninfo;
            if (c->cfg.options != NULL)
                keys[n] = "options", values[n++] = c->cfg.options;
            keys[n] = "fallback_application_name", values[n++] = c->cfg.application_name;
            keys[n] = NULL, values[n] = NULL;
            c->pg = PQconnectStartParams(keys, values, 1);
            if (c->pg == NULL) {
                log_error(ACTION_CONNECT, "out of memory");
                abort();
            }
            PQsetNoticeProcessor(c->pg, on_notice, c);
            log_debug(ACTION_CONNECT, "%s to %s", c->cfg.name, c->cfg.target);
            set_state(c, PGCONN_CONNECTING);
            arm_timer(c, (uint64_t)c->cfg.connect_timeout_ms);
            if (PQstatus(c->pg) == CONNECTION_BAD) {
                lose(c, "connecting", PQerrorMessage(c->pg));
                continue;
            }
            /* libpq's contract for a fresh connection: behave as if PQconnectPoll said "writing". */
            int rc = watch(c, UV_WRITABLE);
            if (rc != 0) {
                lose(c, "polling the socket", uv_strerror(rc));
                continue;
            }
            return;
        }
        case PGCONN_CONNECTING: {
            if (c->_timer_fired) {
                lose(c, "connecting", "timed out");
                continue;
            }
            int rc;
            switch (PQconnectPoll(c->pg)) {
            case PGRES_POLLING_FAILED:
                lose(c, "connecting", PQerrorMessage(c->pg));
                continue;
            case PGRES_POLLING_READING:
                rc = watch(c, UV_READABLE);
                break;
            case PGRES_POLLING_OK:
                if (PQsetnonblocking(c->pg, 1) != 0) {
                    lose(c, "making the connection nonblocking", PQerrorMessage(c->pg));
                    continue;
                }
                rc = watch(c, UV_READABLE);
                if (rc != 0)
                    break;
                /* The session setup shares the connect deadline, which is still running. */
                set_state(c, PGCONN_SETUP);
                if (c->hooks->on_connect != NULL)
                    c->hooks->on_connect(c); /* may fail or close the connection */
                else
                    pgconn_ready(c);
                return;
            default: /* PGRES_POLLING_WRITING */
                rc = watch(c, UV_WRITABLE);
                break;
            }
            if (rc != 0) {
                lose(c, "polling the socket", uv_strerror(rc));
                continue;
            }
            return;
        }
        case PGCONN_SETUP:
            if (c->_timer_fired) {
                lose(c, "setting up the session", "timed out");
                continue;
            }
            return;
        case PGCONN_READY:
            if (c->_timer_fired) {
                c->_timer_fired = 0;
                if (c->hooks->on_deadline != NULL)
                    c->hooks->on_deadline(c); /* may fail or close the connection */
            }
            return;
        case PGCONN_LOST: {
            int was_ready = c->_failed_ready;
            if (was_ready)
                log_warn(c->cfg.action, "%s to %s lost: %s", c->cfg.name, c->cfg.target, c->_err);
            else
                /* A long outage repeats the same failure every backoff_max_ms: the first one is worth a
                 * warning, the rest only while debugging. */
                log_write(c->attempts == 0 ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, ACTION_CONNECT,
                          "%s to %s failed (attempt %d): %s", c->cfg.name, c->cfg.target, c->attempts + 1,
                          c->_err);
            drop_pg(c);
            stop_timer(c);
            if (c->hooks->on_lost != NULL)
                c->hooks->on_lost(c, c->_err, was_ready);
            if (c->state != PGCONN_LOST)
                return; /* closed by the hook */
            int delay = db_backoff_ms(c->attempts++, c->cfg.backoff_min_ms, c->cfg.backoff_max_ms,
                                      db_jitter_next(&c->_rng));
            set_state(c, PGCONN_BACKOFF);
            arm_timer(c, (uint64_t)delay);
            return;
        }
        case PGCONN_BACKOFF:
            if (!c->_timer_fired)
                return;
            c->_timer_fired = 0;
            set_state(c, PGCONN_IDLE);
            continue;
        case PGCONN_CLOSED:
            return;
        }
    }
}

/* ---- the interface ---- */

void pgconn_init(pgconn_t *c, uv_loop_t *loop, const pgconn_config_t *cfg, const pgconn_hooks_t *hooks,
                 void *data)
{
    assert(hooks != NULL && hooks->on_readable != NULL);
    *c = (pgconn_t){.state = PGCONN_IDLE, .data = data, .cfg = *cfg, .hooks = hooks, ._loop = loop};
    if (c->cfg.connect_timeout_ms <= 0)
        c->cfg.connect_timeout_ms = 10000;
    if (c->cfg.backoff_min_ms <= 0)
        c->cfg.backoff_min_ms = 100;
    if (c->cfg.backoff_max_ms <= 0)
        c->cfg.backoff_max_ms = 5000;
    if (c->cfg.name == NULL)
        c->cfg.name = "connection";
    if (c->cfg.target == NULL)
        c->cfg.target = "(database)";
    if (c->cfg.action == NULL)
        c->cfg.action = "using the database";
    if (c->cfg.application_name == NULL)
        c->cfg.application_name = "inkloop";
    if (c->cfg.conninfo == NULL)
        c->cfg.conninfo = "";
    check_uv(uv_timer_init(loop, &c->_timer), "creating the connection deadline");
    c->_timer.data = c;
    c->_handles = 1;
}

void pgconn_start(pgconn_t *c)
{
    if (c->state == PGCONN_IDLE)
        advance(c);
}

void pgconn_ready(pgconn_t *c)
{
    assert(c->state == PGCONN_SETUP);
    stop_timer(c);
    set_state(c, PGCONN_READY);
    c->attempts = 0;
    log_info(c->cfg.action, "%s to %s is %s", c->cfg.name, c->cfg.target, c->ever_ready ? "back" : "ready");
    c->ever_ready = 1;
}

void pgconn_fail(pgconn_t *c, const char *why, const char *detail)
{
    if (c->state != PGCONN_CONNECTING && !is_open(c))
        return;
    lose(c, why, detail);
    advance(c);
}

int pgconn_flush(pgconn_t *c)
{
    if (!is_open(c))
        return -1;
    int r = PQflush(c->pg);
    if (r < 0) {
        pgconn_fail(c, "sending to the server", PQerrorMessage(c->pg));
        return -1;
    }
    /* Reading stays on while libpq waits for the socket to drain: the server may be blocked writing to us. */
    int rc = watch(c, UV_READABLE | (r == 1 ? UV_WRITABLE : 0));
    if (rc != 0) {
        pgconn_fail(c, "polling the socket", uv_strerror(rc));
        return -1;
    }
    return 0;
}

void pgconn_set_deadline(pgconn_t *c, uint64_t ms)
{
    assert(c->state == PGCONN_READY);
    arm_timer(c, ms);
}

void pgconn_clear_deadline(pgconn_t *c)
{
    assert(c->state == PGCONN_READY);
    stop_timer(c);
}

void pgconn_close(pgconn_t *c)
{
    if (c->state == PGCONN_CLOSED)
        return;
    drop_pg(c);
    stop_timer(c);
    uv_close((uv_handle_t *)&c->_timer, on_timer_closed);
    set_state(c, PGCONN_CLOSED);
}
