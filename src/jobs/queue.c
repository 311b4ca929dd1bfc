/* The job runner of one process.
 *
 * Two kinds of machine live here. The runner's own loop (RUNNER_STATES, driven by runner_advance) claims jobs
 * and, at shutdown, hands them back: one claim is in flight at a time, and wake-ups that arrive meanwhile
 * (NOTIFY, the poll tick, the next run_at, a freed slot) are remembered in `wake` and served by the next
 * claim. Each held job (JOB_STATES) is running in its handler, or waiting for its final UPDATE. Housekeeping
 * that runs beside the claim loop is timer driven, one query in flight each: the heartbeat renews the leases
 * of every held job in one UPDATE (and notices jobs that are no longer ours), the rescue sweep returns
 * expired jobs to the queue.
 *
 * Callbacks into handlers (start_cb, cancel_cb) run from timer, poll and query callbacks only. runner_advance
 * is reentrant-safe: a call from inside one of those callbacks (a handler finishing a job inside start_cb,
 * which frees a slot) only marks that another pass is due. Jobs are freed only after their handler let go of
 * them (a final UPDATE answered, or cancel_cb returned); the runner is freed in its last close callback. */
#include "jobs/queue.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "db/listen.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Liveness: each runner that claims jobs holds the session-level advisory lock (JOBS_LIVENESS_NS, its key) on
 * its LISTEN connection, and stamps the key on the jobs it claims (jobs.owner_key). PostgreSQL drops the lock
 * the moment that session ends (the process died, or its connection did), so the rescue sweep of any process
 * sees the jobs of a dead process within one sweep, without waiting for their leases. */
#define JOBS_LIVENESS_NS_TEXT "1768713329" /* "iklq": the lock's first key, the namespace of runner keys */
/* A restarted PostgreSQL has no session of anyone: for this long after its start only leases count, so every
 * live process reconnects its LISTEN connection and takes its lock again (the reconnect backoff is at most 5
 * s) before its jobs could look abandoned. */
#define LIVENESS_GRACE_S_TEXT "10"
/* Rows one rescue takes; a full batch sweeps again at once. */
#define RESCUE_BATCH 100
#define RESCUE_BATCH_TEXT "100"

static const char ACTION_CLAIM[] = "claiming jobs";
static const char ACTION_RENEW[] = "renewing leases";
static const char ACTION_RESCUE[] = "rescuing jobs with expired leases";
static const char ACTION_FINISH[] = "recording a job's outcome";
static const char ACTION_STOP[] = "handing jobs back to the queue";
static const char ACTION_DRAIN[] = "letting running jobs finish before stopping";

/* Claims due jobs of the kinds with room ($1 kinds, $2 room per kind), $3 in all, oldest run_at first. The
 * per-kind LATERAL keeps each kind within its own limit; SKIP LOCKED lets several claimers pass each other,
 * and the locked row's state is checked again after the lock (READ COMMITTED re-evaluates the WHERE clause),
 * so a job claimed by another process meanwhile is never claimed twice. */
static const char CLAIM_SQL[] =
    "WITH room AS (SELECT k.kind, k.n FROM unnest($1::text[], $2::int[]) AS k(kind, n)), "
    "picked AS (SELECT c.id FROM room CROSS JOIN LATERAL ("
    "SELECT j.id, j.run_at FROM jobs j WHERE j.state = 'queued' AND j.run_at <= now() AND j.kind = room.kind "
    "ORDER BY j.run_at, j.id LIMIT room.n FOR UPDATE SKIP LOCKED) c ORDER BY c.run_at, c.id LIMIT $3::int) "
    "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $4, locked_at = now(), "
    "lease_until = now() + $5::bigint * interval '1 millisecond', owner_key = $6::int "
    "WHERE id IN (SELECT id FROM picked) AND state = 'queued' "
    "RETURNING id, kind, article_id, payload::text AS payload, attempts, max_attempts";

/* In the claim's transaction: per kind, how long until its earliest queued job is due (NULL: none queued), so
 * a delayed job starts on time without waiting for the poll. One ordered index probe per kind. */
static const char NEXT_DUE_SQL[] =
    "SELECT k.kind, ceil(extract(epoch FROM (SELECT j.run_at FROM jobs j WHERE j.state = 'queued' "
    "AND j.kind = k.kind ORDER BY j.run_at LIMIT 1) - now()) * 1000)::bigint AS due_ms "
    "FROM unnest($1::text[]) AS k(kind)";

/* $4: our liveness key while our session holds it (jobs claimed while it did not get it now), NULL: kept. */
static const char HEARTBEAT_SQL[] =
    "UPDATE jobs SET lease_until = now() + $3::bigint * interval '1 millisecond', "
    "owner_key = coalesce($4::int, owner_key) "
    "WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND state = 'running' RETURNING id";

/* Jobs whose holder is gone: its database session no longer holds the liveness lock stamped on the row
 * (owner_key: the process died, or lost its session), or its lease expired (a hung process, or one that never
 * got its lock). pg_locks shows the locks of every session, whoever the user; only sessions of this database
 * count (not in the first LIVENESS_GRACE_S after the server started). SKIP LOCKED so sweeps of several
 * processes split the work, and a row being finished right now by its holder is left to it. */
static const char RESCUE_SQL[] =
    "WITH live AS (SELECT l.objid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.classid = " JOBS_LIVENESS_NS_TEXT "::oid AND l.objsubid = 2 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())), "
    "gone AS (SELECT id, locked_by, CASE WHEN lease_until < now() THEN 'lease expired' "
    "ELSE 'its process is gone' END AS why FROM jobs WHERE state = 'running' AND (lease_until < now() "
    "OR (owner_key IS NOT NULL AND owner_key::oid NOT IN (SELECT objid FROM live) "
    "AND now() - pg_postmaster_start_time() > interval '" LIVENESS_GRACE_S_TEXT " seconds')) "
    "ORDER BY lease_until LIMIT " RESCUE_BATCH_TEXT " FOR UPDATE SKIP LOCKED) "
    "UPDATE jobs j SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END, "
    "finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END, run_at = now(), "
    "locked_by = NULL, locked_at = NULL, lease_until = NULL, owner_key = NULL, last_error = g.why "
    "FROM gone g WHERE j.id = g.id RETURNING j.id, j.kind, j.state, g.locked_by AS held_by, g.why";

/* Shutdown: the jobs were claimed but their work stopped; the attempt does not count. */
static const char HANDBACK_SQL[] =
    "UPDATE jobs SET state = 'queued', locked_by = NULL, locked_at = NULL, lease_until = NULL, "
    "attempts = greatest(attempts - 1, 0), run_at = now() "
    "WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND state = 'running' RETURNING id";

static const char DONE_SQL[] =
    "UPDATE jobs SET state = 'done', finished_at = now(), lease_until = NULL, "
    "last_error = NULL "
    "WHERE id = $1::bigint AND locked_by = $2 AND state = 'running' RETURNING state";

