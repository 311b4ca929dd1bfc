/* The job queue and runner against a real PostgreSQL (INKLOOP_TEST_DATABASE_URL).
 *
 * A fresh database gets the real schema (db_migrate). Each section enqueues jobs with a plain libpq
 * connection, runs runners on the loop with short leases and intervals, and checks what ran (in memory) and
 * what the rows say. Two sections run runners in child processes (this binary again, with --child) to prove
 * that SKIP LOCKED and leases hold across processes, one of them killed with SIGKILL. The last check is
 * uv_loop_close() == 0: every handle of every runner, pool and LISTEN connection was closed. */
#include "core/alloc.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/db.h"
#include "db/listen.h"
#include "db/migrate.h"
#include "jobs/queue.h"
#include "pgtest.h"
#include "tap.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uv_loop_t loop;
static const char *base_url;
static char *test_conninfo; /* the scratch database */
static char dbname[64];
static PGconn *tdb; /* plain connection to the scratch database */
static char user_id[64];

/* ---- loop helpers ---- */

static int timed_out;

static void on_run_timeout(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

/* Runs the loop until *v >= want or timeout_ms pass; returns whether it got there. */
static int run_until_at_least(const int *v, int want, int timeout_ms)
{
    uv_timer_t t;
    timed_out = 0;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_run_timeout, (uint64_t)timeout_ms, 0);
    while (*v < want && !timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *v >= want;
}

static void run_for(int ms)
{
    int never = 0;
    run_until_at_least(&never, 1, ms);
}

/* ---- database helpers ---- */

static long count(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long count(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(tdb, sql);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)
                 ? atol(PQgetvalue(r, 0, 0))
                 : -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        printf("# %s: %s", sql, PQerrorMessage(tdb));
    PQclear(r);
    return n;
}

static void reset_tables(void)
{
    pgtest_exec(tdb, "DELETE FROM jobs");
    pgtest_exec(tdb, "DELETE FROM articles");
}

/* n articles, each with one job of kind, due at run_at (SQL expression). */
static void enqueue(int n, const char *kind, const char *run_at, int max_attempts)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "WITH a AS (INSERT INTO articles (user_id, topic, raw_query) SELECT '%s', 't', 'q' "
             "FROM generate_series(1, %d) RETURNING id) "
             "INSERT INTO jobs (kind, article_id, run_at, max_attempts) SELECT '%s', id, %s, %d FROM a",
             user_id, n, kind, run_at, max_attempts);
    pgtest_exec(tdb, sql);
}

static db_pool_t *make_pool(int size)
{
    db_pool_config_t cfg = {.conninfo = test_conninfo,
                            .size = size,
                            .max_waiting = 1000,
                            .statement_timeout_ms = 5000,
                            .wait_timeout_ms = 5000,
                            .backoff_min_ms = 20,
                            .backoff_max_ms = 200};
    db_pool_t *pool = db_pool_create(&loop, &cfg);
    if (pool == NULL) {
        printf("Bail out! db_pool_create failed\n");
        exit(1);
    }
    if (jobs_prepare(pool) != 0) {
        printf("Bail out! jobs_prepare failed\n");
        exit(1);
    }
    db_pool_start(pool);
    return pool;
}

static void on_flag(void *data)
{
    (*(int *)data)++;
}

static void close_pool(db_pool_t *pool, const char *what)
{
    int closed = 0;
    db_pool_close(pool, on_flag, &closed);
    TAP_OK(run_until_at_least(&closed, 1, 10000), "%s: pool closed", what);
}

static void stop_runner(jobs_runner_t *r, const char *what)
{
    int stopped = 0;
    jobs_runner_stop(r, on_flag, &stopped);
    TAP_OK(run_until_at_least(&stopped, 1, 10000), "%s: runner stopped", what);
}

/* ---- test handlers ---- */

enum { MAXID = 20000 };
typedef enum { W_DONE, W_FAIL_BACKOFF, W_FAIL_NOW, W_CANCEL } work_mode_t;

typedef struct {
    int work_ms;    /* how long each job takes; 0 with sync: finished inside start_cb */
    int sync_every; /* ids divisible by this finish inside start_cb (0: none) */
    work_mode_t mode;
    int running, max_running, started, finished, cancels;
    FILE *report; /* child processes: one line per start */
} tracker_t;

static int starts[MAXID];
static uint64_t start_at[MAXID][4];
static int max_starts_seen;

typedef struct {
    uv_timer_t timer;
    jobs_job_t *job;
    tracker_t *t;
} work_t;

static void on_work_closed(uv_handle_t *h)
{
    free(h->data);
}

static void finish(jobs_job_t *job, tracker_t *t)
{
    t->finished++;
    switch (t->mode) {
    case W_DONE:
        jobs_done(job);
        break;
    case W_FAIL_BACKOFF: {
        char err[64];
        snprintf(err, sizeof(err), "boom (attempt %d)", job->attempt);
        jobs_fail(job, err, JOBS_RETRY_BACKOFF);
        break;
    }
    case W_FAIL_NOW:
        jobs_fail(job, "permanent", JOBS_NO_RETRY);
        break;
    case W_CANCEL:
        jobs_cancel(job, "article deleted");
        break;
    }
}

static void on_work(uv_timer_t *timer)
{
    work_t *w = timer->data;
    w->t->running--;
    finish(w->job, w->t);
    uv_close((uv_handle_t *)&w->timer, on_work_closed);
}

static void on_start(jobs_job_t *job, void *data)
{
    tracker_t *t = data;
    t->started++;
    if (job->id >= 0 && job->id < MAXID) {
        int k = starts[job->id]++;
        if (k < 4)
            start_at[job->id][k] = uv_now(&loop);
        if (starts[job->id] > max_starts_seen)
            max_starts_seen = starts[job->id];
    }
    if (t->report != NULL) {
        fprintf(t->report, "ran %lld\n", (long long)job->id);
        fflush(t->report);
    }
    if (t->sync_every > 0 && job->id % t->sync_every == 0) {
        finish(job, t);
        return;
    }
    t->running++;
    if (t->running > t->max_running)
        t->max_running = t->running;
    work_t *w = xcalloc(1, sizeof(*w));
    w->job = job;
    w->t = t;
    uv_timer_init(&loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_work, (uint64_t)t->work_ms, 0);
    job->data = w;
}

