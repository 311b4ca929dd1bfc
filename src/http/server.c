#include "http/server.h"

#include "app.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "http/router.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

/* The shutdown machine. Each waiting state says what it waits for; every one has a deadline or a periodic
 * re-check, and all progress happens in on_timer (see shutdown_advance for why). */
#define SRV_STATES(X)                                                                                        \
    X(SRV_RUNNING)  /* accepting and serving */                                                              \
    X(SRV_DRAINING) /* listener closed; waits for in-flight requests and connections, until the deadline */  \
    X(SRV_FORCING) /* deadline passed: stragglers got 503, sockets shut down; waits for h2o to close them */ \
    X(SRV_CLOSING) /* h2o disposed; waits for the close callbacks of the listener and the timers */
#define SRV_ENUM(name) name,
#define SRV_NAME(name) #name,
typedef enum { SRV_STATES(SRV_ENUM) } srv_state_t;
static const char *const srv_state_names[] = {SRV_STATES(SRV_NAME)};

/* How often the forcing state re-checks (and re-shuts) sockets that h2o has not closed yet. */
#define FORCE_RECHECK_MS 1000

/* How often the connections of requests with a cancel hook are checked for a client that went away. h2o
 * (HTTP/1.1) stops reading a connection while its request is being served, so it would notice only when the
 * reply is written (nginx checks the same way while it proxies, in ngx_http_test_reading). */
#define LIVENESS_CHECK_MS 500

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

static h2o_generator_t reply_generator = {NULL, NULL};

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {410, "Gone"},
    {413, "Request Entity Too Large"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *status_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    if (status < 300)
        return "OK";
    if (status < 400)
        return "Redirect";
    if (status < 500)
        return "Client Error";
    return "Server Error";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into out (which may be s itself: the output never outgrows the input) and returns
 * the decoded length. strict: a broken escape or %00 (which would cut a C string short) fails with -1;
 * otherwise such bytes are kept as they are, as Python's unquote does. plus: '+' means a space (query). */
static long percent_decode(const char *s, size_t len, char *out, int strict, int plus)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
                out[j++] = (char)(hi * 16 + lo);
                i += 2;
                continue;
            }
            if (strict)
                return -1;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        out[j++] = c;
    }
    return (long)j;
}

static int strieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return 0;
    return 1;
}

static const h2o_header_t *find_header(const h2o_headers_t *headers, const char *name, size_t nlen)
{
    for (size_t i = 0; i < headers->size; i++) {
        const h2o_header_t *h = headers->entries + i;
        if (strieq(h->name->base, h->name->len, name, nlen))
            return h;
    }
    return NULL;
}

