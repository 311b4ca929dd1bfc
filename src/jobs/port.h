/* How a handler lets go of a claimed job: the runner's jobs_done/fail/cancel/forget in production, a
 * recording fake in the machines' unit tests. */
#ifndef INKLOOP_JOBS_PORT_H
#define INKLOOP_JOBS_PORT_H

#include "jobs/queue.h"

/** The four ends of a job (see jobs_done... in queue.h) and the runner id its finishing SQL names. */
typedef struct st_jobs_port_t {
    void (*done)(jobs_job_t *job);
    void (*fail)(jobs_job_t *job, const char *err, int retry_delay_s);
    void (*cancel)(jobs_job_t *job, const char *reason);
    void (*forget)(jobs_job_t *job);
    const char *runner_id; /* locked_by of this runner; valid while the runner lives */
} jobs_port_t;

/** The runner's own ends. */
static inline jobs_port_t jobs_port_runner(const jobs_runner_t *runner)
{
    return (jobs_port_t){.done = jobs_done,
                         .fail = jobs_fail,
                         .cancel = jobs_cancel,
                         .forget = jobs_forget,
                         .runner_id = jobs_runner_id(runner)};
}

#endif
