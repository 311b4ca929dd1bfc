/* The HTTP side: h2o (HTTP/1.1) on the libuv loop, one catch-all handler that routes, applies CORS, the body
 * limit and authentication, and hands a request context to a handler. Handlers reply asynchronously: they
 * start I/O with the request as its data and reply from the completion. */
#ifndef INKLOOP_HTTP_SERVER_H
#define INKLOOP_HTTP_SERVER_H

#include "core/buf.h"

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_app_t app_t;
typedef struct st_http_server_t http_server_t;
typedef struct st_http_req_t http_req_t;
typedef struct st_http_route_t http_route_t; /* defined in http/router.h */

/** A route's handler. It must eventually call exactly one http_reply* function for req, or start a streamed
 * response (http_stream_start) and end it (http_stream_end). */
typedef void (*http_handler_cb)(http_req_t *req);

/** Why the owner of a streamed response is called (see http_stream_start). */
typedef enum {
    HTTP_STREAM_GONE,     /* the client went away or stopped reading: nothing more reaches it */
    HTTP_STREAM_SHUTDOWN, /* the server is shutting down: write a last frame if wanted, then end the stream */
} http_stream_event_t;

/** Cancels the operation a handler is waiting on for a request that ended first (see http_req_set_cancel). */
typedef void (*http_cancel_cb)(http_req_t *req, void *data);

/** Tells the owner of a streamed response that it must end it with http_stream_end. It runs from the server's
 * timer, never from inside an http_* call, so the owner may end the stream and free its state in it. */
typedef void (*http_stream_cb)(http_req_t *req, http_stream_event_t ev);

/** The most a stream may have queued for a client that does not keep up; beyond it the client is dropped. */
#define HTTP_STREAM_MAX_BUFFERED (256 * 1024)

#define HTTP_MAX_PARAMS 4

/** One request as a handler sees it. Owned by the server; freed by the http_reply* call (or http_stream_end),
 * or by the server after the cancel hook ran (http_req_set_cancel). When the client goes away first, h2o
 * becomes NULL and the reply is dropped; a handler without a cancel hook still replies (to free it). */
struct st_http_req_t {
    app_t *app;
    h2o_req_t *h2o;                /* NULL once the client went away */
    char method[8];                /* "GET", ...; HEAD requests run GET handlers */
    char *path;                    /* percent-decoded path without the query string */
    char *query;                   /* raw query string after '?', NULL when none */
    const char *route;             /* the matched pattern, e.g. "/articles/{id}", for metrics and logs */
    char *params[HTTP_MAX_PARAMS]; /* path parameters in pattern order, percent-decoded */
    size_t nparams;
    const char *body; /* request body, a NUL-terminated copy owned by req; NULL when empty */
    size_t body_len;
    void *user;        /* the handler's state */
    char user_id[37];  /* authenticated user's id ("" when the route needs no auth) */
    uint64_t start_ms; /* monotonic time the request arrived */
    /* private */
    http_server_t *_server;
    void *_backref;
    buf_t _extra;                      /* headers added with http_add_header: "name\0value\0" pairs */
    char *_origin;                     /* allowed Origin of the request, NULL when none */
    http_handler_cb _handler;          /* the matched route's handler */
    char *_param_storage;              /* what params point into */
    h2o_linklist_t _inflight;          /* in the server's list of requests awaiting a reply */
    http_stream_cb _stream_cb;         /* set by http_stream_start: req is a streamed response */
    int _stream_status;                /* the status it started with, for the metrics at its end */
    http_stream_event_t _stream_event; /* what the owner is told while _note is linked */
    h2o_linklist_t _note;              /* in the server's list of owners to notify (stream or cancel) */
    http_cancel_cb _cancel_cb;         /* set by http_req_set_cancel: the operation serving req */
    void *_cancel_data;
    int _cancelling; /* inside _cancel_cb: req must not be replied to */
};

/** Authenticates a request for a ROUTE_USER route: on success it sets req->user_id and calls next(req) (the
 * rest of the pipeline: content-type check, then the handler); on failure it replies itself, typically
 * 401 {"detail":"Not authenticated"} or {"detail":"Could not validate credentials"} with
 * WWW-Authenticate: Bearer. It may finish asynchronously (a database lookup). */
typedef void (*http_auth_cb)(http_req_t *req, http_handler_cb next);

/** Creates the server: h2o context on loop, the catch-all handler, the body limit. */
http_server_t *http_server_create(uv_loop_t *loop, app_t *app, size_t max_body_bytes);
/** Sets the route table (main.c passes http_routes); the table must outlive srv. Without it, every path is
 * 404. */