static void on_cancel(jobs_job_t *job, void *data)
{
    tracker_t *t = data;
    work_t *w = job->data;
    t->cancels++;
    t->running--;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_work_closed);
}

static void reset_starts(void)
{
    memset(starts, 0, sizeof(starts));
    memset(start_at, 0, sizeof(start_at));
    max_starts_seen = 0;
}

static jobs_runner_t *make_runner(db_pool_t *pool, const jobs_config_t *cfg, tracker_t *t, int listen)
{
    jobs_config_t c = *cfg;
    c.conninfo = listen ? test_conninfo : NULL;
    jobs_runner_t *r = jobs_runner_create(&loop, pool, &c);
    if (r == NULL) {
        printf("Bail out! jobs_runner_create failed\n");
        exit(1);
    }
    if (t != NULL && jobs_register(r, JOBS_KIND_GENERATE, on_start, on_cancel, 0, t) != 0) {
        printf("Bail out! jobs_register failed\n");
        exit(1);
    }
    return r;
}

static int listening(jobs_runner_t *r)
{
    jobs_stats_t st;
    jobs_runner_stats(r, &st);
    return st.listening;
}

static void wait_listening(jobs_runner_t *r)
{
    for (int i = 0; i < 500 && !listening(r); i++)
        run_for(10);
}

/* ---- sections ---- */

typedef struct {
    int done;
    char err[256];
    int rows;
} batch_out_t;

static void on_batch(const db_result_t *results, size_t n, void *data)
{
    batch_out_t *o = data;
    o->done++;
    snprintf(o->err, sizeof(o->err), "%s", results[n - 1].err ? results[n - 1].err : "");
    o->rows = results[n - 1].res != NULL ? PQntuples(results[n - 1].res) : -1;
}

/* JOBS_STMT_ENQUEUE_MANY inside a caller's own batch: it commits with the article, or not at all, and a
 * second enqueue for the same article and kind does nothing while the first is active. */
static void test_enqueue(void)
{
    reset_tables();
    db_pool_t *pool = make_pool(1);
    const char *aid = "6f1c1c4e-0000-4000-8000-000000000001";
    const char *ap[] = {aid, user_id};
    const char *jp[] = {JOBS_KIND_GENERATE, "{6f1c1c4e-0000-4000-8000-000000000001}"};
    db_stmt_t stmts[] = {
        {.sql = "INSERT INTO articles (id, user_id, topic, raw_query) VALUES ($1, $2, 't', 'q')",
         .nparams = 2,
         .params = ap},
        {.name = JOBS_STMT_ENQUEUE_MANY, .nparams = 2, .params = jp}};
    batch_out_t o = {0};
    db_batch(pool, stmts, 2, on_batch, &o);
    TAP_OK(run_until_at_least(&o.done, 1, 5000) && o.err[0] == '\0',
           "enqueue: article and job in one batch (%s)", o.err);
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE article_id = '%s' AND kind = '%s' AND state = 'queued' "
                     "AND run_at <= now() AND payload = '{}' AND max_attempts = 5",
                     aid, JOBS_KIND_GENERATE),
               1, "enqueue: queued, due now, with an empty payload and the default max_attempts");

    batch_out_t again = {0};
    db_batch(pool, &stmts[1], 1, on_batch, &again);
    TAP_OK(run_until_at_least(&again.done, 1, 5000) && again.err[0] == '\0', "enqueue: a duplicate runs");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE article_id = '%s'", aid), 1,
               "enqueue: a duplicate active job inserts nothing");

    /* The article insert fails (duplicate id): the job goes with it. */
    pgtest_exec(tdb, "DELETE FROM jobs");
    batch_out_t failed = {0};
    db_batch(pool, stmts, 2, on_batch, &failed);
    TAP_OK(run_until_at_least(&failed.done, 1, 5000) && failed.err[0] != '\0', "enqueue: the batch fails");
    TAP_IS_INT(count("SELECT count(*) FROM jobs"), 0, "enqueue: no job without its article");

    /* jobs_enqueue() inside a caller's statement: conditional on the caller's rows, with a payload. */
    const char *fp[] = {JOBS_KIND_DELIVER, aid};
    db_stmt_t f = {
        .sql = "SELECT jobs_enqueue($1, a.id, now() + interval '1 hour', 'keep', "
               "'{\"stage\": \"research\"}', 3) AS job FROM articles a WHERE a.id = $2 AND a.topic = 't'",
        .nparams = 2,
        .params = fp};
    batch_out_t fo = {0};
    db_batch(pool, &f, 1, on_batch, &fo);
    TAP_OK(run_until_at_least(&fo.done, 1, 5000) && fo.err[0] == '\0',
           "enqueue: jobs_enqueue in a SELECT (%s)", fo.err);
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE kind = '%s' AND payload->>'stage' = 'research' AND "
                     "max_attempts = 3 AND run_at > now() + interval '50 minutes'",
                     JOBS_KIND_DELIVER),
               1, "enqueue: the job has the payload, max_attempts and run_at given");
    close_pool(pool, "enqueue");
}

