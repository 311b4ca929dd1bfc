/* The HTTP server end to end on 127.0.0.1: the loop runs in the main thread, a second thread is a plain
 * blocking client. Covers the error shapes, the body limit (also chunked), CORS, HEAD, access control, a
 * reply after the client went away, and a shutdown with an idle keep-alive connection and a request that
 * never finishes, which must end with uv_loop_close() == 0. */
#include "app.h"
#include "core/json.h"
#include "core/log.h"
#include "http/router.h"
#include "http/server.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY 1024

static uv_loop_t loop;
static config_t cfg;
static app_t app;
static http_server_t *srv, *srv_noauth;
static int port, port_noauth;
static uv_async_t stop_async;

/* Written by the loop (main) thread, read by the client thread while polling, or after the loop ended. */
static atomic_int slow_replied;
static atomic_int shutdown_done;
static atomic_size_t inflight_at_shutdown;
static atomic_int hung_detached;
static http_req_t *hung_req;

/* --- the routes ------------------------------------------------------------------------------------------
 */

static void reply_kv(http_req_t *req, const char *key, const char *value)
{
    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_object_begin(&w);
    jw_key(&w, key);
    jw_string(&w, value);
    jw_object_end(&w);
    http_reply_json(req, 200, &b);
}

static void h_items(http_req_t *req)
{
    reply_kv(req, "ok", "yes");
}

static void h_item(http_req_t *req)
{
    reply_kv(req, "id", req->params[0]);
}

static void h_stats(http_req_t *req)
{
    reply_kv(req, "stats", req->route);
}

static void h_create(http_req_t *req)
{
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"len\":%zu}", req->body_len);
    http_reply_json(req, 201, &b);
}

static void h_invalid(http_req_t *req)
{
    http_reply_invalid(req, "body", "name", "field required", "missing");
}

static void h_query(http_req_t *req)
{
    char *q = http_query_param(req, "q");
    reply_kv(req, "q", q != NULL ? q : "(none)");
    free(q);
}

static void h_cookie(http_req_t *req)
{
    http_add_header(req, "Set-Cookie", "refresh_token=abc; HttpOnly; Path=/");
    http_add_header(req, "X-Bad", "a\r\nInjected: yes"); /* refused */
    reply_kv(req, "ok", "cookie");
}

static void h_bad_status(http_req_t *req)
{
    http_reply(req, 42, "text/plain", "x", 1);
}

static void h_secret(http_req_t *req)
{
    reply_kv(req, "ok", "secret");
}

static void h_me(http_req_t *req)
{
    reply_kv(req, "user", req->user_id);
}

typedef struct {
    uv_timer_t timer;
    http_req_t *req;
} slow_t;

static void on_slow_closed(uv_handle_t *h)
{
    free(h);
}

static void on_slow_timer(uv_timer_t *t)
{
    slow_t *s = (slow_t *)t;
    reply_kv(s->req, "ok", "slow"); /* the client is gone by now */
    atomic_fetch_add(&slow_replied, 1);
    uv_close((uv_handle_t *)&s->timer, on_slow_closed);
}

static void h_slow(http_req_t *req)
{
    slow_t *s = calloc(1, sizeof(*s));
    s->req = req;
    if (uv_timer_init(&loop, &s->timer) != 0 || uv_timer_start(&s->timer, on_slow_timer, 200, 0) != 0)
        abort();
}

/* An operation attached to its request (http_req_set_cancel): a timer standing in for a query or an outbound
 * call. Its completion replies; its cancel stops it, so the completion never runs. */
static atomic_int op_completed, op_cancelled, op_freed;

typedef struct {
    uv_timer_t timer;
    http_req_t *req;
} op_t;

static void on_op_closed(uv_handle_t *h)
{
    free(h);
    atomic_fetch_add(&op_freed, 1);
}

static void on_op_done(uv_timer_t *t)
{
    op_t *op = (op_t *)t;
    http_req_clear_cancel(op->req);
    atomic_fetch_add(&op_completed, 1);
    reply_kv(op->req, "ok", "op");
    uv_close((uv_handle_t *)&op->timer, on_op_closed);
}