/* $3 retry delay (ms), $4 no retry, $5 error. Every CASE reads the row as it was before this UPDATE. */
static const char FAIL_SQL[] =
    "UPDATE jobs SET "
    "state = CASE WHEN $4::boolean OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END, "
    "finished_at = CASE WHEN $4::boolean OR attempts >= max_attempts THEN now() END, "
    "run_at = CASE WHEN $4::boolean OR attempts >= max_attempts THEN run_at "
    "ELSE now() + $3::bigint * interval '1 millisecond' END, "
    "locked_by = CASE WHEN $4::boolean OR attempts >= max_attempts THEN locked_by END, "
    "locked_at = CASE WHEN $4::boolean OR attempts >= max_attempts THEN locked_at END, "
    "lease_until = NULL, last_error = $5 "
    "WHERE id = $1::bigint AND locked_by = $2 AND state = 'running' RETURNING state";

static const char CANCEL_SQL[] =
    "UPDATE jobs SET state = 'cancelled', finished_at = now(), lease_until = NULL, "
    "last_error = $3 "
    "WHERE id = $1::bigint AND locked_by = $2 AND state = 'running' RETURNING state";

/* A final UPDATE that could not run (database unreachable) is sent again on heartbeat ticks; after this many
 * sends the job is let go, and the rescue sweep settles its row once the lease expires. */
#define FINISH_MAX_TRIES 5
/* When a claim finds due jobs of a kind with room that it could not take (locked by another claimer right
 * now), or the claim itself failed, the next try comes this soon rather than at the poll tick. */
#define RETRY_SOON_MS 100
#define RETRY_AFTER_ERROR_MS 1000
/* At start, how long the first claim waits for the liveness lock before claiming without it. */
#define LIVENESS_WAIT_MS 2000

#define RUNNER_STATES(X)                                                                                     \
    X(RUNNER_NEW, "new")           /* created; jobs_runner_start moves on */                                 \
    X(RUNNER_IDLE, "idle")         /* waits for a wake-up (NOTIFY, poll tick, next run_at, freed slot) */    \
    X(RUNNER_CLAIMING, "claiming") /* the claim batch is in flight; deadline: query timeout */               \
    X(RUNNER_STOPPING, "stopping") /* passing: stops or drains running jobs, sends the hand-back */          \
    X(RUNNER_DRAINING, "draining") /* waits for jobs whose handlers finish them; deadline: drain */          \
    X(RUNNER_HANDING_BACK, "handing back") /* waits for the hand-back and final UPDATEs; deadline: stop */   \
    X(RUNNER_CLOSING, "closing")           /* waits for every handle to close; then stop's cb, then free */

typedef enum {
#define RUNNER_STATE_ENUM(id, name) id,
    RUNNER_STATES(RUNNER_STATE_ENUM)
#undef RUNNER_STATE_ENUM
} runner_state_t;

static const char *const runner_state_names[] = {
#define RUNNER_STATE_NAME(id, name) name,
    RUNNER_STATES(RUNNER_STATE_NAME)
#undef RUNNER_STATE_NAME
};

#define JOB_STATES(X)                                                                                        \
    X(JOB_CLAIMED, "claimed")     /* claimed, not started (a claim answered while stopping) */               \
    X(JOB_RUNNING, "running")     /* its handler works on it; its lease is renewed */                        \
    X(JOB_FINISHING, "finishing") /* its final UPDATE is in flight (the pool's deadlines bound it) */        \
    X(JOB_RETRY, "retry")         /* its final UPDATE did not run; sent again on the next heartbeat */       \
    X(JOB_HANDED, "handed back")  /* work stopped by shutdown; in the hand-back UPDATE */                    \
    X(JOB_FORGOTTEN, "forgotten") /* let go of (lost, or jobs_forget); freed by the next runner_advance */

typedef enum {
#define JOB_STATE_ENUM(id, name) id,
    JOB_STATES(JOB_STATE_ENUM)
#undef JOB_STATE_ENUM
} job_state_t;

typedef enum { FINISH_DONE, FINISH_FAIL, FINISH_CANCEL } finish_kind_t;

typedef struct st_jobs_handler_t {
    char *kind;
    jobs_start_cb start;
    jobs_cancel_cb cancel;
    jobs_drain_cb drain; /* NULL: cancelled at shutdown */
    int max;             /* concurrency limit of this kind */
    int held;            /* jobs of this kind held now */
    int64_t due_ms;
    void *data;
} handler_t;

/* A held job: the handler's view first, so a jobs_job_t pointer is a held_t pointer. */
typedef struct st_held_t {
    jobs_job_t job;
    jobs_runner_t *runner;
    handler_t *handler;
    struct st_held_t *prev, *next;
    job_state_t state;
    int started; /* start_cb ran, so cancel_cb is owed on shutdown or loss */
    char id_text[24];
    uint64_t lease_ends;  /* loop time (ms) by which our lease has surely ended unless renewed */
    uint64_t hb_seq;      /* the heartbeat that last carried this job */
    uint64_t renewed_seq; /* the last heartbeat that renewed its lease */
    db_query_t *q;        /* the final UPDATE in flight */
    finish_kind_t finish; /* what the final UPDATE says, kept for resending */
    char *finish_err;
    char delay_ms[24];
    int no_retry;
    int tries;
} held_t;

typedef struct st_held_list_t {
    held_t *head, *tail;
    int count;
} held_list_t;

struct st_jobs_runner_t {
    uv_loop_t *loop;
    db_pool_t *pool;
    jobs_config_t cfg;
    char *me;
    char *conninfo;
    char lease_text[24];
    char key_text[16];  /* our liveness key (JOBS_LIVENESS_NS_TEXT) */
    char *session_sql;  /* takes the liveness lock on every (re)connect of the LISTEN connection */
    int rescue_pending; /* a sweep is due as soon as the running one answers */
    handler_t *handlers;
    size_t nhandlers;
    runner_state_t state;
    int advancing, again; /* runner_advance reentrancy: a nested call only asks for another pass */
    int in_handler;       /* inside start_cb or cancel_cb: runner_advance waits until it returns */
    int wake;             /* claim when there is room */
    int stop_requested;
    int timer_fired; /* the state deadline */
    held_list_t held;
    held_list_t fresh; /* claimed by the last claim, not yet started */
    db_listen_t *listen;
    db_query_t *claim_q, *hb_q, *rescue_q, *handback_q;
    char *claim_err; /* the last claim's failure, read by advance */
    int claim_limit, claim_got;
    uint64_t claim_sent_at;
    int claim_failing; /* claims have been failing since this many tries: only the first one warns */
    int hb_failing;
    uint64_t hb_seq;
    uint64_t hb_sent_at;
    uv_timer_t state_timer;  /* deadline of CLAIMING and HANDING_BACK */
    uv_timer_t poll_timer;   /* the safety-net wake-up */
    uv_timer_t due_timer;    /* the next run_at, or a retry soon */
    uv_timer_t hb_timer;     /* lease renewal */
    uv_timer_t rescue_timer; /* expired-lease sweep */
    int handles;
    uint32_t rng;
    jobs_stats_t stats;
    void (*stop_cb)(void *data);
    void *stop_data;
};

static void runner_advance(jobs_runner_t *r);

static void check_uv(int rc, const char *what)
{
    if (rc != 0) {
        log_error("running the job queue", "%s: %s", what, uv_strerror(rc));
        abort();
    }
}

static uint32_t next_random(jobs_runner_t *r)
{
    /* xorshift32: backoff jitter needs spread, not secrecy. */
    uint32_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return r->rng = x;
}

