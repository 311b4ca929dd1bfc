/* Fakes of the machines' ports (database target, LLM, search, fetch, webhook send, job ends) for the machine
 * unit tests. Each fake records what was started and keeps it pending; the test answers it (which runs the
 * machine's callback, as a loop callback would) or finds it cancelled. The machines run on a real uv loop
 * whose only handles are their own timers, so short deadlines are the test's clock. */
#ifndef INKLOOP_TEST_FAKES_H
#define INKLOOP_TEST_FAKES_H

#include "db/step.h"
#include "jobs/port.h"
#include "pipeline/ports.h"
#include "webhook/deliver.h"

#include <stdlib.h>
#include <string.h>

#define FAKE_MAX 64

typedef enum { FAKE_DB, FAKE_LLM, FAKE_SEARCH, FAKE_FETCH, FAKE_SEND } fake_kind_t;

typedef struct fake_op_t {
    fake_kind_t kind;
    int live;          /* started, neither answered nor cancelled */
    int cancelled;     /* cancelled by the machine */
    char names[6][40]; /* db: the statement names ("" for SQL text) */
    size_t n;
    char *params0; /* db: a copy of the kept statement's parameters, joined by '|' */
    db_batch_cb db_cb;
    void *data;
    char *text; /* llm: the last user message; search: the query; fetch/send: the URL */
    union {
        llm_call_t llm;
        search_call_t search;
        net_op_t net;
        webhook_send_t send;
    } u;
    llm_cb llm_cb;
    search_cb search_cb;
    net_done_cb net_cb;
    webhook_send_cb send_cb;
} fake_op_t;

static fake_op_t fake_ops[FAKE_MAX];
static __attribute__((unused)) size_t fake_nops;

/* What the job port saw. */
static struct {
    int done, failed, cancelled, forgotten;
    int last_retry;
    char last_err[300];
} fake_jobs;

static __attribute__((unused)) fake_op_t *fake_new(fake_kind_t kind)
{
    if (fake_nops >= FAKE_MAX)
        abort();
    fake_op_t *op = &fake_ops[fake_nops++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->live = 1;
    return op;
}

/* The oldest live operation of a kind whose (first named) statement is name (db) or any (name NULL). */
static __attribute__((unused)) fake_op_t *fake_find(fake_kind_t kind, const char *name)
{
    for (size_t i = 0; i < fake_nops; i++) {
        fake_op_t *op = &fake_ops[i];
        if (!op->live || op->kind != kind)
            continue;
        if (name == NULL)
            return op;
        for (size_t k = 0; k < op->n; k++)
            if (strcmp(op->names[k], name) == 0)
                return op;
    }
    return NULL;
}

static __attribute__((unused)) size_t fake_live(fake_kind_t kind)
{
    size_t n = 0;
    for (size_t i = 0; i < fake_nops; i++)
        n += fake_ops[i].live && fake_ops[i].kind == kind;
    return n;
}

static __attribute__((unused)) void fake_reset(void)
{
    for (size_t i = 0; i < fake_nops; i++) {
        free(fake_ops[i].params0);
        free(fake_ops[i].text);
    }
    fake_nops = 0;
    memset(&fake_jobs, 0, sizeof(fake_jobs));
}

/* ---- database ---- */

static __attribute__((unused)) db_query_t *fake_db_batch(void *ctx, const db_stmt_t *stmts, size_t n, db_batch_cb cb, void *data)
{
    int *refuse = ctx;
    if (refuse != NULL && *refuse)
        return NULL;
    fake_op_t *op = fake_new(FAKE_DB);
    op->n = n < 6 ? n : 6;
    for (size_t i = 0; i < op->n; i++)
        snprintf(op->names[i], sizeof(op->names[i]), "%s", stmts[i].name ? stmts[i].name : "");
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < stmts[i].nparams; k++)
            len += (stmts[i].params[k] ? strlen(stmts[i].params[k]) : 4) + 1;
    op->params0 = calloc(1, len);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < stmts[i].nparams; k++) {
            strcat(op->params0, stmts[i].params[k] ? stmts[i].params[k] : "NULL");
            strcat(op->params0, "|");
        }
    op->db_cb = cb;
    op->data = data;
    return (db_query_t *)op;
}

