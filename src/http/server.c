/* The HTTP server's core: the listener and its connections, the pipeline every request goes through (route,
 * CORS preflight, body limit, access, content type), h2o's own error responses, and the shutdown machine
 * driven by the server's one timer. The other pieces are listed in server_internal.h. */
#include "http/server_internal.h"

#include "app.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "http/url.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SRV_NAME(name) #name,
static const char *const srv_state_names[] = {SRV_STATES(SRV_NAME)};

/* How often the forcing state re-checks (and re-shuts) sockets that h2o has not closed yet. */
#define FORCE_RECHECK_MS 1000

/* The catch-all h2o handler and the filter that rewrites h2o's own error responses. */
typedef struct {
    h2o_handler_t super;
    http_server_t *srv;
} catchall_handler_t;

typedef struct {
    h2o_filter_t super;
    http_server_t *srv;
} error_filter_t;

typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body; /* the JSON that replaces h2o's text/plain body */
} error_ostream_t;

/* --- the pipeline every request goes through ----------------------------------------------------------- */

static int is_json_media_type(const char *v, size_t len)
{
    const char *semi = memchr(v, ';', len);
    h2o_iovec_t type = h2o_str_stripws(v, semi != NULL ? (size_t)(semi - v) : len);
    const char *t = type.base;
    size_t tlen = type.len;
    if (h2o_lcstris(t, tlen, H2O_STRLIT("application/json")))
        return 1;
    /* Structured syntax suffix (RFC 6839), e.g. application/merge-patch+json, as FastAPI accepts. */
    return tlen > 17 && h2o_lcstris(t, 12, H2O_STRLIT("application/")) &&
           h2o_lcstris(t + tlen - 5, 5, H2O_STRLIT("+json"));
}

/* The last step before the handler: a body a handler would parse as JSON must be declared as JSON. A body
 * without Content-Type is read as JSON anyway, to be lenient with simple clients. */
static void dispatch(http_req_t *req)
{
    if (req->body_len > 0 && (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
                              strcmp(req->method, "PATCH") == 0)) {
        size_t len;
        const char *ct = http_header(req, "content-type", &len);
        if (ct != NULL && !is_json_media_type(ct, len)) {
            http_reply_error(req, 415, "Unsupported Media Type");
            return;
        }
    }
    if (req->_handler == NULL) {
        log_error("dispatching an HTTP request", "route %s has no handler", req->route);
        http_reply_error(req, 500, "Internal Server Error");
        return;
    }
    req->_handler(req);
}

/* Constant-time check of a configured secret; an unset or empty secret never matches. */
static int secret_matches(const char *configured, const char *given, size_t len)
{
    if (configured == NULL || configured[0] == '\0' || given == NULL)
        return 0;
    return crypto_equal(given, len, configured, strlen(configured));
}

static void check_access(http_server_t *srv, http_req_t *req, route_access_t access)
{
    const config_t *cfg = srv->app->cfg;
    size_t len = 0;
    const char *v;
    switch (access) {
    case ROUTE_PUBLIC:
        dispatch(req);
        return;
    case ROUTE_INTERNAL:
        v = http_header(req, "x-internal-secret", &len);
        if (!secret_matches(cfg->internal_secret, v, len)) {
            http_reply_error(req, 403, "Forbidden");
            return;
        }
        dispatch(req);
        return;
    case ROUTE_ADMIN:
        v = http_header(req, "authorization", &len);
        if (v != NULL && len > 6 && h2o_lcstris(v, 6, H2O_STRLIT("bearer")) &&
            (v[6] == ' ' || v[6] == '\t')) {
            h2o_iovec_t token = h2o_str_stripws(v + 7, len - 7);
            if (secret_matches(cfg->admin_token, token.base, token.len)) {
                dispatch(req);
                return;
            }
        }
        http_reply_error(req, 403, "Forbidden");
        return;
    case ROUTE_USER:
        if (srv->user_auth != NULL) {
            srv->user_auth(req, dispatch);
            return;
        }
        http_add_header(req, "WWW-Authenticate", "Bearer");
        http_reply_error(req, 401, "Not authenticated");
        return;
    }
    log_error("checking access to an HTTP route", "route %s has an unknown access kind %d", req->route,
              (int)access);
    http_reply_error(req, 500, "Internal Server Error");
}

