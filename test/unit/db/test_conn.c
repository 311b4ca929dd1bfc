/* The libpq connection machine (src/db/conn.h) on its own: every state, its deadlines, losing the
 * connection, backing off, reconnecting, and closing in each state and from inside each hook. Servers: the
 * throwaway PostgreSQL (INKLOOP_TEST_DATABASE_URL), port 1 on loopback (refuses), and a socket of ours that
 * accepts connections but never answers. The last check is uv_loop_close() == 0: every handle was closed. */
#include "db/conn.h"
#include "db/db.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "pgtest.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uv_loop_t loop;
static const char *base_url;
static char app_name[64];

/* ---- running the loop ---- */

static int timed_out;

static void on_run_timeout(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
}

/* Runs the loop until *flag reaches want or timeout_ms pass; returns whether it did. */
static int run_until(const int *flag, int want, int timeout_ms)
{
    uv_timer_t t;
    timed_out = 0;
    if (uv_timer_init(&loop, &t) != 0 || uv_timer_start(&t, on_run_timeout, (uint64_t)timeout_ms, 0) != 0) {
        printf("Bail out! test timer\n");
        exit(1);
    }
    while (*flag < want && !timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *flag >= want;
}

static int run_until_state(const pgconn_t *c, pgconn_state_t want, int timeout_ms)
{
    uint64_t end = time_mono_ms() + (uint64_t)timeout_ms;
    while (c->state != want && time_mono_ms() < end) {
        int never = 0;
        run_until(&never, 1, 5);
    }
    return c->state == want;
}

static void run_for(int ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

/* ---- an owner that records what the machine tells it ---- */

enum { CLOSE_NEVER, CLOSE_IN_CONNECT, CLOSE_IN_READABLE, CLOSE_IN_LOST, CLOSE_IN_DEADLINE };

typedef struct {
    pgconn_t pc;
    int ready_on_connect; /* call pgconn_ready from on_connect */
    int close_in;         /* which hook closes the connection */
    int closing;          /* pgconn_close was called */
    int connects, readables, deadlines, losts, closed, results;
    int lost_ready;
    int hooks_after_close; /* must stay 0 */
    int closed_inside;     /* on_closed ran inside pgconn_close: must stay 0 */
    uint64_t lost_at[8];
    char err[300];
} owner_t;

static void owner_close(owner_t *o)
{
    o->closing = 1;
    pgconn_close(&o->pc);
    o->closed_inside += o->closed; /* on_closed must wait for a later loop turn */
}

static void on_connect(pgconn_t *pc)
{
    owner_t *o = pc->data;
    o->hooks_after_close += o->closing;
    o->connects++;
    if (o->close_in == CLOSE_IN_CONNECT)
        owner_close(o);
    else if (o->ready_on_connect)
        pgconn_ready(pc);
}

static void on_readable(pgconn_t *pc)
{
    owner_t *o = pc->data;
    o->hooks_after_close += o->closing;
    o->readables++;
    while (pc->pg != NULL && !PQisBusy(pc->pg)) {
        PGresult *res = PQgetResult(pc->pg);
        if (res == NULL)
            break;
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            o->results++;
        PQclear(res);
    }
    if (o->close_in == CLOSE_IN_READABLE)
        owner_close(o);
}

static void on_deadline(pgconn_t *pc)
{
    owner_t *o = pc->data;
    o->hooks_after_close += o->closing;
    o->deadlines++;
    if (o->close_in == CLOSE_IN_DEADLINE)
        owner_close(o);
}

static void on_lost(pgconn_t *pc, const char *err, int was_ready)
{
    owner_t *o = pc->data;
    o->hooks_after_close += o->closing;
    if (o->losts < 8)
        o->lost_at[o->losts] = time_mono_ms();
    o->losts++;
    o->lost_ready = was_ready;
    snprintf(o->err, sizeof(o->err), "%s", err);
    if (pc->pg != NULL)
        o->err[0] = '!'; /* the PGconn must be finished before on_lost */
    if (o->close_in == CLOSE_IN_LOST)
        owner_close(o);
}

static void on_closed(pgconn_t *pc)
{
    owner_t *o = pc->data;
    o->closed++;
}

static const pgconn_hooks_t hooks = {
    .on_connect = on_connect,
    .on_readable = on_readable,
    .on_deadline = on_deadline,
    .on_lost = on_lost,
    .on_closed = on_closed,
};

static void owner_init(owner_t *o, const char *conninfo, int connect_timeout_ms)
{
    pgconn_config_t cfg = {
        .conninfo = conninfo,
        .application_name = "inkloop-conn-test",
        .name = "test connection",
        .target = "test",
        .action = "testing the connection machine",
        .connect_timeout_ms = connect_timeout_ms,
        .backoff_min_ms = 40,
        .backoff_max_ms = 160,
    };
    pgconn_init(&o->pc, &loop, &cfg, &hooks, o);
}

/* Closes (unless the test did), waits for on_closed, and checks nothing ran after pgconn_close. */
static void owner_finish(owner_t *o, const char *what)
{
    if (!o->closing) {
        owner_close(o);
        TAP_OK(o->closed == 0, "%s: on_closed does not run inside pgconn_close", what);
    }
    TAP_IS_INT(o->pc.state, PGCONN_CLOSED, "%s: state closed", what);
    TAP_OK(run_until(&o->closed, 1, 2000), "%s: on_closed ran", what);
    run_for(30);
    TAP_IS_INT(o->closed, 1, "%s: on_closed ran once", what);
    TAP_IS_INT(o->hooks_after_close, 0, "%s: no hook ran after pgconn_close", what);
    TAP_IS_INT(o->closed_inside, 0, "%s: on_closed ran on a later loop turn", what);
}

/* A socket that accepts (the kernel completes the handshake from the backlog) and never says a word. */
static int silent_server(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        printf("Bail out! cannot open the silent server\n");
        exit(1);
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* ---- sections without a server ---- */

static void test_helpers(void)
{
    char *m = pgconn_message("FATAL:  terminating connection\nHINT:\tretry\n  later\n");
    TAP_IS_STR(m, "FATAL:  terminating connection HINT:\tretry later", "message: one line");
    free(m);
    m = pgconn_message(NULL);
    TAP_IS_STR(m, "unknown error", "message: NULL says unknown error");
    free(m);
    char *opts = NULL;
    char *t =
        pgconn_describe("postgresql://bob:secret@db.example:5433/app?options=-c%20x%3D1", "testing", &opts);
    TAP_IS_STR(t, "bob@db.example:5433/app", "describe: user@host:port/db");
    TAP_OK(t != NULL && strstr(t, "secret") == NULL, "describe: never the password");
    TAP_IS_STR(opts, "-c x=1", "describe: the conninfo's own options");
    free(t);
    free(opts);
    t = pgconn_describe("host=/run/pg dbname=x", "testing", NULL);
    TAP_IS_STR(t, "/run/pg/x", "describe: key=value form");
    free(t);
    TAP_OK(pgconn_describe("postgresql://%zz", "testing", NULL) == NULL,
           "describe: unparsable conninfo: NULL");
    uint32_t a = 0, b = 0;
    uint32_t x = db_jitter_next(&a), y = db_jitter_next(&a);
    TAP_OK(a != 0 && x != y, "jitter: seeded on first use, then moves on");
    b = 12345;
    uint32_t c = 12345;
    TAP_IS_INT(db_jitter_next(&b), db_jitter_next(&c), "jitter: deterministic from a given state");
    TAP_IS_STR(pgconn_state_name(PGCONN_BACKOFF), "backoff", "state names from the X-macro");
}

/* Never started: closing from idle closes the timer. */
static void test_close_idle(void)
{
    owner_t o = {0};
    owner_init(&o, "postgresql://nobody@127.0.0.1:1/none", 500);
    TAP_IS_INT(o.pc.state, PGCONN_IDLE, "idle: a new machine is idle");
    owner_finish(&o, "close idle");
    TAP_IS_INT(o.connects + o.losts, 0, "close idle: no hook");
}

/* Port 1 refuses: each connect fails, on_lost says it never was ready, and the delays grow with jitter. */
static void test_backoff(void)
{
    owner_t o = {0};
    owner_init(&o, "postgresql://nobody@127.0.0.1:1/none", 2000);
    pgconn_start(&o.pc);
    TAP_OK(run_until(&o.losts, 4, 3000), "backoff: four failed attempts");
    TAP_OK(!o.lost_ready, "backoff: never ready");
    TAP_OK(o.err[0] != '!', "backoff: the PGconn was finished before on_lost");
    TAP_OK(strstr(o.err, "connecting") != NULL, "backoff: the error says what failed (%s)", o.err);
    TAP_IS_INT(o.pc.attempts, 4, "backoff: attempts counted");
    /* Delays before attempts 2, 3, 4: 40, 80, 160 nominal; equal jitter keeps at least half of each. */
    uint64_t d1 = o.lost_at[1] - o.lost_at[0], d3 = o.lost_at[3] - o.lost_at[2];
    TAP_OK(d1 >= 19 && d1 < 2000, "backoff: first delay at least 20 ms, the least of [20, 40] (%llu)",
           (unsigned long long)d1);
    TAP_OK(d3 >= 79, "backoff: third delay at least 80 ms (%llu)", (unsigned long long)d3);
    TAP_IS_INT(o.pc.state, PGCONN_BACKOFF, "backoff: waiting for the delay between attempts");
    TAP_IS_INT(o.connects, 0, "backoff: on_connect never ran");
    owner_finish(&o, "close in backoff");
}

/* A server that never answers: the connect deadline fails the attempt; closing while connecting works. */
static void test_connect_timeout(void)
{
    int port;
    int fd = silent_server(&port);
    char ci[128];
    snprintf(ci, sizeof(ci), "postgresql://nobody@127.0.0.1:%d/none?sslmode=disable", port);
    owner_t o = {0};
    owner_init(&o, ci, 150);
    uint64_t t0 = time_mono_ms();
    pgconn_start(&o.pc);
    TAP_IS_INT(o.pc.state, PGCONN_CONNECTING, "connect timeout: connecting");
    TAP_OK(run_until(&o.losts, 1, 3000), "connect timeout: the attempt failed");
    uint64_t took = time_mono_ms() - t0;
    TAP_OK(took >= 140 && took < 3000, "connect timeout: at the deadline (%llu ms)",
           (unsigned long long)took);
    TAP_OK(strstr(o.err, "timed out") != NULL, "connect timeout: says timed out (%s)", o.err);
    /* The next attempt: closed while it waits for the silent server. */
    TAP_OK(run_until_state(&o.pc, PGCONN_CONNECTING, 1000), "connect timeout: reconnecting after the delay");
    owner_finish(&o, "close while connecting");
    close(fd);
}

/* ---- sections against PostgreSQL ---- */

static long plain_count(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

static long terminate_backends(PGconn *admin)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '%s'",
             app_name);
    return plain_count(admin, sql);
}

static void send_select(owner_t *o, const char *sql)
{
    TAP_OK(PQsendQuery(o->pc.pg, sql) == 1, "sent %s", sql);
    TAP_IS_INT(pgconn_flush(&o->pc), 0, "flushed %s", sql);
}

/* Connect, setup, ready; a query through on_readable; the owner's deadline; lost and reconnected. */
static void test_lifecycle(PGconn *admin, const char *ci)
{
    owner_t o = {.ready_on_connect = 1};
    owner_init(&o, ci, 5000);
    pgconn_start(&o.pc);
    TAP_OK(run_until(&o.connects, 1, 5000), "lifecycle: on_connect ran");
    TAP_IS_INT(o.pc.state, PGCONN_READY, "lifecycle: ready after pgconn_ready");
    TAP_IS_INT(o.pc.ever_ready, 1, "lifecycle: ever ready");
    TAP_IS_INT(PQisnonblocking(o.pc.pg), 1, "lifecycle: the connection is nonblocking");
    send_select(&o, "SELECT 1");
    TAP_OK(run_until(&o.results, 1, 5000), "lifecycle: the result arrived through on_readable");

    uint64_t t0 = time_mono_ms();
    pgconn_set_deadline(&o.pc, 60);
    TAP_OK(run_until(&o.deadlines, 1, 2000), "lifecycle: on_deadline ran");
    TAP_OK(time_mono_ms() - t0 >= 55, "lifecycle: not before the deadline");
    pgconn_set_deadline(&o.pc, 50);
    pgconn_clear_deadline(&o.pc);
    run_for(120);
    TAP_IS_INT(o.deadlines, 1, "lifecycle: a cleared deadline does not fire");

    TAP_IS_INT(terminate_backends(admin), 1, "lifecycle: backend terminated");
    TAP_OK(run_until(&o.losts, 1, 3000), "lifecycle: on_lost ran");
    TAP_OK(o.lost_ready, "lifecycle: it was ready");
    TAP_OK(o.err[0] != '!', "lifecycle: the PGconn was finished before on_lost (%s)", o.err);
    TAP_IS_INT(o.pc.state, PGCONN_BACKOFF, "lifecycle: backing off");
    TAP_OK(run_until(&o.connects, 2, 5000), "lifecycle: reconnected (on_connect again)");
    TAP_IS_INT(o.pc.state, PGCONN_READY, "lifecycle: ready again");
    TAP_IS_INT(o.pc.attempts, 0, "lifecycle: attempts reset once ready");
    send_select(&o, "SELECT 2");
    TAP_OK(run_until(&o.results, 2, 5000), "lifecycle: queries work on the new connection");

    pgconn_fail(&o.pc, "testing", "an owner's reason");
    TAP_IS_INT(o.losts, 2, "lifecycle: pgconn_fail runs on_lost before it returns");
    TAP_IS_STR(o.err, "testing: an owner's reason", "lifecycle: with the owner's words");
    owner_finish(&o, "close in backoff after a loss");
}

/* The owner never finishes its setup: the connect deadline covers it. Then closing during setup. */
static void test_setup_timeout(const char *ci)
{
    owner_t o = {0};
    owner_init(&o, ci, 300);
    pgconn_start(&o.pc);
    TAP_OK(run_until(&o.connects, 1, 5000), "setup: on_connect ran");
    TAP_IS_INT(o.pc.state, PGCONN_SETUP, "setup: waiting for the owner");
    TAP_OK(run_until(&o.losts, 1, 3000), "setup: the deadline failed it");
    TAP_OK(strstr(o.err, "setting up the session: timed out") != NULL, "setup: says so (%s)", o.err);
    TAP_OK(run_until(&o.connects, 2, 5000), "setup: connected again");
    owner_finish(&o, "close during setup");
}

/* A first host that refuses, then the real one: libpq changes sockets while connecting. */
static void test_second_host(const char *ci)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(ci, &errmsg);
    const char *host = "127.0.0.1", *port = "5432";
    for (PQconninfoOption *p = opts; p->keyword != NULL; p++) {
        if (strcmp(p->keyword, "host") == 0 && p->val != NULL)
            host = p->val;
        if (strcmp(p->keyword, "port") == 0 && p->val != NULL)
            port = p->val;
    }
    char *two = xasprintf("%s host=127.0.0.1,%s port=1,%s", ci, host, port);
    PQconninfoFree(opts);
    owner_t o = {.ready_on_connect = 1};
    owner_init(&o, two, 5000);
    pgconn_start(&o.pc);
    TAP_OK(run_until(&o.connects, 1, 5000), "second host: connected past the refusing first host");
    TAP_IS_INT(o.losts, 0, "second host: no attempt failed");
    send_select(&o, "SELECT 1");
    TAP_OK(run_until(&o.results, 1, 5000), "second host: the connection works (%s)", PQhost(o.pc.pg));
    owner_finish(&o, "close when ready");
    free(two);
}

/* Closing from inside each hook. */
static void test_close_in_hooks(PGconn *admin, const char *ci)
{
    owner_t a = {.close_in = CLOSE_IN_CONNECT};
    owner_init(&a, ci, 5000);
    pgconn_start(&a.pc);
    TAP_OK(run_until(&a.closed, 1, 5000), "close in on_connect: closed");
    owner_finish(&a, "close in on_connect");

    owner_t b = {.ready_on_connect = 1, .close_in = CLOSE_IN_READABLE};
    owner_init(&b, ci, 5000);
    pgconn_start(&b.pc);
    TAP_OK(run_until(&b.connects, 1, 5000), "close in on_readable: ready");
    send_select(&b, "SELECT 1");
    TAP_OK(run_until(&b.closed, 1, 5000), "close in on_readable: closed");
    owner_finish(&b, "close in on_readable");

    owner_t c = {.ready_on_connect = 1, .close_in = CLOSE_IN_LOST};
    owner_init(&c, ci, 5000);
    pgconn_start(&c.pc);
    TAP_OK(run_until(&c.connects, 1, 5000), "close in on_lost: ready");
    terminate_backends(admin);
    TAP_OK(run_until(&c.closed, 1, 5000), "close in on_lost: closed");
    TAP_IS_INT(c.losts, 1, "close in on_lost: lost once, no backoff after");
    owner_finish(&c, "close in on_lost");

    owner_t d = {.ready_on_connect = 1, .close_in = CLOSE_IN_DEADLINE};
    owner_init(&d, ci, 5000);
    pgconn_start(&d.pc);
    TAP_OK(run_until(&d.connects, 1, 5000), "close in on_deadline: ready");
    pgconn_set_deadline(&d.pc, 10);
    TAP_OK(run_until(&d.closed, 1, 5000), "close in on_deadline: closed");
    owner_finish(&d, "close in on_deadline");

    /* Refused connects, closed from on_lost before any backoff. */
    owner_t e = {.close_in = CLOSE_IN_LOST};
    owner_init(&e, "postgresql://nobody@127.0.0.1:1/none", 2000);
    pgconn_start(&e.pc);
    TAP_OK(run_until(&e.closed, 1, 3000), "close in on_lost of a failed connect: closed");
    owner_finish(&e, "close in on_lost of a failed connect");
}

int main(void)
{
    log_setup(getenv("INKLOOP_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, 0);
    if (uv_loop_init(&loop) != 0)
        return 1;
    test_helpers();
    test_close_idle();
    test_backoff();
    test_connect_timeout();

    base_url = getenv("INKLOOP_TEST_DATABASE_URL");
    if (base_url != NULL && base_url[0] != '\0') {
        snprintf(app_name, sizeof(app_name), "inkloop_conn_test_%d", (int)getpid());
        char *ci = pgtest_conninfo(base_url, NULL, app_name);
        PGconn *admin = pgtest_connect(base_url);
        test_lifecycle(admin, ci);
        test_setup_timeout(ci);
        test_second_host(ci);
        test_close_in_hooks(admin, ci);
        PQfinish(admin);
        free(ci);
    } else if (getenv("CI") != NULL) {
        printf("Bail out! INKLOOP_TEST_DATABASE_URL is not set, and CI must run the db suite\n");
        return 1;
    } else {
        printf("# no INKLOOP_TEST_DATABASE_URL: the sections against PostgreSQL are skipped\n");
    }

    uv_run(&loop, UV_RUN_DEFAULT);
    TAP_IS_INT(uv_loop_close(&loop), 0, "every handle closed (uv_loop_close == 0)");
    return tap_done();
}
