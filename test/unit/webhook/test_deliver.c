/* The delivery machine with a fake send and a fake database (test/unit/fakes.h) on a real loop with short
 * deadlines: each outcome of an attempt, the drain at shutdown, every deadline, a halt at every waiting
 * state. Each case ends with the loop closed (no handle left) and no fake operation live. */
#include "../../tap.h"
#include "../fakes.h"
#include "webhook/deliver.h"

#include <stdio.h>
#include <string.h>

static uv_loop_t loop;
static config_t cfg;
static dlv_env_t env;
static jobs_job_t job;

static const char *const COLS[] = {"id",
                                   "status",
                                   "campaign_id",
                                   "title",
                                   "content",
                                   "content_html",
                                   "category",
                                   "keywords",
                                   "meta_description",
                                   "slug",
                                   "word_count",
                                   "scheduled_at",
                                   "created_at",
                                   "posting_attempt_count",
                                   "webhook_integration_id",
                                   "sources",
                                   "webhook_url",
                                   "webhook_secret",
                                   "api_key",
                                   "is_active"};
#define NCOLS (sizeof(COLS) / sizeof(COLS[0]))

static PGresult *article(const char *status, const char *active)
{
    const char *vals[NCOLS] = {"d1",
                               status,
                               NULL,
                               "Tea",
                               "# Tea",
                               "<h1>Tea</h1>",
                               "food",
                               "[\"tea\"]",
                               "m",
                               "tea",
                               "2",
                               NULL,
                               "2026-01-01 00:00:00+00",
                               "0",
                               "i1",
                               "[{\"url\":\"http://s\",\"title\":\"S\"}]",
                               "http://receiver.test/hook",
                               "whsec_x",
                               NULL,
                               active};
    return fake_rows(NCOLS, COLS, vals, 1);
}

static void begin(uint64_t deadline_ms)
{
    fake_reset();
    uv_loop_init(&loop);
    memset(&cfg, 0, sizeof(cfg));
    cfg.webhook_max_attempts = 3;
    cfg.webhook_retry_delay_s = 60;
    cfg.webhook_timeout_s = 30;
    env = (dlv_env_t){.loop = &loop,
                      .cfg = &cfg,
                      .db = {fake_db_batch, fake_db_cancel, NULL},
                      .send = {fake_send, fake_send_cancel, &env},
                      .jobs = fake_jobs_port,
                      .db_deadline_ms = deadline_ms,
                      .send_deadline_ms = deadline_ms};
    job = (jobs_job_t){.id = 9, .kind = JOBS_KIND_DELIVER, .article_id = "d1", .attempt = 1};
    deliver_run(&env, &job);
}

static void finish(const char *name)
{
    TAP_IS_INT(uv_run(&loop, UV_RUN_DEFAULT), 0, "%s: the loop ran out of handles", name);
    TAP_IS_INT(uv_loop_close(&loop), 0, "%s: the loop closed with no handle left", name);
    size_t live = 0;
    for (size_t i = 0; i < fake_nops; i++)
        live += fake_ops[i].live;
    TAP_IS_INT((int)live, 0, "%s: no operation left live", name);
}

static void load(const char *status, const char *active)
{
    fake_db_answer(fake_find(FAKE_DB, "dlv_load"), 0, article(status, active), NULL);
}

/* The record batch: it holds `want` and the job's end; answered with success. */
static void expect_record(const char *name, const char *want, const char *param)
{
    fake_op_t *r = fake_find(FAKE_DB, "dlv_attempt");
    TAP_OK(r != NULL && fake_find(FAKE_DB, want) == r && fake_find(FAKE_DB, JOBS_STMT_MARK_DONE) == r &&
               (param == NULL || strstr(r->params0, param) != NULL),
           "%s: the attempt is recorded with %s%s%s", name, want, param ? " and " : "", param ? param : "");
    if (r != NULL)
        fake_db_answer(r, 0, NULL, NULL);
    TAP_IS_INT(fake_jobs.forgotten, 1, "%s: the job, finished in the batch, is let go", name);
    finish(name);
}

