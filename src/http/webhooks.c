/* Test deliveries (POST /integrations/test, POST /integrations/{id}/test) and POST /admin/deliveries/sweep.
 * A test delivery is the real thing with a small body: same headers, signatures, timeout and target policy.
 */
#include "app.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http/handlers.h"
#include "http/kit.h"
#include "net/url_policy.h"
#include "webhook/deliver.h"
#include "webhook/payload.h"
#include "webhook/send.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One test delivery. Its request owns it (http_req_set_cancel): when the client goes away or the shutdown
 * deadline answers it, on_test_cancel ends whichever operation is in flight and frees it. */
typedef struct st_test_t {
    http_req_t *req;
    char integration_id[37]; /* "" for POST /integrations/test */
    db_query_t *query;       /* loading the integration, or recording the outcome */
    webhook_send_t *send;    /* the delivery, while it waits for the receiver */
    char *body;              /* the reply, built when the send finished */
} test_t;

static void test_free(test_t *t)
{
    free(t->body);
    free(t);
}

static void on_test_cancel(http_req_t *req, void *data)
{
    test_t *t = data;
    (void)req;
    if (t->send != NULL) {
        webhook_send_cancel(t->send);
        log_info("testing an integration", "test delivery cancelled: its request ended first");
    }
    if (t->query != NULL)
        db_query_cancel(t->query);
    test_free(t);
}

static void reply_test(test_t *t)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, t->body);
    http_reply_json(t->req, 200, &b);
    buf_free(&b);
    test_free(t);
}

static void on_tested_recorded(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    test_t *t = data;
    t->query = NULL;
    http_req_clear_cancel(t->req);
    if (r[0].err != NULL)
        log_warn("testing an integration", "recording the test failed: %s", r[0].err);
    reply_test(t);
}

static void on_test_sent(webhook_send_t *s)
{
    test_t *t = s->data;
    t->send = NULL;
    http_req_clear_cancel(t->req);
    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_object_begin(&w);
    jw_key(&w, "success");
    jw_bool(&w, s->success);
    jw_key(&w, "message");
    jw_string(&w, s->success ? "Success" : s->error);
    jw_key(&w, "status_code");
    if (s->status > 0)
        jw_int(&w, s->status);
    else
        jw_null(&w);
    jw_key(&w, "duration_ms");
    jw_int(&w, s->duration_ms);
    jw_object_end(&w);
    t->body = buf_release(&b);
    if (t->integration_id[0] == '\0') {
        reply_test(t);
        return;
    }
    const char *params[] = {t->integration_id, s->success ? "success" : "failure"};
    t->query = db_query(t->req->app->db, "wh_tested", 2, params, on_tested_recorded, t);
    if (t->query == NULL) {
        reply_test(t);
        return;
    }
    http_req_set_cancel(t->req, on_test_cancel, t);
}

static void send_test(test_t *t, const char *url, const char *secret, const char *api_key)
{
    char ts[40], msg_id[40];
    time_format_iso(time_now_us(), ts, sizeof(ts));
    buf_t body = BUF_INIT;
    webhook_test_payload(&body, ts);
    char rnd[37];
    crypto_uuid4(rnd);
    snprintf(msg_id, sizeof(msg_id), "msg_test_%.24s", rnd);
    webhook_request_t req = {.url = url,
                             .secret = secret,
                             .api_key = api_key,
                             .msg_id = msg_id,
                             .body = body.data,
                             .body_len = body.len,
                             .timeout_s = t->req->app->cfg->webhook_timeout_s,
                             .allow_private = t->req->app->cfg->allow_private_urls};
    t->send = webhook_send(t->req->app->net, &req, on_test_sent, t);
    buf_free(&body);
    http_req_set_cancel(t->req, on_test_cancel, t);
}

void webhooks_test_url(http_req_t *req)
{
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        return;
    }
    const char *url = v_string(&v, "webhook_url", 1, 1, 2048, 0);
    const char *secret = v_string(&v, "webhook_secret", 0, 0, 500, 1);
    char why[200];
    if (url != NULL && url_policy_check_url(url, why, sizeof(why)) != 0) {
        char msg[260];
        snprintf(msg, sizeof(msg), "Value error, %s", why);
        v_error(&v, "webhook_url", msg, "value_error");
    }
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    test_t *t = xcalloc(1, sizeof(*t));
    t->req = req;
    send_test(t, url, secret, NULL);
    v_free(&v);
}

static void on_integration(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    test_t *t = data;
    t->query = NULL;
    http_req_clear_cancel(t->req);
    if (kit_db_failed(t->req, &r[0], "loading an integration to test")) {
        test_free(t);
        return;
    }
    if (PQntuples(r[0].res) != 1) {
        http_reply_error(t->req, 404, "Integration not found");
        test_free(t);
        return;
    }
    send_test(t, db_value(r[0].res, 0, "webhook_url"), db_value(r[0].res, 0, "webhook_secret"),
              db_value(r[0].res, 0, "api_key"));
}

void webhooks_test_integration(http_req_t *req)
{
    test_t *t = xcalloc(1, sizeof(*t));
    t->req = req;
    if (kit_path_uuid(req, 0, "integration_id", t->integration_id) != 0) {
        test_free(t);
        return;
    }
    const char *params[] = {t->integration_id, req->user_id};
    t->query = db_query(req->app->db, "wh_integration", 2, params, on_integration, t);
    if (t->query == NULL) {
        kit_db_busy(req);
        test_free(t);
        return;
    }
    http_req_set_cancel(req, on_test_cancel, t);
}

static void on_swept(void *data, const char *err, int enqueued)
{
    http_req_t *req = data;
    if (err != NULL) {
        log_warn("sweeping deliveries", "%s", err);
        http_reply_error(req, 503, "Service temporarily unavailable");
        return;
    }
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"success\":true,\"enqueued\":%d}", enqueued);
    http_reply_json(req, 200, &b);
    buf_free(&b);
}

void webhooks_admin_sweep(http_req_t *req)
{
    if (deliver_sweep_now(req->app, on_swept, req) != 0)
        kit_db_busy(req);
}
