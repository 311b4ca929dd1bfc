#include "pipeline/generate.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "jobs/queue.h"
#include "net/net.h"
#include "pipeline/extract.h"
#include "pipeline/llm.h"
#include "pipeline/markdown.h"
#include "pipeline/search.h"
#include "queries.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A page must give at least this much main text to count as a source (API.md section 7). */
#define SOURCE_MIN_CHARS 200
/* Pages fetched at once for one article: enough to finish quickly, few enough that one article cannot hold
 * dozens of 2 MiB bodies. */
#define SCRAPE_PARALLEL 5
#define SCRAPE_MAX_BYTES (2 * 1024 * 1024)
#define SCRAPE_TIMEOUT_MS 15000
/* The whole scrape stage gives up on stragglers after this long and keeps what it has. */
#define SCRAPE_DEADLINE_MS 45000
/* How much of each source goes into the prompts (characters): the brief sees more than the writer. */
#define ANALYZE_SOURCE_CHARS 3000
#define WRITE_SOURCE_CHARS 1200
/* A cut-off article reply is continued at most this many more times (API.md section 7). */
#define WRITE_MAX_CALLS 3
/* How often articles whose job ended without them are failed and refunded. */
#define SWEEP_INTERVAL_MS 30000

/* Each state names what the machine does or waits for; an "...ING" state waits for one operation. */
#define GEN_STATES(X)                                                                                        \
    X(LOAD)            /* read what is persisted of the article */                                           \
    X(LOADING)         /* waits for the article row */                                                       \
    X(DECIDE)          /* picks the next stage from last_stage_done */                                       \
    X(RESEARCH)        /* starts the search */                                                               \
    X(SEARCHING)       /* waits for the search provider */                                                   \
    X(RESEARCH_SAVING) /* waits for the candidates to be stored */                                           \
    X(SCRAPE)          /* starts fetching candidates */                                                      \
    X(FETCHING)        /* waits for pages (bounded by the stage deadline) */                                 \
    X(SCRAPE_SAVING)   /* waits for the sources to be stored */                                              \
    X(ANALYZE)         /* asks the LLM for the brief */                                                      \
    X(BRIEFING)        /* waits for the brief (one repair try when it is not valid) */                       \
    X(BRIEF_SAVING)    /* waits for the brief to be stored */                                                \
    X(WRITE)           /* asks the LLM for the article, or for its continuation */                           \
    X(WRITING)         /* waits for the article text */                                                      \
    X(DRAFT_SAVING)    /* waits for a cut-off draft to be stored before continuing */                        \
    X(COMPLETE)        /* renders HTML, stores everything, queues delivery, finishes the job */              \
    X(COMPLETING)      /* waits for that transaction */                                                      \
    X(FAIL)            /* marks the article failed and refunds it */                                         \
    X(FAILING)         /* waits for that transaction */                                                      \
    X(DONE)            /* the job was let go; teardown */

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

typedef struct st_candidate_t {
    struct st_gen_t *owner;
    char *url, *title, *snippet;
    net_op_t *op;
    int done;
    char *text;       /* extracted main text, when usable */
    char *page_title; /* the page's own title */
} candidate_t;

typedef struct st_gen_t {
    app_t *app;
    jobs_job_t *job;
    gen_state_t state;
    int ready; /* the operation the current "...ING" state waits for has completed */
    char id[37];
    char err[600]; /* why the article fails */
    uint64_t stage_start_ms;
    /* in flight; at most one of these at a time, except the page fetches */
    db_query_t *q;
    search_call_t *sc;
    llm_call_t *lc;
    uv_timer_t deadline; /* the scrape stage's deadline; the machine is freed in its close callback */
    /* the last database result, copied */
    PGresult *row;
    const char *db_err;
    char db_sqlstate[6];
    int db_rows;
    /* the search result */
    char *search_err;
    candidate_t *cands;
    size_t ncands, next_cand, fetching, usable;
    /* the last LLM reply */
    char *llm_err;
    char *reply;
    char finish[24];
    int repair_done;
    /* tokens used and not yet stored */
    int64_t tok_prompt, tok_completion;
} gen_t;

static struct {
    app_t *app;
    uv_timer_t sweep;
    int sweeping;
    int started;
} G;

static void advance(gen_t *g);

/* ---- SQL ---- */

/* The statements are sql/queries/generate.sql; the end of a job is the jobs module's (JOBS_STMT_MARK_*). */
int generate_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_generate, queries_generate_count);
}

/* ---- the machine's plumbing ---- */

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

static void clear_candidates(gen_t *g)
{
    for (size_t i = 0; i < g->ncands; i++) {
        candidate_t *c = &g->cands[i];
        if (c->op != NULL)
            net_cancel(c->op);
        free(c->url);
        free(c->title);
        free(c->snippet);
        free(c->text);
        free(c->page_title);
    }
    free(g->cands);
    g->cands = NULL;
    g->ncands = g->next_cand = g->fetching = g->usable = 0;
}

static void on_deadline_closed(uv_handle_t *h)
{
    gen_t *g = h->data;
    PQclear(g->row);
    free(g->search_err);
    free(g->llm_err);
    free(g->reply);
    free(g);
}