static void set_state(jobs_runner_t *r, runner_state_t state)
{
    if (r->state != state)
        log_debug(ACTION_CLAIM, "runner %s: %s -> %s", r->me, runner_state_names[r->state],
                  runner_state_names[state]);
    r->state = state;
}

static void arm(uv_timer_t *t, uint64_t ms, uv_timer_cb cb, const char *what)
{
    check_uv(uv_timer_start(t, cb, ms, 0), what);
}

static void on_state_timer(uv_timer_t *t)
{
    jobs_runner_t *r = t->data;
    r->timer_fired = 1;
    runner_advance(r);
}

static void arm_deadline(jobs_runner_t *r, int ms)
{
    r->timer_fired = 0;
    arm(&r->state_timer, (uint64_t)ms, on_state_timer, "arming the runner's deadline");
}

static void stop_deadline(jobs_runner_t *r)
{
    r->timer_fired = 0;
    check_uv(uv_timer_stop(&r->state_timer), "stopping the runner's deadline");
}

/* ---- held jobs ---- */

static void list_push(held_list_t *l, held_t *h)
{
    h->prev = l->tail;
    h->next = NULL;
    if (l->tail != NULL)
        l->tail->next = h;
    else
        l->head = h;
    l->tail = h;
    l->count++;
}

static void list_remove(held_list_t *l, held_t *h)
{
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        l->head = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    else
        l->tail = h->prev;
    h->prev = h->next = NULL;
    l->count--;
}

static int free_slots(const jobs_runner_t *r)
{
    return r->cfg.concurrency - r->held.count - r->fresh.count;
}

/* Lets go of a job whose handler has let go of it: a slot is free again, so the claim loop is woken. */
static void release(held_t *h)
{
    jobs_runner_t *r = h->runner;
    list_remove(&r->held, h);
    h->handler->held--;
    if (h->q != NULL)
        db_query_cancel(h->q);
    free((char *)h->job.article_id);
    free((char *)h->job.payload);
    free(h->finish_err);
    free(h);
    r->wake = 1;
}

static void call_cancel(held_t *h)
{
    jobs_runner_t *r = h->runner;
    r->in_handler++;
    h->handler->cancel(&h->job, h->handler->data);
    r->in_handler--;
}

static void call_start(held_t *h)
{
    jobs_runner_t *r = h->runner;
    r->in_handler++;
    h->handler->start(&h->job, h->handler->data);
    r->in_handler--;
}

/* Frees the jobs let go of while lists were being walked (inside handler callbacks). */
static void reap(jobs_runner_t *r)
{
    held_t *h = r->held.head;
    while (h != NULL) {
        held_t *next = h->next;
        if (h->state == JOB_FORGOTTEN)
            release(h);
        h = next;
    }
}

/* The job is no longer ours (rescued and maybe claimed elsewhere, or our lease ran out unrenewed): its
 * handler stops, nothing is written. */
static void lose(held_t *h, const char *why)
{
    jobs_runner_t *r = h->runner;
    log_warn(ACTION_RENEW, "job %s (%s, attempt %d): %s; stopping its work here", h->id_text, h->job.kind,
             h->job.attempt, why);
    r->stats.lost++;
    int owed = h->state == JOB_RUNNING && h->started;
    h->state = JOB_FORGOTTEN;
    if (owed)
        call_cancel(h);
}

/* Our liveness key while the LISTEN session holds the lock, else NULL: jobs claimed then rely on their lease
 * until a renewal stamps the key. */
static const char *live_key(const jobs_runner_t *r)
{
    return r->listen != NULL && db_listen_ready(r->listen) ? r->key_text : NULL;
}

/* "{1,2,3}": the ids of the held jobs whose state is in the mask (bits 1 << state), as a bigint[] literal. */
static char *ids_literal(jobs_runner_t *r, unsigned mask, int *count)
{
    buf_t b = BUF_INIT;
    buf_putc(&b, '{');
    *count = 0;
    for (held_t *h = r->held.head; h != NULL; h = h->next) {
        if ((mask & (1u << h->state)) == 0)
            continue;
        buf_printf(&b, "%s%s", *count > 0 ? "," : "", h->id_text);
        (*count)++;
    }
    buf_putc(&b, '}');
    return buf_release(&b);
}

/* ---- final updates ---- */

static void send_finish(held_t *h);

static void on_finished(const db_result_t *results, size_t n, void *data)
{
    held_t *h = data;
    jobs_runner_t *r = h->runner;
    h->q = NULL;
    const db_result_t *res = &results[n - 1];
    if (res->err != NULL) {
        if (h->tries >= FINISH_MAX_TRIES || r->state >= RUNNER_HANDING_BACK) {
            log_error(ACTION_FINISH, "job %s (%s): %s; giving up, the lease expiry will settle it",
                      h->id_text, h->job.kind, res->err);
            release(h);
            runner_advance(r);
            return;
        }
        log_warn(ACTION_FINISH, "job %s (%s): %s; trying again", h->id_text, h->job.kind, res->err);
        h->state = JOB_RETRY;
        return;
    }
    if (PQntuples(res->res) == 0) {
        log_warn(ACTION_FINISH,
                 "job %s (%s, attempt %d) is no longer ours (its lease expired and it was "
                 "rescued): its outcome is dropped",
                 h->id_text, h->job.kind, h->job.attempt);
        r->stats.lost++;
    } else {
        const char *state = db_value(res->res, 0, "state");
        r->stats.done++;
        if (h->finish == FINISH_FAIL && state != NULL && strcmp(state, "queued") == 0) {
            r->stats.retried++;
            log_info(ACTION_FINISH, "job %s (%s, attempt %d of %d) failed: %s; retrying in %s ms", h->id_text,
                     h->job.kind, h->job.attempt, h->job.max_attempts, h->finish_err, h->delay_ms);
        } else if (h->finish == FINISH_FAIL) {
            r->stats.failed++;
            log_warn(ACTION_FINISH, "job %s (%s, attempt %d of %d) failed for good: %s", h->id_text,
                     h->job.kind, h->job.attempt, h->job.max_attempts, h->finish_err);
        } else if (h->finish == FINISH_CANCEL) {
            r->stats.cancelled++;
            log_info(ACTION_FINISH, "job %s (%s) cancelled%s%s", h->id_text, h->job.kind,
                     h->finish_err ? ": " : "", h->finish_err ? h->finish_err : "");
        } else {
            log_debug(ACTION_FINISH, "job %s (%s) done", h->id_text, h->job.kind);
        }
    }
    release(h);
    runner_advance(r);
}

static void send_finish(held_t *h)
{
    jobs_runner_t *r = h->runner;
    /* $1 id and $2 runner for all; then DONE: nothing, FAIL: delay, no-retry, error; CANCEL: reason. */
    const char *params[5] = {h->id_text, r->me};
    db_stmt_t stmt = {.params = params};
    switch (h->finish) {
    case FINISH_DONE:
        stmt.sql = DONE_SQL;
        stmt.nparams = 2;
        break;
    case FINISH_FAIL:
        stmt.sql = FAIL_SQL;
        stmt.nparams = 5;
        params[2] = h->delay_ms;
        params[3] = h->no_retry ? "true" : "false";
        params[4] = h->finish_err;
        break;
    case FINISH_CANCEL:
        stmt.sql = CANCEL_SQL;
        stmt.nparams = 3;
        params[2] = h->finish_err;
        break;
    }
    h->tries++;
    h->state = JOB_FINISHING;
    h->q = db_batch(r->pool, &stmt, 1, on_finished, h);
    if (h->q == NULL) {
        log_warn(ACTION_FINISH, "job %s (%s): the database pool refused the query; trying again", h->id_text,
                 h->job.kind);
        h->state = JOB_RETRY;
    }
}