/* The SQL functions of sql/0011_jobs_api.sql, one by one (plain libpq: what a caller's statement sees). */
static void test_enqueue_functions(void)
{
    reset_tables();
    enqueue(1, JOBS_KIND_DELIVER, "'2999-01-01'", 5);
    char aid[64];
    PGresult *r = PQexec(tdb, "SELECT article_id FROM jobs");
    snprintf(aid, sizeof(aid), "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    const char *k = JOBS_KIND_DELIVER;

    TAP_IS_INT(
        count("SELECT count(*) FROM (SELECT jobs_enqueue('%s', '%s', now())) s(id) WHERE id IS NULL", k, aid),
        1, "keep: an active job stands, nothing returned");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE run_at > '2998-01-01'"), 1, "keep: run_at unchanged");
    TAP_IS_INT(count("SELECT count(*) FROM (SELECT jobs_enqueue('%s', '%s', '3000-01-01', 'earlier')) s(id) "
                     "WHERE id IS NULL",
                     k, aid),
               1, "earlier: a later run_at does not move the job");
    TAP_IS_INT(count("SELECT count(*) FROM (SELECT jobs_enqueue('%s', '%s', now() + interval '1 day', "
                     "'earlier')) s(id) JOIN jobs j ON j.id = s.id",
                     k, aid),
               1, "earlier: an earlier run_at returns the job's id");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE run_at < now() + interval '2 days'"), 1,
               "earlier: the queued job was pulled forward");
    TAP_IS_INT(count("SELECT count(*) FROM (SELECT jobs_enqueue('%s', '%s', now() + interval '9 days', "
                     "'move')) s(id) WHERE id IS NOT NULL",
                     k, aid),
               1, "move: returns the job's id");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE run_at > now() + interval '8 days'"), 1,
               "move: the queued job moved later");
    TAP_IS_INT(count("SELECT count(*) FROM jobs"), 1, "no mode duplicated the job");

    pgtest_exec(tdb, "UPDATE jobs SET state = 'running', locked_by = 'someone', lease_until = now() + "
                     "interval '1 minute'");
    TAP_IS_INT(count("SELECT count(*) FROM (SELECT jobs_enqueue('%s', '%s', now(), 'move')) s(id) WHERE id "
                     "IS NULL",
                     k, aid),
               1, "move: a running job is left alone");
    TAP_IS_INT(
        count("SELECT count(*) FROM jobs WHERE state = 'running' AND run_at > now() + interval '8 days'"), 1,
        "move: the running job's run_at is unchanged");
    r = PQexec(tdb, "SELECT jobs_enqueue('deliver_webhook', gen_random_uuid(), NULL, 'sideways')");
    TAP_OK(PQresultStatus(r) == PGRES_FATAL_ERROR && strstr(PQerrorMessage(tdb), "keep, earlier or move"),
           "an unknown on_active is refused (%s)", PQerrorMessage(tdb));
    PQclear(r);

    TAP_IS_INT(count("SELECT jobs_cancel_active('%s', '%s', 'article deleted')", aid, JOBS_KIND_GENERATE), 0,
               "cancel_active: another kind's job is not cancelled");
    TAP_IS_INT(count("SELECT jobs_cancel_active('%s', '%s', 'article deleted')", aid, k), 1,
               "cancel_active: the running job is cancelled");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'cancelled' AND last_error = 'article deleted' "
                     "AND finished_at IS NOT NULL"),
               1, "cancel_active: cancelled, with its reason and finished_at");
    TAP_IS_INT(count("SELECT jobs_cancel_active('%s', '%s', 'again')", aid, k), 0,
               "cancel_active: nothing active is left to cancel");
    TAP_IS_INT(
        count("SELECT count(*) FROM (SELECT jobs_enqueue('%s', '%s')) s(id) WHERE id IS NOT NULL", k, aid), 1,
        "keep: with no active job, a new one is queued");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'queued' AND run_at <= now()"), 1,
               "keep: the new job is due now (run_at NULL)");
}

/* The finish statements handlers put in their own transactions: only the job's holder can finish it. */
static void test_mark_statements(void)
{
    reset_tables();
    enqueue(2, JOBS_KIND_GENERATE, "now()", 5);
    pgtest_exec(tdb, "UPDATE jobs SET state = 'running', locked_by = 'me', lease_until = now() + "
                     "interval '1 minute'");
    char ids[2][24];
    PGresult *r = PQexec(tdb, "SELECT id FROM jobs ORDER BY id");
    for (int i = 0; i < 2; i++)
        snprintf(ids[i], sizeof(ids[i]), "%s", PQntuples(r) == 2 ? PQgetvalue(r, i, 0) : "0");
    PQclear(r);
    db_pool_t *pool = make_pool(1);
    const char *not_mine[] = {ids[0], "someone else"};
    const char *done[] = {ids[0], "me"};
    const char *failed[] = {ids[1], "me", "the model refused"};
    db_stmt_t stmts[] = {{.name = JOBS_STMT_MARK_DONE, .nparams = 2, .params = not_mine},
                         {.name = JOBS_STMT_MARK_DONE, .nparams = 2, .params = done},
                         {.name = JOBS_STMT_MARK_FAILED, .nparams = 3, .params = failed}};
    batch_out_t o[3] = {{0}};
    for (int i = 0; i < 3; i++)
        db_batch(pool, &stmts[i], 1, on_batch, &o[i]);
    TAP_OK(run_until_at_least(&o[2].done, 1, 5000) && o[0].err[0] == '\0' && o[1].err[0] == '\0' &&
               o[2].err[0] == '\0',
           "mark: the statements ran (%s%s%s)", o[0].err, o[1].err, o[2].err);
    TAP_IS_INT(o[0].rows, 0, "mark done: another runner's job is not finished (no row)");
    TAP_IS_INT(o[1].rows, 1, "mark done: our job's id comes back");
    TAP_IS_INT(
        count("SELECT count(*) FROM jobs WHERE id = %s AND state = 'done' AND lease_until IS NULL", ids[0]),
        1, "mark done: done");
    TAP_IS_INT(
        count("SELECT count(*) FROM jobs WHERE id = %s AND state = 'failed' AND last_error = 'the model "
              "refused' AND finished_at IS NOT NULL",
              ids[1]),
        1, "mark failed: failed for good, attempts left or not, with its error");
    close_pool(pool, "mark");
}

/* The runner's housekeeping purges jobs finished over a week ago, and only those (the generation sweep did
 * this before the runner owned it). */