/* A CORS preflight, answered the way Starlette's CORSMiddleware does (allow_credentials, all methods, the
 * requested headers echoed). */
static void reply_preflight(http_req_t *req)
{
    if (req->_origin == NULL) {
        http_reply(req, 400, "text/plain; charset=utf-8", H2O_STRLIT("Disallowed CORS origin"));
        return;
    }
    http_add_header(req, "Access-Control-Allow-Methods", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT");
    size_t len;
    const char *asked = http_header(req, "access-control-request-headers", &len);
    if (asked != NULL && len > 0) {
        char *copy = xstrndup(asked, len);
        http_add_header(req, "Access-Control-Allow-Headers", copy);
        free(copy);
    }
    http_add_header(req, "Access-Control-Max-Age", "600");
    http_reply(req, 200, "text/plain; charset=utf-8", H2O_STRLIT("OK"));
}

/* The request's Origin header when the configuration allows it, NULL otherwise. h2o has lowercased the
 * request's header names (HTTP/1.1 parser), so a byte-wise lookup finds any spelling. */
static const h2o_iovec_t *allowed_origin(const http_server_t *srv, const h2o_headers_t *headers)
{
    ssize_t i = h2o_find_header_by_str(headers, H2O_STRLIT("origin"), -1);
    if (i < 0)
        return NULL;
    const h2o_iovec_t *v = &headers->entries[i].value;
    return config_origin_allowed(srv->app->cfg, v->base, v->len) ? v : NULL;
}

static http_req_t *req_create(http_server_t *srv, h2o_req_t *h)
{
    http_req_t *req = xcalloc(1, sizeof(*req));
    req->app = srv->app;
    req->h2o = h;
    req->start_ms = time_mono_ms();
    req->_server = srv;
    req->_extra = BUF_INIT;
    /* Methods that do not fit are not ours; "" routes nowhere, so such requests get 404 or 405. */
    if (h->method.len < sizeof(req->method)) {
        memcpy(req->method, h->method.base, h->method.len);
        req->method[h->method.len] = '\0';
    }
    backref_t *b = h2o_mem_alloc_shared(&h->pool, sizeof(*b), srv_on_backref_dispose);
    memset(b, 0, sizeof(*b));
    b->req = req;
    b->h2o = h;
    req->_backref = b;
    h2o_linklist_insert(&srv->inflight, &req->_inflight);
    srv->ninflight++;

    const h2o_iovec_t *origin = allowed_origin(srv, &h->headers);
    if (origin != NULL)
        req->_origin = xstrndup(origin->base, origin->len);
    return req;
}

static int on_req(h2o_handler_t *self, h2o_req_t *h)
{
    http_server_t *srv = ((catchall_handler_t *)self)->srv;
    http_req_t *req = req_create(srv, h);
    if (srv->state == SRV_FORCING) {
        /* Past the shutdown deadline, a request pipelined behind an answered one gets no handler. */
        http_reply_error(req, 503, "Service is shutting down");
        return 0;
    }

    size_t raw_len = h->query_at != SIZE_MAX ? h->query_at : h->path.len;
    if (h->query_at != SIZE_MAX)
        req->query = xstrndup(h->path.base + h->query_at + 1, h->path.len - h->query_at - 1);
    req->path = xmalloc(raw_len + 1);
    long plen = url_percent_decode(h->path.base, raw_len, req->path, 1, 0);
    int bad_path = plen < 0;
    if (bad_path) {
        memcpy(req->path, h->path.base, raw_len); /* kept raw, for the log line */
        plen = (long)raw_len;
    }
    req->path[plen] = '\0';

    if (strcmp(req->method, "OPTIONS") == 0 &&
        h2o_find_header_by_str(&h->headers, H2O_STRLIT("origin"), -1) >= 0 &&
        h2o_find_header_by_str(&h->headers, H2O_STRLIT("access-control-request-method"), -1) >= 0) {
        reply_preflight(req);
        return 0;
    }
    /* h2o rejects bodies from max_body + 1 bytes on (see http_server_create); exactly one over ends here. */
    if (h->entity.base != NULL && h->entity.len > srv->max_body) {
        http_reply_error(req, 413, "Request body too large");
        return 0;
    }
    if (bad_path) {
        http_reply_error(req, 400, "Invalid percent-encoding in URL path");
        return 0;
    }

    const http_route_t *route;
    char *storage;
    router_result_t r = router_match(srv->routes, srv->nroutes, req->method, h->path.base, raw_len, &route,
                                     &storage, req->params, &req->nparams);
    req->_param_storage = storage;
    if (r == ROUTER_NOT_FOUND) {
        http_reply_error(req, 404, "Not Found");
        return 0;
    }
    if (r == ROUTER_METHOD_NOT_ALLOWED) {
        http_reply_error(req, 405, "Method Not Allowed");
        return 0;
    }
    for (size_t i = 0; i < req->nparams; i++) {
        /* Cannot fail: the whole path decoded strictly above, and escapes never span a '/'. */
        long n = url_percent_decode(req->params[i], strlen(req->params[i]), req->params[i], 1, 0);
        req->params[i][n < 0 ? 0 : n] = '\0';
    }
    req->route = route->pattern;
    req->_handler = route->handler;
    if (h->entity.base != NULL && h->entity.len > 0) {
        char *body = xmalloc(h->entity.len + 1);
        memcpy(body, h->entity.base, h->entity.len);
        body[h->entity.len] = '\0';
        req->body = body;
        req->body_len = h->entity.len;
    }
    check_access(srv, req, route->access);
    return 0;
}

/* --- h2o's own error responses ------------------------------------------------------------------------- */

static void on_error_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                          h2o_send_state_t state)
{
    error_ostream_t *o = (error_ostream_t *)self;
    (void)bufs;
    /* h2o sends no body for HEAD (bufcnt 0); then neither do we. */
    h2o_iovec_t b = o->body;
    size_t n = bufcnt != 0 && b.len != 0 ? 1 : 0;
    o->body.len = 0;
    h2o_ostream_send_next(self, req, &b, n, state);
}

