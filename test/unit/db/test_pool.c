/* The pool and the migration runner against a real PostgreSQL (INKLOOP_TEST_DATABASE_URL).
 *
 * Every section closes what it opened; the last check is uv_loop_close() == 0, which holds only when every
 * handle the pool created was closed. */
#include "db/db.h"
#include "db/migrate.h"
#include "db/migrate_apply.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "pgtest.h"
#include "tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uv_loop_t loop;
static const char *base_url;
static char app_name[64];

/* ---- helpers ---- */

static int timed_out;

static void on_run_timeout(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

/* Runs the loop until *flag becomes nonzero or timeout_ms pass; returns the flag's final truth. */
static int run_until(const int *flag, int timeout_ms)
{
    uv_timer_t t;
    timed_out = 0;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_run_timeout, (uint64_t)timeout_ms, 0);
    while (!*flag && !timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *flag != 0;
}

static int run_until_count(const int *counter, int want, int timeout_ms)
{
    uint64_t end = time_mono_ms() + (uint64_t)timeout_ms;
    int never = 0;
    while (*counter < want && time_mono_ms() < end)
        run_until(&never, 20);
    return *counter >= want;
}

static long plain_count(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

static db_pool_t *make_pool(const char *conninfo, int size, int depth, int max_waiting)
{
    db_pool_config_t cfg = {
        .conninfo = conninfo,
        .size = size,
        .max_waiting = max_waiting,
        .pipeline_depth = depth,
        .statement_timeout_ms = 5000,
        .wait_timeout_ms = 5000,
        .backoff_min_ms = 20,
        .backoff_max_ms = 200,
    };
    db_pool_t *pool = db_pool_create(&loop, &cfg);
    if (pool == NULL) {
        printf("Bail out! db_pool_create failed\n");
        exit(1);
    }
    return pool;
}

static void on_pool_closed(void *data)
{
    *(int *)data = 1;
}

static void close_pool(db_pool_t *pool, const char *what)
{
    int closed = 0;
    db_pool_close(pool, on_pool_closed, &closed);
    TAP_OK(run_until(&closed, 10000), "%s: pool closed", what);
}

static int all_ready(db_pool_t *pool, int want)
{
    for (int i = 0; i < 1000; i++) {
        db_pool_stats_t st;
        db_pool_stats(pool, &st);
        if (st.ready == want)
            return 1;
        uv_run(&loop, UV_RUN_ONCE);
        usleep(1000);
    }
    return 0;
}

/* One caller's record: what it expects and what it got. */
typedef struct {
    int expect;
    int calls;
    int ok;
    char err[200];
    char sqlstate[6];
    int *counter;
} slot_t;

static void on_echo(const db_result_t *results, size_t n, void *data)
{
    slot_t *s = data;
    s->calls++;
    (*s->counter)++;
    s->ok = 1;
    for (size_t i = 0; i < n; i++) {
        if (results[i].err != NULL) {
            snprintf(s->err, sizeof(s->err), "%s", results[i].err);
            s->ok = 0;
            continue;
        }
        /* statement i echoes expect + i */
        if (db_int(results[i].res, 0, "v") != s->expect + (int64_t)i)
            s->ok = 0;
    }
}

/* ---- sections ---- */

typedef struct {
    int done;
    size_t n;
    char err[8][200];
    char sqlstate[8][6];
    int has_res[8];
    int ntuples[8];
} batch_out_t;

static void on_batch(const db_result_t *results, size_t n, void *data)
{
    batch_out_t *o = data;
    o->done = 1;
    o->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(o->err[i], sizeof(o->err[i]), "%s", results[i].err ? results[i].err : "");
        memcpy(o->sqlstate[i], results[i].sqlstate, 6);
        o->has_res[i] = results[i].res != NULL;
        o->ntuples[i] = results[i].res != NULL ? PQntuples(results[i].res) : -1;
    }
}

/* Hundreds of pipelined batches over several connections: each caller gets its own answer, in any order of
 * completion across connections, and the wait queue refuses once full. */
static void test_fifo_pairing(int size, int depth, int wait)
{
    enum { MAXQ = 1000 };
    char what[64];
    snprintf(what, sizeof(what), "pairing %dx%d", size, depth);
    db_pool_t *pool = make_pool(base_url, size, depth, wait);
    TAP_IS_INT(db_pool_prepare(pool, "echo", "SELECT $1::int AS v"), 0, "%s: statement registered", what);
    TAP_IS_INT(db_pool_prepare(pool, "echo", "SELECT 1"), -1, "%s: a duplicate name is refused", what);
    db_pool_start(pool);
    TAP_IS_INT(db_pool_prepare(pool, "late", "SELECT 1"), -1, "%s: registering after start is refused", what);
    TAP_OK(all_ready(pool, size), "%s: all connections ready", what);
    TAP_OK(db_pool_available(pool), "%s: pool available", what);

    static slot_t slots[MAXQ];
    int done = 0, accepted = 0, refused_at = -1;
    for (int i = 0; i < MAXQ; i++) {
        slots[i] = (slot_t){.expect = i * 10, .counter = &done};
        char v0[16], v1[16];
        snprintf(v0, sizeof(v0), "%d", i * 10);
        snprintf(v1, sizeof(v1), "%d", i * 10 + 1);
        const char *p0[] = {v0}, *p1[] = {v1};
        db_query_t *q;
        if (i % 3 == 0) {
            /* a two-statement batch: one prepared, one SQL text */
            db_stmt_t stmts[] = {{.name = "echo", .nparams = 1, .params = p0},
                                 {.sql = "SELECT $1::int AS v", .nparams = 1, .params = p1}};
            q = db_batch(pool, stmts, 2, on_echo, &slots[i]);
        } else {
            q = db_query(pool, "echo", 1, p0, on_echo, &slots[i]);
        }
        if (q == NULL) {
            refused_at = i;
            break;
        }
        accepted++;
    }
    TAP_IS_INT(accepted, size * depth + wait, "%s: in flight plus a full wait queue accepted", what);
    TAP_IS_INT(refused_at, size * depth + wait, "%s: the next batch is refused with NULL", what);
    db_pool_stats_t st;
    db_pool_stats(pool, &st);
    TAP_IS_INT(st.in_flight, size * depth, "%s: stats count the batches in flight", what);
    TAP_IS_INT(st.waiting, wait, "%s: stats count the waiting batches", what);
    TAP_IS_INT(done, 0, "%s: no callback ran inside db_batch", what);
    TAP_OK(run_until_count(&done, accepted, 20000), "%s: every batch completed (%d)", what, done);
    int matched = 0, once = 0;
    for (int i = 0; i < accepted; i++) {
        matched += slots[i].ok;
        once += slots[i].calls == 1;
    }
    TAP_IS_INT(matched, accepted, "%s: every caller got its own values", what);
    TAP_IS_INT(once, accepted, "%s: every callback ran exactly once", what);
    db_pool_stats(pool, &st);
    TAP_OK(st.in_flight == 0 && st.waiting == 0 && st.completed == (uint64_t)accepted && st.failed == 0,
           "%s: stats settle (completed %llu)", what, (unsigned long long)st.completed);
    close_pool(pool, what);
}

/* statement_timeout reaches the session, merged with options the URL itself carries. */
static void test_session_options(void)
{
    char *url = xasprintf("%s%soptions=-c%%20work_mem%%3D7MB", base_url, strchr(base_url, '?') ? "&" : "?");
    db_pool_config_t cfg = {.conninfo = url, .size = 1, .max_waiting = 10, .statement_timeout_ms = 150};
    db_pool_t *pool = db_pool_create(&loop, &cfg);
    db_pool_start(pool);
    batch_out_t o = {0};
    db_stmt_t stmts[] = {{.sql = "SELECT 1 WHERE current_setting('work_mem') = '7MB'"},
                         {.sql = "SELECT 1 WHERE current_setting('statement_timeout') = '150ms'"}};
    db_batch(pool, stmts, 2, on_batch, &o);
    TAP_OK(run_until(&o.done, 5000) && o.err[0][0] == '\0' && o.err[1][0] == '\0', "options: ran");
    TAP_IS_INT(o.ntuples[0], 1, "options: the URL's own options kept");
    TAP_IS_INT(o.ntuples[1], 1, "options: statement_timeout set");
    batch_out_t slow = {0};
    db_stmt_t sleep_stmt = {.sql = "SELECT pg_sleep(2)"};
    db_batch(pool, &sleep_stmt, 1, on_batch, &slow);
    TAP_OK(run_until(&slow.done, 5000), "options: a slow statement ends");
    TAP_IS_STR(slow.sqlstate[0], "57014", "options: cancelled by statement_timeout");
    close_pool(pool, "options");
    free(url);

    /* Two hosts, the first refusing: libpq moves to a new socket while connecting, and the pool follows it.
     */
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(base_url, &errmsg), *o2;
    const char *host = "127.0.0.1", *port = "5432", *user = "postgres", *dbname = "postgres";
    for (o2 = opts; o2->keyword != NULL; o2++) {
        if (o2->val == NULL || o2->val[0] == '\0')
            continue;
        if (strcmp(o2->keyword, "host") == 0)
            host = o2->val;
        else if (strcmp(o2->keyword, "port") == 0)
            port = o2->val;
        else if (strcmp(o2->keyword, "user") == 0)
            user = o2->val;
        else if (strcmp(o2->keyword, "dbname") == 0)
            dbname = o2->val;
    }
    char *multi = xasprintf("host=127.0.0.1,%s port=1,%s user=%s dbname=%s", host, port, user, dbname);
    PQconninfoFree(opts);
    pool = make_pool(multi, 2, 4, 10);
    db_pool_start(pool);
    TAP_OK(all_ready(pool, 2), "multi-host: connected past a refusing host (new socket while connecting)");
    batch_out_t m = {0};
    db_stmt_t one = {.sql = "SELECT 1"};
    db_batch(pool, &one, 1, on_batch, &m);
    TAP_OK(run_until(&m.done, 5000) && m.err[0][0] == '\0', "multi-host: queries run");
    close_pool(pool, "multi-host");
    free(multi);
}

/* Table names carry the pid, so runs from several build directories can share one server. */
static char *sqlf(const char *fmt, int pid) __attribute__((format(printf, 1, 0)));
static char *sqlf(const char *fmt, int pid)
{
    return xasprintf(fmt, pid, pid);
}

static void test_failing_batch(PGconn *admin)
{
    int pid = (int)getpid();
    char *sql;
#define ADMIN(fmt) (sql = sqlf(fmt, pid), pgtest_exec(admin, sql), free(sql))
#define COUNT(fmt) (sql = sqlf(fmt, pid), count = plain_count(admin, sql), free(sql), count)
    long count;
    ADMIN("CREATE TABLE pool_u_%d (id int PRIMARY KEY)");
    ADMIN("CREATE TABLE pool_d_%d (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)");
    char *ins_u1 = sqlf("INSERT INTO pool_u_%d VALUES (1)", pid),
         *ins_u2 = sqlf("INSERT INTO pool_u_%d VALUES (2)", pid),
         *ins_d1 = sqlf("INSERT INTO pool_d_%d VALUES (1)", pid);
    db_pool_t *pool = make_pool(base_url, 1, 8, 10);
    db_pool_start(pool);

    batch_out_t o = {0};
    db_stmt_t stmts[] = {{.sql = ins_u1}, {.sql = ins_u1}, {.sql = "SELECT 1 AS v"}};
    TAP_OK(db_batch(pool, stmts, 3, on_batch, &o) != NULL, "failing batch: sent");
    TAP_OK(run_until(&o.done, 5000), "failing batch: completed");
    TAP_OK(o.err[0][0] == '\0' && o.has_res[0], "failing batch: the first statement ran");
    TAP_IS_STR(o.sqlstate[1], "23505", "failing batch: the unique violation's SQLSTATE");
    TAP_OK(strstr(o.err[1], "duplicate key") != NULL, "failing batch: the server's message (%s)", o.err[1]);
    TAP_IS_STR(o.err[2], "aborted", "failing batch: the later statement is aborted");
    TAP_IS_INT(COUNT("SELECT count(*) FROM pool_u_%d"), 0, "failing batch: rolled back");

    /* The error comes at the commit (sync), after every statement succeeded. */
    batch_out_t d = {0};
    db_stmt_t dstmts[] = {{.sql = ins_d1}, {.sql = ins_d1}};
    TAP_OK(db_batch(pool, dstmts, 2, on_batch, &d) != NULL, "commit failure: sent");
    TAP_OK(run_until(&d.done, 5000), "commit failure: completed");
    TAP_IS_STR(d.sqlstate[1], "23505", "commit failure: reported on the last statement");
    TAP_IS_INT(COUNT("SELECT count(*) FROM pool_d_%d"), 0, "commit failure: nothing kept");

    /* The connection is still in step: a batch after both failures succeeds. */
    batch_out_t e = {0};
    db_stmt_t estmts[] = {{.sql = ins_u2}, {.sql = "SELECT 2 AS v"}};
    db_batch(pool, estmts, 2, on_batch, &e);
    TAP_OK(run_until(&e.done, 5000) && e.err[0][0] == '\0' && e.err[1][0] == '\0',
           "after failures: batch ok");
    TAP_IS_INT(COUNT("SELECT count(*) FROM pool_u_%d"), 1, "after failures: committed");
    db_pool_stats_t st;
    db_pool_stats(pool, &st);
    TAP_OK(st.failed == 2 && st.completed == 1, "failing batch: stats count 2 failed, 1 completed");
    close_pool(pool, "failing batch");
    ADMIN("DROP TABLE pool_u_%d, pool_d_%d");
#undef ADMIN
#undef COUNT
    free(ins_u1);
    free(ins_u2);
    free(ins_d1);
}

static long terminate_pool_backends(PGconn *admin)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '%s'",
             app_name);
    return plain_count(admin, sql);
}

