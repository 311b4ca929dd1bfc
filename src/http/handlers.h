/* The route handlers, one file per resource, and the SQL each registers with the pool. */
#ifndef INKLOOP_HTTP_HANDLERS_H
#define INKLOOP_HTTP_HANDLERS_H

#include "db/db.h"
#include "http/server.h"

/** Registers every handler's prepared statements with the pool (before db_pool_start). Returns 0 or -1. */
int http_prepare_statements(db_pool_t *pool);

/* health.c */
/** GET /health: database reachability and queue depth, no authentication. */
void health_get(http_req_t *req);

/* titlegen.c */
/** POST /generate/titles: titles from one LLM call, stored as generated. */
void titlegen_post(http_req_t *req);

/* webhooks.c */
/** POST /integrations/test: a signed test delivery to a URL. */
void webhooks_test_url(http_req_t *req);
/** POST /integrations/{id}/test: a test delivery to a stored integration; records last_test_at/status. */
void webhooks_test_integration(http_req_t *req);
/** POST /admin/deliveries/sweep: queues every due delivery that has no job, now. */
void webhooks_admin_sweep(http_req_t *req);

/* schedtick.c */
/** POST /admin/scheduler/tick {at?}: runs one campaign scheduler tick as if the time were at (default now)
 * and answers {"success": true, "campaigns", "articles_created", "slots_pending", "failed", "paused",
 * "completed"} once it finished; 503 when the tick could not run to the end. */
void schedtick_post(http_req_t *req);

#endif
