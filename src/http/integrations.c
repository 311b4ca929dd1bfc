/* Webhook integrations: CRUD and the once-shown secret. Every statement is scoped by user_id, so another
 * user's integration is indistinguishable from a missing one (404 "Integration not found"). */
#include "http/integrations.h"
#include "app.h"
#include "core/crypto.h"
#include "core/log.h"
#include "net/url_policy.h"
#include "queries.h"

#include <stdio.h>
#include <string.h>

int integrations_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_integrations, queries_integrations_count);
}

void integrations_new_secret(char out[INTEGRATIONS_SECRET_SIZE])
{
    /* Standard Webhooks: "whsec_" + base64 of the key bytes; receivers decode what follows the prefix. */
    uint8_t raw[32];
    crypto_random(raw, sizeof(raw));
    memcpy(out, "whsec_", 6);
    crypto_base64(raw, sizeof(raw), out + 6, 0);
}

const char *integrations_v_webhook_url(validator_t *v, const char *field, int required)
{
    const char *url = v_string(v, field, required, 0, 0, 0);
    if (url == NULL)
        return NULL;
    char why[96], msg[160];
    if (url_policy_check_url(url, why, sizeof(why)) != 0) {
        snprintf(msg, sizeof(msg), "Value error, %s must be an http or https URL with a host: %s", field,
                 why);
        v_error(v, field, msg, "value_error");
        return NULL;
    }
    return url;
}

int integration_body_parse(validator_t *v, int patch, integration_body_t *out)
{
    memset(out, 0, sizeof(*out));
    out->name = v_string(v, "name", !patch, 1, 200, 0);
    out->webhook_url = integrations_v_webhook_url(v, "webhook_url", !patch);
    /* "" and null mean "none" for a secret (API.md section 2): a new one is generated on create, the stored
     * one is kept on PATCH. The same for api_key, so an edit form that cannot show the stored key (it is
     * never returned) does not wipe it by sending the empty field back. */
    out->webhook_secret = v_string(v, "webhook_secret", 0, 0, 500, 1);
    out->platform_type = v_string(v, "platform_type", 0, 1, 50, 0);
    out->api_key = v_string(v, "api_key", 0, 0, 1000, 1);
    if (patch)
        out->has_is_active = v_bool(v, "is_active", &out->is_active) == 1;
    return v->errors;
}

/* Parses and validates req's body into b. Returns 0 (free v later: b points into it), or -1 after replying
 * 422 (v already freed). PATCH accepts an empty body. */
static int parse_body(validator_t *v, http_req_t *req, int patch, integration_body_t *b)
{
    if (v_parse_body(v, req, patch) == 0) {
        integration_body_parse(v, patch, b);
        if (v_finish(v) == 0)
            return 0;
    }
    v_free(v);
    return -1;
}

/* Writes the contract's Integration object from row of res (plus webhook_secret when asked). */
static void write_integration(json_writer_t *w, const PGresult *res, int row, int with_secret)
{
    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, db_value(res, row, "id"));
    jw_key(w, "name");
    jw_string(w, db_value(res, row, "name"));
    jw_key(w, "webhook_url");
    jw_string(w, db_value(res, row, "webhook_url"));
    jw_key(w, "platform_type");
    jw_string(w, db_value(res, row, "platform_type"));
    jw_key(w, "is_active");
    jw_bool(w, db_bool(res, row, "is_active"));
    jw_key(w, "last_test_at");
    kit_jw_ts(w, db_value(res, row, "last_test_at"));
    jw_key(w, "last_test_status");
    jw_string(w, db_value(res, row, "last_test_status"));
    jw_key(w, "last_success_at");
    kit_jw_ts(w, db_value(res, row, "last_success_at"));
    jw_key(w, "consecutive_failures");
    jw_int(w, db_int(res, row, "consecutive_failures"));
    jw_key(w, "created_at");
    kit_jw_ts(w, db_value(res, row, "created_at"));
    if (with_secret) {
        jw_key(w, "webhook_secret");
        jw_string(w, db_value(res, row, "webhook_secret"));
    }
    jw_object_end(w);
}

