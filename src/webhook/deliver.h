/* Webhook delivery (API.md section 6) as the job kind JOBS_KIND_DELIVER: a job is due at the article's
 * next_delivery_at (scheduled_at, or now, or the next retry), so the job runner's timer starts it to the
 * second; the claim (FOR UPDATE SKIP LOCKED) makes every attempt atomic across processes. Each attempt is
 * recorded with the article's new state and the next attempt's job in one transaction. A sweep every
 * WEBHOOK_SWEEP_INTERVAL_S queues due deliveries that have no job (the safety net). */
#ifndef INKLOOP_WEBHOOK_DELIVER_H
#define INKLOOP_WEBHOOK_DELIVER_H

#include "app.h"
#include "db/db.h"

/** Deliveries one process sends at once, in job slots of their own (the runner gets WORKER_CONCURRENCY for
 * generation plus these): a slow receiver holds one slot, never generation, the other deliveries or the API.
 */
#define DELIVER_CONCURRENCY 64

/** Registers the delivery statements. */
int deliver_prepare(db_pool_t *pool);
/** Registers the job kind with app->jobs (worker processes) and starts the sweep timer. Returns 0 or -1. */
int deliver_start(app_t *app);
/** Stops the sweep timer. */
void deliver_stop(app_t *app);
/** Runs the sweep now (POST /admin/deliveries/sweep); cb gets how many deliveries were queued. Returns -1
 * when the pool refused the query (cb will not run). */
int deliver_sweep_now(app_t *app, void (*cb)(void *data, const char *err, int enqueued), void *data);

#endif