static held_t *finishing(jobs_job_t *job, finish_kind_t finish, const char *err)
{
    held_t *h = (held_t *)job;
    if (h->state != JOB_RUNNING) {
        log_error(ACTION_FINISH, "job %s (%s) finished twice, or after cancel_cb (a handler bug)", h->id_text,
                  h->job.kind);
        abort();
    }
    h->finish = finish;
    h->finish_err = err != NULL ? xstrdup(err) : NULL;
    return h;
}

/* ---- claiming ---- */

static void on_claimed(const db_result_t *results, size_t n, void *data)
{
    jobs_runner_t *r = data;
    r->claim_q = NULL;
    if (results[n - 1].err != NULL) {
        r->claim_err = xstrdup(results[n - 1].err);
        runner_advance(r);
        return;
    }
    /* Only store what came back; runner_advance starts the jobs. */
    const PGresult *rows = results[0].res;
    r->claim_got = PQntuples(rows);
    for (int i = 0; i < r->claim_got; i++) {
        const char *kind = db_value(rows, i, "kind");
        handler_t *hd = NULL;
        for (size_t k = 0; k < r->nhandlers && hd == NULL; k++)
            if (strcmp(r->handlers[k].kind, kind) == 0)
                hd = &r->handlers[k];
        if (hd == NULL) { /* cannot happen: the claim names only our kinds */
            log_error(ACTION_CLAIM, "claimed a job of kind %s that has no handler", kind);
            abort();
        }
        int64_t id = db_int(rows, i, "id");
        /* Our own job claimed again: our liveness session dropped, a sweep (ours or another's) took the job
         * back, and this claim got it. The old run's outcome must not count for the new claim: it stops. */
        for (held_t *old = r->held.head; old != NULL; old = old->next) {
            if (old->job.id != id)
                continue;
            if (old->state == JOB_RUNNING)
                lose(old, "it was taken back while our database session was down, and claimed again here");
            else if (old->state == JOB_RETRY)
                old->state = JOB_FORGOTTEN;
        }
        held_t *h = xcalloc(1, sizeof(*h));
        h->runner = r;
        h->handler = hd;
        h->job.id = id;
        h->job.kind = hd->kind;
        h->job.article_id = xstrdup(db_value(rows, i, "article_id"));
        h->job.payload = xstrdup(db_value(rows, i, "payload"));
        h->job.attempt = (int)db_int(rows, i, "attempts");
        h->job.max_attempts = (int)db_int(rows, i, "max_attempts");
        snprintf(h->id_text, sizeof(h->id_text), "%" PRId64, h->job.id);
        h->lease_ends = r->claim_sent_at + (uint64_t)r->cfg.lease_ms;
        h->state = JOB_CLAIMED;
        hd->held++;
        list_push(&r->fresh, h);
    }
    for (size_t k = 0; k < r->nhandlers; k++)
        r->handlers[k].due_ms = INT64_MAX;
    const PGresult *due = results[1].res;
    for (int i = 0; i < PQntuples(due); i++) {
        const char *kind = db_value(due, i, "kind");
        if (db_value(due, i, "due_ms") == NULL)
            continue;
        for (size_t k = 0; k < r->nhandlers; k++)
            if (strcmp(r->handlers[k].kind, kind) == 0)
                r->handlers[k].due_ms = db_int(due, i, "due_ms");
    }
    runner_advance(r);
}

/* Sends one claim for the free slots, per kind within its limit. Returns 1 when sent, 0 when there is no
 * room, -1 when the pool refused it. */
static int send_claim(jobs_runner_t *r)
{
    int slots = free_slots(r);
    if (slots <= 0)
        return 0;
    buf_t kinds = BUF_INIT, rooms = BUF_INIT;
    int nk = 0;
    buf_putc(&kinds, '{');
    buf_putc(&rooms, '{');
    for (size_t k = 0; k < r->nhandlers; k++) {
        handler_t *hd = &r->handlers[k];
        int room = hd->max - hd->held;
        if (room <= 0)
            continue;
        /* kinds are [a-z0-9_] (jobs_register checks), so they need no quoting in an array literal */
        buf_printf(&kinds, "%s%s", nk > 0 ? "," : "", hd->kind);
        buf_printf(&rooms, "%s%d", nk > 0 ? "," : "", room < slots ? room : slots);
        nk++;
    }
    buf_putc(&kinds, '}');
    buf_putc(&rooms, '}');
    int rc = 0;
    if (nk > 0) {
        char limit[16];
        snprintf(limit, sizeof(limit), "%d", slots);
        const char *cp[] = {buf_cstr(&kinds), buf_cstr(&rooms), limit, r->me, r->lease_text, live_key(r)};
        const char *dp[] = {buf_cstr(&kinds)};
        db_stmt_t stmts[] = {{.sql = CLAIM_SQL, .nparams = 6, .params = cp},
                             {.sql = NEXT_DUE_SQL, .nparams = 1, .params = dp}};
        r->claim_limit = slots;
        r->claim_got = 0;
        r->claim_sent_at = uv_now(r->loop);
        r->claim_q = db_batch(r->pool, stmts, 2, on_claimed, r);
        r->stats.claims++;
        rc = r->claim_q != NULL ? 1 : -1;
    }
    buf_free(&kinds);
    buf_free(&rooms);
    return rc;
}

static void on_due(uv_timer_t *t)
{
    jobs_runner_t *r = t->data;
    r->wake = 1;
    runner_advance(r);
}

static void on_poll_tick(uv_timer_t *t)
{
    jobs_runner_t *r = t->data;
    r->wake = 1;
    runner_advance(r);
}

/* After a claim: when to look again without being woken. Kinds without room are woken by a freed slot. */
static void arm_due(jobs_runner_t *r)
{
    int64_t next = INT64_MAX;
    for (size_t k = 0; k < r->nhandlers; k++)
        if (r->handlers[k].held < r->handlers[k].max && r->handlers[k].due_ms < next)
            next = r->handlers[k].due_ms;
    if (next == INT64_MAX) {
        check_uv(uv_timer_stop(&r->due_timer), "stopping the next-run timer");
        return;
    }
    /* Due now but not claimed: another claimer holds those rows for an instant. */
    uint64_t ms = next <= 0 ? RETRY_SOON_MS : (uint64_t)next;
    if (ms > (uint64_t)r->cfg.poll_interval_ms)
        ms = (uint64_t)r->cfg.poll_interval_ms;
    arm(&r->due_timer, ms, on_due, "arming the next-run timer");
}

/* ---- housekeeping: heartbeat and rescue ---- */

