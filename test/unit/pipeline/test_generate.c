/* The generation machine with fake providers and a fake database (test/unit/fakes.h) on a real loop whose
 * deadlines are short: every state on the happy path, the failure ends, every deadline, and a halt at every
 * waiting state. Each case ends with the loop closed (no handle left) and no fake operation live. */
#include "../../tap.h"
#include "../fakes.h"
#include "pipeline/generate.h"

#include <stdio.h>
#include <string.h>

static uv_loop_t loop;
static config_t cfg;
static gen_env_t env;
static jobs_job_t job;
static int refuse_db;

static const char *const COLS[] = {
    "status",        "raw_query",    "topic",           "title",    "category", "language",
    "target_length", "source_count", "last_stage_done", "research", "brief",    "meta_description",
    "slug",          "write_draft",  "write_calls",     "sources"};
#define NCOLS (sizeof(COLS) / sizeof(COLS[0]))

static const char *RESEARCH = "[{\"url\":\"http://example.test/a\",\"title\":\"A\",\"snippet\":\"s\"},"
                              "{\"url\":\"http://example.test/b\",\"title\":\"B\",\"snippet\":\"s\"}]";
static const char *SOURCES = "[{\"url\":\"http://example.test/a\",\"title\":\"A\",\"content\":\"Text A\"},"
                             "{\"url\":\"http://example.test/b\",\"title\":\"B\",\"content\":\"Text B\"}]";
static const char *BRIEF =
    "{\"keywords\":[\"k1\",\"k2\"],\"outline\":[{\"heading\":\"Intro\",\"points\":[\"p\"],"
    "\"citations\":[1],\"subsections\":[]}],\"strategy\":\"Be clear\"}";
static const char *GOOD_BRIEF =
    "Here it is: {\"keywords\":[\"a\",\"b\",\"c\",\"d\",\"e\"],\"outline\":[{\"heading\":\"One\"},"
    "{\"heading\":\"Two\"},{\"heading\":\"Three\"}],\"strategy\":\"s\",\"meta_description\":\"m\","
    "\"slug\":\"My Slug!\"}";

static PGresult *article_row(const char *status, const char *last, int write_calls, const char *draft)
{
    char calls[16];
    snprintf(calls, sizeof(calls), "%d", write_calls);
    const char *vals[NCOLS] = {status,
                               "best tea",
                               "best tea",
                               NULL,
                               "food",
                               "en",
                               "800",
                               "2",
                               last,
                               last ? RESEARCH : NULL,
                               (last && strcmp(last, "analyze") == 0) ? BRIEF : NULL,
                               NULL,
                               NULL,
                               draft,
                               calls,
                               (last && strcmp(last, "research") != 0) ? SOURCES : "[]"};
    return fake_rows(NCOLS, COLS, vals, 1);
}

static PGresult *one_id(void)
{
    const char *cols[] = {"id"};
    const char *vals[] = {"x"};
    return fake_rows(1, cols, vals, 1);
}

static void begin(uint64_t deadline_ms)
{
    fake_reset();
    refuse_db = 0;
    uv_loop_init(&loop);
    memset(&cfg, 0, sizeof(cfg));
    cfg.allow_private_urls = 1;
    env = (gen_env_t){.loop = &loop,
                      .cfg = &cfg,
                      .db = {fake_db_batch, fake_db_cancel, &refuse_db},
                      .llm = {fake_llm_chat, fake_llm_cancel, &env},
                      .search = {fake_search_start, fake_search_cancel, &env},
                      .fetch = {fake_fetch_start, fake_fetch_cancel, &env},
                      .jobs = fake_jobs_port,
                      .deadlines = {deadline_ms, deadline_ms, deadline_ms, deadline_ms}};
    job = (jobs_job_t){.id = 42, .kind = JOBS_KIND_GENERATE, .article_id = "a1", .attempt = 1};
    generate_run(&env, &job);
}

/* Ends a case: the fire-and-forget notes are answered, the loop runs until the machine's timer is closed. */
static void finish(const char *name)
{
    fake_db_ack_fired("gen_status");
    TAP_IS_INT(uv_run(&loop, UV_RUN_DEFAULT), 0, "%s: the loop ran out of handles", name);
    TAP_IS_INT(uv_loop_close(&loop), 0, "%s: the loop closed with no handle left", name);
    size_t live = 0;
    for (size_t i = 0; i < fake_nops; i++)
        live += fake_ops[i].live;
    TAP_IS_INT((int)live, 0, "%s: no operation left live", name);
}

/* Live operations of the machine (the fire-and-forget progress notes are not the machine's). */
static size_t machine_live(void)
{
    size_t n = 0;
    for (size_t i = 0; i < fake_nops; i++)
        n += fake_ops[i].live &&
             !(fake_ops[i].kind == FAKE_DB && strcmp(fake_ops[i].names[0], "gen_status") == 0);
    return n;
}

