/* The campaign slot scheduler (API.md section 8): every SCHEDULER_INTERVAL_S, in processes with the scheduler
 * role, a tick creates the articles of every campaign slot that is due and has none yet.
 *
 * A tick claims the due campaigns in batches (one indexed query each: campaigns_due_idx), asks the LLM once
 * per campaign for the titles of its due slots, and commits each campaign in its own transaction
 * (campaign_sched_commit, sql/0007_article_title.sql), which decides again under the campaign's row lock.
 * Exactly one article per (campaign, slot) is enforced there by the database, so overlapping ticks, restarts
 * and several processes can never double one. POST /admin/scheduler/tick runs the same tick as of a given
 * time.
 */
#ifndef INKLOOP_SCHED_SCHEDULER_H
#define INKLOOP_SCHED_SCHEDULER_H

#include "app.h"
#include "db/db.h"
#include "db/step.h"
#include "pipeline/ports.h"

#include <stdint.h>

typedef struct st_sched_t sched_t;
typedef struct st_sched_tick_t sched_tick_t;

/** What one tick did, readable in its callback. */
typedef struct st_sched_report_t {
    const char *err;      /* NULL when the tick ran to the end; else why it stopped early (counts so far) */
    int campaigns;        /* campaigns claimed and handled */
    int articles_created; /* articles created (each charged and queued for generation) */
    int slots_pending;    /* due slots left without an article (title generation failed); retried next tick */
    int failed;           /* campaigns whose titles or commit failed (their last_error says why) */
    int paused;           /* campaigns paused for insufficient credits by this tick */
    int completed;        /* campaigns completed by this tick (total_articles reached, end_date passed) */
} sched_report_t;

/** Completion of a tick. */
typedef void (*sched_tick_cb)(const sched_report_t *report, void *data);

/** Registers the scheduler's statements. Only before db_pool_start. Returns 0 or -1. */
int sched_prepare(db_pool_t *pool);
/** Creates the scheduler of this process (every process has one, for the admin tick); nothing runs until
 * sched_start. */
sched_t *sched_create(app_t *app);
/** Replaces where the scheduler's queries and LLM calls go, and the ticks' deadline (0: the default, from the
 * lease); for unit tests (fakes, a short deadline). Before any tick. */
void sched_set_ports(sched_t *s, const db_target_t *db, const llm_port_t *llm, uint64_t tick_deadline_ms);
/** Starts the periodic tick (every SCHEDULER_INTERVAL_S, the first one interval after start). Call only in a
 * process with the scheduler role. */
void sched_start(sched_t *s);
/** Runs one tick as if the time were at_us (microseconds since the epoch). cb runs exactly once, never
 * synchronously, unless sched_tick_cancel is called first. Returns NULL when the scheduler is stopping. */
sched_tick_t *sched_tick(sched_t *s, int64_t at_us, sched_tick_cb cb, void *data);
/** The callback of t will not run; its work stops (what was committed stays committed). */
void sched_tick_cancel(sched_tick_t *t);
/** Stops the periodic tick and refuses new ticks; ticks in flight get up to timeout_ms to finish and are then
 * stopped (their callbacks report "shutting down"). Calls cb once every handle is closed; s is freed after cb
 * returns. */
void sched_stop(sched_t *s, uint64_t timeout_ms, void (*cb)(void *data), void *data);

#endif