static void on_renewed(const db_result_t *results, size_t n, void *data)
{
    jobs_runner_t *r = data;
    r->hb_q = NULL;
    const db_result_t *res = &results[n - 1];
    if (res->err != NULL) {
        if (r->hb_failing++ == 0)
            log_warn(ACTION_RENEW, "%s; jobs keep running until their leases run out", res->err);
        return;
    }
    if (r->hb_failing > 0)
        log_info(ACTION_RENEW, "leases renewed again after %d failed attempt(s)", r->hb_failing);
    r->hb_failing = 0;
    uint64_t seq = r->hb_seq, until = r->hb_sent_at + (uint64_t)r->cfg.lease_ms;
    int rows = PQntuples(res->res);
    for (int i = 0; i < rows; i++) {
        int64_t id = db_int(res->res, i, "id");
        for (held_t *h = r->held.head; h != NULL; h = h->next) {
            if (h->job.id == id && h->hb_seq == seq) {
                h->lease_ends = until;
                h->renewed_seq = seq;
            }
        }
    }
    /* A job carried by this heartbeat and not renewed is not ours any more, unless it was being finished (the
     * final UPDATE may have committed first). */
    for (held_t *h = r->held.head; h != NULL; h = h->next)
        if (h->hb_seq == seq && h->renewed_seq != seq && h->state == JOB_RUNNING)
            lose(h, "the database no longer has it leased to us");
    runner_advance(r);
}

static void on_heartbeat(uv_timer_t *t)
{
    jobs_runner_t *r = t->data;
    if (r->state >= RUNNER_STOPPING && r->state != RUNNER_DRAINING)
        return;
    uint64_t now = uv_now(r->loop);
    /* Jobs whose lease ran out without a renewal may be rescued and run elsewhere any moment: stop them here,
     * so a job never runs twice at once. Final UPDATEs that could not run are sent again, or given up. */
    for (held_t *h = r->held.head; h != NULL; h = h->next) {
        if (h->state == JOB_RUNNING && now >= h->lease_ends) {
            lose(h, "its lease ran out before it could be renewed");
        } else if (h->state == JOB_RETRY && now >= h->lease_ends) {
            log_error(ACTION_FINISH,
                      "job %s (%s): its outcome could not be recorded before its lease ran out; "
                      "the rescue sweep will settle it",
                      h->id_text, h->job.kind);
            h->state = JOB_FORGOTTEN;
        } else if (h->state == JOB_RETRY) {
            send_finish(h);
        }
    }
    int count;
    char *ids = ids_literal(r, 1u << JOB_RUNNING | 1u << JOB_FINISHING | 1u << JOB_RETRY, &count);
    if (r->hb_q == NULL && count > 0) {
        const char *params[] = {ids, r->me, r->lease_text, live_key(r)};
        r->hb_seq++;
        r->hb_sent_at = now;
        for (held_t *j = r->held.head; j != NULL; j = j->next)
            j->hb_seq = r->hb_seq;
        db_stmt_t stmt = {.sql = HEARTBEAT_SQL, .nparams = 4, .params = params};
        r->hb_q = db_batch(r->pool, &stmt, 1, on_renewed, r);
        if (r->hb_q == NULL)
            log_warn(ACTION_RENEW, "the database pool refused the query; trying on the next tick");
        else
            log_debug(ACTION_RENEW, "renewing %d lease(s)", count);
    }
    free(ids);
    runner_advance(r);
}

static void send_rescue(jobs_runner_t *r);

static void on_rescued(const db_result_t *results, size_t n, void *data)
{
    jobs_runner_t *r = data;
    r->rescue_q = NULL;
    const db_result_t *res = &results[n - 1];
    if (res->err != NULL) {
        log_debug(ACTION_RESCUE, "%s", res->err);
        return;
    }
    int rows = PQntuples(res->res), requeued = 0;
    /* One line per job at info (a takeover after kill -9 names every job, and the warning rate limit would
     * hide all but a few), one warning per sweep with the count. */
    for (int i = 0; i < rows; i++) {
        const char *state = db_value(res->res, i, "state");
        requeued += strcmp(state, "queued") == 0;
        log_info(ACTION_RESCUE, "job %s (%s) held by %s: %s; %s", db_value(res->res, i, "id"),
                 db_value(res->res, i, "kind"), db_value(res->res, i, "held_by"),
                 db_value(res->res, i, "why"),
                 strcmp(state, "queued") == 0 ? "queued again" : "failed (no attempts left)");
    }
    if (rows > 0)
        log_warn(
            ACTION_RESCUE,
            "took back %d job(s) whose process is gone or whose lease expired: %d queued again, %d failed",
            rows, requeued, rows - requeued);
    r->stats.rescued += (uint64_t)rows;
    /* A full batch: more may be waiting. */
    if (rows >= RESCUE_BATCH || r->rescue_pending) {
        r->rescue_pending = 0;
        send_rescue(r);
    }
    if (requeued > 0) {
        /* The trigger notifies too, but this runner need not wait for the round trip. */
        r->wake = 1;
        runner_advance(r);
    }
}

static void send_rescue(jobs_runner_t *r)
{
    if (r->state >= RUNNER_STOPPING)
        return;
    if (r->rescue_q != NULL) {
        r->rescue_pending = 1;
        return;
    }
    db_stmt_t stmt = {.sql = RESCUE_SQL};
    r->rescue_q = db_batch(r->pool, &stmt, 1, on_rescued, r);
}

static void on_rescue_tick(uv_timer_t *t)
{
    send_rescue(t->data);
}

/* ---- LISTEN ---- */

static void on_notify(const char *channel, const char *payload, void *data)
{
    jobs_runner_t *r = data;
    (void)channel;
    int ours = payload[0] == '\0';
    for (size_t k = 0; k < r->nhandlers && !ours; k++)
        ours = strcmp(r->handlers[k].kind, payload) == 0;
    if (!ours)
        return;
    r->wake = 1;
    runner_advance(r);
}

/* The LISTEN session is up and holds our liveness lock. After a reconnect, the jobs we hold may have been
 * taken back meanwhile (our lock was gone): a renewal now finds out which, stops them here, and stamps the
 * rest as ours again. A sweep now takes back what other dead processes left (at start: our predecessor's). */
static void on_listening(int reconnected, void *data)
{
    jobs_runner_t *r = data;
    if (reconnected)
        log_info(ACTION_CLAIM, "notifications may have been missed while the LISTEN connection was down: "
                               "looking for jobs now");
    if (r->state < RUNNER_STOPPING) {
        if (reconnected && r->held.count > 0)
            check_uv(uv_timer_start(&r->hb_timer, on_heartbeat, 0, (uint64_t)r->cfg.heartbeat_ms),
                     "renewing leases now");
        send_rescue(r);
    }
    r->wake = 1;
    runner_advance(r);
}

/* ---- stopping ---- */

static void on_handed_back(const db_result_t *results, size_t n, void *data)
{
    jobs_runner_t *r = data;
    r->handback_q = NULL;
    const db_result_t *res = &results[n - 1];
    int handed = 0;
    for (held_t *h = r->held.head; h != NULL; h = h->next)
        handed += h->state == JOB_HANDED;
    if (res->err != NULL)
        log_error(ACTION_STOP, "%s; the %d job(s) go back to the queue when their leases expire", res->err,
                  handed);
    else
        log_info(ACTION_STOP, "%d job(s) queued again for another process (%d were no longer ours)",
                 PQntuples(res->res), handed - PQntuples(res->res));
    held_t *h = r->held.head;
    while (h != NULL) {
        held_t *next = h->next;
        if (h->state == JOB_HANDED)
            release(h);
        h = next;
    }
    runner_advance(r);
}