/* Replies with the single row of r as an Integration, or 404 when there is none. */
static void reply_one(http_req_t *req, const db_result_t *r, int status, int with_secret)
{
    if (PQntuples(r->res) != 1) {
        http_reply_error(req, 404, "Integration not found");
        return;
    }
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    write_integration(&w, r->res, 0, with_secret);
    http_reply_json(req, status, &body);
    buf_free(&body);
}

static void on_created(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "creating an integration"))
        return;
    /* The one response that shows the secret, generated or given, so the user can configure the receiver. */
    reply_one(req, &r[0], 201, 1);
}

void integrations_create(http_req_t *req)
{
    validator_t v;
    integration_body_t b;
    if (parse_body(&v, req, 0, &b) != 0)
        return;
    char secret[INTEGRATIONS_SECRET_SIZE];
    if (b.webhook_secret == NULL) {
        integrations_new_secret(secret);
        b.webhook_secret = secret;
    }
    const char *params[] = {req->user_id,
                            b.name,
                            b.webhook_url,
                            b.webhook_secret,
                            b.platform_type != NULL ? b.platform_type : "custom",
                            b.api_key};
    if (db_query(req->app->db, "integ_insert", 6, params, on_created, req) == NULL)
        kit_db_busy(req);
    v_free(&v);
}

/* A list never shows the secret. */
static void write_listed_integration(json_writer_t *w, const PGresult *res, int row)
{
    write_integration(w, res, row, 0);
}

static void on_list(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "listing integrations"))
        return;
    kit_reply_rows(req, r[0].res, write_listed_integration);
}

void integrations_list(http_req_t *req)
{
    kit_user_page(req, "integ_list", on_list);
}

static void on_one(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "reading an integration"))
        return;
    reply_one(req, &r[0], 200, 0);
}

/* Runs statement name with (path id, user id) and replies through cb; replies 422 for a malformed id. */
static void by_id(http_req_t *req, const char *name, db_batch_cb cb)
{
    char id[37];
    if (kit_path_uuid(req, 0, "integration_id", id) != 0)
        return;
    const char *params[] = {id, req->user_id};
    if (db_query(req->app->db, name, 2, params, cb, req) == NULL)
        kit_db_busy(req);
}

void integrations_get(http_req_t *req)
{
    by_id(req, "integ_get", on_one);
}

static void on_secret(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "reading an integration secret"))
        return;
    if (PQntuples(r[0].res) != 1) {
        http_reply_error(req, 404, "Integration not found");
        return;
    }
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "webhook_secret");
    jw_string(&w, db_value(r[0].res, 0, "webhook_secret"));
    jw_object_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void integrations_secret(http_req_t *req)
{
    by_id(req, "integ_secret", on_secret);
}

static void on_updated(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "updating an integration"))
        return;
    reply_one(req, &r[0], 200, 0);
}

void integrations_update(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "integration_id", id) != 0)
        return;
    validator_t v;
    integration_body_t b;
    if (parse_body(&v, req, 1, &b) != 0)
        return;
    const char *active = b.has_is_active ? (b.is_active ? "true" : "false") : NULL;
    const char *params[] = {id,        req->user_id, b.name, b.webhook_url, b.webhook_secret, b.platform_type,
                            b.api_key, active};
    if (db_query(req->app->db, "integ_update", 8, params, on_updated, req) == NULL)
        kit_db_busy(req);
    v_free(&v);
}

static void on_deleted(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "deleting an integration"))
        return;
    if (PQntuples(r[0].res) != 1) {
        http_reply_error(req, 404, "Integration not found");
        return;
    }
    log_info("deleting an integration", "integration %s of user %s deleted", db_value(r[0].res, 0, "id"),
             req->user_id);
    buf_t body = BUF_INIT;
    buf_puts(&body, "{\"success\":true,\"message\":\"Integration deleted\"}");
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void integrations_delete(http_req_t *req)
{
    by_id(req, "integ_delete", on_deleted);
}