void http_server_set_routes(http_server_t *srv, const http_route_t *routes, size_t nroutes);
/** Sets the authentication of ROUTE_USER routes. Until one is set, such routes answer 401
 * {"detail":"Not authenticated"} with WWW-Authenticate: Bearer. */
void http_server_set_user_auth(http_server_t *srv, http_auth_cb cb);
/** Binds and listens (host is an IPv4 or IPv6 literal; port 0 picks a free port). Returns 0 or -1 (logged).
 */
int http_server_listen(http_server_t *srv, const char *host, int port);
/** The port actually listened on (useful after port 0), or -1 when not listening. */
int http_server_port(const http_server_t *srv);
/** Requests in progress (received, not yet replied). */
size_t http_server_in_flight(const http_server_t *srv);
/** Stops accepting, closes idle keep-alive connections, tells the owners of open streams to end them
 * (HTTP_STREAM_SHUTDOWN), lets in-flight requests finish for up to timeout_ms, then ends the streams still
 * open and answers the other requests still waiting 503 {"detail":"Service is shutting down"} (their
 * attached operations are cancelled, see http_req_set_cancel; without one, the handlers' later replies only
 * free them), closes every connection and handle, then calls cb; srv is freed
 * after cb returns. Call it once, from the loop's thread. */
void http_server_shutdown(http_server_t *srv, uint64_t timeout_ms, void (*cb)(void *data), void *data);

/** Value of a request header (case-insensitive name), NULL when absent or once the client went away; *len
 * gets its length. The value lives in h2o's request pool: copy it before starting asynchronous work. */
const char *http_header(const http_req_t *req, const char *name, size_t *len);
/** A query-string parameter, percent-decoded, malloc'd; NULL when absent. */
char *http_query_param(const http_req_t *req, const char *name);
/** Adds a response header (copied) to the coming reply, e.g. Set-Cookie. */
void http_add_header(http_req_t *req, const char *name, const char *value);

/** Replies with a body of the given content type and frees req. */
void http_reply(http_req_t *req, int status, const char *content_type, const char *body, size_t len);
/** Replies with JSON (body is consumed and reset) and frees req. */
void http_reply_json(http_req_t *req, int status, buf_t *body);
/** Replies {"detail": detail} and frees req. */
void http_reply_error(http_req_t *req, int status, const char *detail);
/** Replies 422 {"detail":[{"loc":[where, field],"msg":msg,"type":type}]} and frees req. where is "body",
 * "path" or "query". */
void http_reply_invalid(http_req_t *req, const char *where, const char *field, const char *msg,
                        const char *type);

/** Attaches the operation now serving req (a query, an outbound call), the way h2o's proxy ties its upstream
 * client to the request. When req ends before the handler replied (the client went away, or the shutdown
 * deadline answered it 503), the server calls cb(req, data) exactly once, from its own timer (never inside
 * an h2o, db or net callback, nor inside an http_* call). cb must cancel the operation (db_query_cancel,
 * net_cancel, ...: its completion then never runs) and free the handler's state, and must not reply: the
 * server frees req when cb returns. A completion of the operation must first call http_req_clear_cancel or
 * attach its next operation (which replaces this one); every http_reply* clears the hook. Attaching to a
 * request whose client is already gone schedules the cancel at once. Not for streamed responses. */
void http_req_set_cancel(http_req_t *req, http_cancel_cb cb, void *data);
/** Detaches the operation attached with http_req_set_cancel (its completion is running): from now on the
 * handler replies to free req, as without a hook. A pending cancel that has not run yet is dropped. */
void http_req_clear_cancel(http_req_t *req);

/** Starts a streamed response instead of a whole reply: the status line and headers (content type, CORS,
 * those added with http_add_header, no Content-Length: chunked) go out now and the request stays open. Then
 * the handler calls http_stream_write any number of times and http_stream_end exactly once, which frees req,
 * whatever this returned. on_event says when it must end: the client went away, or the server shuts down.
 * Returns 0, or -1 when nothing can be streamed (the client is gone, or HEAD, answered with the headers). */
int http_stream_start(http_req_t *req, int status, const char *content_type, http_stream_cb on_event);
/** Queues data (copied) for the client. One socket write is in flight at a time; what is written meanwhile
 * waits, up to HTTP_STREAM_MAX_BUFFERED bytes: a client that falls further behind is dropped (its connection
 * is shut down; HTTP_STREAM_GONE follows). Returns 0, or -1 when the data cannot reach the client (gone,
 * dropped, or the stream was ended by the shutdown deadline). */
int http_stream_write(http_req_t *req, const void *data, size_t len);
/** Ends the stream: what is queued goes out, then the end of the response. Counts the request in the metrics
 * (with the status of http_stream_start) and frees req. */
void http_stream_end(http_req_t *req);

#endif
