/* The article generation machine: one per article being generated, run as the job kind JOBS_KIND_GENERATE.
 *
 * research -> scrape -> analyze -> write -> complete. Each stage's output is persisted (with the status the
 * article moves to) before the next stage starts, so a job resumed after a crash, a lost lease or a SIGTERM
 * continues from the last completed stage and never pays for a finished LLM call twice. Provider failures
 * that outlast their retries fail the article (error_message says why) and refund its credit; database
 * trouble retries the job later instead. Every waiting state has a deadline. */
#ifndef INKLOOP_PIPELINE_GENERATE_H
#define INKLOOP_PIPELINE_GENERATE_H

#include "app.h"
#include "db/db.h"
#include "db/step.h"
#include "jobs/port.h"
#include "pipeline/ports.h"

#include <stdint.h>

/** How long each kind of waiting state waits before it gives up on its operation. */
typedef struct st_gen_deadlines_t {
    uint64_t db_ms;     /* a database step (the pool's own wait and statement timeouts are shorter) */
    uint64_t search_ms; /* the search call with its retries */
    uint64_t scrape_ms; /* the whole scrape stage: stragglers are dropped, the stage keeps what it has */
    uint64_t llm_ms;    /* one LLM call with its retries and its wait for a free slot */
} gen_deadlines_t;

/** Everything a machine reaches: the real clients in production (generate_start), fakes in unit tests. */
typedef struct st_gen_env_t {
    uv_loop_t *loop;
    const config_t *cfg;
    db_target_t db;
    llm_port_t llm;       /* ctx NULL: no LLM configured */
    search_port_t search; /* ctx NULL: no search provider configured */
    fetch_port_t fetch;
    jobs_port_t jobs;
    gen_deadlines_t deadlines;
} gen_env_t;

/** Registers the machine's statements. */
int generate_prepare(db_pool_t *pool);
/** Registers the JOBS_KIND_GENERATE job kind with app->jobs (when the process runs workers) and starts the
 * sweep that fails articles whose job ended without them (e.g. rescued past its attempts). Returns 0 or -1.
 */
int generate_start(app_t *app);
/** Stops the sweep (the job runner stops running machines itself). */
void generate_stop(app_t *app);

/** Starts the machine of one claimed job (the job kind's start callback); env must outlive it. The job ends
 * through env->jobs exactly once, unless generate_halt comes first. */
void generate_run(const gen_env_t *env, jobs_job_t *job);
/** Stops the machine of job now (the job kind's cancel callback): no callback of its runs afterwards and the
 * job is not touched again; its memory is freed once its timer is closed, on a later loop turn. */
void generate_halt(jobs_job_t *job);

#endif