static void handle_done(jobs_runner_t *r)
{
    if (--r->handles > 0)
        return;
    log_info(ACTION_STOP, "job runner %s stopped", r->me);
    void (*cb)(void *) = r->stop_cb;
    void *cb_data = r->stop_data;
    for (size_t k = 0; k < r->nhandlers; k++)
        free(r->handlers[k].kind);
    free(r->handlers);
    free(r->me);
    free(r->conninfo);
    free(r->session_sql);
    free(r->claim_err);
    free(r);
    if (cb != NULL)
        cb(cb_data);
}

static void on_handle_closed(uv_handle_t *handle)
{
    handle_done(handle->data);
}

static void on_listen_closed(void *data)
{
    jobs_runner_t *r = data;
    r->listen = NULL;
    handle_done(r);
}

static void close_handles(jobs_runner_t *r)
{
    uv_timer_t *timers[] = {&r->state_timer, &r->poll_timer, &r->due_timer, &r->hb_timer, &r->rescue_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        check_uv(uv_timer_stop(timers[i]), "stopping a timer");
        uv_close((uv_handle_t *)timers[i], on_handle_closed);
    }
    if (r->listen != NULL)
        db_listen_close(r->listen, on_listen_closed, r);
}

/* Asks a running job's handler whether it finishes the job itself (jobs_drain_cb); 0 when it has none. */
static int call_drain(held_t *h, int deadline)
{
    jobs_runner_t *r = h->runner;
    if (h->handler->drain == NULL || !h->started)
        return 0;
    r->in_handler++;
    int keep = h->handler->drain(&h->job, deadline, h->handler->data);
    r->in_handler--;
    return keep;
}

/* Sends the hand-back of the jobs in JOB_HANDED (their work stopped). */
static void send_handback(jobs_runner_t *r)
{
    int count;
    char *ids = ids_literal(r, 1u << JOB_HANDED, &count);
    if (count > 0 && r->handback_q != NULL) {
        /* Only after a drain deadline, with the first hand-back still unanswered after drain_timeout_ms. */
        log_error(ACTION_STOP, "a hand-back is still in flight; %d more job(s) are left to the rescue sweep",
                  count);
        count = 0;
    } else if (count > 0) {
        const char *params[] = {ids, r->me};
        db_stmt_t stmt = {.sql = HANDBACK_SQL, .nparams = 2, .params = params};
        r->handback_q = db_batch(r->pool, &stmt, 1, on_handed_back, r);
        if (r->handback_q == NULL) {
            log_error(ACTION_STOP,
                      "the database pool refused the query; the %d job(s) go back to the queue "
                      "when their leases expire",
                      count);
            count = 0;
        }
    }
    if (count == 0 && r->handback_q == NULL) {
        for (held_t *h = r->held.head; h != NULL;) {
            held_t *next = h->next;
            if (h->state == JOB_HANDED)
                release(h);
            h = next;
        }
    }
    free(ids);
}

/* Stops the running jobs' work, except those their handlers finish themselves (jobs_drain_cb), and sends
 * the hand-back; jobs being finished keep going. Returns how many jobs drain. */
static int begin_stop(jobs_runner_t *r)
{
    check_uv(uv_timer_stop(&r->poll_timer), "stopping the poll timer");
    check_uv(uv_timer_stop(&r->due_timer), "stopping the next-run timer");
    check_uv(uv_timer_stop(&r->rescue_timer), "stopping the rescue sweep");
    /* Their answers no longer matter: a renewal racing the hand-back finds the rows queued and changes
     * nothing, and a sweep only touches expired rows. */
    db_query_cancel(r->hb_q);
    db_query_cancel(r->rescue_q);
    r->hb_q = r->rescue_q = NULL;
    held_t *h;
    while ((h = r->fresh.head) != NULL) {
        list_remove(&r->fresh, h);
        list_push(&r->held, h);
    }
    int running = 0, draining = 0;
    for (h = r->held.head; h != NULL; h = h->next) {
        if (h->state == JOB_RUNNING && call_drain(h, 0)) {
            draining++; /* left running (or finished by the handler inside the call) */
        } else if (h->state == JOB_RUNNING || h->state == JOB_CLAIMED) {
            int owed = h->state == JOB_RUNNING && h->started;
            h->state = JOB_HANDED; /* before cancel_cb, so a handler finishing it there is caught */
            if (owed) {
                call_cancel(h);
                running++;
            }
        } else if (h->state == JOB_RETRY) {
            send_finish(h);
        }
    }
    /* Draining jobs keep their leases renewed while they finish. */
    if (draining == 0)
        check_uv(uv_timer_stop(&r->hb_timer), "stopping the heartbeat");
    int count;
    free(ids_literal(r, 1u << JOB_HANDED, &count));
    log_info(ACTION_STOP,
             "stopping job runner %s: %d running job(s) stopped, %d to hand back, %d finishing first (up to "
             "%d ms)",
             r->me, running, count, draining, r->cfg.drain_timeout_ms);
    send_handback(r);
    return draining;
}

/* The drain deadline passed: handlers wrap up the jobs they still run, or those are stopped and handed back.
 */
static void end_drain(jobs_runner_t *r)
{
    int waiting = 0, stopped = 0;
    for (held_t *h = r->held.head; h != NULL; h = h->next) {
        if (h->state != JOB_RUNNING)
            continue;
        if (call_drain(h, 1)) {
            waiting++;
        } else if (h->state == JOB_RUNNING) {
            h->state = JOB_HANDED;
            call_cancel(h);
            stopped++;
        }
    }
    if (waiting + stopped > 0)
        log_warn(ACTION_DRAIN, "%d job(s) still running after %d ms: %d wrapping up, %d stopped",
                 waiting + stopped, r->cfg.drain_timeout_ms, waiting, stopped);
    send_handback(r);
}

/* ---- the runner's machine ---- */