static __attribute__((unused)) void fake_db_cancel(void *ctx, db_query_t *q)
{
    (void)ctx;
    fake_op_t *op = (fake_op_t *)q;
    op->live = 0;
    op->cancelled = 1;
}

/** A result with columns cols (n of them) and one row of values (NULL: SQL NULL); rows 0: no row. */
static __attribute__((unused)) PGresult *fake_rows(size_t ncols, const char *const *cols, const char *const *vals, int rows)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[32];
    memset(attrs, 0, sizeof(attrs));
    for (size_t i = 0; i < ncols; i++) {
        attrs[i].name = (char *)cols[i];
        attrs[i].typid = 25;
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    PQsetResultAttrs(res, (int)ncols, attrs);
    for (int r = 0; r < rows; r++)
        for (size_t i = 0; i < ncols; i++)
            PQsetvalue(res, r, (int)i, (char *)vals[i], vals[i] ? (int)strlen(vals[i]) : -1);
    return res;
}

/** Answers a database op: err NULL (rows is the result of statement `at`, taken over) or an error on every
 * statement. */
static __attribute__((unused)) void fake_db_answer(fake_op_t *op, size_t at, PGresult *rows, const char *err)
{
    db_result_t r[6];
    memset(r, 0, sizeof(r));
    for (size_t i = 0; i < op->n; i++) {
        if (err != NULL) {
            r[i].err = err;
            snprintf(r[i].sqlstate, sizeof(r[i].sqlstate), "40001");
        } else {
            r[i].res = (i == at && rows != NULL) ? rows : PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
        }
    }
    op->live = 0;
    op->db_cb(r, op->n, op->data);
    for (size_t i = 0; i < op->n; i++)
        if (r[i].res != NULL && !(i == at && rows != NULL))
            PQclear(r[i].res);
    PQclear(rows);
}

/** Answers every live fire-and-forget statement (progress, lease release) with success. */
static __attribute__((unused)) void fake_db_ack_fired(const char *name)
{
    fake_op_t *op;
    while ((op = fake_find(FAKE_DB, name)) != NULL)
        fake_db_answer(op, 0, NULL, NULL);
}

/* ---- LLM ---- */

static __attribute__((unused)) llm_call_t *fake_llm_chat(void *ctx, const llm_message_t *m, size_t n, int json_object, int max_tokens,
                                 llm_cb cb, void *data)
{
    (void)ctx;
    (void)json_object;
    (void)max_tokens;
    fake_op_t *op = fake_new(FAKE_LLM);
    op->n = n;
    op->text = strdup(m[n - 1].content ? m[n - 1].content : "");
    op->llm_cb = cb;
    op->u.llm.data = data;
    return &op->u.llm;
}

static __attribute__((unused)) void fake_llm_cancel(llm_call_t *call)
{
    fake_op_t *op = (fake_op_t *)((char *)call - offsetof(fake_op_t, u));
    op->live = 0;
    op->cancelled = 1;
}

static __attribute__((unused)) void fake_llm_answer(fake_op_t *op, const char *content, const char *finish, const char *err)
{
    op->live = 0;
    op->u.llm.err = err;
    op->u.llm.content = (char *)content;
    snprintf(op->u.llm.finish_reason, sizeof(op->u.llm.finish_reason), "%s", finish ? finish : "stop");
    op->u.llm.prompt_tokens = 10;
    op->u.llm.completion_tokens = 20;
    op->llm_cb(&op->u.llm);
}

/* ---- search ---- */

static __attribute__((unused)) search_call_t *fake_search_start(void *ctx, const char *q, size_t max, search_cb cb, void *data)
{
    (void)ctx;
    (void)max;
    fake_op_t *op = fake_new(FAKE_SEARCH);
    op->text = strdup(q);
    op->search_cb = cb;
    op->u.search.data = data;
    return &op->u.search;
}

static __attribute__((unused)) void fake_search_cancel(search_call_t *call)
{
    fake_op_t *op = (fake_op_t *)((char *)call - offsetof(fake_op_t, u));
    op->live = 0;
    op->cancelled = 1;
}