/* The three headers every response to an allowed Origin carries, preflight or not, error or not. */
static void add_cors_headers(h2o_mem_pool_t *pool, h2o_headers_t *headers, const char *origin, size_t len)
{
    h2o_iovec_t o = h2o_strdup(pool, origin, len);
    h2o_add_header(pool, headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, o.base, o.len);
    h2o_add_header_by_str(pool, headers, H2O_STRLIT("access-control-allow-credentials"), 0, NULL,
                          H2O_STRLIT("true"));
    h2o_add_header(pool, headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
}

static void json_detail(buf_t *out, const char *detail)
{
    json_writer_t w;
    jw_init(&w, out);
    jw_object_begin(&w);
    jw_key(&w, "detail");
    jw_string(&w, detail);
    jw_object_end(&w);
}

/* --- the request object ------------------------------------------------------------------------------- */

static void notify_stream(http_req_t *req, http_stream_event_t ev);
static void notify_cancel(http_req_t *req);

static void on_backref_dispose(void *p)
{
    backref_t *b = p;
    buf_free(&b->pending);
    buf_free(&b->sending);
    http_req_t *req = b->req;
    if (req != NULL) {
        req->h2o = NULL;
        req->_backref = NULL;
        /* A stream's owner would otherwise wait for an end that only it can make; the operation serving a
         * request no one waits for any more is cancelled (as h2o's proxy cancels its upstream client from its
         * generator's dispose), but from the server's timer: this may run inside any h2o callback. */
        if (req->_stream_cb != NULL)
            notify_stream(req, HTTP_STREAM_GONE);
        else if (req->_cancel_cb != NULL)
            notify_cancel(req);
    }
}

static void on_owned_body_dispose(void *p)
{
    free(*(char **)p);
}

static void kick_shutdown(http_server_t *srv);

/* Removes req from the server's accounting: from then on it only waits for its handler to free it. */
static void req_detach_from_server(http_req_t *req)
{
    http_server_t *srv = req->_server;
    if (srv == NULL)
        return;
    h2o_linklist_unlink(&req->_inflight);
    srv->ninflight--;
    if (h2o_linklist_is_linked(&req->_note))
        h2o_linklist_unlink(&req->_note);
    req->_server = NULL;
    if (srv->state == SRV_DRAINING)
        kick_shutdown(srv);
}

static void req_free(http_req_t *req)
{
    req_detach_from_server(req);
    if (req->_backref != NULL)
        ((backref_t *)req->_backref)->req = NULL;
    free(req->path);
    free(req->query);
    free(req->_param_storage);
    free((char *)req->body);
    buf_free(&req->_extra);
    free(req->_origin);
    free(req);
}

static int is_head(const h2o_req_t *h)
{
    return h2o_memis(h->method.base, h->method.len, H2O_STRLIT("HEAD"));
}

static void set_response_head(http_req_t *req, h2o_req_t *h, int status, const char *content_type);

/* Hands the response to h2o. owned, when not NULL, is the malloc'd buffer body points into: its ownership
 * moves to h2o's pool (*owned becomes NULL) so the bytes live until the socket write completes. */
static void send_to_h2o(http_req_t *req, int status, const char *content_type, const char *body, size_t len,
                        char **owned)
{
    h2o_req_t *h = req->h2o;
    /* Detach first: finishing the response may dispose h2o's pool, which must not reach back into req. */
    if (req->_backref != NULL)
        ((backref_t *)req->_backref)->req = NULL;
    req->_backref = NULL;
    req->h2o = NULL;

    int bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
    set_response_head(req, h, status, bodyless ? NULL : content_type);
    h->res.content_length = bodyless ? SIZE_MAX : len;

    h2o_iovec_t buf = h2o_iovec_init(NULL, 0);
    if (!bodyless && len > 0) {
        if (owned != NULL && *owned != NULL) {
            char **slot = h2o_mem_alloc_shared(&h->pool, sizeof(*slot), on_owned_body_dispose);
            *slot = *owned;
            *owned = NULL;
            buf = h2o_iovec_init(body, len);
        } else {
            buf = h2o_strdup(&h->pool, body, len);
        }
    }
    h2o_start_response(h, &reply_generator);
    /* HEAD runs the GET handler: same headers, Content-Length included, no body. */
    int send_body = buf.len != 0 && !is_head(h);
    h2o_send(h, &buf, send_body ? 1 : 0, H2O_SEND_STATE_FINAL);
}

/* The status line and headers of a response: content type, CORS, and the headers the handler added. */
static void set_response_head(http_req_t *req, h2o_req_t *h, int status, const char *content_type)
{
    h->res.status = status;
    h->res.reason = status_reason(status);
    if (content_type != NULL) {
        h2o_iovec_t ct = h2o_strdup(&h->pool, content_type, strlen(content_type));
        h2o_add_header(&h->pool, &h->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct.base, ct.len);
    }
    if (req->_origin != NULL)
        add_cors_headers(&h->pool, &h->res.headers, req->_origin, strlen(req->_origin));
    for (size_t off = 0; off < req->_extra.len;) {
        const char *name = req->_extra.data + off;
        size_t nlen = strlen(name);
        const char *value = name + nlen + 1;
        size_t vlen = strlen(value);
        off += nlen + vlen + 2;
        /* h2o wants lowercase names (it compares them byte-wise to its tokens) and keeps pointers, not
         * copies. */
        h2o_iovec_t n = h2o_strdup(&h->pool, name, nlen);
        for (size_t i = 0; i < nlen; i++)
            n.base[i] = (char)tolower((unsigned char)n.base[i]);
        h2o_iovec_t v = h2o_strdup(&h->pool, value, vlen);
        h2o_add_header_by_str(&h->pool, &h->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    }
}

/* The decoded path for a log line, with control characters (a decoded %0A) replaced: a path cannot forge
 * log lines. */
static const char *log_path(const http_req_t *req, char *out, size_t outlen)
{
    if (req->path == NULL)
        return "-";
    size_t i = 0;
    for (; req->path[i] != '\0' && i + 1 < outlen; i++) {
        unsigned char c = (unsigned char)req->path[i];
        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[i] = '\0';
    return out;
}

static void log_request(const http_req_t *req, int status, int sent)
{
    if (!log_enabled(LOG_LEVEL_DEBUG))
        return;
    char path[256];
    log_debug("serving HTTP request", "%s %s -> %d in %llu ms%s", req->method[0] ? req->method : "?",
              log_path(req, path, sizeof(path)), status, (unsigned long long)(time_mono_ms() - req->start_ms),
              sent ? "" : " (client gone, reply dropped)");
}

/* Seconds since h2o stamped the request's arrival (microseconds, unlike start_ms); -1 when it did not. */
static double seconds_since(const h2o_req_t *h)
{
    if (h == NULL || h->timestamps.request_begin_at.tv_sec == 0)
        return -1;
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - h->timestamps.request_begin_at.tv_sec) +
           (double)(now.tv_usec - h->timestamps.request_begin_at.tv_usec) / 1e6;
}

/* Every answer counts in the metrics, errors included, labelled by the matched pattern (never the raw path,
 * so the label set stays bounded by the route table). */
static void record_request(const http_req_t *req, int status)
{
    double seconds = seconds_since(req->h2o);
    if (seconds < 0) /* the client went away: only our own millisecond clock is left */
        seconds = (double)(time_mono_ms() - req->start_ms) / 1000.0;
    metrics_http_request(req->route, req->method, status, seconds);
}

/* The one exit of every request: sends when the client is still there, logs, frees. */
static void req_finish(http_req_t *req, int status, const char *content_type, const char *body, size_t len,
                       char *owned)
{
    assert(!req->_cancelling); /* a cancel hook frees its state only; the server frees req */
    http_req_clear_cancel(req);
    int sent = req->h2o != NULL;
    /* A request answered 503 at the shutdown deadline (detached from the server) was counted then. */
    if (sent || req->_server != NULL)
        record_request(req, status);
    if (sent)
        send_to_h2o(req, status, content_type, body, len, &owned);
    log_request(req, status, sent);
    free(owned);
    req_free(req);
}

/* --- streamed responses --------------------------------------------------------------------------------- */

/* Queues a note for req's owner, delivered from on_timer. A request the shutdown deadline already ended has
 * no server left; its owner was told HTTP_STREAM_SHUTDOWN before that. */
static void notify_stream(http_req_t *req, http_stream_event_t ev)
{
    http_server_t *srv = req->_server;
    if (srv == NULL)
        return;
    if (h2o_linklist_is_linked(&req->_note)) {
        if (ev == HTTP_STREAM_GONE) /* the stronger news wins: there is no point in a last frame */
            req->_stream_event = ev;
        return;
    }
    req->_stream_event = ev;
    h2o_linklist_insert(&srv->notes, &req->_note);
    kick_shutdown(srv);
}

/* Queues the cancel of the operation serving req, delivered from on_timer. A request the shutdown deadline
 * already answered has no server left; its operation was cancelled then, or was attached after it (nothing
 * can be cancelled: its handler replies to free it, as without a hook). */
static void notify_cancel(http_req_t *req)
{
    http_server_t *srv = req->_server;
    if (srv == NULL || h2o_linklist_is_linked(&req->_note))
        return;
    h2o_linklist_insert(&srv->notes, &req->_note);
    kick_shutdown(srv);
}

/* Runs the cancel hook of a request that ended before its reply, then frees the request: the one place,
 * besides req_finish, where a request ends. status is what the metrics count it as: 499 (nginx's "client
 * closed request") for a client that went away, or the 503 already sent at the shutdown deadline. */
static void run_cancel(http_req_t *req, int status)
{
    http_cancel_cb cb = req->_cancel_cb;
    void *data = req->_cancel_data;
    req->_cancel_cb = NULL;
    req->_cancel_data = NULL;
    if (req->_server != NULL)
        record_request(req, status);
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char path[256];
        log_debug("serving HTTP request", "%s %s -> %d in %llu ms (%s; its operation is cancelled)",
                  req->method[0] ? req->method : "?", log_path(req, path, sizeof(path)), status,
                  (unsigned long long)(time_mono_ms() - req->start_ms),
                  status == 503 ? "shutdown deadline" : "client gone");
    }
    if (req->h2o != NULL) {
        /* The liveness check found the client gone before h2o did: h2o still needs a response to end its
         * request. The socket is already shut down, so the write fails and h2o closes the connection. */
        send_to_h2o(req, status, NULL, "", 0, NULL);
    }
    req_detach_from_server(req);
    req->_cancelling = 1;
    cb(req, data);
    req->_cancelling = 0;
    req_free(req);
}

/* The socket of req's connection, -1 when h2o does not tell. */
static int req_fd(http_req_t *req)
{
    h2o_conn_t *conn = req->h2o->conn;
    h2o_socket_t *sock = conn->callbacks->get_socket != NULL ? conn->callbacks->get_socket(conn) : NULL;
    return sock != NULL ? h2o_socket_get_fd(sock) : -1;
}

/* The client closed the connection fd (its FIN or a reset arrived), as the kernel's TCP state tells without
 * reading. Not a read (recv with MSG_PEEK): that also sees our own shutdown(SHUT_RD) at the start of the
 * drain as an end of stream, and a pipelined next request would hide the close. A client that half-closed
 * (shutdown(SHUT_WR)) and still waits for its answer counts as gone, as with nginx's default. */
static int client_closed(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return 0; /* not TCP, or closing: h2o notices by itself */
    return ti.tcpi_state == TCP_CLOSE_WAIT || ti.tcpi_state == TCP_CLOSE;
}

static void on_liveness(uv_timer_t *timer)
{
    http_server_t *srv = timer->data;
    int watched = 0;
    for (h2o_linklist_t *l = srv->inflight.next; l != &srv->inflight; l = l->next) {
        http_req_t *req = H2O_STRUCT_FROM_MEMBER(http_req_t, _inflight, l);
        if (req->_cancel_cb == NULL || req->h2o == NULL || h2o_linklist_is_linked(&req->_note))
            continue;
        watched++;
        int fd = req_fd(req);
        if (fd < 0 || !client_closed(fd))
            continue;
        /* Shut down now, so that the response run_cancel hands h2o fails at once instead of going out. */
        if (shutdown(fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
            log_debug("serving HTTP request", "shutdown(): %s", strerror(errno));
        notify_cancel(req);
    }
    if (watched == 0)
        uv_timer_stop(timer); /* cannot fail; set_cancel starts it again */
}

void http_req_set_cancel(http_req_t *req, http_cancel_cb cb, void *data)
{
    assert(cb != NULL && req->_stream_cb == NULL && !req->_cancelling);
    req->_cancel_cb = cb;
    req->_cancel_data = data;
    http_server_t *srv = req->_server;
    if (req->h2o == NULL) {
        notify_cancel(req); /* the client is already gone */
    } else if (srv != NULL && !uv_is_active((uv_handle_t *)&srv->liveness)) {
        int r = uv_timer_start(&srv->liveness, on_liveness, LIVENESS_CHECK_MS, LIVENESS_CHECK_MS);
        if (r != 0)
            log_error("serving HTTP request",
                      "uv_timer_start: %s; a client that goes away is noticed at the reply", uv_strerror(r));
    }
}

void http_req_clear_cancel(http_req_t *req)
{
    req->_cancel_cb = NULL;
    req->_cancel_data = NULL;
    if (req->_stream_cb == NULL && h2o_linklist_is_linked(&req->_note))
        h2o_linklist_unlink(&req->_note);
}

/* Hands h2o what is pending (with the end of the response once the stream was ended), when h2o can take it.
 * h2o_send is the last thing it does: a final send may complete and dispose the request (and b) within it. */
static void stream_flush(backref_t *b)
{
    if (b->state != STREAM_IDLE || (b->pending.len == 0 && !b->ending))
        return;
    buf_t t = b->sending; /* the buffer h2o is done with becomes the next pending one */
    b->sending = b->pending;
    b->pending = t;
    buf_reset(&b->pending);
    h2o_iovec_t buf = h2o_iovec_init(b->sending.data, b->sending.len);
    b->state = b->ending ? STREAM_DONE : STREAM_SENDING;
    h2o_send(b->h2o, &buf, buf.len != 0 ? 1 : 0,
             b->ending ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

/* h2o wrote the previous send. */
static void on_stream_proceed(h2o_generator_t *g, h2o_req_t *h)
{
    backref_t *b = (backref_t *)g;
    (void)h;
    if (b->state == STREAM_DROPPED) {
        /* The write finished before the shutdown made it fail: end the connection with a broken chunk. */
        b->state = STREAM_DONE;
        h2o_send(b->h2o, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    b->state = STREAM_IDLE;
    stream_flush(b);
}

/* The handler's side lets go of h2o's request: what is pending goes out with the end of the response, and b
 * lives on in h2o's pool until that send is written. */
static void stream_close_h2o_side(http_req_t *req)
{
    backref_t *b = req->_backref;
    req->h2o = NULL;
    req->_backref = NULL;
    if (b == NULL)
        return;
    b->req = NULL;
    b->ending = 1;
    stream_flush(b);
}

/* A client that does not read is dropped. The send in flight never completes while it does not read, so h2o
 * cannot be asked to stop; shutting the socket down makes that write fail, and h2o then closes the connection
 * and disposes the request (whose backref tells the owner HTTP_STREAM_GONE). */
static void drop_stream(http_req_t *req, backref_t *b)
{
    char path[256];
    log_warn("streaming an HTTP response", "%s %s: the client is more than %d bytes behind; dropping it",
             req->method, log_path(req, path, sizeof(path)), HTTP_STREAM_MAX_BUFFERED);
    buf_free(&b->pending);
    b->state = STREAM_DROPPED;
    h2o_socket_t *sock = b->h2o->conn->callbacks->get_socket != NULL
                             ? b->h2o->conn->callbacks->get_socket(b->h2o->conn)
                             : NULL;
    for (h2o_linklist_t *l = req->_server != NULL ? req->_server->conns.next : NULL;
         l != NULL && l != &req->_server->conns; l = l->next) {
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, l);
        uv_os_fd_t fd;
        if (c->sock == sock && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
            if (shutdown(fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
                log_warn("streaming an HTTP response", "shutdown(): %s", strerror(errno));
            return;
        }
    }
    log_error("streaming an HTTP response", "the connection of %s %s was not found; it stays open",
              req->method, log_path(req, path, sizeof(path)));
}

int http_stream_start(http_req_t *req, int status, const char *content_type, http_stream_cb on_event)
{
    assert(on_event != NULL && req->_stream_cb == NULL);
    http_req_clear_cancel(req);
    req->_stream_cb = on_event;
    req->_stream_status = status;
    h2o_req_t *h = req->h2o;
    if (h == NULL)
        return -1;
    backref_t *b = req->_backref;
    set_response_head(req, h, status, content_type);
    h->res.content_length = SIZE_MAX; /* HTTP/1.1: chunked */
    b->generator.proceed = on_stream_proceed;
    b->generator.stop = NULL; /* the backref's dispose does the cleanup, stopped or not */
    h2o_start_response(h, &b->generator);
    if (is_head(h)) {
        stream_close_h2o_side(req);
        return -1;
    }
    /* A stream started while draining (a request pipelined on a kept-alive connection) must end too. */
    if (req->_server != NULL && req->_server->state != SRV_RUNNING)
        notify_stream(req, HTTP_STREAM_SHUTDOWN);
    /* Sends the headers now, so the client sees the stream open before the first event. */
    b->state = STREAM_SENDING;
    h2o_send(h, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

int http_stream_write(http_req_t *req, const void *data, size_t len)
{
    assert(req->_stream_cb != NULL);
    backref_t *b = req->_backref;
    if (req->h2o == NULL || b == NULL || b->state == STREAM_DROPPED)
        return -1;
    if (len == 0)
        return 0;
    if (b->pending.len + len > HTTP_STREAM_MAX_BUFFERED) {
        drop_stream(req, b);
        return -1;
    }
    buf_append(&b->pending, data, len);
    stream_flush(b);
    return 0;
}

void http_stream_end(http_req_t *req)
{
    assert(req->_stream_cb != NULL);
    /* Counted once: a stream the shutdown deadline ended (detached from the server) was counted then. */
    if (req->_server != NULL)
        record_request(req, req->_stream_status);
    log_request(req, req->_stream_status, req->h2o != NULL);
    backref_t *b = req->_backref;
    if (b != NULL && b->state == STREAM_DROPPED) {
        /* h2o is failing the connection; nothing more is sent, the backref only forgets req. */
        b->req = NULL;
        req->h2o = NULL;
        req->_backref = NULL;
    } else {
        stream_close_h2o_side(req);
    }
    req_free(req);
}

void http_reply(http_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    if (status < 100 || status > 999) {
        /* A handler bug; the client still gets a well-formed answer. */
        char path[256];
        log_error("replying to an HTTP request", "invalid status %d for %s %s", status, req->method,
                  log_path(req, path, sizeof(path)));
        http_reply_error(req, 500, "Internal Server Error");
        return;
    }
    req_finish(req, status, content_type, body != NULL ? body : "", body != NULL ? len : 0, NULL);
}

void http_reply_json(http_req_t *req, int status, buf_t *body)
{
    if (status < 100 || status > 999) {
        buf_free(body);
        http_reply(req, status, NULL, NULL, 0); /* logs and answers 500 */
        return;
    }
    size_t len = body->len;
    char *owned = buf_release(body);
    req_finish(req, status, "application/json", owned, len, owned);
}

void http_reply_error(http_req_t *req, int status, const char *detail)
{
    buf_t b = BUF_INIT;
    json_detail(&b, detail);
    http_reply_json(req, status, &b);
}

void http_reply_invalid(http_req_t *req, const char *where, const char *field, const char *msg,
                        const char *type)
{
    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_object_begin(&w);
    jw_key(&w, "detail");
    jw_array_begin(&w);
    jw_object_begin(&w);
    jw_key(&w, "loc");
    jw_array_begin(&w);
    jw_string(&w, where);
    jw_string(&w, field);
    jw_array_end(&w);
    jw_key(&w, "msg");
    jw_string(&w, msg);
    jw_key(&w, "type");
    jw_string(&w, type);
    jw_object_end(&w);
    jw_array_end(&w);
    jw_object_end(&w);
    http_reply_json(req, 422, &b);
}

const char *http_header(const http_req_t *req, const char *name, size_t *len)
{
    if (req->h2o == NULL)
        return NULL;
    const h2o_header_t *h = find_header(&req->h2o->headers, name, strlen(name));
    if (h == NULL)
        return NULL;
    if (len != NULL)
        *len = h->value.len;
    return h->value.base;
}

char *http_query_param(const http_req_t *req, const char *name)
{
    if (req->query == NULL)
        return NULL;
    size_t nlen = strlen(name);
    const char *p = req->query;
    char *key = xmalloc(strlen(p) + 1);
    char *found = NULL;
    while (*p != '\0' && found == NULL) {
        const char *amp = strchr(p, '&');
        size_t plen = amp != NULL ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq != NULL ? (size_t)(eq - p) : plen;
        long kdec = percent_decode(p, klen, key, 0, 1);
        if ((size_t)kdec == nlen && memcmp(key, name, nlen) == 0) {
            const char *v = eq != NULL ? eq + 1 : p + plen;
            size_t vlen = eq != NULL ? plen - klen - 1 : 0;
            found = xmalloc(vlen + 1);
            found[percent_decode(v, vlen, found, 0, 1)] = '\0';
        }
        p += plen;
        if (*p == '&')
            p++;
    }
    free(key);
    return found;
}

void http_add_header(http_req_t *req, const char *name, const char *value)
{
    /* A CR or LF would let a value (say, a cookie built from input) inject headers of its own. */
    if (name[0] == '\0' || strpbrk(name, "\r\n: ") != NULL || strpbrk(value, "\r\n") != NULL) {
        log_error("adding a response header", "refused header %s: the name or value contains CR, LF or ':'",
                  name);
        return;
    }
    buf_append(&req->_extra, name, strlen(name) + 1);
    buf_append(&req->_extra, value, strlen(value) + 1);
}

/* --- the pipeline every request goes through ----------------------------------------------------------- */

static int is_json_media_type(const char *v, size_t len)
{
    size_t start = 0, end = 0;
    while (end < len && v[end] != ';')
        end++;
    while (start < end && (v[start] == ' ' || v[start] == '\t'))
        start++;
    while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    const char *t = v + start;
    size_t tlen = end - start;
    if (strieq(t, tlen, H2O_STRLIT("application/json")))
        return 1;
    /* Structured syntax suffix (RFC 6839), e.g. application/merge-patch+json, as FastAPI accepts. */
    return tlen > 17 && strieq(t, 12, H2O_STRLIT("application/")) &&
           strieq(t + tlen - 5, 5, H2O_STRLIT("+json"));
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
        if (v != NULL && len > 6 && strieq(v, 6, H2O_STRLIT("bearer")) && (v[6] == ' ' || v[6] == '\t')) {
            size_t s = 7, e = len;
            while (s < e && (v[s] == ' ' || v[s] == '\t'))
                s++;
            while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
                e--;
            if (secret_matches(cfg->admin_token, v + s, e - s)) {
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
    backref_t *b = h2o_mem_alloc_shared(&h->pool, sizeof(*b), on_backref_dispose);
    memset(b, 0, sizeof(*b));
    b->req = req;
    b->h2o = h;
    req->_backref = b;
    h2o_linklist_insert(&srv->inflight, &req->_inflight);
    srv->ninflight++;

    const h2o_header_t *origin = find_header(&h->headers, H2O_STRLIT("origin"));
    if (origin != NULL && config_origin_allowed(srv->app->cfg, origin->value.base, origin->value.len))
        req->_origin = xstrndup(origin->value.base, origin->value.len);
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
    long plen = percent_decode(h->path.base, raw_len, req->path, 1, 0);
    int bad_path = plen < 0;
    if (bad_path) {
        memcpy(req->path, h->path.base, raw_len); /* kept raw, for the log line */
        plen = (long)raw_len;
    }
    req->path[plen] = '\0';

    if (strcmp(req->method, "OPTIONS") == 0 && find_header(&h->headers, H2O_STRLIT("origin")) != NULL &&
        find_header(&h->headers, H2O_STRLIT("access-control-request-method")) != NULL) {
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
        long n = percent_decode(req->params[i], strlen(req->params[i]), req->params[i], 1, 0);
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
                                                       : status_reason(req->res.status);
        buf_t b = BUF_INIT;
        json_detail(&b, detail);
        h2o_iovec_t body = h2o_strdup(&req->pool, b.data, b.len);
        buf_free(&b);

        memset(&req->res.headers, 0, sizeof(req->res.headers));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
        const h2o_header_t *origin = find_header(&req->headers, H2O_STRLIT("origin"));
        if (origin != NULL && config_origin_allowed(srv->app->cfg, origin->value.base, origin->value.len))
            add_cors_headers(&req->pool, &req->res.headers, origin->value.base, origin->value.len);
        req->res.content_length = body.len;

        /* These never reach req_finish; count them too, under no route. */
        char method[8] = "";
        if (req->method.len < sizeof(method))
            memcpy(method, req->method.base, req->method.len);
        metrics_http_request(NULL, method, req->res.status, seconds_since(req));

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
        kick_shutdown(srv);
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
    json_detail(&b, "Service is shutting down");
    size_t len = b.len;
    char *owned = buf_release(&b);
    send_to_h2o(req, 503, "application/json", owned, len, &owned);
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
                 req->method, log_path(req, path, sizeof(path)));
        if (req->_stream_cb != NULL) {
            /* Its response started long ago: end it (the owner's later writes fail, its end only frees). */
            record_request(req, req->_stream_status);
            req_detach_from_server(req);
            stream_close_h2o_side(req);
            continue;
        }
        if (req->_cancel_cb != NULL) {
            int status = req->h2o != NULL ? 503 : 499; /* its client may have just gone (note not run yet) */
            if (req->h2o != NULL)
                send_shutting_down(req);
            run_cancel(req, status);
            continue;
        }
        req_detach_from_server(req);
        if (req->h2o != NULL) {
            record_request(req, 503);
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
            run_cancel(req, 499);
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
static void kick_shutdown(http_server_t *srv)
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
            notify_stream(req, HTTP_STREAM_SHUTDOWN);
    }
    /* Busy connections then close after their current response instead of staying alive. */
    h2o_context_request_shutdown(&srv->ctx);
    shut_down_sockets(srv, SHUT_RD);
    kick_shutdown(srv);
}
