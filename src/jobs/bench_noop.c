/* The bench-only no-op job kind (see bench_noop.h). */
#include "jobs/bench_noop.h"

#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char ACTION[] = "running bench_noop jobs";

static FILE *start_log;
static char *start_log_path;

static void on_start(jobs_job_t *job, void *data)
{
    (void)data;
    if (start_log != NULL) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (fprintf(start_log, "%lld %lld.%06ld\n", (long long)job->id, (long long)ts.tv_sec,
                    ts.tv_nsec / 1000) < 0) {
            log_error(ACTION, "writing to %s failed (%s); no more start times are recorded", start_log_path,
                      strerror(errno));
            fclose(start_log);
            start_log = NULL;
        }
    }
    jobs_done(job);
}

/* Never called for a running job: each is done inside on_start. */
static void on_cancel(jobs_job_t *job, void *data)
{
    (void)job;
    (void)data;
}

int jobs_bench_noop_start(jobs_runner_t *runner)
{
    const char *on = getenv("INKLOOP_BENCH_NOOP");
    if (on == NULL || on[0] == '\0' || strcmp(on, "0") == 0)
        return 0;
    if (strcmp(on, "1") != 0) {
        log_error("starting", "INKLOOP_BENCH_NOOP must be 0 or 1 (got \"%s\")", on);
        return -1;
    }
    const char *path = getenv("INKLOOP_BENCH_NOOP_LOG");
    if (path != NULL && path[0] != '\0') {
        start_log = fopen(path, "a");
        if (start_log == NULL) {
            log_error("starting", "INKLOOP_BENCH_NOOP_LOG: cannot open %s: %s", path, strerror(errno));
            return -1;
        }
        setvbuf(start_log, NULL, _IOLBF, 0);
        start_log_path = xstrdup(path);
    }
    if (jobs_register(runner, JOBS_BENCH_NOOP_KIND, on_start, on_cancel, 0, NULL) != 0) {
        log_error("starting", "registering the bench_noop job kind failed");
        jobs_bench_noop_close();
        return -1;
    }
    log_warn("starting", "INKLOOP_BENCH_NOOP=1: this process runs the bench-only no-op job kind%s%s",
             start_log != NULL ? ", start times to " : "", start_log != NULL ? path : "");
    return 0;
}

void jobs_bench_noop_close(void)
{
    if (start_log != NULL && fclose(start_log) != 0)
        log_error(ACTION, "closing %s failed: %s", start_log_path, strerror(errno));
    start_log = NULL;
    free(start_log_path);
    start_log_path = NULL;
}
