#include "pipeline/provider.h"
#include "core/alloc.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALL_STATES(X)                                                                                       \
    X(WAITING) /* waits for one of the provider's in-flight slots */                                         \
    X(SENDING) /* waits for the HTTP response (net's timeouts bound it) */                                   \
    X(BACKOFF) /* waits for the retry timer */                                                               \
    X(DONE)    /* callback ran or call cancelled; waits for the timer's close */

typedef enum {
#define X(s) CALL_##s,
    CALL_STATES(X)
#undef X
} call_state_t;

typedef struct st_call_impl_t {
    provider_call_t pub;
    provider_t *provider;
    call_state_t state;
    provider_cb cb;
    net_op_t *op;
    uv_timer_t timer; /* backoff; the call is freed in its close callback */
    /* the request, owned */
    char *method, *url, *body;
    size_t body_len;
    char **headers;
    size_t nheaders;
    struct st_call_impl_t *next; /* in the provider's wait FIFO or call list */
    struct st_call_impl_t *prev_all, *next_all;
    char err[512]; /* the final error text, valid while the callback runs */
} call_impl_t;

struct st_provider_t {
    uv_loop_t *loop;
    net_t *net;
    provider_config_t cfg;
    char *name;
    int in_flight;
    size_t pending;
    call_impl_t *wait_head, *wait_tail;
    call_impl_t *all; /* every live call, for close */
    int closing;
    void (*close_cb)(void *);
    void *close_data;
};

uint64_t provider_backoff_ms(const provider_config_t *cfg, int attempt, long retry_after_s)
{
    uint64_t cap = (uint64_t)cfg->max_backoff_ms;
    if (retry_after_s >= 0) {
        uint64_t ra = (uint64_t)retry_after_s * 1000;
        return ra > cap ? cap : ra;
    }
    uint64_t d = (uint64_t)cfg->backoff_ms;
    for (int i = 1; i < attempt && d < cap; i++)
        d *= 2;
    return d > cap ? cap : d;
}

provider_t *provider_create(uv_loop_t *loop, net_t *net, const provider_config_t *cfg)
{
    provider_t *p = xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->net = net;
    p->cfg = *cfg;
    p->name = xstrdup(cfg->name ? cfg->name : "provider");
    p->cfg.name = p->name;
    if (p->cfg.max_in_flight <= 0)
        p->cfg.max_in_flight = 16;
    if (p->cfg.max_attempts <= 0)
        p->cfg.max_attempts = 4;
    if (p->cfg.backoff_ms <= 0)
        p->cfg.backoff_ms = 1000;
    if (p->cfg.max_backoff_ms <= 0)
        p->cfg.max_backoff_ms = 30000;
    if (p->cfg.timeout_ms <= 0)
        p->cfg.timeout_ms = 120000;
    return p;
}

static void send_attempt(call_impl_t *c);

static void on_timer_closed(uv_handle_t *h)
{
    call_impl_t *c = h->data;
    provider_t *p = c->provider;
    free(c->method);
    free(c->url);
    free(c->body);
    for (size_t i = 0; i < c->nheaders; i++)
        free(c->headers[i]);
    free(c->headers);
    buf_free(&c->pub.body);
    free(c);
    p->pending--;
    if (p->closing && p->pending == 0) {
        void (*cb)(void *) = p->close_cb;
        void *data = p->close_data;
        free(p->name);
        free(p);
        cb(data);
    }
}