static void runner_step(jobs_runner_t *r)
{
    for (;;) {
        switch (r->state) {
        case RUNNER_NEW:
            if (r->stop_requested) {
                set_state(r, RUNNER_STOPPING);
                continue;
            }
            return;
        case RUNNER_IDLE: {
            if (r->stop_requested) {
                set_state(r, RUNNER_STOPPING);
                continue;
            }
            if (!r->wake || r->nhandlers == 0)
                return;
            r->wake = 0;
            int rc = send_claim(r);
            if (rc == 0)
                return; /* no room: a freed slot wakes us */
            if (rc < 0) {
                if (r->claim_failing++ == 0)
                    log_warn(ACTION_CLAIM, "the database pool refused the query; trying again shortly");
                arm(&r->due_timer, RETRY_AFTER_ERROR_MS, on_due, "arming the retry timer");
                return;
            }
            set_state(r, RUNNER_CLAIMING);
            arm_deadline(r, r->cfg.query_timeout_ms);
            return;
        }
        case RUNNER_CLAIMING: {
            if (r->claim_q != NULL) {
                if (!r->timer_fired)
                    return;
                /* The pool's own deadlines should have answered first; the claim may still commit, and its
                 * rows then go back to the queue when their leases expire. */
                db_query_cancel(r->claim_q);
                r->claim_q = NULL;
                r->claim_err = xstrdup("no answer within the query timeout");
            }
            stop_deadline(r);
            if (r->claim_err != NULL) {
                if (r->claim_failing++ == 0)
                    log_warn(ACTION_CLAIM, "%s; trying again shortly", r->claim_err);
                else
                    log_debug(ACTION_CLAIM, "%s (failure %d)", r->claim_err, r->claim_failing);
                free(r->claim_err);
                r->claim_err = NULL;
                arm(&r->due_timer, RETRY_AFTER_ERROR_MS, on_due, "arming the retry timer");
                set_state(r, RUNNER_IDLE);
                continue;
            }
            if (r->claim_failing > 0)
                log_info(ACTION_CLAIM, "claiming works again after %d failure(s)", r->claim_failing);
            r->claim_failing = 0;
            if (r->claim_got > 0)
                log_debug(ACTION_CLAIM, "claimed %d job(s)", r->claim_got);
            r->stats.claimed += (uint64_t)r->claim_got;
            /* Move every claimed job to held before any handler runs, so slots and heartbeats see them all.
             */
            held_t *h;
            while ((h = r->fresh.head) != NULL) {
                list_remove(&r->fresh, h);
                list_push(&r->held, h);
            }
            if (r->claim_got >= r->claim_limit)
                r->wake = 1; /* maybe more are due */
            else
                arm_due(r);
            set_state(r, RUNNER_IDLE);
            /* Start the claimed jobs. A handler may finish its job inside start_cb (a nested advance only
             * marks another pass), or stop the runner: jobs not started by then are handed back. */
            for (h = r->held.head; h != NULL && !r->stop_requested; h = h->next) {
                if (h->state != JOB_CLAIMED)
                    continue;
                h->state = JOB_RUNNING;
                h->started = 1;
                log_debug(ACTION_CLAIM, "starting job %s (%s, attempt %d of %d)", h->id_text, h->job.kind,
                          h->job.attempt, h->job.max_attempts);
                call_start(h); /* frees nothing: jobs let go of meanwhile are reaped by the next pass */
            }
            continue;
        }
        case RUNNER_STOPPING:
            if (begin_stop(r) > 0) {
                set_state(r, RUNNER_DRAINING);
                arm_deadline(r, r->cfg.drain_timeout_ms);
                continue;
            }
            set_state(r, RUNNER_HANDING_BACK);
            arm_deadline(r, r->cfg.stop_timeout_ms);
            continue;
        case RUNNER_DRAINING: {
            int running = 0;
            for (held_t *h = r->held.head; h != NULL; h = h->next)
                running += h->state == JOB_RUNNING;
            if (running > 0 && !r->timer_fired)
                return;
            if (running > 0)
                end_drain(r);
            else
                log_info(ACTION_DRAIN, "the jobs that were finishing are done");
            check_uv(uv_timer_stop(&r->hb_timer), "stopping the heartbeat");
            db_query_cancel(r->hb_q);
            r->hb_q = NULL;
            for (held_t *h = r->held.head; h != NULL; h = h->next)
                if (h->state == JOB_RETRY)
                    send_finish(h);
            set_state(r, RUNNER_HANDING_BACK);
            arm_deadline(r, r->cfg.stop_timeout_ms);
            continue;
        }
        case RUNNER_HANDING_BACK: {
            /* Jobs still running wrap up after the drain deadline: their handlers' last writes are under way.
             */
            int waiting = r->handback_q != NULL;
            for (held_t *h = r->held.head; h != NULL; h = h->next)
                waiting += h->state == JOB_FINISHING || h->state == JOB_RUNNING;
            if (waiting > 0 && !r->timer_fired)
                return;
            if (waiting > 0) {
                log_error(ACTION_STOP,
                          "%d quer%s unanswered after %d ms; leaving those jobs to the rescue sweep", waiting,
                          waiting == 1 ? "y" : "ies", r->cfg.stop_timeout_ms);
                db_query_cancel(r->handback_q);
                r->handback_q = NULL;
            }
            for (held_t *h = r->held.head; h != NULL; h = h->next) {
                if (h->state == JOB_RUNNING) {
                    h->state = JOB_FORGOTTEN;
                    call_cancel(h);
                }
            }
            while (r->held.head != NULL)
                release(r->held.head);
            stop_deadline(r);
            set_state(r, RUNNER_CLOSING);
            close_handles(r);
            return;
        }
        case RUNNER_CLOSING:
            return;
        }
    }
}

/* Runs the machine unless it is already running further up the stack, or a handler callback is: then the
 * caller up there runs it again when it returns, so no list is changed under a loop walking it. */
static void runner_advance(jobs_runner_t *r)
{
    if (r->advancing || r->in_handler > 0) {
        r->again = 1;
        return;
    }
    r->advancing = 1;
    do {
        r->again = 0;
        if (r->state != RUNNER_CLOSING)
            reap(r);
        runner_step(r);
    } while (r->again && r->state != RUNNER_CLOSING);
    r->advancing = 0;
}

/* ---- the interface ---- */

jobs_runner_t *jobs_runner_create(uv_loop_t *loop, db_pool_t *pool, const jobs_config_t *cfg)
{
    jobs_runner_t *r = xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->pool = pool;
    r->cfg = *cfg;
    jobs_config_t *c = &r->cfg;
    if (c->concurrency <= 0)
        c->concurrency = 8;
    if (c->lease_ms <= 0)
        c->lease_ms = 60000;
    if (c->heartbeat_ms <= 0)
        c->heartbeat_ms = c->lease_ms / 3 > 0 ? c->lease_ms / 3 : 1;
    if (c->poll_interval_ms <= 0)
        c->poll_interval_ms = 5000;
    if (c->rescue_interval_ms <= 0)
        c->rescue_interval_ms = 10000;
    if (c->retry_base_ms <= 0)
        c->retry_base_ms = 10000;
    if (c->retry_max_ms <= 0)
        c->retry_max_ms = 600000;
    if (c->query_timeout_ms <= 0)
        c->query_timeout_ms = 30000;
    if (c->stop_timeout_ms <= 0)
        c->stop_timeout_ms = 10000;
    if (c->drain_timeout_ms < 0)
        c->drain_timeout_ms = 0;
    r->rng = (uint32_t)uv_hrtime() ^ ((uint32_t)getpid() << 16) ^ 0x27d4eb2fu;
    if (r->rng == 0)
        r->rng = 1;
    if (cfg->worker_id != NULL) {
        r->me = xstrdup(cfg->worker_id);
    } else {
        /* hostname:pid:random: the pid alone repeats across containers and restarts, and a restarted process
         * must not finish rows its predecessor held. */
        char host[256];
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "unknown");
        host[sizeof(host) - 1] = '\0';
        uint32_t rnd = 0;
        if (uv_random(NULL, NULL, &rnd, sizeof(rnd), 0, NULL) != 0)
            rnd = next_random(r);
        r->me = xasprintf("%s:%d:%08x", host, (int)getpid(), rnd);
    }
    c->worker_id = r->me;
    snprintf(r->lease_text, sizeof(r->lease_text), "%d", c->lease_ms);
    /* The liveness key: random, 1..2^31-1 (a positive int4, so the lock's objid is the same number). Two live
     * runners drawing the same key would wait on each other's lock at connect, never share it. */
    uint32_t key = 0;
    if (uv_random(NULL, NULL, &key, sizeof(key), 0, NULL) != 0)
        key = next_random(r);
    key &= 0x7fffffffu;
    if (key == 0)
        key = 1;
    snprintf(r->key_text, sizeof(r->key_text), "%u", (unsigned)key);
    /* Blocks only while a previous session of ours still holds the lock (the server has not yet noticed it
     * died); the subscription's deadline bounds the wait and the listener connects again. */
    r->session_sql = xasprintf("SELECT pg_advisory_lock(" JOBS_LIVENESS_NS_TEXT ", %s)", r->key_text);
    if (cfg->conninfo != NULL) {
        r->conninfo = xstrdup(cfg->conninfo);
        c->conninfo = r->conninfo;
        db_listen_config_t lc = {.conninfo = r->conninfo, .session_sql = r->session_sql};
        r->listen = db_listen_create(loop, &lc, on_notify, on_listening, r);
        if (r->listen == NULL || db_listen_add(r->listen, JOBS_CHANNEL) != 0) {
            if (r->listen != NULL)
                db_listen_close(r->listen, NULL, NULL);
            free(r->conninfo);
            free(r->session_sql);
            free(r->me);
            free(r);
            return NULL;
        }
    }
    uv_timer_t *timers[] = {&r->state_timer, &r->poll_timer, &r->due_timer, &r->hb_timer, &r->rescue_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        check_uv(uv_timer_init(loop, timers[i]), "creating a timer");
        timers[i]->data = r;
    }
    r->handles = 5 + (r->listen != NULL);
    r->state = RUNNER_NEW;
    return r;
}

