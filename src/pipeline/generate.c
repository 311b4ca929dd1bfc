#include "pipeline/generate.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "jobs/queue.h"
#include "pipeline/article.h"
#include "pipeline/cleanup.h"
#include "pipeline/markdown.h"
#include "pipeline/prompts.h"
#include "pipeline/scrape.h"
#include "queries.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A cut-off article reply is continued at most this many more times (API.md section 7). */
#define WRITE_MAX_CALLS 3

/* ---- SQL ---- */

/* The statements are sql/queries/generate.sql; the end of a job is the jobs module's (JOBS_STMT_MARK_*). */
int generate_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_generate, queries_generate_count);
}

/* ---- the machine's data ---- */

/* Each state names what the machine does, or (an "...ING" state) the one operation it waits for; every
 * waiting state is bounded by the deadline timer (env->deadlines). */
#define GEN_STATES(X)                                                                                        \
    X(LOAD)            /* sends the load of what is persisted of the article */                              \
    X(LOADING)         /* waits for the article row (db deadline) */                                         \
    X(DECIDE)          /* picks the next stage from last_stage_done */                                       \
    X(RESEARCH)        /* starts the search */                                                               \
    X(SEARCHING)       /* waits for the search provider (search deadline) */                                 \
    X(RESEARCH_SAVING) /* waits for the candidates to be stored (db deadline) */                             \
    X(SCRAPE)          /* starts fetching candidates */                                                      \
    X(FETCHING)        /* waits for the pages (scrape deadline: then keeps what it has) */                   \
    X(SCRAPE_SAVING)   /* waits for the sources to be stored (db deadline) */                                \
    X(ANALYZE)         /* asks the LLM for the brief */                                                      \
    X(BRIEFING)        /* waits for the brief (llm deadline; one repair try when it is not valid) */         \
    X(BRIEF_SAVING)    /* waits for the brief to be stored (db deadline) */                                  \
    X(WRITE)           /* asks the LLM for the article, or for its continuation */                           \
    X(WRITING)         /* waits for the article text (llm deadline) */                                       \
    X(DRAFT_SAVING)    /* waits for a cut-off draft to be stored before continuing (db deadline) */          \
    X(COMPLETE)        /* renders HTML, stores everything, queues delivery, finishes the job */              \
    X(COMPLETING)      /* waits for that transaction (db deadline) */                                        \
    X(FAIL)            /* marks the article failed and refunds it, failing the job */                        \
    X(FAILING)         /* waits for that transaction (db deadline) */                                        \
    X(RETRY)           /* database trouble: the job is failed to be retried later, from what is persisted */ \
    X(GONE)            /* the article is no longer being generated: the job is cancelled */                  \
    X(REJECT)          /* a job without an article: failed for good */                                       \
    X(DONE)            /* the job was let go (or taken back): teardown */

typedef enum {
#define X(s) GEN_##s,
    GEN_STATES(X)
#undef X
} gen_state_t;

static const char *const gen_state_names[] = {
#define X(s) #s,
    GEN_STATES(X)
#undef X
};

struct st_gen_t;

typedef struct st_gen_t {
    const gen_env_t *env;
    jobs_job_t *job;
    gen_state_t state;
    int ready;     /* the operation the current waiting state waits for has answered */
    int timed_out; /* the deadline of the current waiting state passed */
    int halt;      /* generate_halt: stop now without touching the job */
    char id[37];
    char err[600];          /* why the article fails */
    const char *retry_what; /* what failed in the database, for RETRY */
    uint64_t stage_start_ms;
    /* in flight: at most one of these */
    db_step_t step;
    search_call_t *sc;
    llm_call_t *lc;
    scrape_t scrape;
    uv_timer_t deadline; /* the waiting state's deadline; the machine is freed in its close callback */
    gen_article_t art;   /* the article as last loaded */
    /* research and scrape */
    char *search_err;
    gen_source_t *cands;
    size_t ncands;
    /* the last LLM reply */
    char *llm_err;
    char *reply;
    char finish[24];
    int repair_done;
    /* tokens used and not yet stored */
    int64_t tok_prompt, tok_completion;
} gen_t;