/* Stops every operation of the machine (no callback of its runs afterwards) and frees it once the timer is
 * closed. The job must already be let go of (done, failed, cancelled, forgotten, or taken back by the
 * runner). */
static void teardown(gen_t *g)
{
    set_state(g, GEN_DONE);
    if (g->q != NULL)
        db_query_cancel(g->q);
    if (g->sc != NULL)
        search_cancel(g->sc);
    if (g->lc != NULL)
        llm_cancel(g->lc);
    g->q = NULL;
    g->sc = NULL;
    g->lc = NULL;
    clear_candidates(g);
    uv_close((uv_handle_t *)&g->deadline, on_deadline_closed);
}

/* Database failures are the database's, not the article's: the job is retried later and resumes from what was
 * persisted. */
static void retry_job_later(gen_t *g, const char *what)
{
    log_warn("generating an article", "article %s: %s failed: %s; the job will be retried", g->id, what,
             g->db_err ? g->db_err : "database busy");
    jobs_fail(g->job, g->db_err ? g->db_err : "database busy", JOBS_RETRY_BACKOFF);
    teardown(g);
}

/* The article is no longer being generated (deleted, cancelled, completed from outside): stop quietly. */
static void article_gone(gen_t *g)
{
    log_info("generating an article", "article %s is no longer being generated; stopping", g->id);
    jobs_cancel(g->job, "article no longer generating");
    teardown(g);
}

static void fail_article(gen_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_article(gen_t *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof(g->err), fmt, ap);
    va_end(ap);
    set_state(g, GEN_FAIL);
}

/* Completion of the machine's one database batch: keeps the last statement's result (copied) and the first
 * error, then advances. */
static void on_db(const db_result_t *r, size_t n, void *data)
{
    gen_t *g = data;
    g->q = NULL;
    PQclear(g->row);
    g->row = NULL;
    g->db_err = NULL;
    g->db_sqlstate[0] = '\0';
    g->db_rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].err != NULL) {
            /* The message must outlive the results: keep it in err (not the article's error). */
            snprintf(g->err, sizeof(g->err), "%s", r[i].err);
            g->db_err = g->err;
            memcpy(g->db_sqlstate, r[i].sqlstate, sizeof(g->db_sqlstate));
            break;
        }
    }
    if (g->db_err == NULL && r[0].res != NULL) {
        g->row = PQcopyResult(r[0].res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
        g->db_rows = PQntuples(r[0].res);
    }
    g->ready = 1;
    advance(g);
}

static void send_batch(gen_t *g, const db_stmt_t *stmts, size_t n, gen_state_t waiting)
{
    set_state(g, waiting);
    g->ready = 0;
    g->q = db_batch(g->app->db, stmts, n, on_db, g);
    if (g->q == NULL) {
        /* The pool refused (wait queue full): same as a database failure. */
        g->db_err = NULL;
        g->ready = 1;
        retry_job_later(g, "queueing a query");
    }
}

static void send_query(gen_t *g, const char *name, int nparams, const char *const *params,
                       gen_state_t waiting)
{
    db_stmt_t s = {name, NULL, nparams, params};
    send_batch(g, &s, 1, waiting);
}

/* Fire-and-forget progress for GET /articles/{id}/events and the status field. */
static void on_status_set(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    (void)data;
    if (r[0].err != NULL)
        log_warn("generating an article", "recording progress failed: %s", r[0].err);
}

static void set_progress(gen_t *g, const char *status, const char *detail)
{
    const char *params[] = {g->id, status, detail};
    db_query(g->app->db, "gen_status", 3, params, on_status_set, NULL);
}

static const char *col(const gen_t *g, const char *name)
{
    return db_value(g->row, 0, name);
}

/* ---- research ---- */

static void on_search(search_call_t *call)
{
    gen_t *g = call->data;
    g->sc = NULL;
    free(g->search_err);
    g->search_err = call->err ? xstrdup(call->err) : NULL;
    clear_candidates(g);
    if (call->err == NULL) {
        g->cands = xcalloc(call->count + 1, sizeof(candidate_t));
        for (size_t i = 0; i < call->count; i++) {
            g->cands[i].url = xstrdup(call->results[i].url);
            g->cands[i].title = xstrdup(call->results[i].title);
            g->cands[i].snippet = xstrdup(call->results[i].snippet);
        }
        g->ncands = call->count;
    }
    g->ready = 1;
    advance(g);
}

static char *candidates_json(const gen_t *g)
{
    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_array_begin(&w);
    for (size_t i = 0; i < g->ncands; i++) {
        jw_object_begin(&w);
        jw_key(&w, "url");
        jw_string(&w, g->cands[i].url);
        jw_key(&w, "title");
        jw_string(&w, g->cands[i].title);
        jw_key(&w, "snippet");
        jw_string(&w, g->cands[i].snippet);
        jw_object_end(&w);
    }
    jw_array_end(&w);
    return buf_release(&b);
}