static fake_op_t *db(const char *name)
{
    return fake_find(FAKE_DB, name);
}

/* The happy path, one answer per step; each returns 0 when the op it answers was there. */
#define STEPS 16
static int step(int k)
{
    fake_op_t *op;
    switch (k) {
    case 0: /* LOADING */
        if ((op = db("gen_load")) == NULL)
            return -1;
        fake_db_answer(op, 0, article_row("queued", NULL, 0, NULL), NULL);
        return 0;
    case 1: /* SEARCHING */
        if ((op = fake_find(FAKE_SEARCH, NULL)) == NULL)
            return -1;
        fake_search_answer(op, 3, NULL);
        return 0;
    case 2:  /* RESEARCH_SAVING */
    case 5:  /* SCRAPE_SAVING */
    case 9:  /* BRIEF_SAVING */
    case 12: /* DRAFT_SAVING */
    case 15: /* COMPLETING */ {
        const char *names[] = {[2] = "gen_research_done",
                               [5] = "gen_scrape_done",
                               [9] = "gen_brief_done",
                               [12] = "gen_draft",
                               [15] = "gen_complete"};
        if ((op = db(names[k])) == NULL)
            return -1;
        fake_db_answer(op, 0, one_id(), NULL);
        return 0;
    }
    case 3:
    case 6:
    case 10:
    case 13: {
        const char *last = k == 3 ? "research" : k == 6 ? "scrape" : "analyze";
        if ((op = db("gen_load")) == NULL)
            return -1;
        fake_db_answer(
            op, 0, article_row("writing", last, k == 13 ? 1 : 0, k == 13 ? "# Tea\n\nFirst" : NULL), NULL);
        return 0;
    }
    case 4: /* FETCHING */
        if (fake_live(FAKE_FETCH) != 2)
            return -1;
        while ((op = fake_find(FAKE_FETCH, NULL)) != NULL)
            fake_fetch_answer(op, 1);
        return 0;
    case 7: /* BRIEFING: unusable, then the repair */
    case 8:
        if ((op = fake_find(FAKE_LLM, NULL)) == NULL)
            return -1;
        fake_llm_answer(op, k == 7 ? "no json here" : GOOD_BRIEF, "stop", NULL);
        return 0;
    case 11: /* WRITING: cut off, then the rest */
    case 14:
        if ((op = fake_find(FAKE_LLM, NULL)) == NULL)
            return -1;
        fake_llm_answer(op, k == 11 ? "# Tea\n\nFirst" : " part.\n\n## References\n[1] A - http://a",
                        k == 11 ? "length" : "stop", NULL);
        return 0;
    }
    return -1;
}

static void test_happy_path(void)
{
    begin(5000);
    int ok = 1;
    for (int k = 0; k < STEPS && ok; k++) {
        if (k == 8) {
            fake_op_t *repair = fake_find(FAKE_LLM, NULL);
            TAP_OK(repair != NULL && repair->n == 4 && strstr(repair->text, "could not be used") != NULL,
                   "an unusable brief gets one repair turn");
        }
        if (k == 7) {
            fake_op_t *b = fake_find(FAKE_LLM, NULL);
            TAP_OK(b != NULL && b->n == 2 && strstr(b->text, "Topic: best tea\nCategory: food\n") != NULL &&
                       strstr(b->text, "[1] A (http://example.test/a)\nText A\n\n[2] B") != NULL,
                   "the analysis prompt carries the settings and the numbered sources with their text");
        }
        if (k == 11) {
            fake_op_t *w = fake_find(FAKE_LLM, NULL);
            TAP_OK(w != NULL && w->n == 2 &&
                       strstr(w->text, "{\"outline\":[{\"heading\":\"Intro\",\"level\":2,\"points\":[\"p\"],"
                                       "\"citations\":[1],\"subsections\":[]}]}") != NULL &&
                       strstr(w->text, "Use these keywords naturally: k1, k2.\nStrategy: Be clear") != NULL &&
                       strstr(w->text, "about 800 words") != NULL,
                   "the writer's prompt carries the stored brief's outline, keywords and strategy");
        }
        if (k == 14) {
            fake_op_t *cont = fake_find(FAKE_LLM, NULL);
            TAP_OK(cont != NULL && cont->n == 4 && strstr(cont->text, "Continue the article") != NULL,
                   "a cut-off article is continued with its draft");
        }
        if (k == 9) {
            fake_op_t *b = db("gen_brief_done");
            TAP_OK(b != NULL && strstr(b->params0, "|my-slug|") != NULL && strstr(b->params0, "|m|") != NULL,
                   "the brief is stored cleaned (slug normalized, meta kept)");
        }
        if (k == 15) {
            fake_op_t *c = db("gen_complete");
            TAP_OK(c != NULL && strstr(c->params0, "<h1>Tea</h1>") != NULL &&
                       strstr(c->params0, "First part.") != NULL && c->n == 4,
                   "completion stores the joined Markdown, its HTML, and finishes the job in one batch");
        }
        ok = step(k) == 0;
        TAP_OK(ok, "happy path step %d answered", k);
    }
    TAP_IS_INT(fake_jobs.forgotten, 1, "completed: the job, finished in the batch, is let go");
    TAP_IS_INT(fake_job_ends(), 1, "the job ends once");
    finish("happy path");
}