int jobs_register(jobs_runner_t *r, const char *kind, jobs_start_cb start, jobs_cancel_cb cancel,
                  int max_concurrency, void *data)
{
    if (r->state != RUNNER_NEW || kind == NULL || kind[0] == '\0' || start == NULL || cancel == NULL)
        return -1;
    for (const char *p = kind; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return -1;
    for (size_t k = 0; k < r->nhandlers; k++)
        if (strcmp(r->handlers[k].kind, kind) == 0)
            return -1;
    r->handlers = xrealloc(r->handlers, (r->nhandlers + 1) * sizeof(*r->handlers));
    r->handlers[r->nhandlers++] = (handler_t){
        .kind = xstrdup(kind),
        .start = start,
        .cancel = cancel,
        .max = max_concurrency > 0 && max_concurrency < r->cfg.concurrency ? max_concurrency
                                                                           : r->cfg.concurrency,
        .due_ms = INT64_MAX,
        .data = data,
    };
    return 0;
}

int jobs_set_drain(jobs_runner_t *r, const char *kind, jobs_drain_cb drain)
{
    if (r->state != RUNNER_NEW || kind == NULL)
        return -1;
    for (size_t k = 0; k < r->nhandlers; k++) {
        if (strcmp(r->handlers[k].kind, kind) == 0) {
            r->handlers[k].drain = drain;
            return 0;
        }
    }
    return -1;
}

void jobs_runner_start(jobs_runner_t *r)
{
    if (r->state != RUNNER_NEW || r->stop_requested)
        return;
    log_info(ACTION_CLAIM, "job runner %s: %zu kind(s), %d at once, lease %d ms, poll every %d ms", r->me,
             r->nhandlers, r->cfg.concurrency, r->cfg.lease_ms, r->cfg.poll_interval_ms);
    /* Without kinds there is nothing to be woken for: the runner only sweeps. */
    if (r->listen != NULL && r->nhandlers > 0)
        db_listen_start(r->listen);
    check_uv(uv_timer_start(&r->poll_timer, on_poll_tick, (uint64_t)r->cfg.poll_interval_ms,
                            (uint64_t)r->cfg.poll_interval_ms),
             "starting the poll timer");
    check_uv(uv_timer_start(&r->hb_timer, on_heartbeat, (uint64_t)r->cfg.heartbeat_ms,
                            (uint64_t)r->cfg.heartbeat_ms),
             "starting the heartbeat");
    /* The first sweep soon after start: jobs of a process that died just before this one started (the usual
     * case after a crash and restart) should not wait a whole interval. A little jitter keeps processes
     * started together from sweeping in step. */
    uint64_t first = (uint64_t)r->cfg.rescue_interval_ms / 4 + next_random(r) % 100;
    check_uv(uv_timer_start(&r->rescue_timer, on_rescue_tick, first, (uint64_t)r->cfg.rescue_interval_ms),
             "starting the rescue sweep");
    set_state(r, RUNNER_IDLE);
    if (r->listen != NULL && r->nhandlers > 0) {
        /* The first claim waits for the LISTEN session and its liveness lock (on_listening), so the jobs it
         * takes are stamped as ours from the start; a listener that cannot connect delays it only a little.
         */
        arm(&r->due_timer, LIVENESS_WAIT_MS, on_due, "arming the first claim");
        return;
    }
    r->wake = 1;
    runner_advance(r);
}

void jobs_runner_stop(jobs_runner_t *r, void (*cb)(void *data), void *data)
{
    if (r->stop_requested)
        return;
    r->stop_requested = 1;
    r->stop_cb = cb;
    r->stop_data = data;
    runner_advance(r);
}

const char *jobs_runner_id(const jobs_runner_t *r)
{
    return r->me;
}

void jobs_runner_stats(const jobs_runner_t *r, jobs_stats_t *stats)
{
    *stats = r->stats;
    stats->running = r->held.count + r->fresh.count;
    stats->listening = r->listen != NULL && db_listen_ready(r->listen);
}

void jobs_done(jobs_job_t *job)
{
    send_finish(finishing(job, FINISH_DONE, NULL));
}

void jobs_fail(jobs_job_t *job, const char *err, int retry_delay_s)
{
    held_t *h = finishing(job, FINISH_FAIL, err != NULL ? err : "failed");
    jobs_runner_t *r = h->runner;
    int64_t delay;
    if (retry_delay_s >= 0) {
        delay = (int64_t)retry_delay_s * 1000;
    } else {
        /* base doubled per attempt, capped, then "equal jitter": half fixed, half random, so jobs that failed
         * together (a provider outage) do not come back together. */
        delay = r->cfg.retry_base_ms;
        for (int i = 1; i < job->attempt && delay < r->cfg.retry_max_ms; i++)
            delay *= 2;
        if (delay > r->cfg.retry_max_ms)
            delay = r->cfg.retry_max_ms;
        delay = delay / 2 + (int64_t)(next_random(r) % (uint32_t)(delay / 2 + 1));
    }
    h->no_retry = retry_delay_s == JOBS_NO_RETRY;
    snprintf(h->delay_ms, sizeof(h->delay_ms), "%" PRId64, delay);
    send_finish(h);
}

void jobs_cancel(jobs_job_t *job, const char *reason)
{
    send_finish(finishing(job, FINISH_CANCEL, reason));
}

void jobs_forget(jobs_job_t *job)
{
    held_t *h = finishing(job, FINISH_DONE, NULL);
    h->runner->stats.done++;
    h->state = JOB_FORGOTTEN;
    runner_advance(h->runner);
}
