/* The per-process hub of article status events, whichever process made the change.
 *
 * Every status change of an article is announced by the database (trigger articles_notify_status, channel
 * inkloop_articles). Each process holds ONE LISTEN connection for that channel, opened with its first
 * watcher, and hands every notification to the watchers of that article (a registry keyed by article id).
 * When the connection was down (first start, a reconnect), the hub re-reads every watched article with one
 * query
 * ("resync"); it also does so every few ticks, as a safety net for what no notification announces (an article
 * deleted while watched).
 *
 * Ordering. A watcher enters the registry before the article's row is read, so no notification committed
 * after that read is missed while the LISTEN connection is up. A row read can be older than a notification
 * that arrives before it, so a resync skips articles that got a notification after the query was sent, and a
 * loading watcher gets the newest notification rather than its row. A frame equal to the previous one (same
 * status and detail) is not passed on twice.
 *
 * Ownership. A watch is allocated by events_watch and freed by events_unwatch, which its owner calls once,
 * at any time, also from inside its callback. The hub reads the next watch before calling one, so a callback
 * may end its own watch. Statements: sql/queries/events.sql. */
#ifndef INKLOOP_EVENTS_EVENTS_H
#define INKLOOP_EVENTS_EVENTS_H

#include "db/db.h"

#include <stddef.h>
#include <uv.h>

typedef struct st_events_t events_t;
typedef struct st_events_watch_t events_watch_t;

/** How often each open watch gets EVENTS_TICK (the stream's keep-alive and lifetime check). */
#define EVENTS_KEEPALIVE_MS 15000

/** One status of an article. */
typedef struct st_events_frame_t {
    char status[24]; /* "" when none yet */
    char *detail;    /* NULL: none */
    char at[40];     /* when, ISO-8601 UTC; "" when unknown */
} events_frame_t;

/** What a watch is told. */
typedef enum {
    EVENTS_LOADED,    /* the article exists and is the user's: frame is its status now; the watch is open */
    EVENTS_NOT_FOUND, /* no such article of that user: unwatch */
    EVENTS_FAILED,    /* reading the article failed (failure set): unwatch */
    EVENTS_FRAME,     /* a newer status (frame set, different from the last one passed on) */
    EVENTS_TICK,      /* EVENTS_KEEPALIVE_MS went by (open watches only) */
    EVENTS_DELETED,   /* the article no longer exists: unwatch */
    EVENTS_CLOSING,   /* the hub is closing (events_close): unwatch now */
} events_news_t;

/** A watch's callback; frame and failure are valid while it runs. */
typedef void (*events_watch_cb)(events_watch_t *w, events_news_t what, const events_frame_t *frame,
                                const db_result_t *failure);

/** A watch as its owner sees it. */
struct st_events_watch_t {
    void *data; /* the owner's */
    char article_id[37];
    char user_id[37];
};

/** Creates the hub. Nothing connects until the first watch; conninfo (kept by reference) is the LISTEN
 * connection's. */
events_t *events_create(uv_loop_t *loop, db_pool_t *db, const char *conninfo);
/** Tells every watch EVENTS_CLOSING (each must unwatch), drops the LISTEN connection, closes the timer, then
 * calls cb (on a later loop turn); ev is freed after cb returns. Call it once, before the pool closes. */
void events_close(events_t *ev, void (*cb)(void *data), void *data);
/** True once events_close was called: watch no more. */
int events_closing(const events_t *ev);
/** Registers the statements of sql/queries/events.sql. */
int events_prepare(db_pool_t *pool);

/** Starts watching article_id for user_id: reads its row, then EVENTS_LOADED or EVENTS_NOT_FOUND or
 * EVENTS_FAILED, then news until events_unwatch. Returns NULL (nothing registered) when the pool refused the
 * read. */
events_watch_t *events_watch(events_t *ev, const char *article_id, const char *user_id, events_watch_cb cb,
                             void *data);
/** Ends a watch and frees it (the read in flight, if any, is cancelled). */
void events_unwatch(events_watch_t *w);
/** Watches registered in this process. */
size_t events_count(const events_t *ev);
/** Watches of user_id registered in this process. */
size_t events_count_user(const events_t *ev, const char *user_id);

/** True for the statuses that end an article's progress: completed, posted, failed, delivery_failed,
 * cancelled. Pure. */
int events_is_final(const char *status);
/** The trigger's "at" (now() as JSON renders it in the notifying session's time zone, e.g.
 * "2026-11-25T10:00:00.123456+01:00") as ISO-8601 UTC with Z. Returns 0 or -1. Pure. */
int events_json_ts_to_iso(const char *s, char *out, size_t outlen);

#endif