/* A failure that fails the article: the gen_fail batch carries why. */
static void expect_fail(const char *name, const char *why)
{
    fake_op_t *f = db("gen_fail");
    TAP_OK(f != NULL && strstr(f->params0, why) != NULL, "%s: the article fails with \"%s\"", name, why);
    if (f != NULL)
        fake_db_answer(f, 0, one_id(), NULL);
    TAP_IS_INT(fake_jobs.forgotten, 1, "%s: the job (failed in the batch) is let go", name);
    finish(name);
}

static void test_failures(void)
{
    begin(5000);
    step(0);
    fake_search_answer(fake_find(FAKE_SEARCH, NULL), 0, "HTTP 500");
    expect_fail("search error", "Search failed: HTTP 500");

    begin(5000);
    step(0);
    fake_search_answer(fake_find(FAKE_SEARCH, NULL), 0, NULL);
    expect_fail("no results", "No sources could be scraped");

    begin(5000);
    for (int k = 0; k < 4; k++)
        step(k);
    fake_op_t *op;
    while ((op = fake_find(FAKE_FETCH, NULL)) != NULL)
        fake_fetch_answer(op, 0);
    expect_fail("no usable page", "No sources could be scraped");

    begin(5000);
    for (int k = 0; k < 8; k++)
        step(k);
    fake_llm_answer(fake_find(FAKE_LLM, NULL), "still no json", "stop", NULL);
    expect_fail("brief unusable twice", "after one repair attempt");

    begin(5000);
    for (int k = 0; k < 7; k++)
        step(k);
    fake_llm_answer(fake_find(FAKE_LLM, NULL), NULL, "stop", "llm: HTTP 429 after 4 attempts");
    expect_fail("analysis error", "Analysis failed: llm: HTTP 429");

    begin(5000);
    for (int k = 0; k < 11; k++)
        step(k);
    fake_llm_answer(fake_find(FAKE_LLM, NULL), NULL, "stop", "boom");
    expect_fail("writing error", "Writing failed: boom");

    begin(5000);
    for (int k = 0; k < 11; k++)
        step(k);
    fake_llm_answer(fake_find(FAKE_LLM, NULL), "", "stop", NULL);
    expect_fail("empty article", "empty article");

    env.search.ctx = NULL; /* begin() resets it; set before the load answers */
    begin(5000);
    env.search.ctx = NULL;
    step(0);
    expect_fail("search not configured", "Search is not configured");

    begin(5000);
    env.llm.ctx = NULL;
    for (int k = 0; k < 7; k++)
        step(k);
    expect_fail("llm not configured", "The LLM is not configured");
}

static void test_other_ends(void)
{
    begin(5000);
    fake_db_answer(db("gen_load"), 0, article_row("completed", "write", 0, NULL), NULL);
    TAP_IS_INT(fake_jobs.cancelled, 1, "an article no longer generating: the job is cancelled");
    finish("gone at load");

    begin(5000);
    fake_db_answer(db("gen_load"), 0, fake_rows(NCOLS, COLS, NULL, 0), NULL);
    TAP_IS_INT(fake_jobs.cancelled, 1, "a deleted article: the job is cancelled");
    finish("deleted");

    begin(5000);
    step(0);
    step(1);
    fake_db_answer(db("gen_research_done"), 0, fake_rows(1, (const char *const[]){"id"}, NULL, 0), NULL);
    TAP_IS_INT(fake_jobs.cancelled, 1, "a stage stored for no row: the job is cancelled");
    finish("gone at saving");

    begin(5000);
    fake_db_answer(db("gen_load"), 0, NULL, "connection lost");
    TAP_OK(fake_jobs.failed == 1 && fake_jobs.last_retry == JOBS_RETRY_BACKOFF &&
               strcmp(fake_jobs.last_err, "connection lost") == 0,
           "a database error: the job is retried later with the error");
    finish("db error");

    begin(5000);
    step(0);
    refuse_db = 1;
    fake_search_answer(fake_find(FAKE_SEARCH, NULL), 3, NULL);
    TAP_OK(fake_jobs.failed == 1 && strcmp(fake_jobs.last_err, "database busy") == 0,
           "a refused batch: the job is retried later (database busy)");
    finish("db refused");

    begin(5000);
    step(0);
    fake_search_answer(fake_find(FAKE_SEARCH, NULL), 0, "x");
    fake_db_answer(db("gen_fail"), 0, NULL, "deadlock detected");
    TAP_OK(fake_jobs.failed == 1 && fake_jobs.forgotten == 0, "recording the failure failed: retried later");
    finish("fail not recorded");

    fake_reset();
    uv_loop_init(&loop);
    job = (jobs_job_t){.id = 1, .kind = JOBS_KIND_GENERATE, .article_id = NULL};
    env.loop = &loop;
    generate_run(&env, &job);
    TAP_OK(fake_jobs.failed == 1 && fake_jobs.last_retry == JOBS_NO_RETRY,
           "a job without an article fails for good");
    finish("reject");
}

