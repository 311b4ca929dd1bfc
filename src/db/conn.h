/* Private to src/db: the one libpq connection machine, embedded by each pool connection (pool.c) and by the
 * LISTEN connection (listen.c), the way h2o's redis client wraps hiredis (lib/common/redis.c).
 *
 * It owns everything about keeping one nonblocking connection open on the libuv loop: PQconnectStartParams
 * and PQconnectPoll (PQsocket read again after every poll, since libpq opens a new socket for each host and
 * SSL mode it tries), the one uv_poll_t on the current socket, the connect deadline, reconnecting with
 * exponential backoff and jitter, and closing (the poll handle is stopped and closed before PQfinish closes
 * the socket). The owner sees the connection through hooks:
 *
 *   on_connect   libpq is connected; the owner starts its session setup (prepares, LISTEN) and calls
 *                pgconn_ready when it is done (or pgconn_fail). The connect deadline still runs.
 *   on_readable  input arrived (already consumed into libpq) during setup or while ready.
 *   on_deadline  the owner's deadline (pgconn_set_deadline) passed while ready.
 *   on_lost      the connection was dropped (err says why); the owner fails what it had sent.
 *   on_closed    after pgconn_close, the last handle was closed: the owner may free the memory now.
 *
 * Hooks run only from a loop callback, or from a pgconn_* call the owner made (pgconn_fail, pgconn_flush),
 * and the machine checks its state after each, so a hook may call pgconn_fail or pgconn_close. */
#ifndef INKLOOP_DB_CONN_H
#define INKLOOP_DB_CONN_H

#include <libpq-fe.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#define PGCONN_STATES(X)                                                                                     \
    X(PGCONN_IDLE, "idle")             /* no connection; advancing starts one */                             \
    X(PGCONN_CONNECTING, "connecting") /* waits for the socket event PQconnectPoll asked for; deadline:      \
                                        * connect */                                                         \
    X(PGCONN_SETUP, "setting up")      /* connected; waits for the owner's session setup (pgconn_ready);     \
                                        * same deadline */                                                   \
    X(PGCONN_READY, "ready")           /* the owner's to use; waits for input, or the owner's deadline */    \
    X(PGCONN_LOST, "lost")             /* passing: drops the connection, tells the owner, picks the delay */ \
    X(PGCONN_BACKOFF, "backoff")       /* waits for the reconnect delay */                                   \
    X(PGCONN_CLOSED, "closed")         /* pgconn_close ran; waits for the handles' close callbacks */

typedef enum {
#define PGCONN_STATE_ENUM(id, name) id,
    PGCONN_STATES(PGCONN_STATE_ENUM)
#undef PGCONN_STATE_ENUM
} pgconn_state_t;

typedef struct st_pgconn_t pgconn_t;

/** The owner's side of a connection. Every hook may be NULL except on_readable. */
typedef struct st_pgconn_hooks_t {
    void (*on_connect)(pgconn_t *c);
    void (*on_readable)(pgconn_t *c);
    void (*on_deadline)(pgconn_t *c);
    /** was_ready: the connection had reached pgconn_ready (so "lost" rather than "failed to connect"). */
    void (*on_lost)(pgconn_t *c, const char *err, int was_ready);
    void (*on_closed)(pgconn_t *c);
} pgconn_hooks_t;

/** Borrowed for the connection's life: the owner keeps every string alive until on_closed. */
typedef struct st_pgconn_config_t {
    const char *conninfo;         /* passed as an expanded dbname, so URLs and key=value strings both work */
    const char *options;          /* libpq "options" (they follow conninfo, so they win); NULL: conninfo's */
    const char *application_name; /* fallback_application_name */
    const char *name;             /* for logs: "connection 2", "LISTEN connection" */
    const char *target;           /* for logs: user@host:port/dbname (pgconn_describe) */
    const char *action;           /* for logs: what the connection is for ("listening for ...") */
    int connect_timeout_ms;       /* connect and session setup */
    int backoff_min_ms, backoff_max_ms;
} pgconn_config_t;

struct st_pgconn_t {
    pgconn_state_t state;
    PGconn *pg;   /* NULL unless connecting, setting up or ready */
    void *data;   /* the owner's */
    int attempts; /* failed connects since the last time it was ready */
    int ever_ready;
    pgconn_config_t cfg;
    const pgconn_hooks_t *hooks;
    uv_loop_t *_loop;
    uv_timer_t _timer; /* the deadline (or delay) of the current state */
    uv_poll_t *_poll;  /* on the current socket; apart, since a new socket needs a new handle before the old
                        * one's close callback has run */
    int _fd;           /* the watched socket, with _dev and _ino to tell a new one from a reused number */
    dev_t _dev;
    ino_t _ino;
    int _events;  /* what _poll was last started with, 0 when stopped */
    int _handles; /* initialized and not yet closed */
    int _timer_fired;
    char *_err;        /* why the current attempt failed */
    int _failed_ready; /* the failure ended a ready connection */
    uint32_t _rng;
};

/** Initializes c (its timer is created, so pgconn_close must follow). Nothing connects until pgconn_start.
 */
void pgconn_init(pgconn_t *c, uv_loop_t *loop, const pgconn_config_t *cfg, const pgconn_hooks_t *hooks,
                 void *data);
/** Starts connecting (asynchronously); reconnects after every loss until pgconn_close. */
void pgconn_start(pgconn_t *c);
/** Ends the owner's session setup: the connection is ready and the connect deadline stops. */
void pgconn_ready(pgconn_t *c);
/** Drops the connection now: on_lost runs (before this returns), then the reconnect delay. No-op unless
 * connecting, setting up or ready. why: what was being done; detail: libpq's message (any form). */
void pgconn_fail(pgconn_t *c, const char *why, const char *detail);
/** Sends what libpq buffered and watches the socket for reading (and for writing while data remains).
 * Returns 0, or -1 after failing the connection (on_lost has run). */
int pgconn_flush(pgconn_t *c);
/** Arms the owner's deadline (only while ready): on_deadline runs after ms. */
void pgconn_set_deadline(pgconn_t *c, uint64_t ms);
/** Stops the owner's deadline. */
void pgconn_clear_deadline(pgconn_t *c);
/** Drops the connection without on_lost and closes every handle; on_closed runs on a later loop turn. */
void pgconn_close(pgconn_t *c);
/** The name of a state, for logs and tests. */
const char *pgconn_state_name(pgconn_state_t state);

/** Makes s one line in place: libpq's messages end in a newline and may continue on indented lines (a
 * hint); each newline and the indentation after it become one space, and trailing spaces go. */
void pgconn_one_line(char *s);
/** libpq's message as one log line: newlines and the indentation of continuation lines become one space,
 * the trailing newline goes; NULL or "" gives "unknown error". The caller frees it. */
char *pgconn_message(const char *msg);
/** user@host:port/dbname from a conninfo, for logs (never the password); *options (may be NULL) receives a
 * copy of the conninfo's own options, or NULL. Returns NULL, logging why under action, when conninfo cannot
 * be parsed. The caller frees both. */
char *pgconn_describe(const char *conninfo, const char *action, char **options);

#endif
