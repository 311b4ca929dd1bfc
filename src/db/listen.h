/* A dedicated LISTEN connection on the libuv loop.
 *
 * One nonblocking libpq connection, apart from the pipelined pool (a pooled connection is shared and its
 * session may be reset, so it cannot hold subscriptions), watched by its own uv_poll_t. It subscribes to the
 * registered channels and hands every NOTIFY to a callback. When the connection drops it reconnects with
 * exponential backoff, subscribes again and calls on_listening with reconnected = 1: notifications sent while
 * it was down are lost, so the owner must look for the work they announced (re-poll). A keepalive query runs
 * every keepalive_ms, so a peer that vanished without closing the socket is noticed too. */
#ifndef INKLOOP_DB_LISTEN_H
#define INKLOOP_DB_LISTEN_H

#include <uv.h>

typedef struct st_db_listen_t db_listen_t;

/** One notification. channel and payload ("" when none) are valid only during the call. */
typedef void (*db_listen_notify_cb)(const char *channel, const char *payload, void *data);
/** The subscriptions are in place: after the first connect (reconnected = 0) and after every reconnect
 * (reconnected = 1, when notifications may have been missed). */
typedef void (*db_listen_ready_cb)(int reconnected, void *data);

typedef struct st_db_listen_config_t {
    const char *conninfo;    /* libpq connection string or URL */
    int connect_timeout_ms;  /* connect, subscribe and keepalive answer deadline (default 10000) */
    int keepalive_ms;        /* a "SELECT 1" after this much quiet (default 30000) */
    int backoff_min_ms;      /* first reconnect delay (default 100) */
    int backoff_max_ms;      /* reconnect delay cap (default 5000) */
    const char *session_sql; /* run after the LISTEN statements on every (re)connect, before on_listening
                              * (e.g. taking a session lock); its time counts in the connect deadline. NULL:
                              * none */
} db_listen_config_t;

/** Creates the listener; nothing connects until db_listen_start. Strings are copied. on_listening may be
 * NULL. Returns NULL (and logs why) when conninfo cannot be parsed. */
db_listen_t *db_listen_create(uv_loop_t *loop, const db_listen_config_t *cfg, db_listen_notify_cb on_notify,
                              db_listen_ready_cb on_listening, void *data);
/** Adds a channel to LISTEN on. Only before db_listen_start. Returns 0 or -1. */
int db_listen_add(db_listen_t *l, const char *channel);
/** Connects (asynchronously) and subscribes. */
void db_listen_start(db_listen_t *l);
/** 1 while subscribed (between on_listening and the next drop). */
int db_listen_ready(const db_listen_t *l);
/** Drops the connection and closes every handle; no callback runs after this returns, except cb, which runs
 * once everything is closed (on a later loop turn). The listener is freed after cb returns. May be called
 * from inside on_notify or on_listening. */
void db_listen_close(db_listen_t *l, void (*cb)(void *data), void *data);

#endif
