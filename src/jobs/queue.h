/* The durable job queue (table jobs, sql/0001_init.sql) and the runner that works it in this process.
 *
 * This module is the only writer of the jobs table. Enqueueing is a statement of its own that callers put in
 * their db_batch, or a SQL function their statements call (below), so a job commits (or not) together with
 * the rows it is about; the table's trigger sends NOTIFY 'inkloop_jobs' (payload: the kind) at commit.
 * Finished jobs are purged by the runner's housekeeping after a week.
 *
 * The runner claims due jobs of the kinds registered with it (UPDATE ... FOR UPDATE SKIP LOCKED, so several
 * processes never claim one job twice), at most `concurrency` at once and at most a kind's own limit. It
 * wakes on NOTIFY (its own LISTEN connection), on a slow poll timer (the safety net: notifications are a
 * hint), and at the earliest future run_at. While a job runs its lease is renewed every heartbeat; any
 * runner's rescue sweep returns jobs whose lease expired (their process died) to the queue. Every state
 * change of a claimed row checks locked_by = this runner, so a job rescued from us and claimed elsewhere is
 * never finished by us; when a renewal finds a job no longer ours, its handler is told to stop (cancel_cb).
 *
 * A handler's contract: start_cb begins the work and returns; later the handler calls exactly one of
 * jobs_done, jobs_fail, jobs_cancel or jobs_forget, after which it must not touch the job. Or the runner
 * calls cancel_cb first (shutdown, lost lease): the handler stops every operation of the job before returning
 * (no callback of its may run afterwards) and never touches the job again; the runner hands the job back to
 * the queue, or leaves it to its new owner. The job's stages must be persisted so a job resumed elsewhere (or
 * run again after a rescue) continues from its last persisted stage: jobs run at least once, never twice at
 * the same time while leases hold. */
#ifndef INKLOOP_JOBS_QUEUE_H
#define INKLOOP_JOBS_QUEUE_H

#include "db/db.h"

#include <stdint.h>
#include <uv.h>

/** The channel the jobs trigger notifies on; the payload is the job's kind. */
#define JOBS_CHANNEL "inkloop_jobs"

/* ---- what other modules use: the only writes to jobs outside this module ----
 *
 * Kinds: one definition each, passed to the statements and functions below as parameters. */
#define JOBS_KIND_GENERATE "generate_article"
#define JOBS_KIND_DELIVER "deliver_webhook"

/* Statements (sql/queries/jobs.sql, registered by jobs_prepare) that callers put in their own db_batch by
 * name, so a job commits (or not) with the rows it is about: */
/** $1 kind, $2 article ids (uuid[] text): one job of the kind per article, due now; an article with an active
 * job of that kind already keeps it (no-op). */
#define JOBS_STMT_ENQUEUE_MANY "jobs_enqueue_many"
/** $1 job id, $2 runner id (jobs_runner_id): a handler finishing its job inside its own transaction marks it
 * done (then calls jobs_forget). Returns the id when the job was still ours; no row means the lease was lost
 * and the handler's batch should be treated as failed (e.g. put this statement first, and make the batch fail
 * with a following statement that checks it; or check the row count). */
#define JOBS_STMT_MARK_DONE "jobs_mark_done"
/** $1 job id, $2 runner id, $3 error: the same, failed for good (no retry). */
#define JOBS_STMT_MARK_FAILED "jobs_mark_failed"

/* SQL functions (sql/0011_jobs_api.sql) that callers' own statements call, so a conditional or derived
 * enqueue stays one statement ("a delivery for each of these articles that is completed and has an
 * integration"): jobs_enqueue(kind, article_id, run_at [NULL: now], on_active ['keep'], payload [{}],
 * max_attempts [5]) returns the job's id, NULL when nothing was written. on_active says what an active job of
 * that kind for the article gets: 'keep' nothing, 'earlier' a queued one is pulled forward to run_at, 'move'
 * a queued one moves to run_at. A running job is never changed. jobs_cancel_active(article_id, kind, reason)
 * cancels the article's active job of that kind (its runner stops it at the next lease renewal); returns how
 * many (0 or 1). */

/** Registers the statements above and the runner's own (all of sql/queries/jobs.sql) with the pool, before
 * db_pool_start. A pool that runs a jobs runner, or batches with JOBS_STMT_*, needs them. Returns 0 or -1. */
int jobs_prepare(db_pool_t *pool);

/** jobs_fail's retry_delay_s: exponential backoff from the runner's retry_base_ms. */
#define JOBS_RETRY_BACKOFF (-1)
/** jobs_fail's retry_delay_s: fail now, whatever the attempts left (the error is permanent). */
#define JOBS_NO_RETRY (-2)

typedef struct st_jobs_runner_t jobs_runner_t;
typedef struct st_jobs_job_t jobs_job_t;

/** One claimed job, owned by the runner (it is the head of a larger private struct). Handlers read the fields
 * and may set data. */
struct st_jobs_job_t {
    int64_t id;
    const char *kind;
    const char *article_id; /* uuid text; NULL when the job has none */
    const char *payload;    /* JSON object text */
    int attempt;            /* this run's number, 1 for the first */
    int max_attempts;
    void *data; /* the handler's own, per job */
};

/** Starts work on a claimed job. It may finish the job (jobs_done...) before returning. */
typedef void (*jobs_start_cb)(jobs_job_t *job, void *data);
/** Stops a job's work now: when it returns, no operation of the job is in flight and the handler has let go
 * of the job (the runner frees it). */
