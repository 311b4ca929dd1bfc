/* The scheduler's tick and campaign machines with a fake LLM and a fake database (test/unit/fakes.h) on a
 * real loop with a short tick deadline: a full tick, its failure ends, the deadline and a cancel at every
 * waiting state, and stopping. Each case ends with the scheduler stopped, the loop closed (no handle left)
 * and no fake operation live. */
#include "../../tap.h"
#include "../fakes.h"
#include "sched/scheduler.h"

#include <stdio.h>
#include <string.h>

static uv_loop_t loop;
static config_t cfg;
static app_t app;
static sched_t *sched;
static sched_tick_t *tick;
static int reports, stopped;
static sched_report_t report;
static char report_err[128];

static const char *const CLAIM_COLS[] = {"id", "topic", "description", "due", "avoid"};
static const char *const COMMIT_COLS[] = {"created", "pending", "status", "pause_reason"};

static void on_report(const sched_report_t *r, void *data)
{
    (void)data;
    reports++;
    report = *r;
    snprintf(report_err, sizeof(report_err), "%s", r->err ? r->err : "");
    report.err = r->err ? report_err : NULL;
}

static void on_stopped(void *data)
{
    (void)data;
    stopped++;
}

static void begin(uint64_t deadline_ms, int with_llm)
{
    fake_reset();
    reports = stopped = 0;
    memset(&report, 0, sizeof(report));
    uv_loop_init(&loop);
    memset(&cfg, 0, sizeof(cfg));
    cfg.llm_timeout_s = 10;
    cfg.llm_max_attempts = 1;
    cfg.credits_per_article = 1;
    app = (app_t){.loop = &loop, .cfg = &cfg};
    sched = sched_create(&app);
    db_target_t db = {fake_db_batch, fake_db_cancel, NULL};
    llm_port_t llm = {fake_llm_chat, fake_llm_cancel, with_llm ? &app : NULL};
    sched_set_ports(sched, &db, &llm, deadline_ms);
    tick = sched_tick(sched, 1700000000000000LL, on_report, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* the tick starts on the next loop turn */
}

static void finish(const char *name)
{
    fake_db_ack_fired("sched_release");
    sched_stop(sched, 0, on_stopped, NULL);
    TAP_IS_INT(uv_run(&loop, UV_RUN_DEFAULT), 0, "%s: the loop ran out of handles", name);
    TAP_IS_INT(stopped, 1, "%s: the scheduler stopped", name);
    TAP_IS_INT(uv_loop_close(&loop), 0, "%s: the loop closed with no handle left", name);
    size_t live = 0;
    for (size_t i = 0; i < fake_nops; i++)
        live += fake_ops[i].live;
    TAP_IS_INT((int)live, 0, "%s: no operation left live", name);
}

static void claim_one(const char *due)
{
    const char *vals[] = {"c1", "green tea", NULL, due,
                          "[\"An earlier title that the campaign already has\"]"};
    fake_db_answer(fake_find(FAKE_DB, "sched_claim"), 1, fake_rows(5, CLAIM_COLS, vals, 1), NULL);
}

static const char *TITLES = "{\"titles\": [\"Green tea for beginners: a complete guide to brewing it well\","
                            " \"Why green tea tastes bitter and the simple ways to fix it at home\"]}";

static void commit(const char *created, const char *pending)
{
    const char *vals[] = {created, pending, "active", NULL};
    fake_db_answer(fake_find(FAKE_DB, "sched_commit"), 1, fake_rows(4, COMMIT_COLS, vals, 1), NULL);
}

static void test_full_tick(void)
{
    begin(0, 1);
    TAP_OK(fake_find(FAKE_DB, "sched_claim") != NULL, "the tick claims due campaigns");
    claim_one("2");
    fake_op_t *l = fake_find(FAKE_LLM, NULL);
    TAP_OK(l != NULL && strstr(l->text, "green tea") != NULL && strstr(l->text, "An earlier title") != NULL,
           "the LLM is asked for titles about the campaign, avoiding its earlier ones");
    fake_llm_answer(l, TITLES, "stop", NULL);
    fake_op_t *c = fake_find(FAKE_DB, "sched_commit");
    TAP_OK(c != NULL && strstr(c->params0, "Green tea for beginners") != NULL &&
               fake_find(FAKE_DB, "sched_enqueue") == c,
           "the titles are committed with the generation jobs in one batch");
    commit("2", "0");
    TAP_IS_INT(reports, 1, "the tick reports once");
    TAP_OK(report.err == NULL && report.campaigns == 1 && report.articles_created == 2 && report.failed == 0,
           "the report counts the campaign and its two articles");
    finish("full tick");

    begin(0, 1);
    claim_one("2");
    fake_llm_answer(fake_find(FAKE_LLM, NULL), NULL, "stop", "llm: HTTP 500 after 4 attempts");
    c = fake_find(FAKE_DB, "sched_commit");
    TAP_OK(c != NULL && strstr(c->params0, "Title generation failed: llm: HTTP 500") != NULL,
           "an LLM failure: the commit still moves the cursor and records why");
    commit("0", "2");
    TAP_OK(report.failed == 1 && report.slots_pending == 2,
           "the slots stay due and the campaign counts as failed");
    finish("llm error");

    begin(0, 0);
    claim_one("1");
    c = fake_find(FAKE_DB, "sched_commit");
    TAP_OK(c != NULL && strstr(c->params0, "no LLM is configured") != NULL, "no LLM: the commit records why");
    commit("0", "1");
    finish("no llm");

    begin(0, 1);
    fake_db_answer(fake_find(FAKE_DB, "sched_claim"), 1, NULL, "connection lost");
    TAP_OK(reports == 1 && report.err != NULL && strstr(report.err, "claiming due campaigns failed") != NULL,
           "a claim error ends the tick with it");
    finish("claim error");

    begin(0, 1);
    claim_one("2");
    fake_llm_answer(fake_find(FAKE_LLM, NULL), TITLES, "stop", NULL);
    fake_db_answer(fake_find(FAKE_DB, "sched_commit"), 1, NULL, "deadlock detected");
    TAP_OK(reports == 1 && report.failed == 1 && report.articles_created == 0,
           "a commit error counts as failed");
    finish("commit error");

    begin(0, 1);
    claim_one("0");
    TAP_IS_INT((int)fake_live(FAKE_LLM), 0, "nothing due: no LLM call");
    commit("0", "0");
    TAP_IS_INT(reports, 1, "nothing due: the commit still runs, the tick reports");
    finish("nothing due");
}

/* The waiting states: 0 CLAIMING, 1 TITLING, 2 COMMITTING. */
static void drive_to(int w)
{
    if (w >= 1)
        claim_one("2");
    if (w >= 2)
        fake_llm_answer(fake_find(FAKE_LLM, NULL), TITLES, "stop", NULL);
}

static void test_deadlines_and_cancels(void)
{
    const char *states[] = {"CLAIMING", "TITLING", "COMMITTING"};
    char name[64];
    for (int w = 0; w < 3; w++) {
        snprintf(name, sizeof(name), "deadline in %s", states[w]);
        begin(20, 1);
        drive_to(w);
        uv_run(&loop, UV_RUN_ONCE);
        TAP_OK(reports == 1 && report.err != NULL && strcmp(report.err, "deadline passed") == 0,
               "%s: the tick stops and reports it", name);
        TAP_OK(fake_find(FAKE_DB, "sched_release") != NULL, "%s: its leases are ended", name);
        finish(name);

        snprintf(name, sizeof(name), "cancel in %s", states[w]);
        begin(0, 1);
        drive_to(w);
        sched_tick_cancel(tick);
        TAP_IS_INT(reports, 0, "%s: the callback does not run", name);
        TAP_OK(fake_live(FAKE_LLM) == 0 && fake_find(FAKE_DB, "sched_claim") == NULL &&
                   fake_find(FAKE_DB, "sched_commit") == NULL,
               "%s: its operation is cancelled", name);
        finish(name);

        snprintf(name, sizeof(name), "stop in %s", states[w]);
        begin(0, 1);
        drive_to(w);
        fake_db_ack_fired("sched_release");
        sched_stop(sched, 20, on_stopped, NULL);
        TAP_IS_INT(uv_run(&loop, UV_RUN_DEFAULT), 0, "%s: the loop ran out of handles", name);
        TAP_OK(reports == 1 && report.err != NULL && strcmp(report.err, "shutting down") == 0,
               "%s: the tick is stopped at the drain's deadline", name);
        TAP_IS_INT(stopped, 1, "%s: the scheduler stopped", name);
        fake_db_ack_fired("sched_release");
        TAP_IS_INT(uv_loop_close(&loop), 0, "%s: the loop closed with no handle left", name);
    }
    /* Cancelled before its first loop turn (START). */
    fake_reset();
    reports = stopped = 0;
    uv_loop_init(&loop);
    app = (app_t){.loop = &loop, .cfg = &cfg};
    sched = sched_create(&app);
    db_target_t db = {fake_db_batch, fake_db_cancel, NULL};
    llm_port_t llm = {fake_llm_chat, fake_llm_cancel, &app};
    sched_set_ports(sched, &db, &llm, 0);
    tick = sched_tick(sched, 1700000000000000LL, on_report, NULL);
    sched_tick_cancel(tick);
    TAP_OK(reports == 0 && fake_nops == 0, "cancel in START: nothing ran, no lease to end");
    finish("cancel in START");
}

int main(void)
{
    test_full_tick();
    test_deadlines_and_cancels();
    fake_reset();
    return tap_done();
}