static void test_purge(void)
{
    reset_tables();
    enqueue(3, JOBS_KIND_GENERATE, "now()", 5);
    enqueue(3, JOBS_KIND_DELIVER, "now()", 5);
    /* Old: done, failed, cancelled (8 days ago). Recent: done a day ago. Old but active: queued, created long
     * ago (never purged, whatever its age). */
    pgtest_exec(tdb,
                "WITH o AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM jobs) "
                "UPDATE jobs j SET state = (ARRAY['done', 'failed', 'cancelled', 'done', 'queued', "
                "'queued'])[o.n], finished_at = CASE WHEN o.n <= 3 THEN now() - interval '8 days' "
                "WHEN o.n = 4 THEN now() - interval '1 day' END, created_at = now() - interval '30 days' "
                "FROM o WHERE o.id = j.id");
    TAP_IS_INT(count("SELECT count(*) FROM jobs"), 6, "purge: six jobs before");
    db_pool_t *pool = make_pool(1);
    jobs_config_t cfg = {.concurrency = 1, .purge_interval_ms = 100, .poll_interval_ms = 60000};
    jobs_runner_t *r = make_runner(pool, &cfg, NULL, 0);
    jobs_runner_start(r);
    for (int i = 0; i < 100 && count("SELECT count(*) FROM jobs") > 3; i++)
        run_for(50);
    run_for(50);
    jobs_stats_t st;
    jobs_runner_stats(r, &st);
    TAP_IS_INT(count("SELECT count(*) FROM jobs"), 3,
               "purge: the three jobs finished over a week ago are gone");
    TAP_IS_INT(
        count("SELECT count(*) FROM jobs WHERE state = 'done' AND finished_at > now() - interval '2 days'"),
        1, "purge: a job finished a day ago is kept");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'queued'"), 2, "purge: active jobs are kept");
    TAP_IS_INT((long)st.purged, 3, "purge: the runner counts what it purged");
    stop_runner(r, "purge");
    close_pool(pool, "purge");
}

/* N jobs, concurrency C: each runs exactly once, never more than C at once, and C at once is reached. */
static void test_concurrency(void)
{
    reset_tables();
    reset_starts();
    enum { N = 60, C = 4 };
    enqueue(N, JOBS_KIND_GENERATE, "now()", 5);
    db_pool_t *pool = make_pool(2);
    tracker_t t = {.work_ms = 30};
    jobs_config_t cfg = {.concurrency = C, .lease_ms = 5000, .poll_interval_ms = 200};
    jobs_runner_t *r = make_runner(pool, &cfg, &t, 1);
    jobs_runner_start(r);
    TAP_OK(run_until_at_least(&t.finished, N, 20000), "concurrency: %d jobs finished (%d)", N, t.finished);
    run_for(100);
    TAP_IS_INT(t.started, N, "concurrency: %d starts", N);
    TAP_IS_INT(max_starts_seen, 1, "concurrency: no job started twice");
    TAP_IS_INT(t.max_running, C, "concurrency: at most (and at some point exactly) %d at once", C);
    TAP_IS_INT(
        count("SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 1 AND finished_at IS NOT NULL "
              "AND lease_until IS NULL AND locked_by = '%s'",
              jobs_runner_id(r)),
        N, "concurrency: every row done after one attempt, by this runner");
    jobs_stats_t st;
    jobs_runner_stats(r, &st);
    TAP_OK(st.claimed == N && st.done == N && st.running == 0 && st.lost == 0,
           "concurrency: stats (claimed %llu, done %llu)", (unsigned long long)st.claimed,
           (unsigned long long)st.done);
    const char *me = jobs_runner_id(r);
    TAP_OK(strchr(me, ':') != NULL && strchr(strchr(me, ':') + 1, ':') != NULL,
           "concurrency: id %s is "
           "host:pid:random",
           me);
    stop_runner(r, "concurrency");
    close_pool(pool, "concurrency");
}

/* Each kind stays within its own limit, and the runner within its own. */
static void test_kind_limits(void)
{
    reset_tables();
    reset_starts();
    enqueue(12, JOBS_KIND_GENERATE, "now()", 5);
    enqueue(12, JOBS_KIND_DELIVER, "now()", 5);
    db_pool_t *pool = make_pool(2);
    tracker_t gen = {.work_ms = 20}, del = {.work_ms = 20};
    jobs_config_t cfg = {.concurrency = 3, .lease_ms = 5000, .poll_interval_ms = 200};
    jobs_runner_t *r = make_runner(pool, &cfg, NULL, 1);
    TAP_IS_INT(jobs_register(r, JOBS_KIND_GENERATE, on_start, on_cancel, 2, &gen), 0,
               "kinds: first registered");
    TAP_IS_INT(jobs_register(r, JOBS_KIND_DELIVER, on_start, on_cancel, 1, &del), 0,
               "kinds: second registered");
    TAP_IS_INT(jobs_register(r, JOBS_KIND_DELIVER, on_start, on_cancel, 1, &del), -1, "kinds: no duplicate");
    TAP_IS_INT(jobs_register(r, "Bad-Kind", on_start, on_cancel, 1, &del), -1, "kinds: odd names refused");
    jobs_runner_start(r);
    TAP_IS_INT(jobs_register(r, "late", on_start, on_cancel, 1, &del), -1, "kinds: none after start");
    int total = 0;
    uint64_t end = time_mono_ms() + 10000;
    while (total < 24 && time_mono_ms() < end) {
        run_for(20);
        total = gen.finished + del.finished;
    }
    run_for(100);
    TAP_OK(gen.finished == 12 && del.finished == 12, "kinds: all ran (%d + %d)", gen.finished, del.finished);
    TAP_IS_INT(gen.max_running, 2, "kinds: generate_article at most 2 at once");
    TAP_IS_INT(del.max_running, 1, "kinds: deliver_webhook at most 1 at once");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'done'"), 24, "kinds: every row done");
    stop_runner(r, "kinds");
    close_pool(pool, "kinds");
}