/* h2o answers some requests before any handler runs: bodies over max_request_entity_size (413, also for
 * chunked bodies, which only h2o sees arrive), malformed requests (400), unknown expectations (417). Those
 * responses go through the host's fallback path, where this filter turns them into the contract's JSON error
 * shape and adds the CORS headers. */
static void on_error_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    http_server_t *srv = ((error_filter_t *)self)->srv;
    if (req->res.status >= 400) {
        const char *detail = req->res.status == 413    ? "Request body too large"
                             : req->res.status == 404  ? "Not Found"
                             : req->res.reason != NULL ? req->res.reason
                                                       : srv_status_reason(req->res.status);
        buf_t b = BUF_INIT;
        srv_json_detail(&b, detail);
        h2o_iovec_t body = h2o_strdup(&req->pool, b.data, b.len);
        buf_free(&b);

        memset(&req->res.headers, 0, sizeof(req->res.headers));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
        const h2o_iovec_t *origin = allowed_origin(srv, &req->headers);
        if (origin != NULL)
            srv_add_cors_headers(&req->pool, &req->res.headers, origin->base, origin->len);
        req->res.content_length = body.len;

        /* These never reach req_finish; count them too, under no route. */
        char method[8] = "";
        if (req->method.len < sizeof(method))
            memcpy(method, req->method.base, req->method.len);
        metrics_http_request(NULL, method, req->res.status, srv_seconds_since(req));

        error_ostream_t *o = (error_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = on_error_send;
        o->body = body;
        slot = &o->super.next;
        log_debug("serving HTTP request", "%.*s %.*s -> %d (%s, answered before routing)",
                  (int)req->method.len, req->method.base, (int)req->path.len, req->path.base, req->res.status,
                  req->res.reason);
    }
    h2o_setup_next_ostream(req, slot);
}

/* --- connections and the listener --------------------------------------------------------------------- */

static void on_conn_close(uv_handle_t *handle)
{
    conn_t *c = (conn_t *)handle;
    http_server_t *srv = c->srv;
    h2o_linklist_unlink(&c->link);
    srv->nconns--;
    free(c);
    if (srv->state == SRV_DRAINING || srv->state == SRV_FORCING)
        srv_kick(srv);
}