static void test_reconnect(PGconn *admin)
{
    char *conninfo = pgtest_conninfo(base_url, NULL, app_name);
    db_pool_t *pool = make_pool(conninfo, 2, 4, 100);
    db_pool_prepare(pool, "echo", "SELECT $1::int AS v");
    db_pool_start(pool);
    TAP_OK(all_ready(pool, 2), "reconnect: connected");

    /* In flight when its backend goes away: fails promptly with an error. */
    batch_out_t slow = {0};
    db_stmt_t sleep_stmt = {.sql = "SELECT pg_sleep(3)"};
    db_batch(pool, &sleep_stmt, 1, on_batch, &slow);
    int never = 0;
    run_until(&never, 200);
    uint64_t t0 = time_mono_ms();
    TAP_IS_INT(terminate_pool_backends(admin), 2, "reconnect: both backends terminated");
    TAP_OK(run_until(&slow.done, 2000), "reconnect: the in-flight batch failed");
    TAP_OK(slow.err[0][0] != '\0' && time_mono_ms() - t0 < 2000, "reconnect: with an error (%s)",
           slow.err[0]);

    /* Then the prepared statement works again, on re-prepared connections. */
    int ok = 0;
    for (int attempt = 0; attempt < 100 && !ok; attempt++) {
        int counter = 0;
        slot_t s = {.expect = 42, .counter = &counter};
        const char *p[] = {"42"};
        db_query(pool, "echo", 1, p, on_echo, &s);
        run_until(&counter, 5000);
        ok = s.ok;
        if (!ok)
            run_until(&never, 50);
    }
    TAP_OK(ok, "reconnect: the prepared statement works after reconnecting");
    TAP_OK(all_ready(pool, 2), "reconnect: both connections back");
    db_pool_stats_t st;
    db_pool_stats(pool, &st);
    TAP_OK(st.reconnects >= 2, "reconnect: counted (%llu)", (unsigned long long)st.reconnects);
    close_pool(pool, "reconnect");
    free(conninfo);
}

