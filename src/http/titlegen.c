/* POST /generate/titles: one LLM call, distinct titles of 50-80 characters, stored as 'generated' titles the
 * user then approves (PATCH /titles/{id}/verify) and turns into articles (POST /generate/batch). */
#include "app.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/handlers.h"
#include "http/kit.h"
#include "pipeline/llm.h"
#include "pipeline/titles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESCRIPTION_MAX_CHARS 2000

/* One title generation. Its request owns it (http_req_set_cancel): when the client goes away or the shutdown
 * deadline answers it, on_titlegen_cancel ends the LLM call or the insert in flight and frees it. */
typedef struct st_titlegen_t {
    http_req_t *req;
    char *description;
    size_t count;
    llm_call_t *call;   /* waiting for the LLM */
    db_query_t *insert; /* storing the titles */
} titlegen_t;

static void titlegen_free(titlegen_t *t)
{
    free(t->description);
    free(t);
}

static void on_titlegen_cancel(http_req_t *req, void *data)
{
    titlegen_t *t = data;
    (void)req;
    if (t->call != NULL) {
        llm_cancel(t->call);
        log_info("generating titles", "LLM call cancelled: its request ended first");
    }
    if (t->insert != NULL)
        db_query_cancel(t->insert);
    titlegen_free(t);
}

static void write_title(json_writer_t *w, const PGresult *res, int row)
{
    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, db_value(res, row, "id"));
    jw_key(w, "title");
    jw_string(w, db_value(res, row, "title"));
    jw_key(w, "description");
    jw_string(w, db_value(res, row, "description"));
    jw_key(w, "status");
    jw_string(w, db_value(res, row, "status"));
    jw_key(w, "created_at");
    kit_jw_ts(w, db_value(res, row, "created_at"));
    jw_object_end(w);
}

static void on_titles_stored(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    titlegen_t *t = data;
    t->insert = NULL;
    http_req_clear_cancel(t->req);
    if (!kit_db_failed(t->req, &r[0], "storing generated titles"))
        kit_reply_rows(t->req, r[0].res, write_title);
    titlegen_free(t);
}

static void on_llm_titles(llm_call_t *call)
{
    titlegen_t *t = call->data;
    t->call = NULL;
    http_req_clear_cancel(t->req);
    log_info("generating titles", "LLM used %lld prompt + %lld completion tokens",
             (long long)call->prompt_tokens, (long long)call->completion_tokens);
    if (call->err != NULL) {
        log_warn("generating titles", "%s", call->err);
        char detail[600];
        snprintf(detail, sizeof(detail), "Title generation failed: %s", call->err);
        http_reply_error(t->req, 503, detail);
        titlegen_free(t);
        return;
    }
    char *titles[5];
    char err[256];
    int kept =
        titles_parse(call->content, strlen(call->content), t->count, NULL, 0, titles, err, sizeof(err));
    if (kept <= 0) {
        char detail[400];
        snprintf(detail, sizeof(detail), "Title generation failed: %s",
                 kept < 0 ? err : "the LLM returned no title of 50-80 characters");
        log_warn("generating titles", "%s", detail);
        http_reply_error(t->req, 503, detail);
        titlegen_free(t);
        return;
    }
    if ((size_t)kept < t->count)
        log_warn("generating titles", "the LLM gave %d usable titles of %zu asked", kept, t->count);
    buf_t arr = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &arr);
    jw_array_begin(&w);
    for (int i = 0; i < kept; i++) {
        jw_string(&w, titles[i]);
        free(titles[i]);
    }
    jw_array_end(&w);
    const char *params[] = {t->req->user_id, t->description, arr.data};
    t->insert = db_query(t->req->app->db, "titles_insert", 3, params, on_titles_stored, t);
    buf_free(&arr);
    if (t->insert == NULL) {
        kit_db_busy(t->req);
        titlegen_free(t);
        return;
    }
    http_req_set_cancel(t->req, on_titlegen_cancel, t);
}

void titlegen_post(http_req_t *req)
{
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        return;
    }
    const char *description = v_string(&v, "description", 1, 3, DESCRIPTION_MAX_CHARS, 0);
    int64_t count = 0;
    v_int(&v, "count", 0, 1, 5, 5, &count);
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    if (req->app->llm == NULL) {
        v_free(&v);
        http_reply_error(req, 503, "Title generation is not configured (LLM_BASE_URL is not set)");
        return;
    }
    titlegen_t *t = xcalloc(1, sizeof(*t));
    t->req = req;
    t->description = xstrdup(description);
    t->count = (size_t)count;
    v_free(&v);
    char *prompt = titles_prompt(t->description, t->count, NULL, 0);
    llm_message_t msgs[] = {{"system", "You write titles for SEO articles. You reply with JSON only."},
                            {"user", prompt}};
    t->call = llm_chat(req->app->llm, msgs, 2, 1, 0, on_llm_titles, t);
    free(prompt);
    if (t->call == NULL) {
        http_reply_error(req, 503, "Service temporarily unavailable");
        titlegen_free(t);
        return;
    }
    http_req_set_cancel(req, on_titlegen_cancel, t);
}
