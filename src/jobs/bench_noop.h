/* A bench-only job kind, "bench_noop": a job that does nothing and is done as soon as it starts, so a drain
 * of many of them measures the queue and the runner alone (bench/queue.sh). Off unless INKLOOP_BENCH_NOOP=1.
 *
 * The production schema does not allow the kind (jobs.kind's CHECK names the real kinds only): a bench widens
 * the CHECK in its own throwaway database with JOBS_BENCH_NOOP_SCHEMA_SQL. With INKLOOP_BENCH_NOOP_LOG=PATH,
 * every start appends "<job id> <unix time in seconds, microsecond precision>\n" to PATH (line-buffered), for
 * add -> start latency. */
#ifndef INKLOOP_JOBS_BENCH_NOOP_H
#define INKLOOP_JOBS_BENCH_NOOP_H

#include "jobs/queue.h"

#define JOBS_BENCH_NOOP_KIND "bench_noop"

/** For a bench's or a test's scratch database only: lets jobs.kind be bench_noop. */
#define JOBS_BENCH_NOOP_SCHEMA_SQL                                                                           \
    "ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check, ADD CONSTRAINT jobs_kind_check "                      \
    "CHECK (kind IN ('generate_article', 'deliver_webhook', 'bench_noop'))"

/** With INKLOOP_BENCH_NOOP=1 in the environment, registers bench_noop with the runner (between create and
 * start) and opens INKLOOP_BENCH_NOOP_LOG when set; otherwise does nothing. Returns 0, or -1 (logged) when
 * the variable has another value than unset, "" or "0" / "1", the log cannot be opened, or registering fails.
 */
int jobs_bench_noop_start(jobs_runner_t *runner);
/** Closes the start log (after the runner stopped). Safe to call when nothing was opened. */
void jobs_bench_noop_close(void);

#endif