/* Nothing listens on port 1: connects fail at once and the pool is down. */
static void test_down(void)
{
    db_pool_t *pool = make_pool("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", 2, 4, 10);
    TAP_OK(db_pool_create(&loop, &(db_pool_config_t){.conninfo = "postgresql://%zz"}) == NULL,
           "down: an unparsable URL is refused at create");
    batch_out_t early = {0};
    db_stmt_t stmt = {.sql = "SELECT 1"};
    db_batch(pool, &stmt, 1, on_batch, &early);
    db_pool_start(pool);
    TAP_OK(run_until(&early.done, 3000), "down: a waiting batch fails when the connects fail");
    TAP_IS_STR(early.err[0], "database unavailable", "down: with 'database unavailable'");
    TAP_OK(!db_pool_available(pool), "down: not available");

    batch_out_t later = {0};
    uint64_t t0 = time_mono_ms();
    TAP_OK(db_batch(pool, &stmt, 1, on_batch, &later) != NULL, "down: a new batch is accepted");
    TAP_OK(!later.done, "down: its callback does not run inside db_batch");
    TAP_OK(run_until(&later.done, 1000) && time_mono_ms() - t0 < 500, "down: it fails on the next turn");
    TAP_IS_STR(later.err[0], "database unavailable", "down: with 'database unavailable'");
    close_pool(pool, "down");
}

