/* Wiring only: configuration, the loop, the modules, signals. */
#include "app.h"
#include "core/config.h"
#include "core/log.h"
#include "db/db.h"
#include "db/migrate.h"
#include "http/auth.h"
#include "http/events.h"
#include "http/handlers.h"
#include "http/router.h"
#include "http/server.h"
#include "jobs/bench_noop.h"
#include "jobs/queue.h"
#include "net/net.h"
#include "pipeline/extract.h"
#include "pipeline/generate.h"
#include "pipeline/llm.h"
#include "pipeline/search.h"
#include "webhook/deliver.h"
#include "sched/scheduler.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Everything the process owns, so shutdown can close it in order. */
typedef struct st_process_t {
    app_t app;
    config_t cfg;
    uv_loop_t loop;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int exit_code;
} process_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: inkloop [serve|migrate|version|sql NAME...|extract [FILE|-]]\n"
            "  serve    apply pending migrations, then serve HTTP and run the background work (default)\n"
            "  migrate  apply pending migrations and exit\n"
            "  version  print the version and exit\n"
            "  sql      print the SQL of the named prepared statements, one per line, without connecting\n"
            "  extract  extract the title, metadata and main text of an HTML page (FILE or stdin) as JSON\n"
            "Configuration comes from the environment; see README.md.\n");
}

/* Registers every module's prepared statements: the one list serve and `inkloop sql` share. */
static int register_statements(db_pool_t *db)
{
    return http_prepare_statements(db) != 0 || generate_prepare(db) != 0 || deliver_prepare(db) != 0 ||
                   sched_prepare(db) != 0
               ? -1
               : 0;
}

/* `inkloop sql NAME...`: the SQL of each named statement, exactly as registered, one line each (bench/run.sh
 * gives it to pgbench). A pool that is never started registers them; nothing connects. Exit 2 for an unknown
 * name (nothing printed), 1 when registering fails. */
static int print_sql(int argc, char **argv)
{
    log_setup(LOG_LEVEL_WARN, 0);
    uv_loop_t loop;
    int r = uv_loop_init(&loop);
    if (r != 0) {
        fprintf(stderr, "inkloop: uv_loop_init: %s\n", uv_strerror(r));
        return 1;
    }
    db_pool_config_t dbc = {.conninfo = "", .size = 1};
    db_pool_t *db = db_pool_create(&loop, &dbc);
    int rc = 0;
    if (db == NULL || register_statements(db) != 0) {
        fprintf(stderr, "inkloop: registering SQL statements failed\n");
        rc = 1;
    }
    for (int i = 2; i < argc && rc == 0; i++) {
        const char *sql = db_pool_statement_sql(db, argv[i]);
        if (sql == NULL) {
            fprintf(stderr, "inkloop: no SQL statement named \"%s\"\n", argv[i]);
            rc = 2;
        } else if (strchr(sql, '\n') != NULL) {
            /* One line per statement is the output's format; a registered newline would break it. */
            fprintf(stderr, "inkloop: the SQL of \"%s\" spans several lines\n", argv[i]);
            rc = 1;
        }
    }
    for (int i = 2; i < argc && rc == 0; i++)
        printf("%s\n", db_pool_statement_sql(db, argv[i]));
    if (db != NULL)
        db_pool_close(db, NULL, NULL);
    /* Non-zero only when the loop was stopped with handles still active; uv_loop_close below says so too. */
    if (uv_run(&loop, UV_RUN_DEFAULT) != 0)
        fprintf(stderr, "inkloop: the event loop stopped with handles still active\n");
    if (uv_loop_close(&loop) != 0 && rc == 0) {
        fprintf(stderr, "inkloop: handles still open at exit\n");
        rc = 1;
    }
    if (rc == 0 && fflush(stdout) != 0)
        rc = 1;
    return rc;
}