/* Unlinks c from the list of live calls and starts closing its timer; memory goes in the close callback. */
static void release(call_impl_t *c)
{
    provider_t *p = c->provider;
    if (c->prev_all)
        c->prev_all->next_all = c->next_all;
    else
        p->all = c->next_all;
    if (c->next_all)
        c->next_all->prev_all = c->prev_all;
    c->state = CALL_DONE;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void dispatch_waiting(provider_t *p)
{
    while (!p->closing && p->wait_head != NULL && p->in_flight < p->cfg.max_in_flight) {
        call_impl_t *c = p->wait_head;
        p->wait_head = c->next;
        if (p->wait_head == NULL)
            p->wait_tail = NULL;
        c->next = NULL;
        p->in_flight++;
        send_attempt(c);
    }
}

static void finish(call_impl_t *c, const char *err)
{
    c->pub.err = err;
    c->cb(&c->pub);
    release(c);
}

/* A reason worth retrying: throttling, server errors, timeouts, connection trouble. Policy refusals, 4xx and
 * oversized replies will not change on a second try. */
static int retryable(const net_op_t *op)
{
    if (op->err != NULL)
        return strncmp(op->err, "target not allowed", 18) != 0 && strncmp(op->err, "invalid URL", 11) != 0 &&
               strncmp(op->err, "response too large", 18) != 0;
    return op->status == 429 || op->status == 408 || op->status >= 500;
}

static void on_backoff_done(uv_timer_t *t)
{
    call_impl_t *c = t->data;
    send_attempt(c);
}

static void on_response(net_op_t *op)
{
    call_impl_t *c = op->data;
    provider_t *p = c->provider;
    c->op = NULL;
    c->pub.status = op->status;
    buf_reset(&c->pub.body);
    buf_append(&c->pub.body, op->body.data ? op->body.data : "", op->body.len);
    if (op->err == NULL && op->status >= 200 && op->status < 300) {
        p->in_flight--;
        finish(c, NULL);
        dispatch_waiting(p);
        return;
    }
    char why[256];
    if (op->err != NULL)
        snprintf(why, sizeof(why), "%s", op->err);
    else
        snprintf(why, sizeof(why), "HTTP %ld", op->status);
    if (retryable(op) && c->pub.attempts < p->cfg.max_attempts && !p->closing) {
        uint64_t delay =
            provider_backoff_ms(&p->cfg, c->pub.attempts, op->err == NULL ? op->retry_after_s : -1);
        log_warn("calling a provider", "%s: %s (attempt %d of %d), retrying in %llu ms", p->name, why,
                 c->pub.attempts, p->cfg.max_attempts, (unsigned long long)delay);
        c->state = CALL_BACKOFF;
        if (uv_timer_start(&c->timer, on_backoff_done, delay, 0) != 0)
            abort(); /* only for a closing handle: a bug */
        return;
    }
    /* The final error keeps the provider's own message when it sent one, so error_message says what it said.
     */
    const char *detail = NULL;
    if (op->err == NULL && c->pub.body.len > 0 && c->pub.body.len < 400)
        detail = c->pub.body.data;
    snprintf(c->err, sizeof(c->err), "%s: %s after %d attempt%s%s%s", p->name, why, c->pub.attempts,
             c->pub.attempts == 1 ? "" : "s", detail ? ": " : "", detail ? detail : "");
    p->in_flight--;
    finish(c, c->err);
    dispatch_waiting(p);
}

static void send_attempt(call_impl_t *c)
{
    provider_t *p = c->provider;
    c->state = CALL_SENDING;
    c->pub.attempts++;
    net_request_t req = {.method = c->method,
                         .url = c->url,
                         .headers = (const char *const *)c->headers,
                         .body = c->body,
                         .body_len = c->body_len,
                         .timeout_ms = p->cfg.timeout_ms,
                         .max_response_bytes = 8 * 1024 * 1024,
                         .allow_private = p->cfg.allow_private};
    c->op = net_start(p->net, &req, on_response, c);
}

provider_call_t *provider_start(provider_t *p, const net_request_t *req, provider_cb cb, void *data)
{
    if (p->closing)
        return NULL;
    call_impl_t *c = xcalloc(1, sizeof(*c));
    c->provider = p;
    c->cb = cb;
    c->pub.data = data;
    c->method = xstrdup(req->method);
    c->url = xstrdup(req->url);
    if (req->body != NULL) {
        c->body = xstrndup(req->body, req->body_len);
        c->body_len = req->body_len;
    }
    size_t n = 0;
    while (req->headers != NULL && req->headers[n] != NULL)
        n++;
    c->headers = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        c->headers[i] = xstrdup(req->headers[i]);
    c->nheaders = n;
    if (uv_timer_init(p->loop, &c->timer) != 0)
        abort(); /* only fails for an invalid loop */
    c->timer.data = c;
    c->next_all = p->all;
    if (p->all)
        p->all->prev_all = c;
    p->all = c;
    p->pending++;
    c->state = CALL_WAITING;
    if (p->wait_tail)
        p->wait_tail->next = c;
    else
        p->wait_head = c;
    p->wait_tail = c;
    dispatch_waiting(p);
    return &c->pub;
}

void provider_cancel(provider_call_t *call)
{
    call_impl_t *c = (call_impl_t *)call;
    provider_t *p = c->provider;
    switch (c->state) {
    case CALL_WAITING: {
        call_impl_t **pp = &p->wait_head, *prev = NULL;
        while (*pp != c) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = c->next;
        if (p->wait_tail == c)
            p->wait_tail = prev;
        break;
    }
    case CALL_SENDING:
        net_cancel(c->op);
        c->op = NULL;
        p->in_flight--;
        break;
    case CALL_BACKOFF:
        if (uv_timer_stop(&c->timer) != 0)
            abort();
        p->in_flight--;
        break;
    case CALL_DONE:
        return;
    }
    release(c);
    dispatch_waiting(p);
}

size_t provider_pending(const provider_t *p)
{
    return p->pending;
}

void provider_close(provider_t *p, void (*cb)(void *data), void *data)
{
    p->closing = 1;
    p->close_cb = cb;
    p->close_data = data;
    while (p->all != NULL)
        provider_cancel(&p->all->pub);
    if (p->pending == 0) {
        free(p->name);
        free(p);
        cb(data);
    }
}