static void on_never(const db_result_t *results, size_t n, void *data)
{
    (void)results;
    (void)n;
    (*(int *)data)++;
}

static void test_wait_timeout_and_cancel(void)
{
    /* Never started: batches wait, then time out. */
    db_pool_config_t cfg = {.conninfo = base_url, .size = 1, .max_waiting = 10, .wait_timeout_ms = 150};
    db_pool_t *pool = db_pool_create(&loop, &cfg);
    batch_out_t o = {0};
    int cancelled_calls = 0;
    db_stmt_t stmt = {.sql = "SELECT 1"};
    uint64_t t0 = time_mono_ms();
    db_batch(pool, &stmt, 1, on_batch, &o);
    db_query_t *c = db_batch(pool, &stmt, 1, on_never, &cancelled_calls);
    db_query_cancel(c);
    TAP_OK(run_until(&o.done, 2000), "wait timeout: the batch gave up");
    TAP_IS_STR(o.err[0], "timed out waiting for a database connection", "wait timeout: with its message");
    TAP_OK(time_mono_ms() - t0 >= 140, "wait timeout: not before the deadline");
    close_pool(pool, "wait timeout");
    TAP_IS_INT(cancelled_calls, 0, "cancel: a cancelled waiting batch never calls back");
}

typedef struct {
    db_pool_t *pool;
    db_query_t *victim;
    int done, second_done, victim_calls;
    int ok;
} reentry_t;