static void advance(gen_t *g);

/* ---- helpers: they start, stop and read operations, and never change the state ---- */

static void set_state(gen_t *g, gen_state_t s)
{
    if (log_enabled(LOG_LEVEL_DEBUG))
        log_debug("generating an article", "article %s: %s -> %s", g->id, gen_state_names[g->state],
                  gen_state_names[s]);
    g->state = s;
}

static void stage_finished(gen_t *g, const char *stage)
{
    metrics_pipeline_stage(stage, (double)(time_mono_ms() - g->stage_start_ms) / 1000.0);
    g->stage_start_ms = time_mono_ms();
}

/* Records why the article fails; returns the state that fails it, for the switch to enter. */
static gen_state_t failed(gen_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static gen_state_t failed(gen_t *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof(g->err), fmt, ap);
    va_end(ap);
    return GEN_FAIL;
}

static void on_deadline(uv_timer_t *t)
{
    gen_t *g = t->data;
    g->timed_out = 1;
    advance(g);
}

/* Arms the deadline of the waiting state about to be entered. */
static void arm(gen_t *g, uint64_t ms)
{
    g->ready = 0;
    g->timed_out = 0;
    if (uv_timer_start(&g->deadline, on_deadline, ms, 0) != 0)
        abort(); /* only for a closing handle: a bug */
}

static void clear_candidates(gen_t *g)
{
    scrape_cancel(&g->scrape);
    gen_sources_free(g->cands, g->ncands);
    g->cands = NULL;
    g->ncands = 0;
}

/* Cancels the operation the current state waits for and gives it a timeout as its outcome. */
static void give_up(gen_t *g)
{
    char why[80];
    if (g->step.q != NULL) {
        snprintf(why, sizeof(why), "timed out after %llu ms", (unsigned long long)g->env->deadlines.db_ms);
        db_step_give_up(&g->step, why);
    }
    if (g->sc != NULL) {
        g->env->search.cancel(g->sc);
        g->sc = NULL;
        free(g->search_err);
        g->search_err = xasprintf("timed out after %llu ms", (unsigned long long)g->env->deadlines.search_ms);
    }
    if (g->lc != NULL) {
        g->env->llm.cancel(g->lc);
        g->lc = NULL;
        free(g->llm_err);
        g->llm_err = xasprintf("timed out after %llu ms", (unsigned long long)g->env->deadlines.llm_ms);
    }
    scrape_cancel(&g->scrape); /* stragglers are dropped; the stage keeps the sources it already has */
}

/* 1 once the current waiting state may go on: its operation answered, or its deadline passed (then the
 * operation is cancelled with a timeout as its outcome). */
static int waited(gen_t *g)
{
    if (!g->ready && !g->timed_out)
        return 0;
    if (!g->ready)
        give_up(g);
    if (uv_timer_stop(&g->deadline) != 0)
        abort();
    g->ready = g->timed_out = 0;
    return 1;
}

static void on_step(db_step_t *s)
{
    gen_t *g = s->data;
    g->ready = 1;
    advance(g);
}

/* Sends a batch; 0, or -1 when the pool refused it (step.err says so). */
static int send_batch(gen_t *g, const db_stmt_t *stmts, size_t n)
{
    arm(g, g->env->deadlines.db_ms);
    return db_step_start(&g->step, stmts, n, 0);
}

static int send_query(gen_t *g, const char *name, int nparams, const char *const *params)
{
    db_stmt_t s = {name, NULL, nparams, params};
    return send_batch(g, &s, 1);
}

/* Fire-and-forget progress for GET /articles/{id}/events and the status field. */
static void set_progress(gen_t *g, const char *status, const char *detail)
{
    const char *params[] = {g->id, status, detail};
    if (db_target_fire(&g->env->db, "recording generation progress", "gen_status", 3, params) != 0)
        log_warn("recording generation progress", "article %s: the database is busy", g->id);
}

