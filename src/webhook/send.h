/* One signed webhook POST (API.md section 6): the headers every delivery carries, the target policy, a
 * timeout, redirects not followed, and the outcome reduced to what the records need. Used by the delivery
 * machine and by the integration test endpoints. */
#ifndef INKLOOP_WEBHOOK_SEND_H
#define INKLOOP_WEBHOOK_SEND_H

#include "net/net.h"

#include <stddef.h>
#include <stdint.h>

typedef struct st_webhook_send_t webhook_send_t;

/** What to send. Strings are copied. */
typedef struct st_webhook_request_t {
    const char *url;
    const char *secret;  /* NULL: unsigned (only a test delivery without a known secret) */
    const char *api_key; /* the receiving site's key, sent as X-API-Key; NULL: none */
    const char *msg_id;  /* webhook-id */
    const char *body;
    size_t body_len;
    int timeout_s;
    int allow_private;
} webhook_request_t;

/** The outcome, readable in the callback. */
struct st_webhook_send_t {
    int success;         /* a 2xx arrived */
    long status;         /* HTTP status, 0 when none */
    const char *error;   /* NULL on success; "HTTP 503", "timeout after 30s", "connection refused", ... */
    long retry_after_s;  /* the response's Retry-After, -1 when absent */
    char *published_url; /* {"url": "http(s)://..."} from a 2xx reply, else NULL */
    int64_t duration_ms;
    void *data;
};

typedef void (*webhook_send_cb)(webhook_send_t *s);

/** Sends req; cb runs exactly once unless webhook_send_cancel is called first (never synchronously). */
webhook_send_t *webhook_send(net_t *net, const webhook_request_t *req, webhook_send_cb cb, void *data);
/** The callback will not run. */
void webhook_send_cancel(webhook_send_t *s);
/** The stable webhook-id of one article delivered to one integration: "msg_" + 32 hex of their hash. */
void webhook_msg_id(const char *article_id, const char *integration_id, char out[40]);

#endif
