/* Webhook delivery (API.md section 6) as the job kind JOBS_KIND_DELIVER: a job is due at the article's
 * next_delivery_at (scheduled_at, or now, or the next retry), so the job runner's timer starts it to the
 * second; the claim (FOR UPDATE SKIP LOCKED) makes every attempt atomic across processes. Each attempt is
 * recorded with the article's new state and the next attempt's job in one transaction. A sweep every
 * WEBHOOK_SWEEP_INTERVAL_S queues due deliveries that have no job (the safety net). */
#ifndef INKLOOP_WEBHOOK_DELIVER_H
#define INKLOOP_WEBHOOK_DELIVER_H

#include "app.h"
#include "db/db.h"
#include "db/step.h"
#include "jobs/port.h"
#include "webhook/send.h"

#include <stdint.h>

/** Deliveries one process sends at once, in job slots of their own (the runner gets WORKER_CONCURRENCY for
 * generation plus these): a slow receiver holds one slot, never generation, the other deliveries or the API.
 */
#define DELIVER_CONCURRENCY 64

/** One signed send (webhook_send/webhook_send_cancel on net), or a test's fake with the same contract. */
typedef struct st_webhook_send_port_t {
    webhook_send_t *(*send)(void *ctx, const webhook_request_t *req, webhook_send_cb cb, void *data);
    void (*cancel)(webhook_send_t *s);
    void *ctx;
} webhook_send_port_t;

/** Everything a delivery machine reaches: the real clients in production (deliver_start), fakes in tests. */
typedef struct st_dlv_env_t {
    uv_loop_t *loop;
    const config_t *cfg;
    db_target_t db;
    webhook_send_port_t send;
    jobs_port_t jobs;
    uint64_t db_deadline_ms; /* LOADING and RECORDING give up on the database after this long */
    uint64_t
        send_deadline_ms; /* SENDING gives up on the receiver after this long (beyond WEBHOOK_TIMEOUT_S) */
} dlv_env_t;

/** Starts the delivery machine of one claimed job (the kind's start callback); env must outlive it. */
void deliver_run(const dlv_env_t *env, jobs_job_t *job);
/** Stops it now (the kind's cancel callback): no callback of its runs afterwards, the job is not touched
 * again; its memory is freed once its timer is closed. */
void deliver_halt(jobs_job_t *job);
/** The kind's drain callback (jobs_drain_cb without data): see deliver.c. */
int deliver_drain(jobs_job_t *job, int deadline);

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