static void on_second(const db_result_t *results, size_t n, void *data)
{
    reentry_t *r = data;
    r->second_done = 1;
    r->ok = n == 1 && results[0].err == NULL && db_int(results[0].res, 0, "v") == 7;
}

static void on_victim(const db_result_t *results, size_t n, void *data)
{
    (void)results;
    (void)n;
    ((reentry_t *)data)->victim_calls++;
}

/* From inside a callback: cancel a batch in flight behind it and start a new one. */
static void on_first(const db_result_t *results, size_t n, void *data)
{
    (void)results;
    (void)n;
    reentry_t *r = data;
    r->done = 1;
    db_query_cancel(r->victim);
    db_stmt_t stmt = {.sql = "SELECT 7 AS v"};
    db_batch(r->pool, &stmt, 1, on_second, r);
}

static void test_cancel_in_flight(void)
{
    db_pool_t *pool = make_pool(base_url, 1, 4, 10);
    db_pool_start(pool);
    TAP_OK(all_ready(pool, 1), "cancel: connected");
    int cancelled_calls = 0;
    db_stmt_t slow = {.sql = "SELECT pg_sleep(0.2)"};
    db_query_t *q = db_batch(pool, &slow, 1, on_never, &cancelled_calls);
    db_query_cancel(q);
    reentry_t r = {.pool = pool};
    db_stmt_t first = {.sql = "SELECT 1 AS v"}, victim = {.sql = "SELECT pg_sleep(0.1)"};
    db_batch(pool, &first, 1, on_first, &r);
    r.victim = db_batch(pool, &victim, 1, on_victim, &r);
    TAP_OK(run_until(&r.second_done, 5000), "cancel: the batch started from a callback completed");
    TAP_OK(r.ok, "cancel: with its own result, after the cancelled ones were read and dropped");
    TAP_IS_INT(cancelled_calls, 0, "cancel: a cancelled in-flight batch never calls back");
    TAP_IS_INT(r.victim_calls, 0, "cancel: a batch cancelled from a callback never calls back");
    close_pool(pool, "cancel");
}