static void on_unaccepted_close(uv_handle_t *handle)
{
    free(handle);
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *srv = listener->data;
    if (status < 0) {
        log_warn("accepting an HTTP connection", "%s", uv_strerror(status));
        return;
    }
    conn_t *c = xcalloc(1, sizeof(*c));
    int r = uv_tcp_init(srv->loop, &c->tcp);
    if (r != 0) {
        log_error("accepting an HTTP connection", "uv_tcp_init: %s", uv_strerror(r));
        free(c);
        return;
    }
    if ((r = uv_accept(listener, (uv_stream_t *)&c->tcp)) != 0) {
        log_warn("accepting an HTTP connection", "%s", uv_strerror(r));
        uv_close((uv_handle_t *)&c->tcp, on_unaccepted_close);
        return;
    }
    /* Responses go out in one write each; Nagle would only delay them. */
    if ((r = uv_tcp_nodelay(&c->tcp, 1)) != 0)
        log_debug("accepting an HTTP connection", "TCP_NODELAY: %s", uv_strerror(r));
    c->srv = srv;
    h2o_linklist_insert(&srv->conns, &c->link);
    srv->nconns++;
    c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_close);
    h2o_accept(&srv->accept_ctx, c->sock);
}

static void on_handle_closed(uv_handle_t *handle)
{
    http_server_t *srv = handle->data;
    srv->open_handles--;
    if (srv->state == SRV_CLOSING && srv->open_handles == 0) {
        log_info("shutting down the HTTP server", "done");
        if (srv->shutdown_cb != NULL)
            srv->shutdown_cb(srv->shutdown_data);
        free(srv);
    }
}

http_server_t *http_server_create(uv_loop_t *loop, app_t *app, size_t max_body_bytes)
{
    http_server_t *srv = xcalloc(1, sizeof(*srv));
    srv->loop = loop;
    srv->app = app;
    srv->max_body = max_body_bytes;
    srv->state = SRV_RUNNING;
    h2o_linklist_init_anchor(&srv->conns);
    h2o_linklist_init_anchor(&srv->inflight);
    h2o_linklist_init_anchor(&srv->notes);

    h2o_config_init(&srv->config);
    srv->config.server_name = h2o_iovec_init(H2O_STRLIT("inkloop"));
    /* One byte over our limit: h2o then answers 413 itself for anything it can tell is larger (Content-Length
     * or chunked data past max_body + 1) without buffering it, and on_req catches a body of exactly
     * max_body + 1, because h2o's chunked reader rejects at ">=" while its Content-Length check uses ">". */
    srv->config.max_request_entity_size = max_body_bytes + 1;
    /* HTTP/1.1 only: no h2c upgrade (libh2o 2.2.5 predates the HTTP/2 Rapid Reset fix). */
    srv->config.http1.upgrade_to_http2 = 0;
    /* With HTTP/2 off, its callbacks only get in the way: its request_shutdown arms a GOAWAY timer on the
     * context's one-second timeout, which h2o_context_dispose then asserts is idle. */
    memset(&srv->config.http2.callbacks, 0, sizeof(srv->config.http2.callbacks));
    h2o_hostconf_t *host =
        h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    catchall_handler_t *handler = (catchall_handler_t *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->srv = srv;
    error_filter_t *filter = (error_filter_t *)h2o_create_filter(&host->fallback_path, sizeof(*filter));
    filter->super.on_setup_ostream = on_error_setup_ostream;
    filter->srv = srv;
    h2o_context_init(&srv->ctx, loop, &srv->config);
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->config.hosts;

    int r = uv_timer_init(loop, &srv->timer);
    if (r != 0) {
        /* Only fails for an invalid loop, which is a caller bug. */
        log_error("creating the HTTP server", "uv_timer_init: %s", uv_strerror(r));
        abort();
    }
    srv->timer.data = srv;
    if ((r = uv_timer_init(loop, &srv->liveness)) != 0) {
        log_error("creating the HTTP server", "uv_timer_init: %s", uv_strerror(r));
        abort();
    }
    srv->liveness.data = srv;
    srv->open_handles = 2;
    return srv;
}

void http_server_set_routes(http_server_t *srv, const http_route_t *routes, size_t nroutes)
{
    srv->routes = routes;
    srv->nroutes = nroutes;
}

void http_server_set_user_auth(http_server_t *srv, http_auth_cb cb)
{
    srv->user_auth = cb;
}

int http_server_listen(http_server_t *srv, const char *host, int port)
{
    struct sockaddr_storage addr;
    int r;
    if (srv->listening || srv->state != SRV_RUNNING) {
        log_error("starting the HTTP listener", "already listening or shutting down");
        return -1;
    }
    if (strchr(host, ':') != NULL)
        r = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        r = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (r != 0) {
        log_error("starting the HTTP listener", "invalid address %s: %s", host, uv_strerror(r));
        return -1;
    }
    if ((r = uv_tcp_init(srv->loop, &srv->listener)) != 0) {
        log_error("starting the HTTP listener", "uv_tcp_init: %s", uv_strerror(r));
        return -1;
    }
    srv->listener.data = srv;
    srv->open_handles++;
    if ((r = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0)) != 0 ||
        (r = uv_listen((uv_stream_t *)&srv->listener, SOMAXCONN, on_connection)) != 0) {
        log_error("starting the HTTP listener", "%s:%d: %s", host, port, uv_strerror(r));
        uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
        return -1;
    }
    srv->listening = 1;
    log_info("starting the HTTP listener", "listening on %s:%d", host, http_server_port(srv));
    return 0;
}

