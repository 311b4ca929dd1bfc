/* GET /articles/{article_id}/events: an article's progress as Server-Sent Events, and the per-process fan-out
 * behind it.
 *
 * Every status change of an article is announced by the database (trigger articles_notify_status, channel
 * inkloop_articles), whichever process made it. Each process holds ONE LISTEN connection for that channel,
 * opened with its first stream, and hands every notification to the streams of that article (a registry keyed
 * by article id). A stream sends
 *     event: status / data: {"status", "stage", "detail", "at"}
 * per status (stage: research, scrape, analyze or write while generating, else null), a ": keep-alive"
 * comment every EVENTS_KEEPALIVE_MS, and ends with
 *     event: done / data: <the final status object>
 * once the article is completed, posted, delivery_failed, failed or cancelled. completed ends the stream even
 * when a delivery is still to come: the stream follows generation; delivery has its own records
 * (GET /articles/{id}/deliveries). A stream that ends without done (lifetime limit, shutdown, article
 * deleted) is meant to be reconnected by the client (EventSource does so by itself; a deleted article then
 * gets 404). */
#ifndef INKLOOP_HTTP_EVENTS_H
#define INKLOOP_HTTP_EVENTS_H

#include "db/db.h"
#include "http/server.h"

#include <uv.h>

typedef struct st_app_t app_t;
typedef struct st_events_t events_t;

/** How often each open stream gets a ": keep-alive" comment (proxies close idle connections). */
#define EVENTS_KEEPALIVE_MS 15000
/** Streams per process, and per user in one process; beyond either: 429. */
#define EVENTS_MAX_STREAMS 10000
#define EVENTS_MAX_PER_USER 20
/** A stream ends (without done) after this long; the client reconnects. */
#define EVENTS_MAX_LIFETIME_MS (30 * 60 * 1000)

/** Creates the process's registry (app->events). Nothing connects until the first stream. */
events_t *events_create(uv_loop_t *loop, app_t *app);
/** Ends every stream (without done, so clients reconnect to a process that is not stopping), drops the
 * LISTEN connection, closes the timer, then calls cb (on a later loop turn); ev is freed after cb returns.
 * Later requests for the endpoint get 503. Call it once, before the pool closes. */
void events_close(events_t *ev, void (*cb)(void *data), void *data);
/** Registers the statements of this file. */
int events_prepare(db_pool_t *pool);

/** GET /articles/{article_id}/events (ROUTE_USER). */
void events_get(http_req_t *req);

#endif