static void on_search(search_call_t *call)
{
    gen_t *g = call->data;
    g->sc = NULL;
    free(g->search_err);
    g->search_err = call->err ? xstrdup(call->err) : NULL;
    clear_candidates(g);
    if (call->err == NULL) {
        g->cands = xcalloc(call->count + 1, sizeof(gen_source_t));
        for (size_t i = 0; i < call->count; i++) {
            g->cands[i].url = xstrdup(call->results[i].url);
            g->cands[i].title = xstrdup(call->results[i].title ? call->results[i].title : "");
            g->cands[i].snippet = xstrdup(call->results[i].snippet ? call->results[i].snippet : "");
        }
        g->ncands = call->count;
    }
    g->ready = 1;
    advance(g);
}

/* The candidates of the persisted research_results (a resumed job); they are moved out of the article. */
static void take_candidates(gen_t *g)
{
    clear_candidates(g);
    g->cands = g->art.research;
    g->ncands = g->art.nresearch;
    g->art.research = NULL;
    g->art.nresearch = 0;
}

static void on_scraped(scrape_t *s)
{
    gen_t *g = s->data;
    g->ready = 1;
    advance(g);
}

static void on_llm(llm_call_t *call)
{
    gen_t *g = call->data;
    g->lc = NULL;
    g->tok_prompt += call->prompt_tokens;
    g->tok_completion += call->completion_tokens;
    metrics_llm_tokens(call->prompt_tokens, call->completion_tokens);
    free(g->llm_err);
    free(g->reply);
    g->llm_err = call->err ? xstrdup(call->err) : NULL;
    g->reply = call->content ? xstrdup(call->content) : NULL;
    snprintf(g->finish, sizeof(g->finish), "%s", call->finish_reason);
    g->ready = 1;
    advance(g);
}

/* Starts one LLM call; 0, or -1 when the client refused it (shutting down). */
static int ask_llm(gen_t *g, const llm_message_t *msgs, size_t n, int json_object, int max_tokens)
{
    arm(g, g->env->deadlines.llm_ms);
    g->lc = g->env->llm.chat(g->env->llm.ctx, msgs, n, json_object, max_tokens, on_llm, g);
    return g->lc != NULL ? 0 : -1;
}

static int ask_brief(gen_t *g, const char *bad_reply, const char *why)
{
    char *prompt = prompt_brief(&g->art);
    char *fix = why != NULL ? prompt_brief_repair(why) : NULL;
    llm_message_t msgs[] = {{"system", PROMPT_BRIEF_SYSTEM},
                            {"user", prompt},
                            {"assistant", bad_reply ? bad_reply : ""},
                            {"user", fix}};
    int rc = ask_llm(g, msgs, why != NULL ? 4 : 2, 1, 0);
    free(prompt);
    free(fix);
    return rc;
}

static int ask_article(gen_t *g)
{
    int calls = g->art.write_calls;
    const char *draft = g->art.write_draft;
    char *prompt = prompt_article(&g->art);
    /* Tokens: about 1.4 per English word, with room for headings and references. */
    int max_tokens = g->art.target_length * 2 + 600;
    llm_message_t msgs[] = {{"system", PROMPT_WRITER_SYSTEM},
                            {"user", prompt},
                            {"assistant", draft ? draft : ""},
                            {"user", PROMPT_CONTINUE}};
    int rc = ask_llm(g, msgs, (calls > 0 && draft != NULL) ? 4 : 2, 0, max_tokens);
    free(prompt);
    return rc;
}

