/* Titles: approving/rejecting a generated title, and turning approved titles into articles all at once. */
#include "http/titles.h"
#include "app.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/log.h"
#include "http/articles.h"
#include "http/idempotency.h"
#include "http/kit.h"
#include "queries.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int titles_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_titles, queries_titles_count);
}

/* ---- PATCH /titles/{id}/verify ---- */

static void on_verified(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "verifying a title"))
        return;
    const PGresult *res = r[0].res;
    if (PQntuples(res) != 1) {
        http_reply_error(req, 404, "Title not found");
        return;
    }
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "success");
    jw_bool(&w, 1);
    jw_key(&w, "title");
    jw_object_begin(&w);
    jw_key(&w, "id");
    jw_string(&w, db_value(res, 0, "id"));
    jw_key(&w, "title");
    jw_string(&w, db_value(res, 0, "title"));
    jw_key(&w, "description");
    jw_string(&w, db_value(res, 0, "description"));
    jw_key(&w, "status");
    jw_string(&w, db_value(res, 0, "status"));
    jw_key(&w, "created_at");
    kit_jw_ts(&w, db_value(res, 0, "created_at"));
    jw_object_end(&w);
    jw_object_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void titles_verify(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "title_id", id) != 0)
        return;
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        return;
    }
    /* The user may edit the wording while approving; null or absent keeps it. */
    const char *title = v_string(&v, "title", 0, 1, 500, 0);
    const char *status = v_string(&v, "status", 1, 0, 0, 0);
    if (status != NULL && strcmp(status, "approved") != 0 && strcmp(status, "rejected") != 0)
        v_error(&v, "status", "Input should be 'approved' or 'rejected'", "literal_error");
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    const char *params[] = {id, req->user_id, title, status};
    if (db_query(req->app->db, "title_verify", 4, params, on_verified, req) == NULL)
        kit_db_busy(req);
    v_free(&v);
}

/* ---- POST /generate/batch ---- */

typedef struct st_batch_t {
    http_req_t *req;
    article_options_t opt;
    idem_t idem;
    size_t n;
    char (*title_ids)[37];
    char (*article_ids)[37];
    size_t idem_first;
} batch_t;

static void batch_free(void *op)
{
    batch_t *b = op;
    article_options_free(&b->opt);
    idem_free(&b->idem);
    free(b->title_ids);
    free(b->article_ids);
    free(b);
}

/* {"success": true, "message": "Created N articles", "article_ids": [...]} */
static void write_batch_response(buf_t *body, char *const *ids, size_t n)
{
    json_writer_t w;
    jw_init(&w, body);
    jw_object_begin(&w);
    jw_key(&w, "success");
    jw_bool(&w, 1);
    char msg[64];
    snprintf(msg, sizeof(msg), "Created %zu article%s", n, n == 1 ? "" : "s");
    jw_key(&w, "message");
    jw_string(&w, msg);
    jw_key(&w, "article_ids");
    jw_array_begin(&w);
    for (size_t i = 0; i < n; i++)
        jw_string(&w, ids[i]);
    jw_array_end(&w);
    jw_object_end(&w);
}

static void render_batch(http_req_t *req, const char *type, char **ids, size_t nids)
{
    (void)type;
    buf_t body = BUF_INIT;
    write_batch_response(&body, ids, nids);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

static void on_batch_done(const db_result_t *r, size_t n, void *data)
{
    batch_t *b = data;
    http_req_t *req = b->req;
    if (r[n - 1].err != NULL) {
        if (idem_is_duplicate(&b->idem, r, n, b->idem_first))
            idem_replay(req, &b->idem, render_batch);
        else
            articles_reply_batch_error(req, r, n, "creating a batch of articles");
        batch_free(b);
        return;
    }
    log_info("creating a batch of articles", "%zu articles for user %s", b->n, req->user_id);
    char **ids = xmalloc(b->n * sizeof(*ids));
    for (size_t i = 0; i < b->n; i++)
        ids[i] = b->article_ids[i];
    buf_t body = BUF_INIT;
    write_batch_response(&body, ids, b->n);
    free(ids);
    idem_reply(req, &b->idem, 200, &body);
    buf_free(&body);
    batch_free(b);
}

/* "{a,b,c}" of n ids. */
static char *uuid_array(char (*ids)[37], size_t n)
{
    buf_t b = BUF_INIT;
    buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_putc(&b, ',');
        buf_puts(&b, ids[i]);
    }
    buf_putc(&b, '}');
    return buf_release(&b);
}