int http_server_port(const http_server_t *srv)
{
    if (!srv->listening)
        return -1;
    struct sockaddr_storage addr;
    int len = sizeof(addr);
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    if (addr.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    return ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

size_t http_server_in_flight(const http_server_t *srv)
{
    return srv->ninflight;
}

/* --- shutdown ------------------------------------------------------------------------------------------ */

/* Shuts every accepted socket down at the OS level rather than closing it: h2o then sees EOF (or a failed
 * write) through its normal paths and frees its connection itself, which it would not if the handle were
 * closed under it. SHUT_RD ends idle keep-alive connections at once and busy ones after their response;
 * SHUT_RDWR also makes pending writes fail. */
static void shut_down_sockets(http_server_t *srv, int how)
{
    for (h2o_linklist_t *l = srv->conns.next; l != &srv->conns; l = l->next) {
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, l);
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && shutdown(fd, how) != 0 && errno != ENOTCONN)
            log_debug("shutting down the HTTP server", "shutdown(): %s", strerror(errno));
    }
}

static void send_shutting_down(http_req_t *req)
{
    buf_t b = BUF_INIT;
    srv_json_detail(&b, "Service is shutting down");
    size_t len = b.len;
    char *owned = buf_release(&b);
    srv_send_to_h2o(req, 503, "application/json", owned, len, &owned);
    free(owned);
}

/* Requests still waiting for their handler at the deadline get 503 now. The operation attached to one is
 * cancelled and the request freed; without one, the handler's reply later only frees the request. */
static void answer_stragglers(http_server_t *srv)
{
    while (!h2o_linklist_is_empty(&srv->inflight)) {
        http_req_t *req = H2O_STRUCT_FROM_MEMBER(http_req_t, _inflight, srv->inflight.next);
        char path[256];
        log_warn("shutting down the HTTP server", "%s %s still in flight after the timeout; answering 503",
                 req->method, srv_log_path(req, path, sizeof(path)));
        if (req->_stream_cb != NULL) {
            /* Its response started long ago: end it (the owner's later writes fail, its end only frees). */
            srv_record_request(req, req->_stream_status);
            srv_req_detach(req);
            srv_stream_close_h2o_side(req);
            continue;
        }
        if (req->_cancel_cb != NULL) {
            int status = req->h2o != NULL ? 503 : 499; /* its client may have just gone (note not run yet) */
            if (req->h2o != NULL)
                send_shutting_down(req);
            srv_run_cancel(req, status);
            continue;
        }
        srv_req_detach(req);
        if (req->h2o != NULL) {
            srv_record_request(req, 503);
            send_shutting_down(req);
        }
    }
}

/* The shutdown machine's one step function. It runs only from on_timer: h2o_context_dispose runs the loop
 * once more (UV_RUN_NOWAIT) to free its timers, which is safe inside a timer callback but not inside an I/O
 * callback, where a nested poll would clobber the outer one's event list. */