/* Two runners on one loop, each with its own pool and LISTEN connection, share 200 jobs. */
static void test_two_runners(void)
{
    reset_tables();
    reset_starts();
    enum { N = 200 };
    db_pool_t *p1 = make_pool(2), *p2 = make_pool(2);
    tracker_t t1 = {.work_ms = 2, .sync_every = 3}, t2 = {.work_ms = 3, .sync_every = 4};
    jobs_config_t cfg = {.concurrency = 5, .lease_ms = 5000, .poll_interval_ms = 10000};
    jobs_runner_t *r1 = make_runner(p1, &cfg, &t1, 1), *r2 = make_runner(p2, &cfg, &t2, 1);
    jobs_runner_start(r1);
    jobs_runner_start(r2);
    wait_listening(r1);
    wait_listening(r2);
    run_for(100);
    enqueue(N, JOBS_KIND_GENERATE, "now()", 5);
    int total = 0;
    uint64_t end = time_mono_ms() + 20000;
    while (total < N && time_mono_ms() < end) {
        run_for(20);
        total = t1.finished + t2.finished;
    }
    run_for(100);
    TAP_IS_INT(t1.started + t2.started, N, "two runners: %d starts in all", N);
    TAP_IS_INT(max_starts_seen, 1, "two runners: no job ran twice");
    TAP_OK(t1.started > 0 && t2.started > 0, "two runners: both took work (%d + %d)", t1.started, t2.started);
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 1"), N,
               "two runners: every row done once");
    stop_runner(r1, "two runners");
    stop_runner(r2, "two runners");
    close_pool(p1, "two runners");
    close_pool(p2, "two runners");
}

/* ---- child processes ---- */

static int child_stopping, child_stopped;

static void on_child_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    if (child_stopping++ == 0)
        jobs_runner_stop(sig->data, on_flag, &child_stopped);
}

/* --child CONNINFO MODE: MODE "share" runs short jobs until SIGTERM; "hold" runs jobs that never end (with a
 * 60 s lease renewed every 300 ms) until it is killed. Prints "ready" once listening, then "ran <id>" per
 * job.
 */
static int child_main(const char *conninfo, const char *mode)
{
    test_conninfo = xstrdup(conninfo);
    if (uv_loop_init(&loop) != 0)
        return 1;
    db_pool_t *pool = make_pool(2);
    int hold = strcmp(mode, "hold") == 0;
    tracker_t t = {.work_ms = hold ? 600000 : 3, .report = stdout};
    jobs_config_t cfg = {.concurrency = hold ? 3 : 4,
                         .lease_ms = hold ? 60000 : 5000,
                         .heartbeat_ms = hold ? 300 : 0,
                         .poll_interval_ms = 500};
    jobs_runner_t *r = make_runner(pool, &cfg, &t, 1);
    uv_signal_t sig;
    uv_signal_init(&loop, &sig);
    sig.data = r;
    uv_signal_start(&sig, on_child_signal, SIGTERM);
    jobs_runner_start(r);
    wait_listening(r);
    printf("ready\n");
    fflush(stdout);
    /* Runs until SIGTERM has stopped the runner (its jobs handed back). */
    while (!child_stopped)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&sig, NULL);
    int closed = 0;
    db_pool_close(pool, on_flag, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop);
    printf("exit %d\n", rc);
    return rc == 0 && closed == 1 ? 0 : 3;
}

typedef struct {
    pid_t pid;
    FILE *out;
} child_t;

static child_t spawn_child(const char *mode)
{
    int fds[2];
    if (pipe(fds) != 0) {
        printf("Bail out! pipe: %s\n", strerror(errno));
        exit(1);
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        printf("Bail out! fork: %s\n", strerror(errno));
        exit(1);
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        char *argv[] = {"test_jobs_queue", "--child", test_conninfo, (char *)mode, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fds[1]);
    return (child_t){pid, fdopen(fds[0], "r")};
}

static int read_line(child_t *c, char *line, size_t len)
{
    if (fgets(line, (int)len, c->out) == NULL)
        return -1;
    line[strcspn(line, "\n")] = '\0';
    return 0;
}

/* Two processes share 200 jobs; SIGTERM then stops each cleanly. */
static void test_two_processes(void)
{
    reset_tables();
    enum { N = 200 };
    child_t kids[2] = {spawn_child("share"), spawn_child("share")};
    char line[128];
    int ready = 0;
    for (int i = 0; i < 2; i++)
        ready += read_line(&kids[i], line, sizeof(line)) == 0 && strcmp(line, "ready") == 0;
    TAP_IS_INT(ready, 2, "two processes: both listening");
    enqueue(N, JOBS_KIND_GENERATE, "now()", 5);
    for (int i = 0; i < 400 && count("SELECT count(*) FROM jobs WHERE state = 'done'") < N; i++)
        usleep(50000);
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 1"), N,
               "two processes: every job done after one attempt");
    static int seen[MAXID];
    memset(seen, 0, sizeof(seen));
    int per[2] = {0, 0}, twice = 0, exits = 0;
    for (int i = 0; i < 2; i++) {
        kill(kids[i].pid, SIGTERM);
        while (read_line(&kids[i], line, sizeof(line)) == 0) {
            long long id;
            if (sscanf(line, "ran %lld", &id) == 1 && id >= 0 && id < MAXID) {
                per[i]++;
                twice += seen[id]++ > 0;
            } else if (strcmp(line, "exit 0") == 0) {
                exits++;
            }
        }
        int status = 0;
        waitpid(kids[i].pid, &status, 0);
        fclose(kids[i].out);
        TAP_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "two processes: child %d exited cleanly on SIGTERM "
               "(status %d)",
               i, status);
    }
    TAP_IS_INT(per[0] + per[1], N, "two processes: %d runs in all", N);
    TAP_IS_INT(twice, 0, "two processes: no job ran twice");
    TAP_OK(per[0] > 0 && per[1] > 0, "two processes: both took work (%d + %d)", per[0], per[1]);
    TAP_IS_INT(exits, 2, "two processes: both closed every handle (uv_loop_close == 0)");
}

/* A process killed with SIGKILL holding jobs under a 60 s lease: another runner rescues them at its next
 * sweep, since the dead process's database session (and its liveness lock) is gone. */
