/* Operations endpoints (contract section 5, besides /health): Prometheus metrics, queue statistics, the
 * OpenAPI document and the page that renders it. */
#ifndef INKLOOP_HTTP_OPS_H
#define INKLOOP_HTTP_OPS_H

#include "db/db.h"
#include "http/server.h"

/** Registers the statements of this file, and records the process start time for the metrics (it runs once,
 * at start-up). Returns 0 or -1. */
int ops_prepare(db_pool_t *pool);

/** GET /metrics (public): the default metrics registry plus values read at scrape time (jobs by kind and
 * state, database pool, requests in flight), as text/plain; version=0.0.4. Answers 200 even when the database
 * is down: the jobs gauges are then left out and inkloop_jobs_scrape_ok is 0. */
void ops_metrics(http_req_t *req);
/** GET /queue/stats (user): {queue_name, queued, in_progress, delayed, failed} over the jobs table. */
void ops_queue_stats(http_req_t *req);
/** GET /openapi.json (public): the OpenAPI 3.1 document compiled into the binary from src/http/openapi.json.
 */
void ops_openapi(http_req_t *req);
/** GET /docs (public): an HTML page (Swagger UI) that renders /openapi.json. */
void ops_docs(http_req_t *req);

#endif