typedef struct {
    db_pool_t *pool;
    batch_out_t slow, waiting;
    int closed;
} closing_t;

static void test_close_drains(void)
{
    closing_t c = {0};
    c.pool = make_pool(base_url, 1, 1, 10);
    db_pool_start(c.pool);
    TAP_OK(all_ready(c.pool, 1), "close: connected");
    db_stmt_t slow = {.sql = "SELECT pg_sleep(0.2) IS NULL AS v"}, fast = {.sql = "SELECT 1"};
    db_batch(c.pool, &slow, 1, on_batch, &c.slow);
    db_batch(c.pool, &fast, 1, on_batch, &c.waiting);
    db_pool_close(c.pool, on_pool_closed, &c.closed);
    TAP_OK(db_batch(c.pool, &fast, 1, on_batch, &c.waiting) == NULL, "close: db_batch refuses while closing");
    TAP_OK(!c.waiting.done && !c.slow.done, "close: no callback inside db_pool_close");
    TAP_OK(run_until(&c.closed, 5000), "close: closed");
    TAP_IS_STR(c.waiting.err[0], "pool closing", "close: the waiting batch failed with 'pool closing'");
    TAP_OK(c.slow.done && c.slow.err[0][0] == '\0', "close: the in-flight batch finished (%s)",
           c.slow.err[0]);
}

/* ---- migrations ---- */

static const migration_t fixtures[] = {
    {1, "0001_one.sql", "CREATE TABLE one (id int PRIMARY KEY);\nINSERT INTO one VALUES (1), (2);"},
    {2, "0002_two.sql", "CREATE TABLE two (id int REFERENCES one);"},
    {3, "0003_three.sql", "ALTER TABLE two ADD COLUMN note text; CREATE INDEX two_note ON two (note);"},
};

typedef struct {
    const char *conninfo;
    int applied, rc;
    char err[300];
} migrator_t;

static void *run_migrator(void *arg)
{
    migrator_t *m = arg;
    m->rc = migrate_apply(m->conninfo, fixtures, 3, &m->applied, m->err, sizeof(m->err));
    return NULL;
}

static void test_migrate(PGconn *admin)
{
    char dbname[3][64];
    for (int i = 0; i < 3; i++) {
        snprintf(dbname[i], sizeof(dbname[i]), "inkloop_test_migrate_%d_%d", (int)getpid(), i);
        char sql[300];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname[i]);
        pgtest_exec(admin, sql);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname[i]);
        pgtest_exec(admin, sql);
    }
    char *ci0 = pgtest_conninfo(base_url, dbname[0], NULL), *ci1 = pgtest_conninfo(base_url, dbname[1], NULL),
         *ci2 = pgtest_conninfo(base_url, dbname[2], NULL);
    char err[300] = "";
    int applied = -1;