typedef void (*jobs_cancel_cb)(jobs_job_t *job, void *data);
/** Asked at shutdown about a running job of a kind that has one (jobs_set_drain). deadline = 0, as stopping
 * begins: return 1 to keep the job and finish it yourself (jobs_done, ...) within drain_timeout_ms, or 0 to
 * have it stopped (cancel_cb) and handed back now. deadline = 1, when drain_timeout_ms passed with the job
 * still running: stop waiting and record the outcome now, returning 1 (the job is then finished within
 * stop_timeout_ms, or stopped with cancel_cb), or return 0 to have it stopped and handed back. It may finish
 * the job before returning. */
typedef int (*jobs_drain_cb)(jobs_job_t *job, int deadline, void *data);

typedef struct st_jobs_config_t {
    const char *conninfo;   /* for the LISTEN connection (the pool's database); NULL: poll only */
    const char *worker_id;  /* locked_by; NULL: "<hostname>:<pid>:<random>" */
    int concurrency;        /* jobs at once in this process (default 8) */
    int lease_ms;           /* how long a claim holds without renewal (default 60000) */
    int heartbeat_ms;       /* lease renewal period (default lease_ms / 3) */
    int poll_interval_ms;   /* safety-net claim period (default 5000) */
    int rescue_interval_ms; /* expired-lease sweep period (default 10000) */
    int purge_interval_ms;  /* period of the purge of jobs finished over a week ago (default 60000) */
    int retry_base_ms;      /* first JOBS_RETRY_BACKOFF delay, doubled per attempt (default 10000) */
    int retry_max_ms;       /* backoff cap (default 600000) */
    int query_timeout_ms;   /* deadline on the runner's own queries (default 30000) */
    int stop_timeout_ms;    /* how long stopping waits for the hand-back (default 10000) */
    int drain_timeout_ms;   /* how long stopping lets draining jobs finish (jobs_set_drain; default 0) */
} jobs_config_t;

typedef struct st_jobs_stats_t {
    int running;        /* jobs held now (running or being finished) */
    int listening;      /* 1 while the LISTEN connection is subscribed */
    uint64_t claimed;   /* jobs claimed since start */
    uint64_t done;      /* finished done / failed / cancelled (as recorded in the database) */
    uint64_t failed;    /* jobs_fail that ended the job failed */
    uint64_t retried;   /* jobs_fail that queued a retry */
    uint64_t cancelled; /* jobs_cancel */
    uint64_t lost;      /* jobs found no longer ours (lease expired and rescued) */
    uint64_t rescued;   /* expired jobs this runner's sweeps returned to the queue or failed */
    uint64_t purged;    /* finished jobs this runner's housekeeping deleted */
    uint64_t claims;    /* claim queries sent */
} jobs_stats_t;

/** Creates a runner using pool for its queries; nothing runs until jobs_runner_start. Strings are copied.
 * Returns NULL (logged) when the LISTEN connection's conninfo cannot be parsed. */
jobs_runner_t *jobs_runner_create(uv_loop_t *loop, db_pool_t *pool, const jobs_config_t *cfg);
/** Registers the handler of one kind, with its own concurrency limit (<= 0: the runner's). Only before
 * jobs_runner_start. Returns 0 or -1. */
int jobs_register(jobs_runner_t *runner, const char *kind, jobs_start_cb start, jobs_cancel_cb cancel,
                  int max_concurrency, void *data);
/** Lets the jobs of one registered kind finish at shutdown when drain says so (jobs_drain_cb), instead of
 * being stopped and handed back. Only before jobs_runner_start. Returns 0 or -1 (unknown kind). */
int jobs_set_drain(jobs_runner_t *runner, const char *kind, jobs_drain_cb drain);
/** Starts listening, claiming, renewing and rescuing. A runner without kinds still rescues. */
void jobs_runner_start(jobs_runner_t *runner);
/** Shuts down: stops claiming, calls cancel_cb of every running job (except those their kind's drain keeps,
 * which get up to drain_timeout_ms to finish), hands them back to the queue (queued, run now, attempts
 * restored), waits for finishing jobs' updates, closes every handle, then calls cb. The runner is freed after
 * cb returns. */
void jobs_runner_stop(jobs_runner_t *runner, void (*cb)(void *data), void *data);
/** This runner's locked_by. */
const char *jobs_runner_id(const jobs_runner_t *runner);
/** Fills stats. */
void jobs_runner_stats(const jobs_runner_t *runner, jobs_stats_t *stats);

/** The job succeeded: done. */
void jobs_done(jobs_job_t *job);
/** The job failed with err: queued again after retry_delay_s (JOBS_RETRY_BACKOFF: exponential backoff) while
 * attempts remain, else failed (JOBS_NO_RETRY: failed now). last_error = err. */
void jobs_fail(jobs_job_t *job, const char *err, int retry_delay_s);
/** The job was cancelled (its article was deleted or cancelled): cancelled, last_error = reason (may be
 * NULL).
 */
void jobs_cancel(jobs_job_t *job, const char *reason);
/** The handler already finished the row itself (JOBS_STMT_MARK_DONE or JOBS_STMT_MARK_FAILED in its own
 * transaction): the runner only lets go of the job. */
void jobs_forget(jobs_job_t *job);

#endif