/* Rebuilds the candidates from the persisted research_results (a resumed job). */
static int load_candidates(gen_t *g)
{
    clear_candidates(g);
    const char *text = col(g, "research");
    char err[128];
    yajl_val arr = text ? json_parse(text, strlen(text), err, sizeof(err)) : NULL;
    if (arr == NULL || !YAJL_IS_ARRAY(arr)) {
        if (arr)
            yajl_tree_free(arr);
        return -1;
    }
    g->cands = xcalloc(arr->u.array.len + 1, sizeof(candidate_t));
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val o = arr->u.array.values[i];
        yajl_val u = json_get(o, "url"), t = json_get(o, "title"), s = json_get(o, "snippet");
        if (u == NULL || !YAJL_IS_STRING(u))
            continue;
        candidate_t *c = &g->cands[g->ncands++];
        c->url = xstrdup(u->u.string);
        c->title = xstrdup(t && YAJL_IS_STRING(t) ? t->u.string : "");
        c->snippet = xstrdup(s && YAJL_IS_STRING(s) ? s->u.string : "");
    }
    yajl_tree_free(arr);
    return 0;
}

/* ---- scrape ---- */

static int is_html(const char *content_type, const buf_t *body)
{
    if (content_type != NULL) {
        return strncasecmp(content_type, "text/html", 9) == 0 ||
               strncasecmp(content_type, "application/xhtml+xml", 21) == 0;
    }
    /* No Content-Type: take it for HTML when it starts like markup. */
    for (size_t i = 0; i < body->len; i++) {
        if (!isspace((unsigned char)body->data[i]))
            return body->data[i] == '<';
    }
    return 0;
}

static void start_fetches(gen_t *g);

/* Cancels the fetches still in flight; their callbacks will not run. */
static void stop_fetches(gen_t *g)
{
    for (size_t i = 0; i < g->ncands; i++) {
        if (g->cands[i].op != NULL) {
            net_cancel(g->cands[i].op);
            g->cands[i].op = NULL;
        }
    }
    g->fetching = 0;
    g->next_cand = g->ncands;
}

static void on_page(net_op_t *op)
{
    candidate_t *c = op->data;
    gen_t *g = c->owner;
    c->op = NULL;
    c->done = 1;
    g->fetching--;
    if (op->err != NULL) {
        log_debug("scraping sources", "article %s: %s: %s", g->id, c->url, op->err);
    } else if (op->status != 200) {
        log_debug("scraping sources", "article %s: %s: HTTP %ld", g->id, c->url, op->status);
    } else if (!is_html(op->content_type, &op->body)) {
        log_debug("scraping sources", "article %s: %s: not HTML (%s)", g->id, c->url,
                  op->content_type ? op->content_type : "no content type");
    } else {
        extract_result_t ex;
        extract_html(op->body.data ? op->body.data : "", op->body.len, op->content_type, c->url, &ex);
        if (ex.text != NULL && ex.text_len >= SOURCE_MIN_CHARS) {
            c->text = xstrdup(ex.text);
            c->page_title = ex.title && ex.title[0] ? xstrdup(ex.title) : NULL;
            g->usable++;
        } else {
            log_debug("scraping sources", "article %s: %s: only %zu characters of text", g->id, c->url,
                      ex.text_len);
        }
        extract_result_free(&ex);
    }
    if ((int64_t)g->usable >= db_int(g->row, 0, "source_count"))
        stop_fetches(g); /* enough sources: the slower pages are not waited for */
    else
        start_fetches(g);
    if (g->fetching == 0) {
        g->ready = 1;
        advance(g);
    }
}

/* Keeps up to SCRAPE_PARALLEL fetches going until enough sources are usable or the candidates run out. */
static void start_fetches(gen_t *g)
{
    int64_t want = db_int(g->row, 0, "source_count");
    while (g->fetching < SCRAPE_PARALLEL && g->next_cand < g->ncands && (int64_t)g->usable < want) {
        candidate_t *c = &g->cands[g->next_cand++];
        const char *headers[] = {"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.5", NULL};
        net_request_t req = {.method = "GET",
                             .url = c->url,
                             .headers = headers,
                             .connect_timeout_ms = 5000,
                             .timeout_ms = SCRAPE_TIMEOUT_MS,
                             .max_response_bytes = SCRAPE_MAX_BYTES,
                             .max_redirects = 5,
                             .allow_private = g->app->cfg->allow_private_urls};
        c->owner = g;
        c->op = net_start(g->app->net, &req, on_page, c);
        g->fetching++;
    }
}

static void on_scrape_deadline(uv_timer_t *t)
{
    gen_t *g = t->data;
    /* Stragglers are dropped; the stage keeps the sources it already has. */
    stop_fetches(g);
    g->ready = 1;
    advance(g);
}

static char *sources_json(const gen_t *g, size_t max)
{
    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_array_begin(&w);
    size_t kept = 0;
    for (size_t i = 0; i < g->ncands && kept < max; i++) {
        const candidate_t *c = &g->cands[i];
        if (c->text == NULL)
            continue;
        kept++;
        jw_object_begin(&w);
        jw_key(&w, "url");
        jw_string(&w, c->url);
        jw_key(&w, "title");
        jw_string(&w, c->page_title ? c->page_title : c->title);
        jw_key(&w, "snippet");
        jw_string(&w, c->snippet);
        jw_key(&w, "content");
        jw_string(&w, c->text);
        jw_object_end(&w);
    }
    jw_array_end(&w);
    return buf_release(&b);
}

/* ---- prompts ---- */