/* The waiting states of the happy path, by the step that answers them. */
static const struct {
    int step;
    const char *state;
} WAITS[] = {{0, "LOADING"},       {1, "SEARCHING"},     {2, "RESEARCH_SAVING"},   {4, "FETCHING"},
             {5, "SCRAPE_SAVING"}, {7, "BRIEFING"},      {8, "BRIEFING (repair)"}, {9, "BRIEF_SAVING"},
             {11, "WRITING"},      {12, "DRAFT_SAVING"}, {15, "COMPLETING"}};
#define NWAITS (sizeof(WAITS) / sizeof(WAITS[0]))

static void test_deadlines(void)
{
    for (size_t w = 0; w < NWAITS; w++) {
        char name[64];
        snprintf(name, sizeof(name), "deadline in %s", WAITS[w].state);
        begin(20);
        for (int k = 0; k < WAITS[w].step; k++)
            step(k);
        int fetching = WAITS[w].step == 4;
        if (fetching) /* one page answers, the other never does */
            fake_fetch_answer(fake_find(FAKE_FETCH, NULL), 1);
        size_t before = fake_nops;
        uv_run(&loop, UV_RUN_ONCE); /* the deadline fires */
        int cancelled = 0;
        for (size_t i = 0; i < before; i++)
            cancelled += fake_ops[i].cancelled;
        TAP_OK(cancelled == 1, "%s: the operation waited for is cancelled", name);
        const char *st = WAITS[w].state;
        if (strcmp(st, "SEARCHING") == 0) {
            expect_fail(name, "Search failed: timed out");
        } else if (strncmp(st, "BRIEFING", 8) == 0) {
            expect_fail(name, "Analysis failed: timed out");
        } else if (strcmp(st, "WRITING") == 0) {
            expect_fail(name, "Writing failed: timed out");
        } else if (fetching) {
            fake_op_t *s = db("gen_scrape_done");
            TAP_OK(s != NULL && strstr(s->params0, "Read 1 sources") != NULL,
                   "%s: the stage keeps the page it has", name);
            generate_halt(&job);
            finish(name);
        } else {
            TAP_OK(fake_jobs.failed == 1 && fake_jobs.last_retry == JOBS_RETRY_BACKOFF &&
                       strstr(fake_jobs.last_err, "timed out") != NULL,
                   "%s: the job is retried later", name);
            finish(name);
        }
    }
    /* FAILING: the failure's own transaction times out. */
    begin(20);
    step(0);
    fake_search_answer(fake_find(FAKE_SEARCH, NULL), 0, "x");
    uv_run(&loop, UV_RUN_ONCE);
    TAP_OK(fake_jobs.failed == 1 && strstr(fake_jobs.last_err, "timed out") != NULL,
           "deadline in FAILING: the job is retried later");
    finish("deadline in FAILING");
}

static void test_halts(void)
{
    for (size_t w = 0; w < NWAITS; w++) {
        char name[64];
        snprintf(name, sizeof(name), "halt in %s", WAITS[w].state);
        begin(5000);
        for (int k = 0; k < WAITS[w].step; k++)
            step(k);
        size_t live = machine_live();
        generate_halt(&job);
        size_t after = machine_live();
        TAP_OK(live > 0 && after == 0, "%s: every operation is cancelled", name);
        TAP_IS_INT(fake_job_ends(), 0, "%s: the job is not touched", name);
        finish(name);
    }
    begin(5000);
    step(0);
    fake_search_answer(fake_find(FAKE_SEARCH, NULL), 0, "x");
    generate_halt(&job);
    TAP_IS_INT(fake_job_ends(), 0, "halt in FAILING: the job is not touched");
    finish("halt in FAILING");
}

int main(void)
{
    test_happy_path();
    test_failures();
    test_other_ends();
    test_deadlines();
    test_halts();
    fake_reset();
    return tap_done();
}