/* The article's final Markdown (its fixed title as the H1), HTML and word count into the completion batch. */
static int send_complete(gen_t *g)
{
    const char *content = g->reply;
    char *titled = NULL;
    /* An article created from a title carries exactly that title as its H1, whatever the model wrote. */
    if (g->art.title != NULL)
        content = titled = markdown_set_title(content, g->art.title);
    size_t len = strlen(content);
    char *html = markdown_to_html(content, len);
    char *title = g->art.title != NULL ? NULL : markdown_title(content);
    char words[24], a[24], b[24], job_id[24];
    snprintf(words, sizeof(words), "%d", markdown_word_count(content, len));
    snprintf(a, sizeof(a), "%lld", (long long)g->tok_prompt);
    snprintf(b, sizeof(b), "%lld", (long long)g->tok_completion);
    snprintf(job_id, sizeof(job_id), "%lld", (long long)g->job->id);
    const char *p_complete[] = {g->id, content, html, words, title, a, b};
    const char *p_id[] = {g->id};
    const char *p_delivery[] = {g->id, JOBS_KIND_DELIVER};
    const char *p_job[] = {job_id, g->env->jobs.runner_id};
    /* One transaction: content, tokens and the ledger's token count, the delivery job, and the end of this
     * job; a crash before it commits redoes only the write stage's last call. */
    db_stmt_t stmts[] = {{"gen_complete", NULL, 7, p_complete},
                         {"gen_ledger_tokens", NULL, 1, p_id},
                         {"gen_enqueue_delivery", NULL, 2, p_delivery},
                         {JOBS_STMT_MARK_DONE, NULL, 2, p_job}};
    int rc = send_batch(g, stmts, 4);
    free(html);
    free(title);
    free(titled);
    return rc;
}

static int send_fail(gen_t *g)
{
    char a[24], b[24], job_id[24];
    snprintf(a, sizeof(a), "%lld", (long long)g->tok_prompt);
    snprintf(b, sizeof(b), "%lld", (long long)g->tok_completion);
    snprintf(job_id, sizeof(job_id), "%lld", (long long)g->job->id);
    const char *p_fail[] = {g->id, g->err, a, b};
    const char *p_job[] = {job_id, g->env->jobs.runner_id, g->err};
    db_stmt_t stmts[] = {{"gen_fail", NULL, 4, p_fail}, {JOBS_STMT_MARK_FAILED, NULL, 3, p_job}};
    return send_batch(g, stmts, 2);
}

static void on_deadline_closed(uv_handle_t *h)
{
    gen_t *g = h->data;
    db_step_clear(&g->step);
    gen_article_free(&g->art);
    free(g->search_err);
    free(g->llm_err);
    free(g->reply);
    free(g);
}

/* The one teardown, for every end: stops every operation (no callback of the machine runs afterwards) and
 * frees it once the timer is closed, outside any callback that ended it. */
static void teardown(gen_t *g)
{
    db_step_cancel(&g->step);
    if (g->sc != NULL)
        g->env->search.cancel(g->sc);
    if (g->lc != NULL)
        g->env->llm.cancel(g->lc);
    g->sc = NULL;
    g->lc = NULL;
    clear_candidates(g);
    uv_close((uv_handle_t *)&g->deadline, on_deadline_closed);
}

static int still_generating(const char *status)
{
    static const char *const generating[] = {"queued", "researching", "scraping", "analyzing", "writing"};
    for (size_t i = 0; status != NULL && i < sizeof(generating) / sizeof(generating[0]); i++)
        if (strcmp(status, generating[i]) == 0)
            return 1;
    return 0;
}

/* ---- the machine: every transition is here ---- */