static void test_kill9(void)
{
    reset_tables();
    reset_starts();
    enqueue(3, JOBS_KIND_GENERATE, "now()", 5);
    child_t kid = spawn_child("hold");
    char line[128];
    int running = 0;
    while (running < 3 && read_line(&kid, line, sizeof(line)) == 0)
        running += strncmp(line, "ran ", 4) == 0;
    TAP_IS_INT(running, 3, "kill -9: the child holds 3 jobs");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'running'"), 3, "kill -9: 3 rows running");
    /* In a server's first 10 s only leases count (queue.c, LIVENESS_GRACE_S_TEXT). */
    while (count("SELECT (now() - pg_postmaster_start_time() < interval '11 seconds')::int") > 0)
        usleep(200000);
    kill(kid.pid, SIGKILL);
    waitpid(kid.pid, NULL, 0);
    fclose(kid.out);
    uint64_t killed_at = time_mono_ms();

    db_pool_t *pool = make_pool(2);
    tracker_t t = {.work_ms = 10};
    jobs_config_t cfg = {
        .concurrency = 4, .lease_ms = 5000, .poll_interval_ms = 10000, .rescue_interval_ms = 200};
    jobs_runner_t *r = make_runner(pool, &cfg, &t, 1);
    jobs_runner_start(r);
    TAP_OK(run_until_at_least(&t.finished, 3, 5000), "kill -9: the jobs ran here (%d)", t.finished);
    uint64_t took = time_mono_ms() - killed_at;
    TAP_OK(took < 2500, "kill -9: rescued within 2.5 s, long before the 60 s lease (%llu ms)",
           (unsigned long long)took);
    /* The final UPDATEs follow the handlers' jobs_done; under a sanitizer on a busy machine they take a
     * while. */
    for (int i = 0; i < 50 && count("SELECT count(*) FROM jobs WHERE state = 'done'") < 3; i++)
        run_for(100);
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 2 AND locked_by = '%s'",
                     jobs_runner_id(r)),
               3, "kill -9: done on the second attempt, by the rescuer");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state <> 'done' OR attempts <> 2"), 0,
               "kill -9: no job ran a third time");
    jobs_stats_t st;
    jobs_runner_stats(r, &st);
    TAP_IS_INT(st.rescued, 3, "kill -9: the rescuer's sweep counted them");
    stop_runner(r, "kill -9");
    close_pool(pool, "kill -9");
}

/* NOTIFY wakes a runner whose poll interval is 10 s; a delayed job starts on time. */
static void test_notify_and_delay(void)
{
    reset_tables();
    reset_starts();
    db_pool_t *pool = make_pool(2);
    tracker_t t = {.work_ms = 5};
    jobs_config_t cfg = {.concurrency = 4, .lease_ms = 5000, .poll_interval_ms = 10000};
    jobs_runner_t *r = make_runner(pool, &cfg, &t, 1);
    jobs_runner_start(r);
    wait_listening(r);
    run_for(200); /* the first claim has found nothing */
    jobs_stats_t st;
    jobs_runner_stats(r, &st);
    TAP_OK(st.listening && st.claims >= 1, "notify: listening, first claim done");

    enqueue(1, JOBS_KIND_GENERATE, "now()", 5);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    TAP_OK(run_until_at_least(&t.started, 1, 3000), "notify: the job started");
    uint64_t took = uv_now(&loop) - t0;
    TAP_OK(took <= 200, "notify: within 200 ms of the commit (%llu ms)", (unsigned long long)took);

    run_until_at_least(&t.finished, 1, 2000);
    enqueue(1, JOBS_KIND_GENERATE, "now() + interval '1 second'", 5);
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    TAP_OK(run_until_at_least(&t.started, 2, 3000), "delayed: the job started");
    took = uv_now(&loop) - t0;
    TAP_OK(took >= 950 && took <= 1300, "delayed: started at its run_at (%llu ms after a 1 s delay)",
           (unsigned long long)took);
    run_until_at_least(&t.finished, 2, 2000);
    stop_runner(r, "notify");
    close_pool(pool, "notify");
}

/* A job longer than the lease keeps it through renewals while a rescuer sweeps every 100 ms. */
static void test_lease_renewal(void)
{
    reset_tables();
    reset_starts();
    enqueue(1, JOBS_KIND_GENERATE, "now()", 5);
    db_pool_t *pool = make_pool(2);
    tracker_t t = {.work_ms = 2000};
    jobs_config_t cfg = {.concurrency = 2, .lease_ms = 600, .heartbeat_ms = 150, .poll_interval_ms = 200};
    jobs_runner_t *r = make_runner(pool, &cfg, &t, 0);
    jobs_config_t rescue_cfg = {.rescue_interval_ms = 100, .poll_interval_ms = 10000};
    jobs_runner_t *rescuer = make_runner(pool, &rescue_cfg, NULL, 0); /* no kinds: sweeps only */
    jobs_runner_start(r);
    jobs_runner_start(rescuer);
    TAP_OK(run_until_at_least(&t.finished, 1, 5000), "lease: the long job finished");
    run_for(100);
    TAP_IS_INT(max_starts_seen, 1, "lease: it ran once");
    jobs_stats_t st, rs;
    jobs_runner_stats(r, &st);
    jobs_runner_stats(rescuer, &rs);
    TAP_OK(st.lost == 0 && rs.rescued == 0, "lease: never rescued (lost %llu, rescued %llu)",
           (unsigned long long)st.lost, (unsigned long long)rs.rescued);
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 1"), 1,
               "lease: done after one attempt");

    /* The row is taken from under a running job (as a rescue and another claim would): the next renewal
     * notices, and the handler is told to stop. */
    reset_starts();
    tracker_t t2 = {.work_ms = 60000};
    stop_runner(rescuer, "lease");
    stop_runner(r, "lease");
    r = make_runner(pool, &cfg, &t2, 0);
    jobs_runner_start(r);
    enqueue(1, JOBS_KIND_GENERATE, "now()", 5);
    TAP_OK(run_until_at_least(&t2.started, 1, 3000), "lost: the job started");
    pgtest_exec(tdb, "UPDATE jobs SET locked_by = 'thief' WHERE state = 'running'");
    TAP_OK(run_until_at_least(&t2.cancels, 1, 2000), "lost: the handler was told to stop");
    jobs_runner_stats(r, &st);
    TAP_IS_INT(st.lost, 1, "lost: counted");
    TAP_IS_INT(st.running, 0, "lost: the slot is free");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'running' AND locked_by = 'thief'"), 1,
               "lost: the row is left to its owner");
    stop_runner(r, "lost");
    close_pool(pool, "lease");
}

