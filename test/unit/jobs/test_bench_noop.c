/* The bench-only no-op job kind (src/jobs/bench_noop.c) against a real PostgreSQL
 * (INKLOOP_TEST_DATABASE_URL).
 *
 * Off by default (the kind stays free to register), refused with a bad INKLOOP_BENCH_NOOP or an unopenable
 * INKLOOP_BENCH_NOOP_LOG, and with INKLOOP_BENCH_NOOP=1 a runner drains queued bench_noop jobs to done, one
 * attempt each, writing one "<id> <seconds>" line per start to the log. */
#include "core/log.h"
#include "db/db.h"
#include "db/migrate.h"
#include "jobs/bench_noop.h"
#include "jobs/queue.h"
#include "pgtest.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uv_loop_t loop;
static char *test_conninfo;
static PGconn *tdb;

static int timed_out;

static void on_run_timeout(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

static void run_for(int ms)
{
    uv_timer_t t;
    timed_out = 0;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_run_timeout, (uint64_t)ms, 0);
    while (!timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static long count(const char *sql)
{
    PGresult *r = PQexec(tdb, sql);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        printf("# %s: %s", sql, PQerrorMessage(tdb));
    PQclear(r);
    return n;
}

static void on_flag(void *data)
{
    (*(int *)data)++;
}

static void run_until_flag(const int *flag)
{
    for (int i = 0; i < 200 && !*flag; i++)
        run_for(50);
}

static void on_start(jobs_job_t *job, void *data)
{
    (void)data;
    jobs_done(job);
}

static void on_cancel(jobs_job_t *job, void *data)
{
    (void)job;
    (void)data;
}

static db_pool_t *pool;

static jobs_runner_t *make_runner(void)
{
    jobs_config_t cfg = {.conninfo = test_conninfo, .concurrency = 4, .poll_interval_ms = 100};
    jobs_runner_t *r = jobs_runner_create(&loop, pool, &cfg);
    if (r == NULL) {
        printf("Bail out! jobs_runner_create failed\n");
        exit(1);
    }
    return r;
}

static void stop_runner(jobs_runner_t *r)
{
    int stopped = 0;
    jobs_runner_stop(r, on_flag, &stopped);
    run_until_flag(&stopped);
    TAP_OK(stopped, "runner stopped");
}

static void test_off_and_refused(void)
{
    jobs_runner_t *r = make_runner();
    unsetenv("INKLOOP_BENCH_NOOP");
    TAP_IS_INT(jobs_bench_noop_start(r), 0, "unset: nothing to do");
    setenv("INKLOOP_BENCH_NOOP", "0", 1);
    TAP_IS_INT(jobs_bench_noop_start(r), 0, "0: nothing to do");
    TAP_IS_INT(jobs_register(r, JOBS_BENCH_NOOP_KIND, on_start, on_cancel, 0, NULL), 0,
               "off: the kind was not registered (registering it by hand works)");
    jobs_runner_t *r2 = make_runner();
    setenv("INKLOOP_BENCH_NOOP", "yes", 1);
    TAP_IS_INT(jobs_bench_noop_start(r2), -1, "INKLOOP_BENCH_NOOP=yes is refused");
    setenv("INKLOOP_BENCH_NOOP", "1", 1);
    setenv("INKLOOP_BENCH_NOOP_LOG", "/nonexistent-dir/starts.log", 1);
    TAP_IS_INT(jobs_bench_noop_start(r2), -1, "an unopenable INKLOOP_BENCH_NOOP_LOG is refused");
    jobs_bench_noop_close();
    unsetenv("INKLOOP_BENCH_NOOP_LOG");
    /* Never started: stopping just closes them. */
    stop_runner(r);
    stop_runner(r2);
}

static void test_drains(void)
{
    char path[] = "/tmp/inkloop-test-bench-noop.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        printf("Bail out! mkstemp failed\n");
        exit(1);
    }
    close(fd);
    setenv("INKLOOP_BENCH_NOOP", "1", 1);
    setenv("INKLOOP_BENCH_NOOP_LOG", path, 1);
    jobs_runner_t *r = make_runner();
    TAP_IS_INT(jobs_bench_noop_start(r), 0, "INKLOOP_BENCH_NOOP=1: registered");
    TAP_IS_INT(jobs_register(r, JOBS_BENCH_NOOP_KIND, on_start, on_cancel, 0, NULL), -1,
               "on: the kind is taken (a second registration is refused)");
    pgtest_exec(tdb, "INSERT INTO jobs (kind, payload) SELECT 'bench_noop', jsonb_build_object('i', i) "
                     "FROM generate_series(1, 25) AS i");
    jobs_runner_start(r);
    for (int i = 0; i < 200 && count("SELECT count(*) FROM jobs WHERE state <> 'done'") != 0; i++)
        run_for(50);
    TAP_IS_INT(
        count("SELECT count(*) FROM jobs WHERE kind = 'bench_noop' AND state = 'done' AND attempts = 1"), 25,
        "every bench_noop job is done after one attempt");
    stop_runner(r);
    jobs_bench_noop_close();

    /* One line per job, with its id and a time no earlier than the job's creation (same host clock, seconds).
     */
    FILE *f = fopen(path, "r");
    TAP_OK(f != NULL, "the start log exists");
    char ids[4096] = "";
    int lines = 0, bad = 0;
    long long id;
    double at;
    double created = (double)count("SELECT floor(extract(epoch FROM min(created_at)))::bigint FROM jobs");
    while (f != NULL && fscanf(f, "%lld %lf\n", &id, &at) == 2) {
        lines++;
        if (at < created)
            bad++;
        size_t len = strlen(ids);
        snprintf(ids + len, sizeof(ids) - len, "%s%lld", len ? "," : "", id);
    }
    if (f != NULL)
        fclose(f);
    TAP_IS_INT(lines, 25, "one start line per job");
    TAP_IS_INT(bad, 0, "start times are wall-clock seconds after the jobs were created");
    char sql[4200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM jobs WHERE id IN (%s)", lines ? ids : "0");
    TAP_IS_INT(count(sql), 25, "the lines name the 25 jobs");
    unlink(path);
    unsetenv("INKLOOP_BENCH_NOOP");
    unsetenv("INKLOOP_BENCH_NOOP_LOG");
}

int main(void)
{
    const char *base_url = getenv("INKLOOP_TEST_DATABASE_URL");
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
    PGconn *admin = pgtest_connect(base_url);
    pgtest_exec(admin, "SET client_min_messages = warning");
    char dbname[64], sql[256];
    snprintf(dbname, sizeof(dbname), "inkloop_test_bench_noop_%d", (int)getpid());
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
    pgtest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    pgtest_exec(admin, sql);
    test_conninfo = pgtest_conninfo(base_url, dbname, NULL);
    char err[512];
    int applied = 0;
    TAP_IS_INT(db_migrate(test_conninfo, &applied, err, sizeof(err)), 0, "schema applied (%s)", err);
    tdb = pgtest_connect(test_conninfo);
    pgtest_exec(tdb, JOBS_BENCH_NOOP_SCHEMA_SQL);
    db_pool_config_t pc = {.conninfo = test_conninfo, .size = 2, .max_waiting = 100};
    pool = db_pool_create(&loop, &pc);
    if (pool == NULL) {
        printf("Bail out! db_pool_create failed\n");
        return 1;
    }
    if (jobs_prepare(pool) != 0) {
        printf("Bail out! jobs_prepare failed\n");
        return 1;
    }
    db_pool_start(pool);

    test_off_and_refused();
    test_drains();

    int closed = 0;
    db_pool_close(pool, on_flag, &closed);
    run_until_flag(&closed);
    TAP_OK(closed, "pool closed");
    uv_run(&loop, UV_RUN_DEFAULT);
    TAP_IS_INT(uv_loop_close(&loop), 0, "every handle closed (uv_loop_close == 0)");
    PQfinish(tdb);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    pgtest_exec(admin, sql);
    PQfinish(admin);
    free(test_conninfo);
    return tap_done();
}