static void on_op_cancel(http_req_t *req, void *data)
{
    op_t *op = data;
    (void)req;
    atomic_fetch_add(&op_cancelled, 1);
    uv_timer_stop(&op->timer);
    uv_close((uv_handle_t *)&op->timer, on_op_closed);
}

static void start_op(http_req_t *req, uint64_t ms)
{
    op_t *op = calloc(1, sizeof(*op));
    op->req = req;
    if (uv_timer_init(&loop, &op->timer) != 0 || uv_timer_start(&op->timer, on_op_done, ms, 0) != 0)
        abort();
    http_req_set_cancel(req, on_op_cancel, op);
}

static void h_op_fast(http_req_t *req)
{
    start_op(req, 50);
}

static void h_op_slow(http_req_t *req)
{
    start_op(req, 3000);
}

static void h_op_endless(http_req_t *req)
{
    start_op(req, 60000); /* only the shutdown deadline ends it */
}

static void h_hang(http_req_t *req)
{
    hung_req = req; /* answered by the server's shutdown, freed by on_server_down */
}

static const http_route_t test_routes[] = {
    {"GET", "/items", h_items, ROUTE_PUBLIC},
    {"POST", "/items", h_create, ROUTE_PUBLIC},
    {"GET", "/items/{id}", h_item, ROUTE_PUBLIC},
    {"GET", "/items/stats", h_stats, ROUTE_PUBLIC},
    {"GET", "/invalid", h_invalid, ROUTE_PUBLIC},
    {"GET", "/query", h_query, ROUTE_PUBLIC},
    {"GET", "/cookie", h_cookie, ROUTE_PUBLIC},
    {"GET", "/bad-status", h_bad_status, ROUTE_PUBLIC},
    {"GET", "/slow", h_slow, ROUTE_PUBLIC},
    {"GET", "/hang", h_hang, ROUTE_PUBLIC},
    {"GET", "/op/fast", h_op_fast, ROUTE_PUBLIC},
    {"GET", "/op/slow", h_op_slow, ROUTE_PUBLIC},
    {"GET", "/op/endless", h_op_endless, ROUTE_PUBLIC},
    {"GET", "/internal/x", h_secret, ROUTE_INTERNAL},
    {"GET", "/admin/x", h_secret, ROUTE_ADMIN},
    {"GET", "/me", h_me, ROUTE_USER},
    {"POST", "/me", h_me, ROUTE_USER},
};

/* A stand-in for the real authentication: X-Test-User names the user. The name is looked up in mixed case:
 * http_header is case-insensitive (h2o stores request header names lowercased). */
static void test_auth(http_req_t *req, http_handler_cb next)
{
    size_t len;
    const char *u = http_header(req, "X-Test-User", &len);
    if (u == NULL || len == 0 || len >= sizeof(req->user_id)) {
        http_add_header(req, "WWW-Authenticate", "Bearer");
        http_reply_error(req, 401, "Not authenticated");
        return;
    }
    memcpy(req->user_id, u, len);
    req->user_id[len] = '\0';
    next(req);
}

/* --- the loop thread ---------------------------------------------------------------------------------- */

static void on_server_down(void *data)
{
    atomic_fetch_add(&shutdown_done, 1);
    if (data == srv && hung_req != NULL) {
        /* The handler finally answers: the server is gone, so this only frees the request. */
        atomic_store(&hung_detached, hung_req->h2o == NULL);
        http_reply_error(hung_req, 200, "late");
        hung_req = NULL;
    }
}

static void on_stop(uv_async_t *a)
{
    atomic_store(&inflight_at_shutdown, http_server_in_flight(srv));
    http_server_shutdown(srv, 500, on_server_down, srv);
    http_server_shutdown(srv_noauth, 500, on_server_down, srv_noauth);
    uv_close((uv_handle_t *)a, NULL);
}

/* --- a blocking client ------------------------------------------------------------------------------- */

typedef struct {
    int status;
    char raw[16384];
    size_t len;       /* bytes in raw */
    size_t head_len;  /* up to and including the blank line */
    const char *body; /* points into raw */
    size_t body_len;
} resp_t;