/* Appends at most max characters of s (cut at a UTF-8 boundary). */
static void put_clipped(buf_t *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    buf_append(b, s, n);
    if (n < strlen(s))
        buf_puts(b, " ...");
}

/* "[n] title (url)\n<excerpt>" for every stored source. */
static void put_sources(buf_t *b, const char *sources_text, size_t excerpt)
{
    char err[128];
    yajl_val arr = json_parse(sources_text, strlen(sources_text), err, sizeof(err));
    if (arr == NULL || !YAJL_IS_ARRAY(arr)) {
        if (arr)
            yajl_tree_free(arr);
        return;
    }
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val o = arr->u.array.values[i];
        yajl_val u = json_get(o, "url"), t = json_get(o, "title"), c = json_get(o, "content");
        buf_printf(b, "[%zu] %s (%s)\n", i + 1, (t && YAJL_IS_STRING(t)) ? t->u.string : "",
                   (u && YAJL_IS_STRING(u)) ? u->u.string : "");
        if (excerpt > 0 && c && YAJL_IS_STRING(c)) {
            put_clipped(b, c->u.string, excerpt);
            buf_puts(b, "\n\n");
        }
    }
    yajl_tree_free(arr);
}

static char *brief_prompt(const gen_t *g)
{
    buf_t b = BUF_INIT;
    buf_printf(&b, "Topic: %s\nCategory: %s\nLanguage: %s\nTarget length: %s words\n\nSources:\n",
               col(g, "raw_query"), col(g, "category"), col(g, "language"), col(g, "target_length"));
    put_sources(&b, col(g, "sources"), ANALYZE_SOURCE_CHARS);
    buf_puts(
        &b,
        "Plan an SEO article on the topic from these sources. Reply with a JSON object with exactly these "
        "members:\n"
        "\"keywords\": 15 to 20 search keywords (strings);\n"
        "\"outline\": 5 to 8 sections, each {\"heading\": text, \"level\": 2, \"points\": [text], "
        "\"citations\": [source numbers], \"subsections\": [the same shape with level 3]};\n"
        "\"strategy\": one paragraph on angle, audience and search intent;\n"
        "\"meta_description\": at most 160 characters;\n"
        "\"slug\": lowercase words joined by hyphens.");
    return buf_release(&b);
}

/* Strips anything before the first '{' and after the last '}' (models sometimes wrap JSON in prose or
 * fences). */
static yajl_val parse_object(const char *reply, char *err, size_t errlen)
{
    const char *open = strchr(reply, '{');
    const char *close = strrchr(reply, '}');
    if (open == NULL || close == NULL || close < open) {
        snprintf(err, errlen, "no JSON object in the reply");
        return NULL;
    }
    yajl_val v = json_parse(open, (size_t)(close - open + 1), err, errlen);
    if (v != NULL && !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        snprintf(err, errlen, "the reply is not a JSON object");
        return NULL;
    }
    return v;
}

static void write_outline(json_writer_t *w, yajl_val sections, int level, size_t max)
{
    jw_array_begin(w);
    size_t kept = 0;
    for (size_t i = 0; sections && YAJL_IS_ARRAY(sections) && i < sections->u.array.len && kept < max; i++) {
        yajl_val s = sections->u.array.values[i];
        yajl_val heading = json_get(s, "heading");
        if (heading == NULL || !YAJL_IS_STRING(heading) || heading->u.string[0] == '\0')
            continue;
        kept++;
        jw_object_begin(w);
        jw_key(w, "heading");
        jw_string(w, heading->u.string);
        jw_key(w, "level");
        jw_int(w, level);
        jw_key(w, "points");
        jw_array_begin(w);
        yajl_val points = json_get(s, "points");
        for (size_t k = 0; points && YAJL_IS_ARRAY(points) && k < points->u.array.len; k++)
            if (YAJL_IS_STRING(points->u.array.values[k]))
                jw_string(w, points->u.array.values[k]->u.string);
        jw_array_end(w);
        jw_key(w, "citations");
        jw_array_begin(w);
        yajl_val cites = json_get(s, "citations");
        for (size_t k = 0; cites && YAJL_IS_ARRAY(cites) && k < cites->u.array.len; k++)
            if (YAJL_IS_INTEGER(cites->u.array.values[k]))
                jw_int(w, YAJL_GET_INTEGER(cites->u.array.values[k]));
        jw_array_end(w);
        jw_key(w, "subsections");
        if (level < 4)
            write_outline(w, json_get(s, "subsections"), level + 1, 10);
        else
            jw_raw(w, "[]", 2);
        jw_object_end(w);
    }
    jw_array_end(w);
}

/* Turns free text into "lowercase-words-with-hyphens" (ASCII letters and digits only), at most 80 bytes. */
static char *slugify(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n + 1 > 81 ? 81 : n + 1);
    size_t o = 0;
    int dash = 0;
    for (size_t i = 0; i < n && o < 80; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) && c < 0x80) {
            if (dash && o > 0)
                out[o++] = '-';
            if (o < 80)
                out[o++] = (char)tolower(c);
            dash = 0;
        } else {
            dash = 1;
        }
    }
    while (o > 0 && out[o - 1] == '-')
        o--;
    out[o] = '\0';
    return out;
}