static void batch_run(void *op)
{
    batch_t *b = op;
    http_req_t *req = b->req;
    const article_options_t *o = &b->opt;
    int per = req->app->cfg->credits_per_article;
    char tl[24], sc[24], credits[24], needed[24];
    snprintf(tl, sizeof(tl), "%lld", (long long)o->target_length);
    snprintf(sc, sizeof(sc), "%lld", (long long)o->source_count);
    snprintf(credits, sizeof(credits), "%d", per);
    snprintf(needed, sizeof(needed), "%lld", (long long)per * (long long)b->n);
    char *titles = uuid_array(b->title_ids, b->n);
    char *articles = uuid_array(b->article_ids, b->n);
    const char *integration = o->integration_id[0] != '\0' ? o->integration_id : NULL;
    const char *p_titles[] = {req->user_id, titles};
    const char *p_credits[] = {req->user_id, needed};
    const char *p_integ[] = {req->user_id, integration};
    const char *p_insert[] = {req->user_id,
                              titles,
                              articles,
                              o->category,
                              tl,
                              sc,
                              o->has_scheduled_at ? o->scheduled_at.text : NULL,
                              o->has_scheduled_at ? (o->scheduled_at.has_offset ? "t" : "f") : NULL,
                              o->timezone,
                              integration,
                              o->language,
                              credits};
    const char *p_jobs[] = {articles};
    char **id_list = xmalloc(b->n * sizeof(*id_list));
    for (size_t i = 0; i < b->n; i++)
        id_list[i] = b->article_ids[i];
    db_stmt_t stmts[7];
    size_t k = 0;
    b->idem_first = k;
    k += idem_statements(&b->idem, req->user_id, "article", id_list, b->n, stmts + k);
    free(id_list);
    stmts[k++] = (db_stmt_t){"titles_require", NULL, 2, p_titles};
    if (per > 0)
        stmts[k++] = (db_stmt_t){"titles_credits_require", NULL, 2, p_credits};
    if (integration != NULL)
        stmts[k++] = (db_stmt_t){"integration_require", NULL, 2, p_integ};
    stmts[k++] = (db_stmt_t){"titles_insert_articles", NULL, 12, p_insert};
    stmts[k++] = (db_stmt_t){"article_enqueue_generate", NULL, 1, p_jobs};
    if (db_batch(req->app->db, stmts, k, on_batch_done, b) == NULL) {
        kit_db_busy(req);
        batch_free(b);
    }
    free(titles);
    free(articles);
}

void titles_batch(http_req_t *req)
{
    batch_t *b = xcalloc(1, sizeof(*b));
    b->req = req;
    if (idem_init(&b->idem, req, "POST /generate/batch") != 0) {
        free(b);
        return;
    }
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        free(b);
        return;
    }
    yajl_val ids = v_raw(&v, "title_ids");
    if (ids == NULL) {
        v_error(&v, "title_ids", "Field required", "missing");
    } else if (!YAJL_IS_ARRAY(ids)) {
        v_error(&v, "title_ids", "Input should be a valid list", "list_type");
    } else if (ids->u.array.len == 0) {
        v_error(&v, "title_ids", "List should have at least 1 item after validation, not 0", "too_short");
    } else if (ids->u.array.len > TITLES_BATCH_MAX) {
        v_error(&v, "title_ids", "List should have at most 100 items after validation", "too_long");
    } else {
        b->title_ids = xcalloc(ids->u.array.len, sizeof(*b->title_ids));
        for (size_t i = 0; i < ids->u.array.len; i++) {
            yajl_val e = ids->u.array.values[i];
            char id[37];
            if (!YAJL_IS_STRING(e) || kit_uuid(e->u.string, id) != 0) {
                v_error(&v, "title_ids", "Input should be a valid UUID", "uuid_parsing");
                break;
            }
            /* A title named twice still makes one article (and one charge). */
            int dup = 0;
            for (size_t j = 0; j < b->n && !dup; j++)
                dup = strcmp(b->title_ids[j], id) == 0;
            if (!dup)
                memcpy(b->title_ids[b->n++], id, 37);
        }
    }
    article_options_parse(&v, &b->opt);
    if (v_finish(&v) != 0) {
        v_free(&v);
        batch_free(b);
        return;
    }
    idem_hash(&b->idem, v.root);
    v_free(&v);
    b->article_ids = xcalloc(b->n, sizeof(*b->article_ids));
    for (size_t i = 0; i < b->n; i++)
        crypto_uuid4(b->article_ids[i]);
    articles_check_timezone(req, b->opt.timezone, batch_run, batch_free, b);
}