#define RESET_ERR() (err[0] = '\0')

    RESET_ERR();
    TAP_IS_INT(migrate_apply(ci0, fixtures, 3, &applied, err, sizeof(err)), 0, "migrate: fixtures apply (%s)",
               err);
    TAP_IS_INT(applied, 3, "migrate: three applied");
    TAP_IS_INT(migrate_apply(ci0, fixtures, 3, &applied, err, sizeof(err)), 0,
               "migrate: second run succeeds");
    TAP_IS_INT(applied, 0, "migrate: second run applies nothing");

    migration_t broken[] = {
        fixtures[0],
        fixtures[1],
        fixtures[2],
        {4, "0004_broken.sql", "CREATE TABLE four (id int); SELECT * FROM missing_table;"}};
    TAP_IS_INT(migrate_apply(ci0, broken, 4, &applied, err, sizeof(err)), -1,
               "migrate: a failing file fails");
    TAP_OK(strstr(err, "0004_broken.sql") != NULL && strstr(err, "missing_table") != NULL,
           "migrate: the error names the file and the server's message (%s)", err);
    PGconn *scratch = pgtest_connect(ci0);
    TAP_IS_INT(plain_count(scratch, "SELECT count(*) FROM pg_tables WHERE tablename = 'four'"), 0,
               "migrate: the failing file's transaction rolled back");
    TAP_IS_INT(plain_count(scratch, "SELECT count(*) FROM schema_migrations"), 3, "migrate: three recorded");
    PQfinish(scratch);
    migration_t unsorted[] = {fixtures[1], fixtures[0]};
    TAP_IS_INT(migrate_apply(ci0, unsorted, 2, &applied, err, sizeof(err)), -1,
               "migrate: unsorted list refused");

    /* Two migrators at once on a fresh database: each file applied once. */
    migrator_t m[2] = {{.conninfo = ci1}, {.conninfo = ci1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, run_migrator, &m[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    TAP_OK(m[0].rc == 0 && m[1].rc == 0, "concurrent migrate: both succeed (%s%s)", m[0].err, m[1].err);
    TAP_IS_INT(m[0].applied + m[1].applied, 3, "concurrent migrate: three applied in all");
    scratch = pgtest_connect(ci1);
    TAP_IS_INT(plain_count(scratch, "SELECT count(*) FROM schema_migrations"), 3,
               "concurrent migrate: 3 rows");
    TAP_IS_INT(plain_count(scratch, "SELECT count(*) FROM one"), 2, "concurrent migrate: data inserted once");
    PQfinish(scratch);

    /* The migrations compiled in from sql/. */
    RESET_ERR();
    TAP_IS_INT(db_migrate(ci2, &applied, err, sizeof(err)), 0, "db_migrate: sql/ applies (%s)", err);
    TAP_IS_INT(applied, (int)migration_count, "db_migrate: every compiled-in migration applied");
    TAP_IS_INT(db_migrate(ci2, &applied, err, sizeof(err)), 0, "db_migrate: second run succeeds");
    TAP_IS_INT(applied, 0, "db_migrate: second run applies nothing");
    TAP_IS_INT(db_migrate("postgresql://nobody@127.0.0.1:1/none", &applied, err, sizeof(err)), -1,
               "db_migrate: unreachable server fails");
    TAP_OK(strstr(err, "connecting to database") != NULL, "db_migrate: and says so (%s)", err);

    for (int i = 0; i < 3; i++) {
        char sql[300];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname[i]);
        pgtest_exec(admin, sql);
    }
    free(ci0);
    free(ci1);
    free(ci2);
}

int main(void)
{
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
    snprintf(app_name, sizeof(app_name), "inkloop_pool_test_%d", (int)getpid());
    if (uv_loop_init(&loop) != 0)
        return 1;
    PGconn *admin = pgtest_connect(base_url);
    pgtest_exec(admin, "SET client_min_messages = warning");

    test_fifo_pairing(3, 4, 400);
    test_fifo_pairing(2, 200, 50);
    test_session_options();
    test_failing_batch(admin);
    test_reconnect(admin);
    test_down();
    test_wait_timeout_and_cancel();
    test_cancel_in_flight();
    test_close_drains();
    test_migrate(admin);

    PQfinish(admin);
    uv_run(&loop, UV_RUN_DEFAULT);
    TAP_IS_INT(uv_loop_close(&loop), 0, "every handle closed (uv_loop_close == 0)");
    return tap_done();
}
