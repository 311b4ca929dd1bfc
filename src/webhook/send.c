#include "webhook/send.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/json.h"
#include "core/timeutil.h"
#include "webhook/payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct st_send_impl_t {
    webhook_send_t pub;
    webhook_send_cb cb;
    net_op_t *op;
    int timeout_s;
    char error[320];
} send_impl_t;

void webhook_msg_id(const char *article_id, const char *integration_id, char out[40])
{
    char joined[80];
    snprintf(joined, sizeof(joined), "%s:%s", article_id, integration_id ? integration_id : "");
    uint8_t h[32];
    char hex[65];
    crypto_sha256(joined, strlen(joined), h);
    crypto_hex(h, 32, hex);
    snprintf(out, 40, "msg_%.32s", hex);
}

/* {"url": "http(s)://..."} in a success reply becomes published_url; anything else is ignored. */
static char *published_url(const buf_t *body)
{
    if (body->len == 0 || body->len > 64 * 1024)
        return NULL;
    char err[64];
    yajl_val v = json_parse(body->data, body->len, err, sizeof(err));
    if (v == NULL)
        return NULL;
    yajl_val u = json_get(v, "url");
    char *out = NULL;
    if (u != NULL && YAJL_IS_STRING(u) && strlen(u->u.string) <= 2048 &&
        (strncasecmp(u->u.string, "http://", 7) == 0 || strncasecmp(u->u.string, "https://", 8) == 0))
        out = xstrdup(u->u.string);
    yajl_tree_free(v);
    return out;
}

static void on_response(net_op_t *op)
{
    send_impl_t *s = op->data;
    s->op = NULL;
    s->pub.status = op->status;
    s->pub.duration_ms = (int64_t)op->duration_ms;
    s->pub.retry_after_s = op->retry_after_s;
    if (op->err != NULL) {
        /* net words timeouts with the configured total; the contract's form is "timeout after 30s". */
        if (strncmp(op->err, "timeout after", 13) == 0)
            snprintf(s->error, sizeof(s->error), "timeout after %ds", s->timeout_s);
        else
            snprintf(s->error, sizeof(s->error), "%s", op->err);
        s->pub.error = s->error;
    } else if (op->status >= 200 && op->status < 300) {
        s->pub.success = 1;
        s->pub.published_url = published_url(&op->body);
    } else if (op->status >= 300 && op->status < 400) {
        /* Redirects are not followed: the 3xx is the answer, and a failure like any other non-2xx. */
        snprintf(s->error, sizeof(s->error), "HTTP %ld", op->status);
        s->pub.error = s->error;
    } else {
        snprintf(s->error, sizeof(s->error), "HTTP %ld", op->status);
        s->pub.error = s->error;
    }
    s->cb(&s->pub);
    free(s->pub.published_url);
    free(s);
}

webhook_send_t *webhook_send(net_t *net, const webhook_request_t *req, webhook_send_cb cb, void *data)
{
    send_impl_t *s = xcalloc(1, sizeof(*s));
    s->cb = cb;
    s->pub.data = data;
    s->pub.retry_after_s = -1;
    s->timeout_s = req->timeout_s;
    char ua[64], id_h[80], ts_h[48], sig_h[96], std_h[128], key_h[1100];
    int64_t now = time_now_us() / 1000000;
    snprintf(ua, sizeof(ua), "User-Agent: inkloop-webhook/%s", INKLOOP_VERSION);
    snprintf(id_h, sizeof(id_h), "webhook-id: %s", req->msg_id);
    snprintf(ts_h, sizeof(ts_h), "webhook-timestamp: %lld", (long long)now);
    const char *headers[8];
    size_t n = 0;
    headers[n++] = "Content-Type: application/json";
    headers[n++] = ua;
    headers[n++] = id_h;
    headers[n++] = ts_h;
    if (req->secret != NULL && req->secret[0] != '\0') {
        char hex[65], std[100];
        webhook_sign_hex(req->secret, req->body, req->body_len, hex);
        webhook_sign_standard(req->secret, req->msg_id, now, req->body, req->body_len, std, sizeof(std));
        snprintf(sig_h, sizeof(sig_h), "X-Webhook-Signature: %s", hex);
        snprintf(std_h, sizeof(std_h), "webhook-signature: %s", std);
        headers[n++] = sig_h;
        headers[n++] = std_h;
    }
    if (req->api_key != NULL && req->api_key[0] != '\0' && strlen(req->api_key) < 1024 &&
        strpbrk(req->api_key, "\r\n") == NULL) {
        snprintf(key_h, sizeof(key_h), "X-API-Key: %s", req->api_key);
        headers[n++] = key_h;
    }
    headers[n] = NULL;
    net_request_t nr = {.method = "POST",
                        .url = req->url,
                        .headers = headers,
                        .body = req->body,
                        .body_len = req->body_len,
                        .connect_timeout_ms = req->timeout_s < 10 ? req->timeout_s * 1000L : 10000,
                        .timeout_ms = req->timeout_s * 1000L,
                        .max_response_bytes = 1024 * 1024,
                        .max_redirects = 0,
                        .allow_private = req->allow_private};
    s->op = net_start(net, &nr, on_response, s);
    return &s->pub;
}

void webhook_send_cancel(webhook_send_t *pub)
{
    send_impl_t *s = (send_impl_t *)pub;
    if (s->op != NULL)
        net_cancel(s->op);
    free(s);
}