/* A runner that stops renewing (its heartbeat never fires): another rescues and runs its jobs; the first
 * one's late jobs_done does not touch the rows. */
static void test_rescue(void)
{
    reset_tables();
    reset_starts();
    enqueue(3, JOBS_KIND_GENERATE, "now()", 5);
    db_pool_t *pool = make_pool(2);
    tracker_t ta = {.work_ms = 1500}, tb = {.work_ms = 50};
    jobs_config_t dead = {.concurrency = 3,
                          .lease_ms = 500,
                          .heartbeat_ms = 3600000,
                          .poll_interval_ms = 200,
                          .rescue_interval_ms = 3600000};
    jobs_config_t live = {
        .concurrency = 3, .lease_ms = 5000, .poll_interval_ms = 200, .rescue_interval_ms = 100};
    jobs_runner_t *a = make_runner(pool, &dead, &ta, 0), *b = make_runner(pool, &live, &tb, 0);
    jobs_runner_start(a);
    TAP_OK(run_until_at_least(&ta.started, 3, 3000), "rescue: the dying runner holds 3 jobs");
    jobs_runner_start(b);
    TAP_OK(run_until_at_least(&tb.finished, 3, 3000), "rescue: the live runner ran them after the lease");
    run_for(200);
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 2 AND locked_by = '%s'",
                     jobs_runner_id(b)),
               3, "rescue: done on attempt 2 by the live runner");
    TAP_OK(run_until_at_least(&ta.finished, 3, 3000), "rescue: the dying runner's work ends late");
    run_for(300);
    jobs_stats_t st;
    jobs_runner_stats(a, &st);
    TAP_IS_INT(st.lost, 3, "rescue: its outcomes were dropped (locked_by is not it)");
    TAP_IS_INT(
        count("SELECT count(*) FROM jobs WHERE state = 'done' AND locked_by = '%s'", jobs_runner_id(b)), 3,
        "rescue: the rows still say the live runner finished them");
    stop_runner(a, "rescue");
    stop_runner(b, "rescue");
    close_pool(pool, "rescue");
}

/* jobs_fail retries with growing delays and ends failed after max_attempts; JOBS_NO_RETRY fails at once;
 * jobs_cancel cancels. */
static void test_retry(void)
{
    reset_tables();
    reset_starts();
    enqueue(2, JOBS_KIND_GENERATE, "now()", 3);
    db_pool_t *pool = make_pool(2);
    tracker_t t = {.work_ms = 1, .mode = W_FAIL_BACKOFF};
    jobs_config_t cfg = {.concurrency = 4, .lease_ms = 5000, .poll_interval_ms = 10000, .retry_base_ms = 200};
    jobs_runner_t *r = make_runner(pool, &cfg, &t, 1);
    jobs_runner_start(r);
    TAP_OK(run_until_at_least(&t.finished, 6, 5000), "retry: 2 jobs x 3 attempts (%d)", t.finished);
    run_for(200);
    TAP_IS_INT(t.started, 6, "retry: no fourth attempt");
    int gaps_ok = 0;
    for (int id = 0; id < MAXID; id++) {
        if (starts[id] == 0)
            continue;
        uint64_t g1 = start_at[id][1] - start_at[id][0], g2 = start_at[id][2] - start_at[id][1];
        printf("# job %d: retried after %llu ms, then %llu ms\n", id, (unsigned long long)g1,
               (unsigned long long)g2);
        gaps_ok += starts[id] == 3 && g1 >= 100 && g1 <= 400 && g2 >= 200 && g2 <= 650;
    }
    TAP_IS_INT(gaps_ok, 2, "retry: backoff of ~100-200 ms, then ~200-400 ms");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'failed' AND attempts = 3 AND "
                     "last_error = 'boom (attempt 3)' AND finished_at IS NOT NULL AND lease_until IS NULL"),
               2, "retry: failed for good, with the last error");
    jobs_stats_t st;
    jobs_runner_stats(r, &st);
    TAP_OK(st.retried == 4 && st.failed == 2, "retry: stats (retried %llu, failed %llu)",
           (unsigned long long)st.retried, (unsigned long long)st.failed);

    t.mode = W_FAIL_NOW;
    enqueue(1, JOBS_KIND_GENERATE, "now()", 5);
    TAP_OK(run_until_at_least(&t.finished, 7, 3000), "no retry: ran");
    run_for(100);
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'failed' AND attempts = 1 AND last_error = "
                     "'permanent'"),
               1, "no retry: failed after one attempt of five");
    t.mode = W_CANCEL;
    enqueue(1, JOBS_KIND_GENERATE, "now()", 5);
    TAP_OK(run_until_at_least(&t.finished, 8, 3000), "cancel: ran");
    run_for(100);
    TAP_IS_INT(
        count("SELECT count(*) FROM jobs WHERE state = 'cancelled' AND last_error = 'article deleted'"), 1,
        "cancel: cancelled with its reason");
    stop_runner(r, "retry");
    close_pool(pool, "retry");
}