/* Applies migrations, retrying for a while so a database that is still starting does not fail the process. */
static int migrate_with_retry(const char *conninfo, int attempts)
{
    char err[512];
    for (int i = 1;; i++) {
        int applied = 0;
        if (db_migrate(conninfo, &applied, err, sizeof(err)) == 0) {
            log_info("applying migrations", "%d applied, schema at version %d", applied,
                     migration_count > 0 ? migrations[migration_count - 1].version : 0);
            return 0;
        }
        if (i >= attempts) {
            log_error("applying migrations", "%s", err);
            return -1;
        }
        log_warn("applying migrations", "%s; retrying in 1 s (%d/%d)", err, i, attempts);
        sleep(1);
    }
}

/* Shutdown runs as a sequence of asynchronous steps, each closing one part after the parts that depend on it:
 * no new requests first, then what requests and jobs use, the database last. */
#define STOP_STEPS(X)                                                                                        \
    X(DRAIN)   /* waits for in-flight requests and event streams (bounded), jobs handed back, ticks ended */ \
    X(LLM)     /* cancels LLM calls */                                                                       \
    X(SEARCH)  /* cancels search calls */                                                                    \
    X(NET)     /* closes the curl multi driver */                                                            \
    X(DB)      /* lets in-flight queries finish, closes connections */                                       \
    X(SIGNALS) /* closes the signal handles; the loop then has nothing left */                               \
    X(DONE)

typedef enum {
#define X(s) STOP_##s,
    STOP_STEPS(X)
#undef X
} stop_step_t;

static const char *stop_step_names[] = {
#define X(s) #s,
    STOP_STEPS(X)
#undef X
};

static stop_step_t stop_step;

static void stop_advance(process_t *p);

static void on_step_done(void *data)
{
    process_t *p = data;
    stop_step++;
    stop_advance(p);
}

/* The HTTP drain, the runner's stop and the scheduler's stop run together: jobs are handed back (and resume
 * elsewhere) at once, not after the HTTP drain (only webhooks already sent wait for their answers, up to
 * SHUTDOWN_TIMEOUT_S, so none is sent twice), so they are safe before an orchestrator's kill grace runs
 * out; the scheduler's timer stops at once and its ticks in flight (the timer's, or an admin request's that
 * the drain is waiting for) get the same bounded time to finish. */
static int drain_pending;

/* How often a worker sweeps for jobs whose process is gone (at most: a shorter lease's third). */
#define JOBS_RESCUE_INTERVAL_MS 2000

static void on_drain_part_done(void *data)
{
    if (--drain_pending == 0)
        on_step_done(data);
}

static void on_signal_closed(uv_handle_t *h)
{
    process_t *p = h->data;
    if (h == (uv_handle_t *)&p->sigint)
        on_step_done(p);
}

/* Starts the current step, skipping parts this process does not run; each step's callback moves on. */
static void stop_advance(process_t *p)
{
    for (;;) {
        log_debug("stopping", "step %s", stop_step_names[stop_step]);
        switch (stop_step) {
        case STOP_DRAIN:
            generate_stop(&p->app);
            deliver_stop(&p->app);
            drain_pending = 3 + (p->app.jobs != NULL);
            /* Event streams end with the drain: they never finish on their own. */
            events_close(p->app.events, on_drain_part_done, p);
            p->app.events = NULL;
            sched_stop(p->app.sched, (uint64_t)p->cfg.shutdown_timeout_s * 1000, on_drain_part_done, p);
            p->app.sched = NULL;
            http_server_shutdown(p->app.http, (uint64_t)p->cfg.shutdown_timeout_s * 1000, on_drain_part_done,
                                 p);
            p->app.http = NULL;
            if (p->app.jobs != NULL) {
                jobs_runner_stop(p->app.jobs, on_drain_part_done, p);
                p->app.jobs = NULL;
            }
            return;
        case STOP_LLM:
            if (p->app.llm == NULL)
                break;
            llm_close(p->app.llm, on_step_done, p);
            p->app.llm = NULL;
            return;
        case STOP_SEARCH:
            if (p->app.search == NULL)
                break;
            search_close(p->app.search, on_step_done, p);
            p->app.search = NULL;
            return;
        case STOP_NET:
            net_close(p->app.net, on_step_done, p);
            p->app.net = NULL;
            return;
        case STOP_DB:
            db_pool_close(p->app.db, on_step_done, p);
            p->app.db = NULL;
            return;
        case STOP_SIGNALS: {
            /* Closing the last handle of a signal restores its default (fatal) action; a SIGTERM arriving
             * after that would kill a process that already stopped cleanly. Blocked, it stays pending until
             * exit. */
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGTERM);
            sigaddset(&set, SIGINT);
            pthread_sigmask(SIG_BLOCK, &set, NULL);
            uv_close((uv_handle_t *)&p->sigterm, on_signal_closed);
            uv_close((uv_handle_t *)&p->sigint, on_signal_closed);
            /* The block covers this thread only; a late signal delivered to a thread-pool thread is ignored.
             */
            signal(SIGTERM, SIG_IGN);
            signal(SIGINT, SIG_IGN);
            return;
        }
        case STOP_DONE:
            return;
        }
        stop_step++;
    }
}

