/* Articles (API.md section 4): create (POST /articles, /generate), list, stats, get, patch, delete, retry,
 * deliver, deliveries, GET /campaigns/{id}/articles, and POST /internal/article-complete. Also the one
 * Article serializer every module that answers with articles uses, and the parsing of the article options
 * that POST /generate/batch shares. */
#ifndef INKLOOP_HTTP_ARTICLES_H
#define INKLOOP_HTTP_ARTICLES_H

#include "core/json.h"
#include "db/db.h"
#include "http/kit.h"
#include "http/server.h"

#include <stdint.h>

/** Writes row of res (selected with the article_select_list of sql/queries/articles.sql) as an Article
 * object. */
void articles_write_json(json_writer_t *w, const PGresult *res, int row);
/** Writes every row of res as a JSON array of Articles. */
void articles_write_list(json_writer_t *w, const PGresult *res);

/** The generation options of a new article, shared by POST /articles and POST /generate/batch. Strings are
 * owned (copied out of the request body). */
typedef struct st_article_options_t {
    char *category;        /* default "General" */
    int64_t target_length; /* 300-5000, default 1500 */
    int64_t source_count;  /* 1-10, default 5 */
    int has_scheduled_at;
    kit_ts_t scheduled_at;   /* read in timezone when it has no offset */
    char *timezone;          /* default "UTC"; known to PostgreSQL (checked by the handler) */
    char integration_id[37]; /* "" when none */
    char *language;          /* default "en" */
} article_options_t;

/** The body of POST /articles. */
typedef struct st_article_input_t {
    char *query; /* "query" or its alias "query_explanation"; 3-2000 characters */
    article_options_t opt;
} article_input_t;

/** Reads the options from v's body, recording every problem in v. Returns 0 when none were recorded. */
int article_options_parse(validator_t *v, article_options_t *out);
/** Reads a POST /articles body from v, recording every problem in v. Returns 0 when none were recorded;
 * out must be freed with article_input_free either way. */
int article_input_parse(validator_t *v, article_input_t *out);
void article_options_free(article_options_t *o);
void article_input_free(article_input_t *in);

/** When the failed statement of a batch raised an application error (SQLSTATE IL + an HTTP status, from
 * inkloop_raise or credits_*), replies that status with the message as detail and returns 1; else 0. */
int articles_reply_raised(http_req_t *req, const db_result_t *r, size_t n);
/** The statement of a batch that carries its error (NULL when the batch succeeded). */
const db_result_t *articles_batch_error(const db_result_t *r, size_t n);

/** Replies to a failed creating/changing batch: 402 for a short balance, the raised application error, 422
 * for a timezone the database refused, 404 for a vanished integration, else 500/503 (logged with action). */
void articles_reply_batch_error(http_req_t *req, const db_result_t *r, size_t n, const char *action);
/** Checks tz against PostgreSQL's timezone names (loading them once when needed), then calls next(op); for an
 * unknown name replies 422 (loc ["body", "timezone"]) and calls drop(op) instead. */
void articles_check_timezone(http_req_t *req, const char *tz, void (*next)(void *op), void (*drop)(void *op),
                             void *op);

/** Registers sql/queries/articles.sql. */
int articles_prepare(db_pool_t *pool);

void articles_create(http_req_t *req);            /* POST /articles, POST /generate */
void articles_list(http_req_t *req);              /* GET /articles */
void articles_stats(http_req_t *req);             /* GET /articles/stats */
void articles_get(http_req_t *req);               /* GET /articles/{article_id} */
void articles_patch(http_req_t *req);             /* PATCH /articles/{article_id} */
void articles_delete(http_req_t *req);            /* DELETE /articles/{article_id} */
void articles_retry(http_req_t *req);             /* POST /articles/{article_id}/retry */
void articles_deliver(http_req_t *req);           /* POST /articles/{article_id}/deliver */
void articles_deliveries(http_req_t *req);        /* GET /articles/{article_id}/deliveries */
void articles_of_campaign(http_req_t *req);       /* GET /campaigns/{campaign_id}/articles */
void articles_internal_complete(http_req_t *req); /* POST /internal/article-complete */

#endif