/* Cuts s to at most max characters at a word boundary (meta descriptions have a hard 160 limit). */
static char *clip_words(const char *s, size_t max)
{
    size_t chars = 0, i = 0, last_space = 0;
    size_t n = strlen(s);
    while (i < n) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (chars == max)
                break;
            chars++;
        }
        if (s[i] == ' ')
            last_space = i;
        i++;
    }
    if (i < n && last_space > 0)
        i = last_space;
    while (i > 0 && s[i - 1] == ' ')
        i--;
    return xstrndup(s, i);
}

typedef struct st_brief_t {
    char *json; /* {keywords, outline, strategy} normalized */
    char *meta;
    char *slug;
} brief_t;

/* Checks the brief reply and normalizes it; returns 0, or -1 with the reason in err. */
static int read_brief(const char *reply, const char *topic, brief_t *out, char *err, size_t errlen)
{
    yajl_val v = parse_object(reply, err, errlen);
    if (v == NULL)
        return -1;
    yajl_val keywords = json_get(v, "keywords"), outline = json_get(v, "outline");
    yajl_val strategy = json_get(v, "strategy"), meta = json_get(v, "meta_description"),
             slug = json_get(v, "slug");
    size_t nk = 0, ns = 0;
    for (size_t i = 0; keywords && YAJL_IS_ARRAY(keywords) && i < keywords->u.array.len; i++)
        nk += YAJL_IS_STRING(keywords->u.array.values[i]) && keywords->u.array.values[i]->u.string[0] != '\0';
    for (size_t i = 0; outline && YAJL_IS_ARRAY(outline) && i < outline->u.array.len; i++) {
        yajl_val h = json_get(outline->u.array.values[i], "heading");
        ns += h != NULL && YAJL_IS_STRING(h) && h->u.string[0] != '\0';
    }
    /* The prompt asks for 15-20 keywords and 5-8 sections; a reply short of these minimums is not a usable
     * plan, more than the maximum is trimmed. */
    if (nk < 5 || ns < 3) {
        snprintf(err, errlen, "the brief has %zu keywords and %zu outline sections", nk, ns);
        yajl_tree_free(v);
        return -1;
    }
    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_object_begin(&w);
    jw_key(&w, "keywords");
    jw_array_begin(&w);
    size_t kept = 0;
    for (size_t i = 0; i < keywords->u.array.len && kept < 20; i++) {
        yajl_val k = keywords->u.array.values[i];
        if (YAJL_IS_STRING(k) && k->u.string[0] != '\0') {
            jw_string(&w, k->u.string);
            kept++;
        }
    }
    jw_array_end(&w);
    jw_key(&w, "outline");
    write_outline(&w, outline, 2, 8);
    jw_key(&w, "strategy");
    jw_string(&w, strategy && YAJL_IS_STRING(strategy) ? strategy->u.string : "");
    jw_object_end(&w);
    out->json = buf_release(&b);
    out->meta = (meta && YAJL_IS_STRING(meta) && meta->u.string[0]) ? clip_words(meta->u.string, 160) : NULL;
    out->slug = slugify((slug && YAJL_IS_STRING(slug) && slug->u.string[0]) ? slug->u.string : topic);
    yajl_tree_free(v);
    return 0;
}

static char *article_prompt(const gen_t *g)
{
    buf_t b = BUF_INIT;
    const char *title = col(g, "title");
    buf_printf(&b, "Topic: %s\n", col(g, "raw_query"));
    if (title != NULL)
        buf_printf(&b, "Title: %s\n", title);
    buf_printf(&b, "Write an SEO article of about %s words in the language \"%s\" for the category \"%s\".\n",
               col(g, "target_length"), col(g, "language"), col(g, "category"));
    /* An approved (or campaign) title is the article's title: the model is told to use it word for word. */
    if (title != NULL)
        buf_puts(&b, "Start with the title line \"# \" followed by exactly the Title above, unchanged.");
    else
        buf_puts(&b, "Start with one \"# \" title line.");
    buf_puts(&b, " Use \"## \" for each section of the outline and \"### \" for its subsections, in this "
                 "order:\n");
    const char *brief = col(g, "brief");
    char err[128];
    yajl_val v = brief ? json_parse(brief, strlen(brief), err, sizeof(err)) : NULL;
    if (v != NULL) {
        /* The outline travels as JSON: unambiguous for the model, and the headings are exact. */
        buf_t o = BUF_INIT;
        json_writer_t w;
        jw_init(&w, &o);
        jw_object_begin(&w);
        jw_key(&w, "outline");
        write_outline(&w, json_get(v, "outline"), 2, 8);
        jw_object_end(&w);
        buf_puts(&b, o.data);
        buf_free(&o);
        yajl_val kw = json_get(v, "keywords");
        if (kw && YAJL_IS_ARRAY(kw) && kw->u.array.len > 0) {
            buf_puts(&b, "\nUse these keywords naturally: ");
            for (size_t i = 0; i < kw->u.array.len; i++)
                if (YAJL_IS_STRING(kw->u.array.values[i]))
                    buf_printf(&b, "%s%s", i ? ", " : "", kw->u.array.values[i]->u.string);
            buf_putc(&b, '.');
        }
        yajl_val st = json_get(v, "strategy");
        if (st && YAJL_IS_STRING(st) && st->u.string[0])
            buf_printf(&b, "\nStrategy: %s", st->u.string);
        yajl_tree_free(v);
    }
    buf_puts(&b, "\n\nCite the sources as [n] with these numbers:\n");
    put_sources(&b, col(g, "sources"), WRITE_SOURCE_CHARS);
    buf_puts(&b, "End with a \"## References\" section listing every cited source as \"[n] title - URL\".");
    return buf_release(&b);
}

