/* What the pieces of the HTTP server share, private to src/http/server*.c: the server and connection structs,
 * the per-request back-reference in h2o's pool, and the internal calls between the pieces.
 *   server.c          listener, connections, the request pipeline (route, CORS, body limit, access),
 *                     h2o's own error responses, the shutdown machine and the server's timer
 *   server_reply.c    the request object's end: replies, response heads, metrics and log lines, headers
 *   server_stream.c   streamed responses (http_stream_*)
 *   server_reqlife.c  a request's lifetime: the cancel hook and the check for a client that went away */
#ifndef INKLOOP_HTTP_SERVER_INTERNAL_H
#define INKLOOP_HTTP_SERVER_INTERNAL_H

#include "core/buf.h"
#include "http/router.h"
#include "http/server.h"

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The shutdown machine. Each waiting state says what it waits for; every one has a deadline or a periodic
 * re-check, and all progress happens in on_timer (see shutdown_advance for why). */
#define SRV_STATES(X)                                                                                        \
    X(SRV_RUNNING)  /* accepting and serving */                                                              \
    X(SRV_DRAINING) /* listener closed; waits for in-flight requests and connections, until the deadline */  \
    X(SRV_FORCING) /* deadline passed: stragglers got 503, sockets shut down; waits for h2o to close them */ \
    X(SRV_CLOSING) /* h2o disposed; waits for the close callbacks of the listener and the timers */
#define SRV_ENUM(name) name,

typedef enum { SRV_STATES(SRV_ENUM) } srv_state_t;

/* One accepted connection. The uv handle comes first so the close callback can cast back to the owner. */
typedef struct {
    uv_tcp_t tcp;
    http_server_t *srv;
    h2o_socket_t *sock; /* h2o's socket over tcp, to find the connection of a request (drop_stream) */
    h2o_linklist_t link;
} conn_t;

/* How a streamed response's bytes move to h2o. h2o takes one send at a time and calls the generator's proceed
 * when it has written it; only then may the next go, so what the owner writes meanwhile waits in pending. */
#define STREAM_STATES(X)                                                                                     \
    X(STREAM_IDLE)    /* no send with h2o: a write (or the end) goes out at once */                          \
    X(STREAM_SENDING) /* one send with h2o (sending); waits for proceed, writes wait in pending */           \
    X(STREAM_DONE)    /* the final send went to h2o: nothing more goes out */                                \
    X(STREAM_DROPPED) /* the client fell too far behind; its socket was shut down, so h2o fails the send */
#define STREAM_ENUM(name) name,
typedef enum { STREAM_STATES(STREAM_ENUM) } stream_state_t;

/* Lives in h2o's request pool, so exactly as long as h2o's request: clears http_req_t.h2o when h2o frees the
 * request before the handler replied (the client went away). For a streamed response it also holds the
 * generator and the bytes h2o reads until proceed, which must outlive the handler's http_req_t when the
 * handler ends the stream while a send is still in flight. */
typedef struct {
    h2o_generator_t generator; /* first: proceed casts back */
    http_req_t *req;           /* the handler's side; NULL once it replied or ended the stream */
    h2o_req_t *h2o;            /* the request whose pool holds this */
    stream_state_t state;
    int ending;    /* the stream was ended: the next send is the final one */
    buf_t pending; /* written, not yet handed to h2o */
    buf_t sending; /* handed to h2o, read by it until proceed */
} backref_t;

struct st_http_server_t {
    uv_loop_t *loop;
    app_t *app;
    size_t max_body;
    const http_route_t *routes;
    size_t nroutes;
    http_auth_cb user_auth;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    int listening;
    uv_timer_t timer;
    uv_timer_t liveness; /* runs while requests with a cancel hook wait: finds clients that went away */
    size_t open_handles; /* listener and the timers, until their close callbacks ran */
    h2o_linklist_t conns;
    size_t nconns;
    h2o_linklist_t inflight;
    size_t ninflight;
    h2o_linklist_t notes; /* http_req_t._note: stream owners to call from on_timer */
    srv_state_t state;
    uint64_t deadline; /* uv_now() at which DRAINING gives up, or FORCING re-checks */
    void (*shutdown_cb)(void *data);
    void *shutdown_data;
};

/* --- server.c --------------------------------------------------------------------------------------------
 */

/** Something the shutdown waits for happened, or an owner is to be told something: runs the server's timer
 * in the next timer phase. */
void srv_kick(http_server_t *srv);

/* --- server_reply.c --------------------------------------------------------------------------------------
 */

/** The reason phrase of a status ("Not Found"), or a generic one for the class. */
const char *srv_status_reason(int status);
/** Adds the three headers every response to an allowed Origin carries. */
void srv_add_cors_headers(h2o_mem_pool_t *pool, h2o_headers_t *headers, const char *origin, size_t len);
/** Writes {"detail": detail} to out. */
void srv_json_detail(buf_t *out, const char *detail);
/** Removes req from the server's accounting: from then on it only waits for its handler to free it. */
void srv_req_detach(http_req_t *req);
/** Frees req (detaching it from the server and its backref first). */
void srv_req_free(http_req_t *req);
/** Whether h is a HEAD request. */
int srv_is_head(const h2o_req_t *h);
/** Sets the status line and headers of h's response: content type (when not NULL), CORS, added headers. */
void srv_set_response_head(http_req_t *req, h2o_req_t *h, int status, const char *content_type);
/** Hands a whole response to h2o and detaches req from it; *owned (when not NULL) moves to h2o's pool. */
void srv_send_to_h2o(http_req_t *req, int status, const char *content_type, const char *body, size_t len,
                     char **owned);
/** req's decoded path for a log line, control characters replaced; out has outlen bytes. */
const char *srv_log_path(const http_req_t *req, char *out, size_t outlen);
/** Logs (debug) how req was answered; sent is 0 when the client was gone. */
void srv_log_request(const http_req_t *req, int status, int sent);
/** Seconds since h2o stamped h's arrival, -1 when it did not. */
double srv_seconds_since(const h2o_req_t *h);
/** Counts req's answer in the metrics. */
void srv_record_request(const http_req_t *req, int status);

/* --- server_stream.c -------------------------------------------------------------------------------------
 */

/** Queues a note for the owner of req's stream, delivered from the server's timer. */
void srv_notify_stream(http_req_t *req, http_stream_event_t ev);
/** The handler's side of a stream lets go of h2o's request: what is pending goes out with the end. */
void srv_stream_close_h2o_side(http_req_t *req);

/* --- server_reqlife.c ------------------------------------------------------------------------------------
 */

/** The dispose callback of the backref in h2o's pool (h2o freed its request). */
void srv_on_backref_dispose(void *p);
/** Queues the cancel of the operation serving req, delivered from the server's timer. */
void srv_notify_cancel(http_req_t *req);
/** Runs req's cancel hook and frees req; status is what the metrics count it as (499 or 503). */
void srv_run_cancel(http_req_t *req, int status);

#endif