static int client_connect(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The value of a response header (case-insensitive name), copied into a static buffer; NULL when absent. */
static const char *resp_header(const resp_t *r, const char *name)
{
    static char value[1024];
    size_t nlen = strlen(name);
    const char *p = memchr(r->raw, '\n', r->head_len);
    while (p != NULL && p + 1 < r->raw + r->head_len) {
        p++;
        const char *eol = memchr(p, '\r', (size_t)(r->raw + r->head_len - p));
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = (size_t)(eol - v) < sizeof(value) - 1 ? (size_t)(eol - v) : sizeof(value) - 1;
            memcpy(value, v, vlen);
            value[vlen] = '\0';
            return value;
        }
        p = eol + 1;
    }
    return NULL;
}

/* Reads one response; head_only for HEAD (no body follows whatever Content-Length says). */
static int read_response(int fd, resp_t *r, int head_only)
{
    memset(r, 0, sizeof(*r));
    for (;;) {
        char *end = r->len > 0 ? memmem(r->raw, r->len, "\r\n\r\n", 4) : NULL;
        if (end != NULL) {
            r->head_len = (size_t)(end - r->raw) + 4;
            break;
        }
        ssize_t n = recv(fd, r->raw + r->len, sizeof(r->raw) - 1 - r->len, 0);
        if (n <= 0)
            return -1;
        r->len += (size_t)n;
    }
    r->status = atoi(r->raw + 9);
    const char *cl = resp_header(r, "content-length");
    size_t want = cl != NULL && !head_only ? (size_t)atol(cl) : 0;
    while (r->len < r->head_len + want) {
        ssize_t n = recv(fd, r->raw + r->len, sizeof(r->raw) - 1 - r->len, 0);
        if (n <= 0)
            return -1;
        r->len += (size_t)n;
    }
    r->raw[r->len] = '\0';
    r->body = r->raw + r->head_len;
    r->body_len = r->len - r->head_len;
    return 0;
}

/* Sends a whole request on a new connection and reads the response; with close_expected, also checks that
 * nothing follows it (no stray body) and the server closes. */
