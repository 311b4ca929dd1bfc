/* Credits: the balance, the ledger, purchases (not configured) and admin grants. Every balance change goes
 * through the SQL functions of sql/0001_init.sql, which write the ledger row in the same transaction. */
#include "http/credits.h"
#include "app.h"
#include "core/alloc.h"
#include "core/log.h"
#include "http/kit.h"
#include "queries.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int credits_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_credits, queries_credits_count);
}

int credits_is_insufficient(const db_result_t *r)
{
    return r->err != NULL && strcmp(r->sqlstate, "IL402") == 0;
}

void credits_reply_insufficient(http_req_t *req, const db_result_t *r)
{
    /* The server's message is the contract's text, "Insufficient credits. Need N, have M". */
    char detail[128];
    snprintf(detail, sizeof(detail), "%s", r->err);
    char *nl = strchr(detail, '\n');
    if (nl != NULL)
        *nl = '\0';
    http_reply_error(req, 402, detail);
}

static void on_balance(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "reading a balance"))
        return;
    if (PQntuples(r[0].res) != 1) {
        http_reply_error(req, 401, "Could not validate credentials");
        return;
    }
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "credits");
    jw_int(&w, db_int(r[0].res, 0, "credits"));
    jw_key(&w, "plan");
    jw_string(&w, db_value(r[0].res, 0, "plan"));
    jw_object_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void credits_get(http_req_t *req)
{
    const char *params[] = {req->user_id};
    if (db_query(req->app->db, "credits_get", 1, params, on_balance, req) == NULL)
        kit_db_busy(req);
}

static void jw_opt_int(json_writer_t *w, const PGresult *res, int row, const char *col)
{
    if (db_value(res, row, col) == NULL)
        jw_null(w);
    else
        jw_int(w, db_int(res, row, col));
}

static void write_transaction(json_writer_t *w, const PGresult *res, int row)
{
    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, db_value(res, row, "id"));
    jw_key(w, "amount");
    jw_int(w, db_int(res, row, "amount"));
    jw_key(w, "balance_after");
    jw_int(w, db_int(res, row, "balance_after"));
    jw_key(w, "type");
    jw_string(w, db_value(res, row, "type"));
    jw_key(w, "reference_type");
    jw_string(w, db_value(res, row, "reference_type"));
    jw_key(w, "reference_id");
    jw_string(w, db_value(res, row, "reference_id"));
    jw_key(w, "description");
    jw_string(w, db_value(res, row, "description"));
    jw_key(w, "tokens_consumed");
    jw_opt_int(w, res, row, "tokens_consumed");
    jw_key(w, "created_at");
    kit_jw_ts(w, db_value(res, row, "created_at"));
    jw_object_end(w);
}

static void on_ledger(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "listing credit transactions"))
        return;
    kit_reply_rows(req, r[0].res, write_transaction);
}

void credits_transactions(http_req_t *req)
{
    kit_user_page(req, "credits_ledger", on_ledger);
}

void credits_purchase(http_req_t *req)
{
    http_reply_error(req, 501, "Payments are not configured");
}

typedef struct st_grant_t {
    http_req_t *req;
    int64_t amount;
} grant_t;

static void on_granted(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    grant_t *g = data;
    http_req_t *req = g->req;
    if (r[0].err != NULL && strcmp(r[0].sqlstate, "23514") == 0) {
        http_reply_error(req, 400, "Balance cannot go below zero");
    } else if (r[0].err != NULL && strcmp(r[0].sqlstate, "22003") == 0) {
        /* users.credits is an integer: a grant past 2^31-1 is the caller's mistake, not a server failure. */
        http_reply_error(req, 400, "Balance out of range");
    } else if (!kit_db_failed(req, &r[0], "granting credits")) {
        if (PQntuples(r[0].res) != 1) {
            http_reply_error(req, 404, "User not found");
        } else {
            log_info("granting credits", "%lld credits to user %s, balance %s", (long long)g->amount,
                     db_value(r[0].res, 0, "id"), db_value(r[0].res, 0, "credits"));
            buf_t body = BUF_INIT;
            json_writer_t w;
            jw_init(&w, &body);
            jw_object_begin(&w);
            jw_key(&w, "success");
            jw_bool(&w, 1);
            jw_key(&w, "user_id");
            jw_string(&w, db_value(r[0].res, 0, "id"));
            jw_key(&w, "amount");
            jw_int(&w, g->amount);
            jw_key(&w, "credits");
            jw_int(&w, db_int(r[0].res, 0, "credits"));
            jw_object_end(&w);
            http_reply_json(req, 200, &body);
            buf_free(&body);
        }
    }
    free(g);
}

void credits_admin_grant(http_req_t *req)
{
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        return;
    }
    char user_id[37];
    int has_id = v_uuid(&v, "user_id", 0, user_id);
    const char *email = v_string(&v, "email", 0, 0, 320, 1);
    int64_t amount = 0;
    v_int(&v, "amount", 1, -1000000, 1000000, 0, &amount);
    const char *description = v_string(&v, "description", 0, 0, 500, 1);
    if (has_id == 0 && email == NULL)
        v_error(&v, "user_id", "Either user_id or email is required", "missing");
    if (v_has(&v, "amount") && amount == 0)
        v_error(&v, "amount", "Amount must not be zero", "value_error");
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    grant_t *g = xmalloc(sizeof(*g));
    g->req = req;
    g->amount = amount;
    char amt[24];
    snprintf(amt, sizeof(amt), "%lld", (long long)amount);
    const char *params[] = {has_id == 1 ? user_id : NULL, email, amt,
                            description != NULL ? description : "Admin grant"};
    if (db_query(req->app->db, "credits_admin_grant", 4, params, on_granted, g) == NULL) {
        kit_db_busy(req);
        free(g);
    }
    v_free(&v);
}