static void shutdown_advance(http_server_t *srv)
{
    uint64_t now = uv_now(srv->loop);
    for (;;) {
        switch (srv->state) {
        case SRV_RUNNING:
        case SRV_CLOSING:
            return;
        case SRV_DRAINING:
            if (srv->ninflight == 0 && srv->nconns == 0)
                goto finish;
            if (now < srv->deadline)
                return; /* on_timer re-arms for the deadline */
            answer_stragglers(srv);
            shut_down_sockets(srv, SHUT_RDWR);
            srv->state = SRV_FORCING;
            srv->deadline = now + FORCE_RECHECK_MS;
            continue;
        case SRV_FORCING:
            if (srv->nconns == 0)
                goto finish;
            if (now >= srv->deadline) {
                log_warn("shutting down the HTTP server",
                         "%zu connections still open; shutting them down again", srv->nconns);
                shut_down_sockets(srv, SHUT_RDWR);
                srv->deadline = now + FORCE_RECHECK_MS;
            }
            return;
        }
    }
finish:
    /* Nothing may point at srv once it is freed; normally the list is already empty here. */
    answer_stragglers(srv);
    srv->state = SRV_CLOSING;
    h2o_context_dispose(&srv->ctx);
    h2o_config_dispose(&srv->config);
    uv_close((uv_handle_t *)&srv->liveness, on_handle_closed);
    uv_close((uv_handle_t *)&srv->timer, on_handle_closed);
}

/* Calls the stream owners waiting to be told something, and the cancel hooks of requests whose client went
 * away. Each is unlinked before its call, and the head is read again after it, because an owner typically
 * ends its stream (and others) from inside the call. */
static void deliver_notes(http_server_t *srv)
{
    while (!h2o_linklist_is_empty(&srv->notes)) {
        http_req_t *req = H2O_STRUCT_FROM_MEMBER(http_req_t, _note, srv->notes.next);
        h2o_linklist_unlink(&req->_note);
        if (req->_stream_cb != NULL)
            req->_stream_cb(req, req->_stream_event);
        else if (req->_cancel_cb != NULL)
            srv_run_cancel(req, 499);
    }
}

/* The server's one timer: delivers stream notes (so owners never run inside an h2o callback or an http_*
 * call) and drives the shutdown machine. */
static void on_timer(uv_timer_t *timer)
{
    http_server_t *srv = timer->data;
    deliver_notes(srv);
    shutdown_advance(srv);
    if (srv->state == SRV_DRAINING || srv->state == SRV_FORCING) {
        uint64_t now = uv_now(srv->loop);
        int r = uv_timer_start(&srv->timer, on_timer, srv->deadline > now ? srv->deadline - now : 0, 0);
        if (r != 0)
            log_error("shutting down the HTTP server", "uv_timer_start: %s", uv_strerror(r));
    }
}

/* Something the shutdown waits for happened, or a stream owner is to be told something: run on_timer in the
 * next timer phase (it re-arms itself for the shutdown deadline). */
void srv_kick(http_server_t *srv)
{
    int r = uv_timer_start(&srv->timer, on_timer, 0, 0);
    if (r != 0)
        log_error("shutting down the HTTP server", "uv_timer_start: %s", uv_strerror(r));
}

void http_server_shutdown(http_server_t *srv, uint64_t timeout_ms, void (*cb)(void *data), void *data)
{
    if (srv->state != SRV_RUNNING) {
        log_warn("shutting down the HTTP server", "already in state %s", srv_state_names[srv->state]);
        return;
    }
    srv->shutdown_cb = cb;
    srv->shutdown_data = data;
    srv->state = SRV_DRAINING;
    srv->deadline = uv_now(srv->loop) + timeout_ms;
    log_info("shutting down the HTTP server",
             "%zu requests in flight, %zu connections open, waiting up to %llu ms", srv->ninflight,
             srv->nconns, (unsigned long long)timeout_ms);
    if (srv->listening) {
        srv->listening = 0;
        uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
    }
    /* Streams never finish on their own: their owners end them, so the drain completes promptly. */
    for (h2o_linklist_t *l = srv->inflight.next; l != &srv->inflight; l = l->next) {
        http_req_t *req = H2O_STRUCT_FROM_MEMBER(http_req_t, _inflight, l);
        if (req->_stream_cb != NULL)
            srv_notify_stream(req, HTTP_STREAM_SHUTDOWN);
    }
    /* Busy connections then close after their current response instead of staying alive. */
    h2o_context_request_shutdown(&srv->ctx);
    shut_down_sockets(srv, SHUT_RD);
    srv_kick(srv);
}