static int roundtrip_port(int p, const char *request, size_t len, resp_t *r)
{
    int fd = client_connect(p);
    if (fd < 0 || send_all(fd, request, len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = read_response(fd, r, strncmp(request, "HEAD ", 5) == 0);
    if (rc == 0) {
        char extra[64];
        ssize_t n = recv(fd, extra, sizeof(extra), 0);
        if (n != 0)
            rc = -2; /* bytes after the response, or the server did not close */
    }
    close(fd);
    return rc;
}

static int roundtrip(const char *request, resp_t *r)
{
    return roundtrip_port(port, request, strlen(request), r);
}

static int body_is(const resp_t *r, const char *want)
{
    return r->body_len == strlen(want) && memcmp(r->body, want, r->body_len) == 0;
}

static void check_json(const char *request, int status, const char *body, const char *what)
{
    resp_t r;
    int rc = roundtrip(request, &r);
    TAP_IS_INT(rc, 0, "%s: complete response", what);
    TAP_IS_INT(r.status, status, "%s: status", what);
    TAP_OK(body_is(&r, body), "%s: body %s", what, body);
    if (!body_is(&r, body))
        printf("#   got body \"%.*s\"\n", (int)r.body_len, r.body);
    const char *ct = resp_header(&r, "content-type");
    TAP_IS_STR(ct, "application/json", "%s: JSON content type", what);
    const char *cl = resp_header(&r, "content-length");
    TAP_OK(cl != NULL && (size_t)atol(cl) == strlen(body), "%s: Content-Length", what);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *lookup(const char *name, void *ctx)
{
    (void)ctx;
    static const char *vars[][2] = {
        {"INKLOOP_DEV", "1"},
        {"CORS_ORIGINS", "http://allowed.test"},
        {"INTERNAL_SECRET", "internal-secret-1"},
        {"ADMIN_TOKEN", "admin-token-1"},
        {"LOG_LEVEL", "debug"},
    };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (strcmp(vars[i][0], name) == 0)
            return vars[i][1];
    return NULL;
}

#define REQ(method_path, headers) method_path " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" headers "\r\n"

static void test_errors(void)
{
    check_json(REQ("GET /nope", ""), 404, "{\"detail\":\"Not Found\"}", "unknown path");
    check_json(REQ("GET /nope?x=1", ""), 404, "{\"detail\":\"Not Found\"}", "unknown path with query");
    check_json(REQ("DELETE /items", ""), 405, "{\"detail\":\"Method Not Allowed\"}", "wrong method");
    check_json(REQ("PROPFINDX /items", ""), 405, "{\"detail\":\"Method Not Allowed\"}", "overlong method");
    check_json(REQ("GET /items/%zz", ""), 400, "{\"detail\":\"Invalid percent-encoding in URL path\"}",
               "broken escape");
    check_json(REQ("GET /items/a%00b", ""), 400, "{\"detail\":\"Invalid percent-encoding in URL path\"}",
               "NUL escape");
    check_json(REQ("GET /invalid", ""), 422,
               "{\"detail\":[{\"loc\":[\"body\",\"name\"],\"msg\":\"field required\",\"type\":\"missing\"}]}",
               "422 shape");
    check_json(REQ("GET /bad-status", ""), 500, "{\"detail\":\"Internal Server Error\"}",
               "handler bug -> 500");
    check_json(REQ("POST /items", "Expect: teapot\r\nContent-Length: 2\r\n") "{}", 417,
               "{\"detail\":\"Expectation Failed\"}", "h2o's own error as JSON");
}

static void test_routing(void)
{
    check_json(REQ("GET /items", ""), 200, "{\"ok\":\"yes\"}", "list");
    check_json(REQ("GET /items/", ""), 200, "{\"ok\":\"yes\"}", "trailing slash");
    check_json(REQ("GET /items/stats", ""), 200, "{\"stats\":\"/items/stats\"}", "literal beats parameter");
    check_json(REQ("GET /items/42", ""), 200, "{\"id\":\"42\"}", "parameter");
    check_json(REQ("GET /items/a%20b%2Fc", ""), 200, "{\"id\":\"a b/c\"}", "decoded parameter");
    check_json(REQ("GET /query?a=1&q=hello+world%21&q=2", ""), 200, "{\"q\":\"hello world!\"}",
               "query param");
    check_json(REQ("GET /query", ""), 200, "{\"q\":\"(none)\"}", "no query");

    resp_t r;
    TAP_IS_INT(roundtrip(REQ("HEAD /items", ""), &r), 0, "HEAD: headers only, then close");
    TAP_IS_INT(r.status, 200, "HEAD runs the GET handler");
    TAP_IS_STR(resp_header(&r, "content-length"), "12", "HEAD keeps GET's Content-Length");
    TAP_IS_INT(r.body_len, 0, "HEAD has no body");

    TAP_IS_INT(roundtrip(REQ("GET /cookie", ""), &r), 0, "cookie route");
    TAP_IS_STR(resp_header(&r, "set-cookie"), "refresh_token=abc; HttpOnly; Path=/", "added header sent");
    TAP_OK(resp_header(&r, "x-bad") == NULL && resp_header(&r, "injected") == NULL, "CR/LF header refused");
}

static void test_bodies(void)
{
    check_json(REQ("POST /items", "Content-Type: application/json\r\nContent-Length: 7\r\n") "{\"a\":1}", 201,
               "{\"len\":7}", "JSON body");
    check_json(
        REQ("POST /items", "Content-Type: Application/JSON; charset=utf-8\r\nContent-Length: 2\r\n") "{}",
        201, "{\"len\":2}", "JSON with parameters");
    check_json(REQ("POST /items", "Content-Type: application/merge-patch+json\r\nContent-Length: 2\r\n") "{}",
               201, "{\"len\":2}", "+json suffix");
    check_json(REQ("POST /items", "Content-Length: 2\r\n") "{}", 201, "{\"len\":2}",
               "no Content-Type: lenient");
    check_json(REQ("POST /items", "Content-Length: 0\r\n"), 201, "{\"len\":0}", "empty body");
    check_json(REQ("POST /items", "Content-Type: text/plain\r\nContent-Length: 2\r\n") "{}", 415,
               "{\"detail\":\"Unsupported Media Type\"}", "non-JSON body");
    check_json(REQ("POST /items", "Content-Type: text/plain\r\nContent-Length: 0\r\n"), 201, "{\"len\":0}",
               "non-JSON type, empty body");

    /* Exactly the limit passes; one byte over is ours to refuse; far over is refused by h2o, rewritten. */
    char big[8192];
    char body[MAX_BODY + 2];
    memset(body, 'x', sizeof(body));
    const char *too_large = "{\"detail\":\"Request body too large\"}";
    int n =
        snprintf(big, sizeof(big),
                 REQ("POST /items", "Content-Type: application/json\r\nContent-Length: %d\r\n"), MAX_BODY);
    memcpy(big + n, body, MAX_BODY);
    big[n + MAX_BODY] = '\0';
    check_json(big, 201, "{\"len\":1024}", "body at the limit");
    n = snprintf(big, sizeof(big),
                 REQ("POST /items", "Content-Type: application/json\r\nContent-Length: %d\r\n"),
                 MAX_BODY + 1);
    memcpy(big + n, body, MAX_BODY + 1);
    big[n + MAX_BODY + 1] = '\0';
    check_json(big, 413, too_large, "one byte over the limit");
    /* Headers only: h2o answers from Content-Length without reading a body. */
    check_json(
        REQ("POST /items",
            "Origin: http://allowed.test\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n"),
        413, too_large, "far over the limit");
    resp_t r;
    TAP_IS_INT(roundtrip(REQ("POST /items", "Origin: http://allowed.test\r\nContent-Length: 5000\r\n"), &r),
               0, "h2o's 413 again");
    TAP_IS_STR(resp_header(&r, "access-control-allow-origin"), "http://allowed.test",
               "h2o's 413 carries CORS");

    /* Chunked: two chunks of 600 bytes go over 1024. */
    n = snprintf(big, sizeof(big), "%s",
                 REQ("POST /items", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"));
    for (int i = 0; i < 2; i++) {
        n += snprintf(big + n, sizeof(big) - (size_t)n, "258\r\n");
        memcpy(big + n, body, 600);
        n += 600;
        n += snprintf(big + n, sizeof(big) - (size_t)n, "\r\n");
    }
    n += snprintf(big + n, sizeof(big) - (size_t)n, "0\r\n\r\n");
    check_json(big, 413, too_large, "chunked over the limit");
    n = snprintf(big, sizeof(big), "%s",
                 REQ("POST /items", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"));
    n += snprintf(big + n, sizeof(big) - (size_t)n, "2\r\n{}\r\n0\r\n\r\n");
    check_json(big, 201, "{\"len\":2}", "chunked under the limit");
}

static void test_cors(void)
{
    resp_t r;
    int rc = roundtrip(REQ("OPTIONS /items",
                           "Origin: http://allowed.test\r\nAccess-Control-Request-Method: POST\r\n"
                           "Access-Control-Request-Headers: content-type, authorization\r\n"),
                       &r);
    TAP_IS_INT(rc, 0, "preflight answered");
    TAP_IS_INT(r.status, 200, "allowed preflight: 200");
    TAP_OK(body_is(&r, "OK"), "preflight body OK");
    TAP_IS_STR(resp_header(&r, "access-control-allow-origin"), "http://allowed.test",
               "preflight Allow-Origin");
    TAP_IS_STR(resp_header(&r, "access-control-allow-credentials"), "true", "preflight Allow-Credentials");
    TAP_IS_STR(resp_header(&r, "vary"), "Origin", "preflight Vary");
    TAP_IS_STR(resp_header(&r, "access-control-allow-methods"),
               "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT", "preflight Allow-Methods");
    TAP_IS_STR(resp_header(&r, "access-control-allow-headers"), "content-type, authorization",
               "preflight echoes the requested headers");
    TAP_IS_STR(resp_header(&r, "access-control-max-age"), "600", "preflight Max-Age");

    rc = roundtrip(
        REQ("OPTIONS /anything/at/all", "Origin: http://evil.test\r\nAccess-Control-Request-Method: GET\r\n"),
        &r);
    TAP_IS_INT(rc, 0, "disallowed preflight answered");
    TAP_IS_INT(r.status, 400, "disallowed preflight: 400");
    TAP_OK(body_is(&r, "Disallowed CORS origin"), "disallowed preflight body");
    TAP_OK(resp_header(&r, "access-control-allow-origin") == NULL, "no Allow-Origin for a disallowed origin");

    rc = roundtrip(REQ("GET /nope", "Origin: http://allowed.test\r\n"), &r);
    TAP_IS_INT(r.status, 404, "404 to an allowed origin");
    TAP_IS_STR(resp_header(&r, "access-control-allow-origin"), "http://allowed.test",
               "404 carries Allow-Origin");
    TAP_IS_STR(resp_header(&r, "access-control-allow-credentials"), "true", "404 carries Allow-Credentials");
    TAP_IS_STR(resp_header(&r, "vary"), "Origin", "404 carries Vary");

    rc = roundtrip(REQ("GET /items", "Origin: http://evil.test\r\n"), &r);
    TAP_IS_INT(r.status, 200, "a disallowed origin is still served");
    TAP_OK(resp_header(&r, "access-control-allow-origin") == NULL, "without CORS headers");

    check_json(REQ("OPTIONS /items", ""), 405, "{\"detail\":\"Method Not Allowed\"}",
               "OPTIONS without Origin");
}

static void test_access(void)
{
    const char *forbidden = "{\"detail\":\"Forbidden\"}";
    check_json(REQ("GET /internal/x", ""), 403, forbidden, "internal without secret");
    check_json(REQ("GET /internal/x", "X-Internal-Secret: wrong\r\n"), 403, forbidden,
               "internal wrong secret");
    check_json(REQ("GET /internal/x", "X-Internal-Secret: internal-secret-1\r\n"), 200, "{\"ok\":\"secret\"}",
               "internal right secret");
    check_json(REQ("GET /admin/x", ""), 403, forbidden, "admin without token");
    check_json(REQ("GET /admin/x", "Authorization: Bearer nope\r\n"), 403, forbidden, "admin wrong token");
    check_json(REQ("GET /admin/x", "Authorization: admin-token-1\r\n"), 403, forbidden,
               "admin without Bearer");
    check_json(REQ("GET /admin/x", "Authorization: bearer admin-token-1\r\n"), 200, "{\"ok\":\"secret\"}",
               "admin right token");

    resp_t r;
    TAP_IS_INT(roundtrip(REQ("GET /me", ""), &r), 0, "user route without credentials");
    TAP_IS_INT(r.status, 401, "hook refuses: 401");
    TAP_IS_STR(resp_header(&r, "www-authenticate"), "Bearer", "hook's WWW-Authenticate");
    check_json(REQ("GET /me", "X-Test-User: u1\r\n"), 200, "{\"user\":\"u1\"}", "hook accepts, handler runs");
    check_json(REQ("POST /me", "X-Test-User: u1\r\nContent-Type: text/html\r\nContent-Length: 2\r\n") "{}",
               415, "{\"detail\":\"Unsupported Media Type\"}", "content type checked after the hook");

    const char *req = REQ("GET /me", "X-Test-User: u1\r\n");
    TAP_IS_INT(roundtrip_port(port_noauth, req, strlen(req), &r), 0, "no hook set");
    TAP_IS_INT(r.status, 401, "no hook: 401");
    TAP_OK(body_is(&r, "{\"detail\":\"Not authenticated\"}"), "no hook: Not authenticated");
    TAP_IS_STR(resp_header(&r, "www-authenticate"), "Bearer", "no hook: WWW-Authenticate: Bearer");
}

static void test_client_gone(void)
{
    int fd = client_connect(port);
    const char *req = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
    TAP_OK(fd >= 0 && send_all(fd, req, strlen(req)) == 0, "slow request sent");
    usleep(50 * 1000);
    close(fd);
    for (int i = 0; i < 100 && atomic_load(&slow_replied) == 0; i++)
        usleep(20 * 1000);
    TAP_IS_INT(atomic_load(&slow_replied), 1, "the handler replied after the client left");
    check_json(REQ("GET /items", ""), 200, "{\"ok\":\"yes\"}", "server fine afterwards");
}

static void wait_for(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms / 20 && atomic_load(v) < want; i++)
        usleep(20 * 1000);
}

static void test_cancel_hook(void)
{
    /* A normal completion replies, and its hook is gone: closing the connection afterwards cancels nothing.
     */
    int fd = client_connect(port);
    const char *fast = "GET /op/fast HTTP/1.1\r\nHost: t\r\n\r\n";
    resp_t r;
    TAP_OK(fd >= 0 && send_all(fd, fast, strlen(fast)) == 0 && read_response(fd, &r, 0) == 0,
           "hooked request answered");
    TAP_IS_INT(r.status, 200, "by its completion (200)");
    TAP_OK(body_is(&r, "{\"ok\":\"op\"}"), "with the completion's body");
    close(fd);
    usleep(1200 * 1000); /* two liveness checks */
    TAP_IS_INT(atomic_load(&op_completed), 1, "completed once");
    TAP_IS_INT(atomic_load(&op_cancelled), 0, "a completed operation is never cancelled");

    /* A client that goes away cancels the operation; its completion never runs; the state is freed. */
    fd = client_connect(port);
    const char *slow = "GET /op/slow HTTP/1.1\r\nHost: t\r\n\r\n";
    TAP_OK(fd >= 0 && send_all(fd, slow, strlen(slow)) == 0, "slow hooked request sent");
    usleep(100 * 1000);
    uint64_t t0 = now_ms();
    close(fd);
    wait_for(&op_cancelled, 1, 2000);
    TAP_IS_INT(atomic_load(&op_cancelled), 1, "the client leaving cancels the operation");
    TAP_OK(now_ms() - t0 < 1500, "within the liveness check (%llu ms)", (unsigned long long)(now_ms() - t0));
    wait_for(&op_freed, 2, 1000);
    TAP_IS_INT(atomic_load(&op_freed), 2, "the cancelled operation's state is freed");
    usleep(3200 * 1000); /* past the operation's own 3 s */
    TAP_IS_INT(atomic_load(&op_completed), 1, "its completion never runs");
    check_json(REQ("GET /items", ""), 200, "{\"ok\":\"yes\"}", "server fine afterwards");
}

/* The client side, in its own thread while the loop runs in the main one (h2o keeps per-thread buffer caches
 * that are only reachable, for the leak checker, from a thread that is still alive at exit). */
static void client_main(void *arg)
{
    (void)arg;
    test_errors();
    test_routing();
    test_bodies();
    test_cors();
    test_access();
    test_client_gone();
    test_cancel_hook();

    /* Shutdown with an idle keep-alive connection and a request whose handler never replies. */
    resp_t r;
    int idle = client_connect(port);
    const char *ka = "GET /items HTTP/1.1\r\nHost: t\r\n\r\n";
    TAP_OK(idle >= 0 && send_all(idle, ka, strlen(ka)) == 0 && read_response(idle, &r, 0) == 0 &&
               r.status == 200,
           "keep-alive: first response");
    TAP_OK(send_all(idle, ka, strlen(ka)) == 0 && read_response(idle, &r, 0) == 0 && r.status == 200,
           "keep-alive: second response on the same connection");
    TAP_IS_STR(resp_header(&r, "connection"), "keep-alive", "connection kept alive");
    int hang = client_connect(port);
    const char *hreq = "GET /hang HTTP/1.1\r\nHost: t\r\nOrigin: http://allowed.test\r\n\r\n";
    TAP_OK(hang >= 0 && send_all(hang, hreq, strlen(hreq)) == 0, "hanging request sent");
    int endless = client_connect(port);
    const char *ereq = "GET /op/endless HTTP/1.1\r\nHost: t\r\n\r\n";
    TAP_OK(endless >= 0 && send_all(endless, ereq, strlen(ereq)) == 0, "endless hooked request sent");
    usleep(100 * 1000);

    uint64_t t0 = now_ms();
    TAP_IS_INT(uv_async_send(&stop_async), 0, "shutdown requested");
    char c;
    TAP_IS_INT(recv(idle, &c, 1, 0), 0, "idle keep-alive connection closed by the server");
    uint64_t idle_ms = now_ms() - t0;
    TAP_OK(idle_ms < 400, "idle connection closed at once (%llu ms), not at the deadline",
           (unsigned long long)idle_ms);
    close(idle);

    TAP_IS_INT(read_response(hang, &r, 0), 0, "hung request answered at the deadline");
    TAP_IS_INT(r.status, 503, "with 503");
    TAP_OK(body_is(&r, "{\"detail\":\"Service is shutting down\"}"), "503 body");
    TAP_IS_STR(resp_header(&r, "access-control-allow-origin"), "http://allowed.test", "503 carries CORS");
    uint64_t hang_ms = now_ms() - t0;
    TAP_OK(hang_ms >= 450 && hang_ms < 3000, "after the 500 ms timeout (%llu ms)",
           (unsigned long long)hang_ms);
    TAP_IS_INT(recv(hang, &c, 1, 0), 0, "then closed");
    close(hang);
    TAP_IS_INT(read_response(endless, &r, 0), 0, "hooked request answered at the deadline");
    TAP_IS_INT(r.status, 503, "with 503 too");
    close(endless);
}

int main(void)
{
    char err[256];
    if (config_load(&cfg, lookup, NULL, err, sizeof(err)) != 0) {
        printf("Bail out! config: %s\n", err);
        return 1;
    }
    log_setup(cfg.log_level, 0);
    /* As main.c does: a write to a socket the server shut down (a dropped stream, a client found gone) must
     * fail with EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    TAP_IS_INT(uv_loop_init(&loop), 0, "loop");
    app.loop = &loop;
    app.cfg = &cfg;

    srv = http_server_create(&loop, &app, MAX_BODY);
    http_server_set_routes(srv, test_routes, sizeof(test_routes) / sizeof(test_routes[0]));
    http_server_set_user_auth(srv, test_auth);
    TAP_IS_INT(http_server_listen(srv, "127.0.0.1", 0), 0, "listening");
    port = http_server_port(srv);
    TAP_OK(port > 0, "bound port %d", port);
    srv_noauth = http_server_create(&loop, &app, MAX_BODY);
    http_server_set_routes(srv_noauth, test_routes, sizeof(test_routes) / sizeof(test_routes[0]));
    TAP_IS_INT(http_server_listen(srv_noauth, "127.0.0.1", 0), 0, "second server listening");
    port_noauth = http_server_port(srv_noauth);
    TAP_IS_INT(uv_async_init(&loop, &stop_async, on_stop), 0, "stop signal");

    uv_thread_t thread;
    TAP_IS_INT(uv_thread_create(&thread, client_main, NULL), 0, "client thread");
    /* Returns once the shutdown closed every handle. */
    TAP_IS_INT(uv_run(&loop, UV_RUN_DEFAULT), 0, "loop ran until nothing was left");
    TAP_IS_INT(uv_thread_join(&thread), 0, "client thread done");

    TAP_IS_INT(atomic_load(&shutdown_done), 2, "both shutdown callbacks ran");
    TAP_IS_INT(atomic_load(&inflight_at_shutdown), 2, "two requests were in flight at shutdown");
    TAP_IS_INT(atomic_load(&op_cancelled), 2, "the deadline cancelled the hooked one (the server freed it)");
    TAP_IS_INT(atomic_load(&op_freed), 3, "and its state was freed");
    TAP_IS_INT(atomic_load(&op_completed), 1, "no completion ran after a cancel");
    TAP_IS_INT(atomic_load(&hung_detached), 1, "the hung request was detached from h2o by then");
    TAP_OK(hung_req == NULL, "the hung request was freed");
    TAP_IS_INT(uv_loop_close(&loop), 0, "uv_loop_close() == 0");
    config_free(&cfg);
    return tap_done();
}
