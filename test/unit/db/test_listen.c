/* The LISTEN connection (src/db/listen.h) on the connection machine, against a real PostgreSQL
 * (INKLOOP_TEST_DATABASE_URL): the session SQL runs on every connect (the job runner's liveness lock), a
 * failing session SQL keeps the listener from reporting ready, the keepalive, and closing before start,
 * while connecting and while backing off. The last check is uv_loop_close() == 0. */
#include "db/listen.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "pgtest.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uv_loop_t loop;
static const char *base_url;
static PGconn *admin;

static int run_until(const int *flag, int want, int timeout_ms)
{
    uint64_t end = time_mono_ms() + (uint64_t)timeout_ms;
    while (*flag < want && time_mono_ms() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    return *flag >= want;
}

static long plain_count(const char *sql)
{
    PGresult *r = PQexec(admin, sql);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

typedef struct {
    int ready, reconnected, notes, closed;
} out_t;

static void on_notify(const char *channel, const char *payload, void *data)
{
    (void)channel;
    (void)payload;
    ((out_t *)data)->notes++;
}

static void on_listening(int reconnected, void *data)
{
    out_t *o = data;
    o->ready++;
    o->reconnected += reconnected;
}

static void on_closed(void *data)
{
    ((out_t *)data)->closed++;
}

static void close_listener(db_listen_t *l, out_t *o, const char *what)
{
    db_listen_close(l, on_closed, o);
    TAP_IS_INT(o->closed, 0, "%s: the close callback waits for a later loop turn", what);
    TAP_OK(run_until(&o->closed, 1, 3000), "%s: closed", what);
}

static long locks_held(const char *app)
{
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE "
             "a.application_name = '%s' AND l.locktype = 'advisory' AND l.classid = 4242 AND l.objid = 7 "
             "AND l.granted",
             app);
    return plain_count(sql);
}

static void test_session_sql(void)
{
    char app[64];
    snprintf(app, sizeof(app), "inkloop_listen_sql_%d", (int)getpid());
    char *ci = pgtest_conninfo(base_url, NULL, app);
    out_t o = {0};
    db_listen_config_t cfg = {.conninfo = ci,
                              .keepalive_ms = 50,
                              .backoff_min_ms = 20,
                              .backoff_max_ms = 100,
                              .session_sql = "SELECT pg_advisory_lock(4242, 7)"};
    db_listen_t *l = db_listen_create(&loop, &cfg, on_notify, on_listening, &o);
    TAP_OK(l != NULL && db_listen_add(l, "inkloop_listen_test") == 0, "session sql: created");
    db_listen_start(l);
    TAP_OK(run_until(&o.ready, 1, 5000), "session sql: listening");
    TAP_IS_INT(locks_held(app), 1, "session sql: the session lock is held once listening");
    /* Several keepalive periods: the keepalive is answered and the connection stays. */
    int never = 0;
    run_until(&never, 1, 300);
    TAP_OK(db_listen_ready(l) && o.ready == 1, "session sql: keepalives answered, still ready");
    pgtest_exec(admin, "NOTIFY inkloop_listen_test");
    TAP_OK(run_until(&o.notes, 1, 2000), "session sql: a notification arrives");

    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '%s'",
             app);
    TAP_IS_INT(plain_count(sql), 1, "session sql: backend terminated");
    TAP_OK(run_until(&o.reconnected, 1, 5000), "session sql: reconnected");
    TAP_IS_INT(locks_held(app), 1, "session sql: the lock is taken again on the new session");
    close_listener(l, &o, "session sql");
    free(ci);
}

/* Session SQL that fails: never ready, retried with backoff; closed while it retries. */
static void test_failing_session_sql(void)
{
    out_t o = {0};
    db_listen_config_t cfg = {.conninfo = base_url,
                              .backoff_min_ms = 20,
                              .backoff_max_ms = 40,
                              .session_sql = "SELECT inkloop_no_such_function()"};
    db_listen_t *l = db_listen_create(&loop, &cfg, on_notify, on_listening, &o);
    db_listen_start(l);
    int never = 0;
    run_until(&never, 1, 500);
    TAP_IS_INT(o.ready, 0, "failing session sql: on_listening never runs");
    TAP_OK(!db_listen_ready(l), "failing session sql: not ready");
    close_listener(l, &o, "failing session sql");
}

static void test_close_states(void)
{
    out_t a = {0};
    db_listen_config_t cfg = {.conninfo = base_url};
    db_listen_t *l = db_listen_create(&loop, &cfg, on_notify, on_listening, &a);
    close_listener(l, &a, "close before start");

    out_t b = {0};
    l = db_listen_create(&loop, &cfg, on_notify, on_listening, &b);
    db_listen_start(l);
    close_listener(l, &b, "close while connecting");
    TAP_IS_INT(b.ready, 0, "close while connecting: on_listening never runs");

    out_t c = {0};
    db_listen_config_t down = {
        .conninfo = "postgresql://nobody@127.0.0.1:1/none", .backoff_min_ms = 20, .backoff_max_ms = 40};
    l = db_listen_create(&loop, &down, on_notify, on_listening, &c);
    db_listen_start(l);
    int never = 0;
    run_until(&never, 1, 200);
    TAP_OK(!db_listen_ready(l), "unreachable: not ready");
    close_listener(l, &c, "close while backing off");

    TAP_OK(db_listen_create(&loop, &(db_listen_config_t){.conninfo = "postgresql://%zz"}, on_notify, NULL,
                            NULL) == NULL,
           "an unparsable conninfo is refused at create");
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
    if (uv_loop_init(&loop) != 0)
        return 1;
    admin = pgtest_connect(base_url);
    test_session_sql();
    test_failing_session_sql();
    test_close_states();
    PQfinish(admin);
    uv_run(&loop, UV_RUN_DEFAULT);
    TAP_IS_INT(uv_loop_close(&loop), 0, "every handle closed (uv_loop_close == 0)");
    return tap_done();
}
