/* Outbound HTTP on the loop: one curl multi handle driven by uv_poll (one per socket) and one uv_timer.
 * Every request has a connect and a total timeout and a response size cap; targets obey url_policy. */
#ifndef INKLOOP_NET_H
#define INKLOOP_NET_H

#include "core/buf.h"

#include <stddef.h>
#include <uv.h>

typedef struct st_net_t net_t;
typedef struct st_net_op_t net_op_t;

/** What to send. Everything is copied by net_start. */
typedef struct st_net_request_t {
    const char *method; /* NULL: GET, or POST when body is set */
    const char *url;
    const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
    const char *body;
    size_t body_len;
    long connect_timeout_ms;   /* 0: 10000 */
    long timeout_ms;           /* total, 0: 30000 */
    size_t max_response_bytes; /* 0: 2 MiB; a larger body fails with "response too large" */
    int max_redirects;         /* 0: redirects are not followed (the 3xx is the answer) */
    int allow_private;         /* 1: loopback/private targets allowed (ALLOW_PRIVATE_URLS) */
} net_request_t;

/** The outcome, readable in the completion callback (the op is freed after it returns). */
struct st_net_op_t {
    const char *err;    /* NULL when an HTTP response arrived (any status); otherwise a short reason such as
                           "timeout after 30s", "connection refused", "target not allowed: ..." */
    long status;        /* HTTP status, 0 when none */
    buf_t body;         /* response body */
    char *content_type; /* NULL when absent */
    long retry_after_s; /* Retry-After in seconds (delta or HTTP date), -1 when absent or unreadable */
    char *location;     /* Location header, NULL when absent */
    double duration_ms;
    void *data; /* the caller's pointer given to net_start */
};

typedef void (*net_done_cb)(net_op_t *op);

/** Creates the driver on loop. Returns NULL if curl cannot be initialised. */
net_t *net_create(uv_loop_t *loop);
/** Starts a request; cb runs exactly once unless net_cancel is called first. Never calls cb synchronously. */
net_op_t *net_start(net_t *net, const net_request_t *req, net_done_cb cb, void *data);
/** Aborts the request; its callback will not run. */
void net_cancel(net_op_t *op);
/** Number of requests in flight. */
size_t net_in_flight(const net_t *net);
/** Cancels everything, closes every handle, then calls cb; net is freed after cb returns. */
void net_close(net_t *net, void (*cb)(void *data), void *data);

#endif
