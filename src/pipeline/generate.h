/* The article generation machine: one per article being generated, run as the job kind JOBS_KIND_GENERATE.
 *
 * research -> scrape -> analyze -> write -> complete. Each stage's output is persisted (with the status the
 * article moves to) before the next stage starts, so a job resumed after a crash, a lost lease or a SIGTERM
 * continues from the last completed stage and never pays for a finished LLM call twice. Provider failures
 * that outlast their retries fail the article (error_message says why) and refund its credit; database
 * trouble retries the job later instead. */
#ifndef INKLOOP_PIPELINE_GENERATE_H
#define INKLOOP_PIPELINE_GENERATE_H

#include "app.h"
#include "db/db.h"

/** Registers the machine's statements. */
int generate_prepare(db_pool_t *pool);
/** Registers the JOBS_KIND_GENERATE job kind with app->jobs (when the process runs workers) and starts the
 * sweep that fails articles whose job ended without them (e.g. rescued past its attempts). Returns 0 or -1.
 */
int generate_start(app_t *app);
/** Stops the sweep (the job runner stops running machines itself). */
void generate_stop(app_t *app);

#endif