static void on_signal(uv_signal_t *sig, int signum)
{
    process_t *p = sig->data;
    if (p->app.stopping) {
        log_warn("stopping", "second %s while draining; still waiting for in-flight work",
                 signum == SIGINT ? "SIGINT" : "SIGTERM");
        return;
    }
    p->app.stopping = 1;
    log_info("stopping", "%s received: no new connections, draining %zu in-flight request(s) for up to %d s",
             signum == SIGINT ? "SIGINT" : "SIGTERM", http_server_in_flight(p->app.http),
             p->cfg.shutdown_timeout_s);
    stop_step = STOP_DRAIN;
    stop_advance(p);
}

static int serve(process_t *p)
{
    if (migrate_with_retry(p->cfg.database_url, 30) != 0)
        return 1;
    int r;

    if ((r = uv_loop_init(&p->loop)) != 0) {
        log_error("starting", "uv_loop_init: %s", uv_strerror(r));
        return 1;
    }
    p->app.loop = &p->loop;
    p->app.cfg = &p->cfg;

    db_pool_config_t dbc = {
        .conninfo = p->cfg.database_url, .size = p->cfg.db_pool_size, .max_waiting = p->cfg.db_max_waiting};
    p->app.db = db_pool_create(&p->loop, &dbc);
    if (p->app.db == NULL || register_statements(p->app.db) != 0) {
        log_error("starting", "registering SQL statements failed");
        return 1;
    }
    db_pool_start(p->app.db);

    p->app.net = net_create(&p->loop);
    if (p->app.net == NULL) {
        log_error("starting", "curl could not be initialised");
        return 1;
    }
    p->app.llm = llm_create(&p->loop, p->app.net, &p->cfg);
    p->app.search = search_create(&p->loop, p->app.net, &p->cfg);
    if (p->app.llm == NULL)
        log_warn("starting", "LLM_BASE_URL is not set: articles and titles cannot be generated");
    if (p->app.search == NULL)
        log_warn("starting", "SEARCH_PROVIDER is not set: research finds no sources");

    /* Every process can run a tick (POST /admin/scheduler/tick); only the scheduler role ticks on a timer. */
    p->app.sched = sched_create(&p->app);
    if (p->cfg.roles & ROLE_SCHEDULER)
        sched_start(p->app.sched);

    if (p->cfg.roles & ROLE_WORKER) {
        /* Job kinds are registered (jobs_register) between create and start by the modules that run them. */
        jobs_config_t jc = {.conninfo = p->cfg.database_url,
                            .concurrency = p->cfg.worker_concurrency + DELIVER_CONCURRENCY,
                            .lease_ms = p->cfg.job_lease_s * 1000,
                            /* Cheap (running jobs only); often, so a dead process's jobs resume in
                             * seconds (its database session is gone), not after their lease. */
                            .rescue_interval_ms = p->cfg.job_lease_s * 1000 / 3 < JOBS_RESCUE_INTERVAL_MS
                                                      ? p->cfg.job_lease_s * 1000 / 3
                                                      : JOBS_RESCUE_INTERVAL_MS,
                            /* Sent webhooks wait for their answers (deliver.c) as long as requests do. */
                            .drain_timeout_ms = p->cfg.shutdown_timeout_s * 1000};
        p->app.jobs = jobs_runner_create(&p->loop, p->app.db, &jc);
        if (p->app.jobs == NULL) {
            log_error("starting", "the job runner could not be created");
            return 1;
        }
        if (generate_start(&p->app) != 0 || deliver_start(&p->app) != 0 ||
            jobs_bench_noop_start(p->app.jobs) != 0) {
            log_error("starting", "registering the job handlers failed");
            return 1;
        }
        jobs_runner_start(p->app.jobs);
    }

    p->app.events = events_create(&p->loop, &p->app);
    p->app.http = http_server_create(&p->loop, &p->app, p->cfg.max_body_bytes);
    http_server_set_routes(p->app.http, http_routes, http_route_count);
    http_server_set_user_auth(p->app.http, auth_user);
    if (http_server_listen(p->app.http, p->cfg.host, p->cfg.port) != 0)
        return 1;

    if ((r = uv_signal_init(&p->loop, &p->sigterm)) != 0 || (r = uv_signal_init(&p->loop, &p->sigint)) != 0) {
        log_error("starting", "uv_signal_init: %s", uv_strerror(r));
        return 1;
    }
    p->sigterm.data = p->sigint.data = p;
    if ((r = uv_signal_start(&p->sigterm, on_signal, SIGTERM)) != 0 ||
        (r = uv_signal_start(&p->sigint, on_signal, SIGINT)) != 0) {
        log_error("starting", "uv_signal_start: %s", uv_strerror(r));
        return 1;
    }
    log_info("starting", "inkloop %s serving on http://%s:%d (roles:%s%s%s, %d database connections)",
             INKLOOP_VERSION, p->cfg.host, p->cfg.port, (p->cfg.roles & ROLE_API) ? " api" : "",
             (p->cfg.roles & ROLE_WORKER) ? " worker" : "",
             (p->cfg.roles & ROLE_SCHEDULER) ? " scheduler" : "", p->cfg.db_pool_size);

    if (uv_run(&p->loop, UV_RUN_DEFAULT) != 0)
        log_warn("stopping", "the event loop stopped with handles still active");
    jobs_bench_noop_close();

    int rc = uv_loop_close(&p->loop);
    if (rc != 0) {
        log_error("stopping", "handles still open at exit: %s", uv_strerror(rc));
        return 1;
    }
    log_info("stopping", "stopped cleanly");
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "sql") == 0) {
        if (argc < 3) {
            fprintf(stderr, "inkloop: sql needs at least one statement name\n");
            usage(stderr);
            return 2;
        }
        return print_sql(argc, argv);
    }
    if (strcmp(cmd, "extract") == 0)
        return extract_cli(argc - 1, argv + 1);
    if (argc > 2 || (strcmp(cmd, "serve") != 0 && strcmp(cmd, "migrate") != 0 &&
                     strcmp(cmd, "version") != 0 && strcmp(cmd, "--version") != 0)) {
        if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "inkloop: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("inkloop %s\n", INKLOOP_VERSION);
        return 0;
    }

    /* Outbound sockets report a peer that went away as an error, never as a signal. */
    signal(SIGPIPE, SIG_IGN);

    static process_t p;
    char err[512];
    if (config_load(&p.cfg, NULL, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "inkloop: configuration error: %s\n", err);
        config_free(&p.cfg);
        return 2;
    }
    if (p.cfg.database_url == NULL) {
        fprintf(stderr, "inkloop: configuration error: DATABASE_URL: is required "
                        "(scripts/run.sh starts an embedded PostgreSQL when it is not set)\n");
        config_free(&p.cfg);
        return 2;
    }
    log_setup(p.cfg.log_level, p.cfg.log_json);
    if (p.cfg.dev_mode && getenv("JWT_SECRET") == NULL)
        log_warn("starting",
                 "INKLOOP_DEV=1 and no JWT_SECRET: using a random secret, tokens end with this process");

    int rc;
    if (strcmp(cmd, "migrate") == 0)
        rc = migrate_with_retry(p.cfg.database_url, 1) == 0 ? 0 : 1;
    else
        rc = serve(&p);
    config_free(&p.cfg);
    return rc;
}