static void test_outcomes(void)
{
    begin(5000);
    load("completed", "t");
    fake_op_t *s = fake_find(FAKE_SEND, NULL);
    TAP_OK(s != NULL && strcmp(s->text, "http://receiver.test/hook") == 0,
           "the article is sent to its receiver");
    fake_send_answer(s, 200);
    expect_record("posted", "dlv_posted", NULL);

    begin(5000);
    load("completed", "t");
    fake_send_answer(fake_find(FAKE_SEND, NULL), 503);
    expect_record("HTTP 503", "dlv_next", "|false|60|");

    begin(5000);
    load("completed", "t");
    fake_send_answer(fake_find(FAKE_SEND, NULL), 410);
    expect_record("HTTP 410", "dlv_integration_failed", "i1|true|HTTP 410");

    begin(5000);
    load("completed", "f");
    TAP_IS_INT((int)fake_live(FAKE_SEND), 0, "a disabled integration gets no request");
    expect_record("disabled", "dlv_failed", "integration is disabled");

    begin(5000);
    load("posted", "t");
    TAP_IS_INT(fake_jobs.done, 1, "nothing to deliver: the job is done");
    finish("nothing");

    begin(5000);
    fake_db_answer(fake_find(FAKE_DB, "dlv_load"), 0, NULL, "connection lost");
    TAP_OK(fake_jobs.failed == 1 && fake_jobs.last_retry == JOBS_RETRY_BACKOFF,
           "a load error: retried later");
    finish("load error");

    begin(5000);
    load("completed", "t");
    fake_send_answer(fake_find(FAKE_SEND, NULL), 200);
    fake_db_answer(fake_find(FAKE_DB, "dlv_attempt"), 0, NULL, "deadlock detected");
    TAP_OK(fake_jobs.failed == 1 && fake_jobs.forgotten == 0, "a record error: the job runs again");
    finish("record error");

    fake_reset();
    uv_loop_init(&loop);
    job = (jobs_job_t){.id = 1, .kind = JOBS_KIND_DELIVER, .article_id = NULL};
    deliver_run(&env, &job);
    TAP_OK(fake_jobs.failed == 1 && fake_jobs.last_retry == JOBS_NO_RETRY,
           "a job without an article fails for good");
    finish("reject");
}

static void test_deadlines(void)
{
    begin(20);
    uv_run(&loop, UV_RUN_ONCE);
    TAP_OK(fake_jobs.failed == 1 && strstr(fake_jobs.last_err, "timed out") != NULL,
           "deadline in LOADING: the load is given up, the job retried later");
    finish("deadline in LOADING");

    begin(20);
    load("completed", "t");
    uv_run(&loop, UV_RUN_ONCE);
    TAP_OK(fake_find(FAKE_SEND, NULL) == NULL, "deadline in SENDING: the send is cancelled");
    expect_record("deadline in SENDING", "dlv_failed", "timed out waiting for the receiver");

    begin(20);
    load("completed", "t");
    fake_send_answer(fake_find(FAKE_SEND, NULL), 200);
    uv_run(&loop, UV_RUN_ONCE);
    TAP_OK(fake_jobs.failed == 1 && strstr(fake_jobs.last_err, "timed out") != NULL,
           "deadline in RECORDING: the job is retried later");
    finish("deadline in RECORDING");
}

static void test_drain(void)
{
    begin(5000);
    TAP_IS_INT(deliver_drain(&job, 0), 0, "drain in LOADING: the job is handed back");
    deliver_halt(&job);
    finish("drain in LOADING");

    begin(5000);
    load("completed", "t");
    TAP_IS_INT(deliver_drain(&job, 0), 1, "drain in SENDING: the answer is waited for");
    TAP_IS_INT((int)fake_live(FAKE_SEND), 1, "drain in SENDING: the send goes on");
    TAP_IS_INT(deliver_drain(&job, 1), 1, "drain deadline in SENDING: the machine records the attempt");
    expect_record("drain deadline", "dlv_next", "interrupted by shutdown");

    begin(5000);
    load("completed", "t");
    fake_send_answer(fake_find(FAKE_SEND, NULL), 200);
    TAP_IS_INT(deliver_drain(&job, 1), 1, "drain in RECORDING: the record is on its way");
    expect_record("drain in RECORDING", "dlv_posted", NULL);
}

static void test_halts(void)
{
    for (int w = 0; w < 3; w++) {
        const char *names[] = {"halt in LOADING", "halt in SENDING", "halt in RECORDING"};
        begin(5000);
        if (w >= 1)
            load("completed", "t");
        if (w >= 2)
            fake_send_answer(fake_find(FAKE_SEND, NULL), 200);
        size_t before = fake_live(FAKE_DB) + fake_live(FAKE_SEND);
        deliver_halt(&job);
        TAP_OK(before == 1 && fake_live(FAKE_DB) + fake_live(FAKE_SEND) == 0,
               "%s: the operation is cancelled", names[w]);
        TAP_IS_INT(fake_job_ends(), 0, "%s: the job is not touched", names[w]);
        finish(names[w]);
    }
}

int main(void)
{
    test_outcomes();
    test_deadlines();
    test_drain();
    test_halts();
    fake_reset();
    return tap_done();
}