/* Stopping hands running jobs back: queued, attempt restored, no lock; cancel_cb ran for each. */
static void test_stop_hands_back(void)
{
    reset_tables();
    reset_starts();
    enqueue(5, JOBS_KIND_GENERATE, "now()", 5);
    db_pool_t *pool = make_pool(2);
    tracker_t t = {.work_ms = 60000};
    jobs_config_t cfg = {.concurrency = 3, .lease_ms = 5000, .poll_interval_ms = 200};
    jobs_runner_t *r = make_runner(pool, &cfg, &t, 1);
    jobs_runner_start(r);
    TAP_OK(run_until_at_least(&t.started, 3, 3000), "stop: 3 jobs running");
    TAP_IS_INT(count("SELECT count(*) FROM jobs WHERE state = 'running' AND attempts = 1"), 3,
               "stop: 3 rows running");
    uint64_t t0 = time_mono_ms();
    stop_runner(r, "stop");
    TAP_OK(time_mono_ms() - t0 < 1000, "stop: quick");
    TAP_IS_INT(t.cancels, 3, "stop: cancel_cb ran for each running job");
    TAP_IS_INT(
        count("SELECT count(*) FROM jobs WHERE state = 'queued' AND attempts = 0 AND locked_by IS NULL "
              "AND lease_until IS NULL AND run_at <= now()"),
        5, "stop: every job queued again, attempts restored");
    close_pool(pool, "stop");
}

/* The LISTEN connection comes back after its backend is terminated, says so, and delivers again. */
typedef struct {
    int ready, reconnected, notes;
    char payload[64];
} listen_out_t;

static void on_test_notify(const char *channel, const char *payload, void *data)
{
    listen_out_t *o = data;
    if (strcmp(channel, "inkloop_test") == 0) {
        o->notes++;
        snprintf(o->payload, sizeof(o->payload), "%s", payload);
    }
}

static void on_test_listening(int reconnected, void *data)
{
    listen_out_t *o = data;
    o->ready++;
    o->reconnected += reconnected;
}

static void test_listen_reconnect(void)
{
    char app[64];
    snprintf(app, sizeof(app), "inkloop_listen_test_%d", (int)getpid());
    char *ci = pgtest_conninfo(base_url, dbname, app);
    listen_out_t o = {0};
    db_listen_config_t cfg = {.conninfo = ci, .backoff_min_ms = 20, .backoff_max_ms = 100};
    db_listen_t *l = db_listen_create(&loop, &cfg, on_test_notify, on_test_listening, &o);
    TAP_OK(l != NULL && db_listen_add(l, "inkloop_test") == 0, "listen: created");
    db_listen_start(l);
    TAP_IS_INT(db_listen_add(l, "late"), -1, "listen: no channel added after start");
    TAP_OK(run_until_at_least(&o.ready, 1, 5000) && o.reconnected == 0, "listen: subscribed");
    pgtest_exec(tdb, "NOTIFY inkloop_test, 'one'");
    TAP_OK(run_until_at_least(&o.notes, 1, 2000), "listen: notification delivered");
    TAP_IS_STR(o.payload, "one", "listen: with its payload");
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '%s'", app);
    pgtest_exec(tdb, sql);
    TAP_OK(run_until_at_least(&o.reconnected, 1, 5000), "listen: reconnected, and said so");
    TAP_OK(db_listen_ready(l), "listen: ready again");
    pgtest_exec(tdb, "NOTIFY inkloop_test, 'two'");
    TAP_OK(run_until_at_least(&o.notes, 2, 2000), "listen: notifications flow again");
    TAP_IS_STR(o.payload, "two", "listen: the new payload");
    int closed = 0;
    db_listen_close(l, on_flag, &closed);
    pgtest_exec(tdb, "NOTIFY inkloop_test, 'three'");
    TAP_OK(run_until_at_least(&closed, 1, 2000) && o.notes == 2, "listen: closed; nothing delivered after");
    free(ci);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child") == 0) {
        log_setup(getenv("INKLOOP_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, 0);
        return child_main(argv[2], argv[3]);
    }
    base_url = getenv("INKLOOP_TEST_DATABASE_URL");
    if (base_url == NULL || base_url[0] == '\0') {
        if (getenv("CI") != NULL) {
            printf("Bail out! INKLOOP_TEST_DATABASE_URL is not set, and CI must run the db suite\n");
            return 1;
        }
        printf("1..0 # SKIP no INKLOOP_TEST_DATABASE_URL\n");
        return 0;
    }
    log_setup(getenv("INKLOOP_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, 0);
    if (uv_loop_init(&loop) != 0)
        return 1;

    /* A fresh database with the real schema. */
    PGconn *admin = pgtest_connect(base_url);
    pgtest_exec(admin, "SET client_min_messages = warning");
    snprintf(dbname, sizeof(dbname), "inkloop_test_jobs_%d", (int)getpid());
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
    pgtest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    pgtest_exec(admin, sql);
    test_conninfo = pgtest_conninfo(base_url, dbname, NULL);
    char err[512];
    int applied = 0;
    TAP_IS_INT(db_migrate(test_conninfo, &applied, err, sizeof(err)), 0, "schema applied (%s)", err);
    tdb = pgtest_connect(test_conninfo);
    pgtest_exec(tdb, "SET client_min_messages = warning");
    PGresult *u = PQexec(tdb, "INSERT INTO users (email, username, password_hash) "
                              "VALUES ('jobs@example.com', 'jobs_test', 'x') RETURNING id");
    if (PQresultStatus(u) != PGRES_TUPLES_OK) {
        printf("Bail out! inserting a user: %s\n", PQerrorMessage(tdb));
        return 1;
    }
    snprintf(user_id, sizeof(user_id), "%s", PQgetvalue(u, 0, 0));
    PQclear(u);

    test_enqueue();
    test_enqueue_functions();
    test_mark_statements();
    test_purge();
    test_concurrency();
    test_kind_limits();
    test_two_runners();
    test_notify_and_delay();
    test_lease_renewal();
    test_rescue();
    test_retry();
    test_stop_hands_back();
    test_listen_reconnect();
    test_two_processes();
    test_kill9();

    uv_run(&loop, UV_RUN_DEFAULT);
    TAP_IS_INT(uv_loop_close(&loop), 0, "every handle closed (uv_loop_close == 0)");
    PQfinish(tdb);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    pgtest_exec(admin, sql);
    PQfinish(admin);
    free(test_conninfo);
    return tap_done();
}