static void advance(gen_t *g)
{
    while (g->state != GEN_DONE || !uv_is_closing((uv_handle_t *)&g->deadline)) {
        if (g->halt && g->state != GEN_DONE) {
            log_info("generating an article", "article %s: stopped while %s (handed back)", g->id,
                     gen_state_names[g->state]);
            set_state(g, GEN_DONE);
        }
        switch (g->state) {
        case GEN_LOAD: {
            const char *params[] = {g->id};
            g->retry_what = "loading the article";
            set_state(g, send_query(g, "gen_load", 1, params) == 0 ? GEN_LOADING : GEN_RETRY);
            break;
        }
        case GEN_LOADING:
            if (!waited(g))
                return;
            if (g->step.err != NULL) {
                set_state(g, GEN_RETRY);
                break;
            }
            gen_article_free(&g->art);
            if (g->step.rows == 1)
                gen_article_read(g->step.res, &g->art);
            db_step_clear(&g->step);
            set_state(g, still_generating(g->art.status) ? GEN_DECIDE : GEN_GONE);
            break;
        case GEN_DECIDE: {
            const char *last = g->art.last_stage_done;
            if (last == NULL)
                set_state(g, GEN_RESEARCH);
            else if (strcmp(last, "research") == 0)
                set_state(g, GEN_SCRAPE);
            else if (strcmp(last, "scrape") == 0)
                set_state(g, GEN_ANALYZE);
            else
                set_state(g, GEN_WRITE); /* "analyze"; "write" never stays generating */
            break;
        }
        case GEN_RESEARCH:
            if (g->env->search.ctx == NULL) {
                set_state(g, failed(g, "Search is not configured (SEARCH_PROVIDER)"));
                break;
            }
            set_progress(g, "researching", "Searching the web");
            arm(g, g->env->deadlines.search_ms);
            g->sc = g->env->search.start(g->env->search.ctx, g->art.raw_query ? g->art.raw_query : "",
                                         (size_t)g->art.source_count * 2, on_search, g);
            if (g->sc == NULL) {
                set_state(g, failed(g, "Search could not be started"));
                break;
            }
            set_state(g, GEN_SEARCHING);
            return;
        case GEN_SEARCHING: {
            if (!waited(g))
                return;
            if (g->search_err != NULL) {
                set_state(g, failed(g, "Search failed: %s", g->search_err));
                break;
            }
            if (g->ncands == 0) {
                /* Nothing found is not a finished research stage: it is not stored, so a retry searches
                 * again. */
                set_state(g, failed(g, "No sources could be scraped"));
                break;
            }
            stage_finished(g, "research");
            char *json = gen_sources_json(g->cands, g->ncands, 0, SIZE_MAX);
            char detail[64];
            snprintf(detail, sizeof(detail), "Found %zu candidate pages", g->ncands);
            const char *params[] = {g->id, json, detail};
            g->retry_what = "storing the research";
            set_state(g,
                      send_query(g, "gen_research_done", 3, params) == 0 ? GEN_RESEARCH_SAVING : GEN_RETRY);
            free(json);
            clear_candidates(g);
            break;
        }
        case GEN_RESEARCH_SAVING:
        case GEN_SCRAPE_SAVING:
        case GEN_BRIEF_SAVING:
        case GEN_DRAFT_SAVING:
            if (!waited(g))
                return;
            g->retry_what = "storing a stage";
            /* The next stage starts from what is now persisted, exactly as a resumed job would. */
            set_state(g, g->step.err != NULL ? GEN_RETRY : g->step.rows == 0 ? GEN_GONE : GEN_LOAD);
            break;
        case GEN_SCRAPE:
            if (!g->art.has_research || g->art.nresearch == 0) {
                /* Stored research without a usable candidate (an empty result stored before empty results
                 * stopped counting as done, or unreadable JSON) is no finished stage: search again. */
                log_info("generating an article",
                         "article %s: the stored research has no candidates; searching again", g->id);
                set_state(g, GEN_RESEARCH);
                break;
            }
            take_candidates(g);
            arm(g, g->env->deadlines.scrape_ms);
            /* None could start: the stage ends at once. */
            g->ready =
                !scrape_start(&g->scrape, &g->env->fetch, g->cands, g->ncands, (size_t)g->art.source_count,
                              g->env->cfg->allow_private_urls, g->id, on_scraped, g);
            set_state(g, GEN_FETCHING);
            break;
        case GEN_FETCHING: {
            if (!waited(g))
                return;
            size_t usable = g->scrape.usable;
            if (usable == 0) {
                set_state(g, failed(g, "No sources could be scraped"));
                break;
            }
            stage_finished(g, "scrape");
            size_t want = (size_t)g->art.source_count;
            char *json = gen_sources_json(g->cands, g->ncands, 1, want);
            char detail[64];
            snprintf(detail, sizeof(detail), "Read %zu sources", usable < want ? usable : want);
            const char *origin = g->env->cfg->search_provider ? g->env->cfg->search_provider : "search";
            const char *p_clear[] = {g->id};
            const char *p_insert[] = {g->id, json, origin};
            const char *p_done[] = {g->id, detail};
            db_stmt_t stmts[] = {{"gen_scrape_done", NULL, 2, p_done},
                                 {"gen_sources_clear", NULL, 1, p_clear},
                                 {"gen_sources_insert", NULL, 3, p_insert}};
            g->retry_what = "storing the sources";
            set_state(g, send_batch(g, stmts, 3) == 0 ? GEN_SCRAPE_SAVING : GEN_RETRY);
            free(json);
            clear_candidates(g);
            break;
        }
        case GEN_ANALYZE: {
            if (g->env->llm.ctx == NULL) {
                set_state(g, failed(g, "The LLM is not configured (LLM_BASE_URL)"));
                break;
            }
            set_progress(g, "analyzing", "Planning the article");
            g->repair_done = 0;
            set_state(g, ask_brief(g, NULL, NULL) == 0 ? GEN_BRIEFING
                                                       : failed(g, "The LLM client is shutting down"));
            break;
        }
        case GEN_BRIEFING: {
            if (!waited(g))
                return;
            if (g->llm_err != NULL) {
                set_state(g, failed(g, "Analysis failed: %s", g->llm_err));
                break;
            }
            gen_brief_t brief;
            char why[200];
            if (cleanup_brief(g->reply, g->art.raw_query, &brief, why, sizeof(why)) != 0) {
                if (g->repair_done) {
                    set_state(
                        g, failed(g, "The LLM's brief was not valid JSON after one repair attempt: %s", why));
                    break;
                }
                /* One repair try: the model sees its reply and what was wrong with it. */
                g->repair_done = 1;
                log_info("analyzing an article", "article %s: brief unusable (%s); asking for a repair",
                         g->id, why);
                if (ask_brief(g, g->reply, why) != 0)
                    set_state(g, failed(g, "The LLM client is shutting down"));
                break; /* BRIEFING again: it waits for the repaired reply */
            }
            stage_finished(g, "analyze");
            char *json = gen_brief_json(&brief);
            char a[24], b[24];
            snprintf(a, sizeof(a), "%lld", (long long)g->tok_prompt);
            snprintf(b, sizeof(b), "%lld", (long long)g->tok_completion);
            g->tok_prompt = g->tok_completion = 0;
            const char *params[] = {g->id, json, brief.meta, brief.slug, a, b, "Writing the article"};
            g->retry_what = "storing the brief";
            set_state(g, send_query(g, "gen_brief_done", 7, params) == 0 ? GEN_BRIEF_SAVING : GEN_RETRY);
            free(json);
            gen_brief_free(&brief);
            break;
        }
        case GEN_WRITE:
            if (g->env->llm.ctx == NULL) {
                set_state(g, failed(g, "The LLM is not configured (LLM_BASE_URL)"));
                break;
            }
            if (g->art.write_calls == 0)
                set_progress(g, "writing", "Writing the article");
            if (ask_article(g) != 0) {
                set_state(g, failed(g, "The LLM client is shutting down"));
                break;
            }
            set_state(g, GEN_WRITING);
            break;
        case GEN_WRITING: {
            if (!waited(g))
                return;
            if (g->llm_err != NULL) {
                set_state(g, failed(g, "Writing failed: %s", g->llm_err));
                break;
            }
            int calls = g->art.write_calls + 1;
            buf_t draft = BUF_INIT;
            if (calls > 1 && g->art.write_draft != NULL)
                buf_puts(&draft, g->art.write_draft);
            buf_puts(&draft, g->reply ? g->reply : "");
            if (strcmp(g->finish, "length") == 0 && calls < WRITE_MAX_CALLS) {
                /* Cut off by the length limit: keep the draft (and what it cost) and continue. */
                char a[24], b[24], c[24];
                snprintf(a, sizeof(a), "%d", calls);
                snprintf(b, sizeof(b), "%lld", (long long)g->tok_prompt);
                snprintf(c, sizeof(c), "%lld", (long long)g->tok_completion);
                g->tok_prompt = g->tok_completion = 0;
                const char *params[] = {g->id, buf_cstr(&draft), a, b, c, "Continuing the article"};
                g->retry_what = "storing the draft";
                set_state(g, send_query(g, "gen_draft", 6, params) == 0 ? GEN_DRAFT_SAVING : GEN_RETRY);
                buf_free(&draft);
                break;
            }
            free(g->reply);
            g->reply = buf_release(&draft);
            stage_finished(g, "write");
            set_state(g, GEN_COMPLETE);
            break;
        }
        case GEN_COMPLETE:
            if (g->reply == NULL || g->reply[0] == '\0') {
                set_state(g, failed(g, "The LLM returned an empty article"));
                break;
            }
            g->retry_what = "completing the article";
            set_state(g, send_complete(g) == 0 ? GEN_COMPLETING : GEN_RETRY);
            break;
        case GEN_COMPLETING:
            if (!waited(g))
                return;
            if (g->step.err != NULL) {
                set_state(g, GEN_RETRY);
                break;
            }
            stage_finished(g, "complete");
            if (g->step.rows == 1)
                log_info("generating an article", "article %s completed (%lld tokens in its last call)",
                         g->id, (long long)(g->tok_prompt + g->tok_completion));
            g->env->jobs.forget(g->job);
            set_state(g, GEN_DONE);
            break;
        case GEN_FAIL:
            log_warn("generating an article", "article %s failed: %s", g->id, g->err);
            g->retry_what = "recording the failure";
            set_state(g, send_fail(g) == 0 ? GEN_FAILING : GEN_RETRY);
            break;
        case GEN_FAILING:
            if (!waited(g))
                return;
            if (g->step.err != NULL) {
                set_state(g, GEN_RETRY);
                break;
            }
            g->env->jobs.forget(g->job);
            set_state(g, GEN_DONE);
            break;
        case GEN_RETRY:
            /* Database failures are the database's, not the article's: the job is retried later and resumes
             * from what was persisted. */
            log_warn("generating an article", "article %s: %s failed: %s; the job will be retried", g->id,
                     g->retry_what, g->step.err ? g->step.err : "database busy");
            g->env->jobs.fail(g->job, g->step.err ? g->step.err : "database busy", JOBS_RETRY_BACKOFF);
            set_state(g, GEN_DONE);
            break;
        case GEN_GONE:
            /* Deleted, cancelled, or completed from outside: stop quietly. */
            log_info("generating an article", "article %s is no longer being generated; stopping", g->id);
            g->env->jobs.cancel(g->job, "article no longer generating");
            set_state(g, GEN_DONE);
            break;
        case GEN_REJECT:
            g->env->jobs.fail(g->job, JOBS_KIND_GENERATE " job without an article", JOBS_NO_RETRY);
            set_state(g, GEN_DONE);
            break;
        case GEN_DONE:
            teardown(g);
            return;
        }
    }
}

/* ---- entry points ---- */

void generate_run(const gen_env_t *env, jobs_job_t *job)
{
    gen_t *g = xcalloc(1, sizeof(*g));
    g->env = env;
    g->job = job;
    job->data = g;
    snprintf(g->id, sizeof(g->id), "%s", job->article_id ? job->article_id : "");
    g->stage_start_ms = time_mono_ms();
    db_step_init(&g->step, &env->db, on_step, g);
    if (uv_timer_init(env->loop, &g->deadline) != 0)
        abort(); /* only fails for an invalid loop */
    g->deadline.data = g;
    if (job->article_id != NULL)
        log_info("generating an article", "article %s: attempt %d", g->id, job->attempt);
    g->state = job->article_id != NULL ? GEN_LOAD : GEN_REJECT;
    advance(g);
}

void generate_halt(jobs_job_t *job)
{
    gen_t *g = job->data;
    g->halt = 1;
    advance(g);
}
