/* GET /articles/{article_id}/events: an article's progress as Server-Sent Events, fed by the process's event
 * hub (events/events.h).
 *
 * A stream sends
 *     event: status / data: {"status", "stage", "detail", "at"}
 * per status (stage: research, scrape, analyze or write while generating, else null), a ": keep-alive"
 * comment every EVENTS_KEEPALIVE_MS, and ends with
 *     event: done / data: <the final status object>
 * once the article is completed, posted, delivery_failed, failed or cancelled. completed ends the stream even
 * when a delivery is still to come: the stream follows generation; delivery has its own records
 * (GET /articles/{id}/deliveries). A stream that ends without done (lifetime limit, shutdown, article
 * deleted) is meant to be reconnected by the client (EventSource does so by itself; a deleted article then
 * gets 404). */
#ifndef INKLOOP_HTTP_SSE_H
#define INKLOOP_HTTP_SSE_H

#include "http/server.h"

/** Streams per process, and per user in one process; beyond either: 429. */
#define SSE_MAX_STREAMS 10000
#define SSE_MAX_PER_USER 20
/** A stream ends (without done) after this long; the client reconnects. */
#define SSE_MAX_LIFETIME_MS (30 * 60 * 1000)

/** GET /articles/{article_id}/events (ROUTE_USER). Answers 503 once app->events is closing or gone. */
void sse_article_events(http_req_t *req);

#endif