/** Answers with n results url0..; err: a failure. */
static __attribute__((unused)) void fake_search_answer(fake_op_t *op, size_t n, const char *err)
{
    search_result_t res[8];
    char urls[8][64];
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(urls[i], sizeof(urls[i]), "http://example.test/page%zu", i);
        res[i] = (search_result_t){urls[i], "A title", "A snippet"};
    }
    op->live = 0;
    op->u.search.err = err;
    op->u.search.results = res;
    op->u.search.count = err ? 0 : n;
    op->search_cb(&op->u.search);
}

/* ---- fetch ---- */

static __attribute__((unused)) net_op_t *fake_fetch_start(void *ctx, const net_request_t *req, net_done_cb cb, void *data)
{
    (void)ctx;
    fake_op_t *op = fake_new(FAKE_FETCH);
    op->text = strdup(req->url);
    op->net_cb = cb;
    op->u.net.data = data;
    return &op->u.net;
}

static __attribute__((unused)) void fake_fetch_cancel(net_op_t *n)
{
    fake_op_t *op = (fake_op_t *)((char *)n - offsetof(fake_op_t, u));
    op->live = 0;
    op->cancelled = 1;
}

/** Answers a fetch with an HTML page whose main text is long enough (good) or a 404. */
static __attribute__((unused)) void fake_fetch_answer(fake_op_t *op, int good)
{
    static char page[4096];
    snprintf(page, sizeof(page),
             "<html><head><title>Page title</title></head><body><article><h1>Heading</h1><p>%s</p><p>%s</p>"
             "</article></body></html>",
             "This paragraph is the main text of the page and it goes on for a while so that the extractor "
             "keeps it as the content of the article, with enough words to pass the minimum.",
             "A second paragraph adds more words about the topic, so the text is well above two hundred "
             "characters, which is what a usable source must have.");
    op->live = 0;
    op->u.net.status = good ? 200 : 404;
    op->u.net.content_type = "text/html";
    op->u.net.body = BUF_INIT;
    buf_puts(&op->u.net.body, page);
    op->net_cb(&op->u.net);
    buf_free(&op->u.net.body);
}

/* ---- webhook send ---- */

static __attribute__((unused)) webhook_send_t *fake_send(void *ctx, const webhook_request_t *req, webhook_send_cb cb, void *data)
{
    (void)ctx;
    fake_op_t *op = fake_new(FAKE_SEND);
    op->text = strdup(req->url);
    op->send_cb = cb;
    op->u.send.data = data;
    return &op->u.send;
}

static __attribute__((unused)) void fake_send_cancel(webhook_send_t *s)
{
    fake_op_t *op = (fake_op_t *)((char *)s - offsetof(fake_op_t, u));
    op->live = 0;
    op->cancelled = 1;
}

static __attribute__((unused)) void fake_send_answer(fake_op_t *op, long status)
{
    op->live = 0;
    op->u.send.success = status >= 200 && status < 300;
    op->u.send.status = status;
    op->u.send.error = op->u.send.success ? NULL : "HTTP error";
    op->u.send.retry_after_s = -1;
    op->u.send.published_url = NULL;
    op->u.send.duration_ms = 5;
    op->send_cb(&op->u.send);
}

/* ---- job ends ---- */

static __attribute__((unused)) void fake_job_done(jobs_job_t *job)
{
    (void)job;
    fake_jobs.done++;
}
static __attribute__((unused)) void fake_job_fail(jobs_job_t *job, const char *err, int retry)
{
    (void)job;
    fake_jobs.failed++;
    fake_jobs.last_retry = retry;
    snprintf(fake_jobs.last_err, sizeof(fake_jobs.last_err), "%s", err ? err : "");
}
static __attribute__((unused)) void fake_job_cancel(jobs_job_t *job, const char *reason)
{
    (void)job;
    (void)reason;
    fake_jobs.cancelled++;
}
static __attribute__((unused)) void fake_job_forget(jobs_job_t *job)
{
    (void)job;
    fake_jobs.forgotten++;
}

static const jobs_port_t fake_jobs_port = {.done = fake_job_done,
                                           .fail = fake_job_fail,
                                           .cancel = fake_job_cancel,
                                           .forget = fake_job_forget,
                                           .runner_id = "test-runner"};

/** Ends of a job the port saw. */
static __attribute__((unused)) int fake_job_ends(void)
{
    return fake_jobs.done + fake_jobs.failed + fake_jobs.cancelled + fake_jobs.forgotten;
}

#endif