/* ---- LLM calls ---- */

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

static void ask_llm(gen_t *g, const llm_message_t *msgs, size_t n, int json_object, int max_tokens,
                    gen_state_t waiting)
{
    set_state(g, waiting);
    g->ready = 0;
    g->lc = llm_chat(g->app->llm, msgs, n, json_object, max_tokens, on_llm, g);
    if (g->lc == NULL)
        fail_article(g, "The LLM client is shutting down");
}

/* ---- the machine ---- */

static void advance(gen_t *g)
{
    char a[24], b2[24], c[24];
    for (;;) {
        switch (g->state) {
        case GEN_LOAD: {
            const char *params[] = {g->id};
            send_query(g, "gen_load", 1, params, GEN_LOADING);
            return;
        }
        case GEN_LOADING:
            if (!g->ready)
                return;
            if (g->db_err != NULL) {
                retry_job_later(g, "loading the article");
                return;
            }
            if (g->db_rows != 1) {
                article_gone(g);
                return;
            }
            set_state(g, GEN_DECIDE);
            break;
        case GEN_DECIDE: {
            const char *status = col(g, "status");
            const char *last = col(g, "last_stage_done");
            if (strcmp(status, "queued") != 0 && strcmp(status, "researching") != 0 &&
                strcmp(status, "scraping") != 0 && strcmp(status, "analyzing") != 0 &&
                strcmp(status, "writing") != 0) {
                article_gone(g);
                return;
            }
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
        case GEN_RESEARCH: {
            if (g->app->search == NULL) {
                fail_article(g, "Search is not configured (SEARCH_PROVIDER)");
                break;
            }
            set_progress(g, "researching", "Searching the web");
            int64_t n = db_int(g->row, 0, "source_count") * 2;
            set_state(g, GEN_SEARCHING);
            g->ready = 0;
            g->sc = search_start(g->app->search, col(g, "raw_query"), (size_t)n, on_search, g);
            if (g->sc == NULL)
                fail_article(g, "Search could not be started");
            else
                return;
            break;
        }
        case GEN_SEARCHING: {
            if (!g->ready)
                return;
            if (g->search_err != NULL) {
                fail_article(g, "Search failed: %s", g->search_err);
                break;
            }
            if (g->ncands == 0) {
                /* Nothing found is not a finished research stage: it is not stored, so a retry searches
                 * again. */
                fail_article(g, "No sources could be scraped");
                break;
            }
            stage_finished(g, "research");
            char *json = candidates_json(g);
            char detail[64];
            snprintf(detail, sizeof(detail), "Found %zu candidate pages", g->ncands);
            const char *params[] = {g->id, json, detail};
            send_query(g, "gen_research_done", 3, params, GEN_RESEARCH_SAVING);
            free(json);
            return;
        }
        case GEN_RESEARCH_SAVING:
        case GEN_SCRAPE_SAVING:
        case GEN_BRIEF_SAVING:
        case GEN_DRAFT_SAVING:
            if (!g->ready)
                return;
            if (g->db_err != NULL) {
                retry_job_later(g, "storing a stage");
                return;
            }
            if (g->db_rows == 0) {
                article_gone(g);
                return;
            }
            /* The next stage starts from what is now persisted, exactly as a resumed job would. */
            set_state(g, GEN_LOAD);
            break;
        case GEN_SCRAPE:
            if (load_candidates(g) != 0 || g->ncands == 0) {
                /* Stored research without a usable candidate (an empty result stored before empty results
                 * stopped counting as done, or unreadable JSON) is no finished stage: search again. */
                log_info("generating an article",
                         "article %s: the stored research has no candidates; searching again", g->id);
                clear_candidates(g);
                set_state(g, GEN_RESEARCH);
                break;
            }
            set_state(g, GEN_FETCHING);
            g->ready = 0;
            uv_timer_start(&g->deadline, on_scrape_deadline, SCRAPE_DEADLINE_MS, 0);
            start_fetches(g);
            return;
        case GEN_FETCHING: {
            if (!g->ready)
                return;
            uv_timer_stop(&g->deadline);
            if (g->usable == 0) {
                fail_article(g, "No sources could be scraped");
                break;
            }
            stage_finished(g, "scrape");
            size_t want = (size_t)db_int(g->row, 0, "source_count");
            char *json = sources_json(g, want);
            char detail[64];
            snprintf(detail, sizeof(detail), "Read %zu sources", g->usable < want ? g->usable : want);
            const char *origin = g->app->cfg->search_provider ? g->app->cfg->search_provider : "search";
            const char *p_clear[] = {g->id};
            const char *p_insert[] = {g->id, json, origin};
            const char *p_done[] = {g->id, detail};
            db_stmt_t stmts[] = {{"gen_scrape_done", NULL, 2, p_done},
                                 {"gen_sources_clear", NULL, 1, p_clear},
                                 {"gen_sources_insert", NULL, 3, p_insert}};
            send_batch(g, stmts, 3, GEN_SCRAPE_SAVING);
            free(json);
            clear_candidates(g);
            return;
        }
        case GEN_ANALYZE: {
            if (g->app->llm == NULL) {
                fail_article(g, "The LLM is not configured (LLM_BASE_URL)");
                break;
            }
            set_progress(g, "analyzing", "Planning the article");
            char *prompt = brief_prompt(g);
            llm_message_t msgs[] = {
                {"system", "You are an SEO strategist. You reply with one JSON object only."},
                {"user", prompt}};
            g->repair_done = 0;
            ask_llm(g, msgs, 2, 1, 0, GEN_BRIEFING);
            free(prompt);
            if (g->state == GEN_BRIEFING)
                return;
            break;
        }
        case GEN_BRIEFING: {
            if (!g->ready)
                return;
            if (g->llm_err != NULL) {
                fail_article(g, "Analysis failed: %s", g->llm_err);
                break;
            }
            brief_t brief = {0};
            char why[200];
            if (read_brief(g->reply, col(g, "raw_query"), &brief, why, sizeof(why)) != 0) {
                if (g->repair_done) {
                    fail_article(g, "The LLM's brief was not valid JSON after one repair attempt: %s", why);
                    break;
                }
                /* One repair try: the model sees its reply and what was wrong with it. */
                g->repair_done = 1;
                log_info("analyzing an article", "article %s: brief unusable (%s); asking for a repair",
                         g->id, why);
                char *prompt = brief_prompt(g);
                char fix[400];
                snprintf(fix, sizeof(fix),
                         "That reply could not be used: %s. Reply again with only the corrected JSON object "
                         "with keywords, outline, strategy, meta_description and slug.",
                         why);
                llm_message_t msgs[] = {
                    {"system", "You are an SEO strategist. You reply with one JSON object only."},
                    {"user", prompt},
                    {"assistant", g->reply ? g->reply : ""},
                    {"user", fix}};
                ask_llm(g, msgs, 4, 1, 0, GEN_BRIEFING);
                free(prompt);
                if (g->state == GEN_BRIEFING)
                    return;
                break;
            }
            stage_finished(g, "analyze");
            snprintf(a, sizeof(a), "%lld", (long long)g->tok_prompt);
            snprintf(b2, sizeof(b2), "%lld", (long long)g->tok_completion);
            g->tok_prompt = g->tok_completion = 0;
            const char *params[] = {g->id, brief.json, brief.meta, brief.slug, a, b2, "Writing the article"};
            send_query(g, "gen_brief_done", 7, params, GEN_BRIEF_SAVING);
            free(brief.json);
            free(brief.meta);
            free(brief.slug);
            return;
        }
        case GEN_WRITE: {
            if (g->app->llm == NULL) {
                fail_article(g, "The LLM is not configured (LLM_BASE_URL)");
                break;
            }
            int calls = (int)db_int(g->row, 0, "write_calls");
            const char *draft = col(g, "write_draft");
            char *prompt = article_prompt(g);
            /* Tokens: about 1.4 per English word, with room for headings and references. */
            int max_tokens = (int)db_int(g->row, 0, "target_length") * 2 + 600;
            llm_message_t msgs[] = {{"system", "You are an expert SEO writer. You write in Markdown."},
                                    {"user", prompt},
                                    {"assistant", draft ? draft : ""},
                                    {"user",
                                     "Continue the article exactly where it stopped, without repeating "
                                     "anything, and finish it with the References section."}};
            if (calls == 0)
                set_progress(g, "writing", "Writing the article");
            ask_llm(g, msgs, (calls > 0 && draft != NULL) ? 4 : 2, 0, max_tokens, GEN_WRITING);
            free(prompt);
            if (g->state == GEN_WRITING)
                return;
            break;
        }
        case GEN_WRITING: {
            if (!g->ready)
                return;
            if (g->llm_err != NULL) {
                fail_article(g, "Writing failed: %s", g->llm_err);
                break;
            }
            int calls = (int)db_int(g->row, 0, "write_calls") + 1;
            const char *prev = col(g, "write_draft");
            buf_t draft = BUF_INIT;
            if (calls > 1 && prev != NULL)
                buf_puts(&draft, prev);
            buf_puts(&draft, g->reply ? g->reply : "");
            if (strcmp(g->finish, "length") == 0 && calls < WRITE_MAX_CALLS) {
                /* Cut off by the length limit: keep the draft (and what it cost) and continue. */
                snprintf(a, sizeof(a), "%d", calls);
                snprintf(b2, sizeof(b2), "%lld", (long long)g->tok_prompt);
                snprintf(c, sizeof(c), "%lld", (long long)g->tok_completion);
                g->tok_prompt = g->tok_completion = 0;
                const char *params[] = {g->id, draft.data, a, b2, c, "Continuing the article"};
                send_query(g, "gen_draft", 6, params, GEN_DRAFT_SAVING);
                buf_free(&draft);
                return;
            }
            free(g->reply);
            g->reply = buf_release(&draft);
            stage_finished(g, "write");
            set_state(g, GEN_COMPLETE);
            break;
        }
        case GEN_COMPLETE: {
            const char *content = g->reply ? g->reply : "";
            size_t len = strlen(content);
            if (len == 0) {
                fail_article(g, "The LLM returned an empty article");
                break;
            }
            /* An article created from a title carries exactly that title as its H1, whatever the model
             * wrote. */
            const char *fixed = col(g, "title");
            char *titled = NULL;
            if (fixed != NULL) {
                titled = markdown_set_title(content, fixed);
                content = titled;
                len = strlen(content);
            }
            char *html = markdown_to_html(content, len);
            char *title = fixed != NULL ? NULL : markdown_title(content);
            char words[24], job_id[24];
            snprintf(words, sizeof(words), "%d", markdown_word_count(content, len));
            snprintf(a, sizeof(a), "%lld", (long long)g->tok_prompt);
            snprintf(b2, sizeof(b2), "%lld", (long long)g->tok_completion);
            snprintf(job_id, sizeof(job_id), "%lld", (long long)g->job->id);
            const char *p_complete[] = {g->id, content, html, words, title, a, b2};
            const char *p_id[] = {g->id};
            const char *p_delivery[] = {g->id, JOBS_KIND_DELIVER};
            const char *p_job[] = {job_id, jobs_runner_id(g->app->jobs)};
            /* One transaction: content, tokens and the ledger's token count, the delivery job, and the end of
             * this job; a crash before it commits redoes only the write stage's last call. */
            db_stmt_t stmts[] = {{"gen_complete", NULL, 7, p_complete},
                                 {"gen_ledger_tokens", NULL, 1, p_id},
                                 {"gen_enqueue_delivery", NULL, 2, p_delivery},
                                 {JOBS_STMT_MARK_DONE, NULL, 2, p_job}};
            send_batch(g, stmts, 4, GEN_COMPLETING);
            free(html);
            free(title);
            free(titled);
            return;
        }
        case GEN_COMPLETING:
            if (!g->ready)
                return;
            if (g->db_err != NULL) {
                retry_job_later(g, "completing the article");
                return;
            }
            stage_finished(g, "complete");
            if (g->db_rows == 1)
                log_info("generating an article", "article %s completed (%lld tokens in its last call)",
                         g->id, (long long)(g->tok_prompt + g->tok_completion));
            jobs_forget(g->job);
            teardown(g);
            return;
        case GEN_FAIL: {
            log_warn("generating an article", "article %s failed: %s", g->id, g->err);
            snprintf(a, sizeof(a), "%lld", (long long)g->tok_prompt);
            snprintf(b2, sizeof(b2), "%lld", (long long)g->tok_completion);
            char job_id[24];
            snprintf(job_id, sizeof(job_id), "%lld", (long long)g->job->id);
            /* The error text is copied by db_batch before err is reused for database errors. */
            const char *p_fail[] = {g->id, g->err, a, b2};
            const char *p_job[] = {job_id, jobs_runner_id(g->app->jobs), g->err};
            db_stmt_t stmts[] = {{"gen_fail", NULL, 4, p_fail}, {JOBS_STMT_MARK_FAILED, NULL, 3, p_job}};
            send_batch(g, stmts, 2, GEN_FAILING);
            return;
        }
        case GEN_FAILING:
            if (!g->ready)
                return;
            if (g->db_err != NULL) {
                retry_job_later(g, "recording the failure");
                return;
            }
            jobs_forget(g->job);
            teardown(g);
            return;
        case GEN_DONE:
            return;
        }
    }
}

/* ---- job handler ---- */

static void on_job_start(jobs_job_t *job, void *data)
{
    app_t *app = data;
    gen_t *g = xcalloc(1, sizeof(*g));
    g->app = app;
    g->job = job;
    job->data = g;
    snprintf(g->id, sizeof(g->id), "%s", job->article_id ? job->article_id : "");
    g->stage_start_ms = time_mono_ms();
    uv_timer_init(app->loop, &g->deadline);
    g->deadline.data = g;
    if (job->article_id == NULL) {
        jobs_fail(job, JOBS_KIND_GENERATE " job without an article", JOBS_NO_RETRY);
        teardown(g);
        return;
    }
    log_info("generating an article", "article %s: attempt %d", g->id, job->attempt);
    g->state = GEN_LOAD;
    advance(g);
}

static void on_job_cancel(jobs_job_t *job, void *data)
{
    (void)data;
    gen_t *g = job->data;
    log_info("generating an article", "article %s: stopped while %s (handed back)", g->id,
             gen_state_names[g->state]);
    teardown(g);
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
    /* WORKER_CONCURRENCY bounds the articles one process holds (a waiting article costs little; the LLM and
     * search clients bound the calls actually in flight). Deliveries have slots of their own on top of it
     * (main.c), so a full pipeline never delays a due webhook. */
    if (jobs_register(app->jobs, JOBS_KIND_GENERATE, on_job_start, on_job_cancel,
                      app->cfg->worker_concurrency, app) != 0)
        return -1;
    uv_timer_init(app->loop, &G.sweep);
    uv_timer_start(&G.sweep, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
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
