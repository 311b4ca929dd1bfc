/* The job kind JOBS_KIND_GENERATE: its registration with the runner, the production environment of the
 * machines (the real clients and the deadlines), and the sweep of articles whose job ended without them. The
 * machine itself is generate.c. */
#include "core/log.h"
#include "jobs/queue.h"
#include "pipeline/generate.h"

#include <string.h>

/* How often articles whose job ended without them are failed and refunded. */
#define SWEEP_INTERVAL_MS 30000

static struct {
    app_t *app;
    gen_env_t env;
    uv_timer_t sweep;
    int sweeping;
    int started;
} G;

static void on_job_start(jobs_job_t *job, void *data)
{
    generate_run(data, job);
}

static void on_job_cancel(jobs_job_t *job, void *data)
{
    (void)data;
    generate_halt(job);
}

/* ---- the sweep ---- */

static void on_swept(const db_result_t *r, size_t n, void *data)
{
    (void)data;
    G.sweeping = 0;
    if (r[n - 1].err != NULL) {
        log_warn("sweeping stalled articles", "%s", r[n - 1].err);
        return;
    }
    for (int i = 0; i < PQntuples(r[0].res); i++)
        log_warn("sweeping stalled articles", "article %s failed: its generation job ended without it",
                 db_value(r[0].res, i, "id"));
}

static void on_sweep(uv_timer_t *t)
{
    (void)t;
    if (G.sweeping || G.app->stopping)
        return;
    G.sweeping = 1;
    /* Finished jobs are purged by the job runner's own housekeeping (src/jobs/queue.c). */
    const char *params[] = {JOBS_KIND_GENERATE};
    if (db_query(G.app->db, "gen_sweep", 1, params, on_swept, NULL) == NULL)
        G.sweeping = 0;
}

int generate_start(app_t *app)
{
    if (app->jobs == NULL)
        return 0;
    G.app = app;
    const config_t *cfg = app->cfg;
    /* A provider call may wait for a free slot, then retries with backoff (capped at 30 s): the deadlines
     * leave room for all of that, so they only catch a call that would otherwise never answer. */
    uint64_t llm_ms = (uint64_t)cfg->llm_max_attempts * ((uint64_t)cfg->llm_timeout_s + 30) * 1000 + 300000;
    G.env = (gen_env_t){
        .loop = app->loop,
        .cfg = cfg,
        .db = db_target_pool(app->db),
        .llm = llm_port(app->llm),
        .search = search_port(app->search),
        .fetch = fetch_port(app->net),
        .jobs = jobs_port_runner(app->jobs),
        .deadlines = {.db_ms = 120000, .search_ms = 300000, .scrape_ms = 45000, .llm_ms = llm_ms}};
    /* WORKER_CONCURRENCY bounds the articles one process holds (a waiting article costs little; the LLM and
     * search clients bound the calls actually in flight). Deliveries have slots of their own on top of it
     * (main.c), so a full pipeline never delays a due webhook. */
    if (jobs_register(app->jobs, JOBS_KIND_GENERATE, on_job_start, on_job_cancel, cfg->worker_concurrency,
                      &G.env) != 0)
        return -1;
    if (uv_timer_init(app->loop, &G.sweep) != 0 ||
        uv_timer_start(&G.sweep, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS) != 0) {
        log_error("starting the generation sweep", "the timer could not be started");
        return -1;
    }
    G.started = 1;
    return 0;
}

void generate_stop(app_t *app)
{
    (void)app;
    if (G.started) {
        uv_close((uv_handle_t *)&G.sweep, NULL);
        G.started = 0;
    }
}
