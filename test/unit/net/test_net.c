/* net: outbound requests against a tiny HTTP/1.1 server living on the same loop (127.0.0.1 only), so every
 * case runs without external network. The tests count callbacks and end with uv_loop_close() == 0. */
#include "core/alloc.h"
#include "core/buf.h"
#include "net/net.h"
#include "tap.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t *loop;

/* ---- the test server ---- */

typedef struct st_conn_t {
    uv_tcp_t tcp;
    buf_t in;
    struct st_conn_t *prev, *next;
    int closing;
} conn_t;

typedef struct st_write_t {
    uv_write_t req;
    conn_t *conn;
    char *data;
    int close_after;
} write_t;

static uv_tcp_t server;
static int server_port;
static int accepted; /* connections accepted so far */
static conn_t conns = {.prev = &conns, .next = &conns};

static const unsigned char gzip_body[] = {
    0x1f, 0x8b, 0x8,  0x0,  0x0,  0x0,  0x0,  0x0,  0x2, 0x3, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0x48, 0xaf,
    0xca, 0x2c, 0x50, 0x28, 0xcf, 0x2f, 0xca, 0x49, 0x1, 0x0, 0x6b, 0x7d, 0xe8, 0xb7, 0x10, 0x0,  0x0,  0x0};

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    buf_free(&c->in);
    free(c);
}

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
    write_t *w = (write_t *)req;
    (void)status;
    if (w->close_after)
        conn_close(w->conn);
    free(w->data);
    free(w);
}

static void send_raw(conn_t *c, const char *data, size_t len, int close_after)
{
    write_t *w = xcalloc(1, sizeof(*w));
    w->conn = c;
    w->data = xmalloc(len);
    memcpy(w->data, data, len);
    w->close_after = close_after;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc != 0) {
        free(w->data);
        free(w);
        conn_close(c);
    }
}

/* Sends a response with a Content-Length; the connection stays open for the next request. */
static void respond(conn_t *c, const char *status_line, const char *extra_headers, const void *body,
                    size_t body_len)
{
    buf_t out = BUF_INIT;
    buf_printf(&out, "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%s\r\n", status_line, body_len, extra_headers);
    buf_append(&out, body, body_len);
    send_raw(c, out.data, out.len, 0);
    buf_free(&out);
}

static void handle_request(conn_t *c, const char *req, size_t req_len)
{
    char method[16], path[256];
    if (sscanf(req, "%15s %255s", method, path) != 2) {
        conn_close(c);
        return;
    }
    if (strcmp(path, "/ok") == 0) {
        respond(c, "200 OK", "Content-Type: text/plain\r\n", "hello", 5);
    } else if (strcmp(path, "/busy") == 0) {
        respond(c, "503 Service Unavailable", "Retry-After: 7\r\nContent-Type: text/plain\r\n", "busy", 4);
    } else if (strcmp(path, "/busy-date") == 0) {
        char hdr[128];
        time_t when = time(NULL) + 120;
        struct tm tm;
        gmtime_r(&when, &tm);
        strftime(hdr, sizeof(hdr), "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        respond(c, "503 Service Unavailable", hdr, "", 0);
    } else if (strncmp(path, "/ra/", 4) == 0) {
        /* /ra/<case>: one Retry-After form per case. */
        char hdr[128];
        const char *p = path + 4;
        if (strcmp(p, "past") == 0) {
            time_t when = time(NULL) - 3600;
            struct tm tm;
            gmtime_r(&when, &tm);
            strftime(hdr, sizeof(hdr), "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        } else {
            const char *v = strcmp(p, "zero") == 0     ? "0"
                            : strcmp(p, "junk") == 0   ? "soon"
                            : strcmp(p, "suffix") == 0 ? "120abc"
                            : strcmp(p, "neg") == 0    ? "-5"
                            : strcmp(p, "huge") == 0   ? "99999999999999999999"
                            : strcmp(p, "spaces") == 0 ? "   42  "
                                                       : "";
            snprintf(hdr, sizeof(hdr), "Retry-After: %s\r\n", v);
        }
        respond(c, "429 Too Many Requests", hdr, "", 0);
    } else if (strcmp(path, "/headers-odd") == 0) {
        /* Names in any case, values padded with blanks, a repeated header: the last one counts. */
        respond(c, "200 OK",
                "content-type:   text/first  \r\nX-Other: 1\r\nCONTENT-TYPE:\ttext/last; charset=utf-8 \t\r\n"
                "location:/elsewhere\r\nRetry-After: 5\r\nretry-after: 9\r\n",
                "", 0);
    } else if (strcmp(path, "/continue") == 0) {
        /* An interim 1xx answer's headers describe nothing of the final one. */
        const char *interim = "HTTP/1.1 100 Continue\r\nContent-Type: text/bogus\r\nRetry-After: 4\r\n\r\n";
        send_raw(c, interim, strlen(interim), 0);
        respond(c, "200 OK", "", "done", 4);
    } else if (strcmp(path, "/redirect") == 0) {
        respond(c, "301 Moved Permanently", "Location: /ok\r\nContent-Type: text/html\r\nRetry-After: 3\r\n",
                "moved", 5);
    } else if (strcmp(path, "/loop") == 0) {
        respond(c, "302 Found", "Location: /loop\r\n", "", 0);
    } else if (strcmp(path, "/ftp") == 0) {
        respond(c, "302 Found", "Location: ftp://127.0.0.1/x\r\n", "", 0);
    } else if (strcmp(path, "/big") == 0) {
        char body[5000];
        memset(body, 'x', sizeof(body));
        respond(c, "200 OK", "", body, sizeof(body));
    } else if (strcmp(path, "/bigstream") == 0) {
        /* No Content-Length: curl cannot refuse up front, only the write callback can stop it. */
        buf_t out = BUF_INIT;
        buf_puts(&out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        for (int i = 0; i < 5000; i++)
            buf_putc(&out, 'y');
        send_raw(c, out.data, out.len, 1);
        buf_free(&out);
    } else if (strcmp(path, "/gzip") == 0) {
        respond(c, "200 OK", "Content-Encoding: gzip\r\nContent-Type: text/plain\r\n", gzip_body,
                sizeof(gzip_body));
    } else if (strcmp(path, "/echo") == 0) {
        respond(c, "200 OK", "Content-Type: text/plain\r\n", req, req_len);
    } else if (strcmp(path, "/hang") == 0) {
        /* Never answers; the client's timeout, cancel or close ends it. */
    } else {
        respond(c, "404 Not Found", "", "", 0);
    }
}

/* Handles every complete request in c->in (headers plus Content-Length bytes of body). */
static void process_input(conn_t *c)
{
    while (!c->closing && c->in.len > 0) {
        const char *end = strstr(buf_cstr(&c->in), "\r\n\r\n");
        if (end == NULL)
            return;
        size_t head_len = (size_t)(end - c->in.data) + 4;
        size_t body_len = 0;
        const char *cl = strcasestr(c->in.data, "\r\nContent-Length:");
        if (cl != NULL && cl < end)
            body_len = strtoul(cl + 17, NULL, 10);
        if (c->in.len < head_len + body_len)
            return;
        size_t total = head_len + body_len;
        char *req = xstrndup(c->in.data, total);
        memmove(c->in.data, c->in.data + total, c->in.len - total);
        c->in.len -= total;
        c->in.data[c->in.len] = '\0';
        handle_request(c, req, total);
        free(req);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    conn_t *c = h->data;
    buf_reserve(&c->in, suggested);
    *b = uv_buf_init(c->in.data + c->in.len, (unsigned)suggested);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn_t *c = s->data;
    (void)b;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->in.len += (size_t)nread;
    c->in.data[c->in.len] = '\0';
    process_input(c);
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    conn_t *c = xcalloc(1, sizeof(*c));
    c->in = BUF_INIT;
    if (uv_tcp_init(loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->next = &conns;
    c->prev = conns.prev;
    conns.prev->next = c;
    conns.prev = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    accepted++;
}

static int bound_port(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void server_start(void)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    TAP_IS_INT(uv_tcp_init(loop, &server), 0, "server: init");
    TAP_IS_INT(uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0), 0, "server: bind 127.0.0.1:0");
    TAP_IS_INT(uv_listen((uv_stream_t *)&server, 511, on_connection), 0, "server: listen");
    server_port = bound_port(&server);
    TAP_OK(server_port > 0, "server: port %d", server_port);
}

static void server_stop(void)
{
    while (conns.next != &conns)
        conn_close(conns.next);
    uv_close((uv_handle_t *)&server, NULL);
}

/* ---- helpers ---- */

static char *url(const char *path)
{
    return xasprintf("http://127.0.0.1:%d%s", server_port, path);
}

/* What one completion callback saw, copied out because the op is freed after the callback returns. */
typedef struct st_result_t {
    int calls;
    char *err;
    long status;
    char *body;
    size_t body_len;
    char *content_type;
    char *location;
    long retry_after_s;
    double duration_ms;
} result_t;

static void result_free(result_t *r)
{
    free(r->err);
    free(r->body);
    free(r->content_type);
    free(r->location);
    memset(r, 0, sizeof(*r));
}

static void on_done(net_op_t *op)
{
    result_t *r = op->data;
    r->calls++;
    r->err = xstrdup(op->err);
    r->status = op->status;
    r->body = xstrndup(buf_cstr(&op->body), op->body.len);
    r->body_len = op->body.len;
    r->content_type = xstrdup(op->content_type);
    r->location = xstrdup(op->location);
    r->retry_after_s = op->retry_after_s;
    r->duration_ms = op->duration_ms;
}

static void on_tick(uv_timer_t *t)
{
    (*(int *)t->data)++;
}

static void on_heartbeat(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *counter reaches want. A completion delivered from a timer callback leaves UV_RUN_ONCE
 * blocked in the poll phase afterwards, so a heartbeat timer keeps the loop turning. */
static void run_until(const int *counter, int want)
{
    uv_timer_t beat;
    uv_timer_init(loop, &beat);
    uv_timer_start(&beat, on_heartbeat, 5, 5);
    while (*counter < want)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&beat, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Lets the loop run for ms milliseconds (to show that a callback does not come). */
static void run_for(uint64_t ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_tick, ms, 0);
    run_until(&fired, 1);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void on_net_closed(void *data)
{
    (*(int *)data)++;
}

static void close_net(net_t *net, const char *what)
{
    int closed = 0;
    net_close(net, on_net_closed, &closed);
    TAP_IS_INT(closed, 0, "%s: close callback not synchronous", what);
    run_until(&closed, 1);
    TAP_IS_INT(closed, 1, "%s: close callback ran once", what);
}

/* Runs one request to completion and copies its result into r. */
static void fetch(net_t *net, const net_request_t *req, result_t *r)
{
    memset(r, 0, sizeof(*r));
    net_start(net, req, on_done, r);
    TAP_IS_INT(r->calls, 0, "%s: callback not synchronous", req->url);
    run_until(&r->calls, 1);
}

/* ---- cases ---- */

static void test_basic(net_t *net)
{
    result_t r;
    char *u = url("/ok");
    net_request_t req = {.url = u, .allow_private = 1};
    memset(&r, 0, sizeof(r));
    net_start(net, &req, on_done, &r);
    TAP_IS_INT(net_in_flight(net), 1, "basic: one in flight");
    TAP_IS_INT(r.calls, 0, "basic: not synchronous");
    run_until(&r.calls, 1);
    TAP_IS_INT(r.calls, 1, "basic: one callback");
    TAP_IS_STR(r.err, NULL, "basic: no error");
    TAP_IS_INT(r.status, 200, "basic: 200");
    TAP_IS_STR(r.body, "hello", "basic: body");
    TAP_IS_STR(r.content_type, "text/plain", "basic: content type");
    TAP_IS_STR(r.location, NULL, "basic: no location");
    TAP_IS_INT(r.retry_after_s, -1, "basic: no retry-after");
    TAP_OK(r.duration_ms > 0, "basic: duration %.3f ms", r.duration_ms);
    TAP_IS_INT(net_in_flight(net), 0, "basic: nothing in flight");
    result_free(&r);
    free(u);
}

static void test_statuses(net_t *net)
{
    result_t r;
    char *u = url("/busy");
    net_request_t req = {.url = u, .allow_private = 1};
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, NULL, "503: not an error");
    TAP_IS_INT(r.status, 503, "503: status");
    TAP_IS_INT(r.retry_after_s, 7, "503: Retry-After seconds");
    TAP_IS_STR(r.body, "busy", "503: body");
    result_free(&r);
    free(u);

    u = url("/busy-date");
    req.url = u;
    fetch(net, &req, &r);
    TAP_IS_INT(r.status, 503, "503 with date: status");
    TAP_OK(r.retry_after_s >= 110 && r.retry_after_s <= 121, "503 with date: Retry-After %ld s",
           r.retry_after_s);
    result_free(&r);
    free(u);

    u = url("/nope");
    req.url = u;
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, NULL, "404: not an error");
    TAP_IS_INT(r.status, 404, "404: status");
    TAP_IS_STR(r.content_type, NULL, "404: no content type");
    result_free(&r);
    free(u);
}

/* Response headers as the op exposes them: the final answer's, last instance wins, values trimmed, and a
 * Retry-After that is neither delta seconds nor an HTTP date counts as absent (-1), not as "now". */
static void test_headers(net_t *net)
{
    static const struct {
        const char *path;
        long want;
    } ra[] = {
        {"/ra/zero", 0}, {"/ra/past", 0},  {"/ra/junk", -1},   {"/ra/suffix", -1},
        {"/ra/neg", -1}, {"/ra/huge", -1}, {"/ra/spaces", 42}, {"/ra/empty", -1},
    };
    result_t r;
    for (size_t i = 0; i < sizeof(ra) / sizeof(ra[0]); i++) {
        char *u = url(ra[i].path);
        net_request_t req = {.url = u, .allow_private = 1};
        fetch(net, &req, &r);
        TAP_IS_INT(r.status, 429, "%s: status", ra[i].path);
        TAP_IS_INT(r.retry_after_s, ra[i].want, "%s: Retry-After", ra[i].path);
        result_free(&r);
        free(u);
    }

    char *u = url("/headers-odd");
    net_request_t req = {.url = u, .allow_private = 1};
    fetch(net, &req, &r);
    TAP_IS_STR(r.content_type, "text/last; charset=utf-8", "odd headers: last Content-Type, trimmed");
    TAP_IS_STR(r.location, "/elsewhere", "odd headers: lowercase name, no blank after the colon");
    TAP_IS_INT(r.retry_after_s, 9, "odd headers: last Retry-After");
    result_free(&r);
    free(u);

    u = url("/continue");
    req.url = u;
    fetch(net, &req, &r);
    TAP_IS_INT(r.status, 200, "after 100 Continue: final status");
    TAP_IS_STR(r.body, "done", "after 100 Continue: body");
    TAP_IS_STR(r.content_type, NULL, "after 100 Continue: interim Content-Type forgotten");
    TAP_IS_INT(r.retry_after_s, -1, "after 100 Continue: interim Retry-After forgotten");
    result_free(&r);
    free(u);
}

static void test_redirects(net_t *net)
{
    result_t r;
    char *u = url("/redirect");
    net_request_t req = {.url = u, .allow_private = 1};
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, NULL, "redirect not followed: no error");
    TAP_IS_INT(r.status, 301, "redirect not followed: 301 is the answer");
    TAP_IS_STR(r.location, "/ok", "redirect not followed: location");
    TAP_IS_INT(r.retry_after_s, 3, "redirect not followed: its Retry-After");
    result_free(&r);

    req.max_redirects = 3;
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, NULL, "redirect followed: no error");
    TAP_IS_INT(r.status, 200, "redirect followed: 200");
    TAP_IS_STR(r.body, "hello", "redirect followed: final body only");
    TAP_IS_STR(r.location, NULL, "redirect followed: location of the final answer (none)");
    TAP_IS_STR(r.content_type, "text/plain", "redirect followed: final content type");
    TAP_IS_INT(r.retry_after_s, -1, "redirect followed: earlier Retry-After forgotten");
    result_free(&r);
    free(u);

    u = url("/loop");
    req.url = u;
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "too many redirects", "redirect loop");
    result_free(&r);
    free(u);

    u = url("/ftp");
    req.url = u;
    fetch(net, &req, &r);
    TAP_OK(r.err != NULL, "redirect to ftp refused: %s", r.err ? r.err : "(null)");
    result_free(&r);
    free(u);
}

static void test_size_cap(net_t *net)
{
    result_t r;
    char *u = url("/big");
    net_request_t req = {.url = u, .allow_private = 1, .max_response_bytes = 1000};
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "response too large (over 1000 bytes)", "cap with Content-Length");
    result_free(&r);
    free(u);

    u = url("/bigstream");
    req.url = u;
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "response too large (over 1000 bytes)", "cap without Content-Length");
    result_free(&r);
    free(u);

    u = url("/ok");
    req.url = u;
    req.max_response_bytes = 5;
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, NULL, "body exactly at the cap is fine");
    TAP_IS_STR(r.body, "hello", "body exactly at the cap arrives");
    result_free(&r);
    free(u);

    u = url("/gzip");
    req.url = u;
    req.max_response_bytes = 0;
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, NULL, "gzip: no error");
    TAP_IS_STR(r.body, "hello gzip world", "gzip: body decoded");
    result_free(&r);
    free(u);
}

static void test_failures(net_t *net)
{
    result_t r;
    char *u = url("/hang");
    net_request_t req = {.url = u, .allow_private = 1, .timeout_ms = 300};
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "timeout after 0.3s", "hang: timeout");
    TAP_IS_INT(r.status, 0, "hang: no status");
    TAP_OK(r.duration_ms >= 290, "hang: took %.0f ms", r.duration_ms);
    result_free(&r);
    free(u);

    /* A port that was just bound and released has no listener. */
    uv_tcp_t probe;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &probe);
    uv_tcp_bind(&probe, (const struct sockaddr *)&addr, 0);
    int port = bound_port(&probe);
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    u = xasprintf("http://127.0.0.1:%d/", port);
    req = (net_request_t){.url = u, .allow_private = 1};
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "connection refused", "closed port");
    result_free(&r);
    free(u);

    u = url("/ok");
    int before = accepted;
    req = (net_request_t){.url = u, .allow_private = 0};
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "target not allowed: resolves to a loopback address", "loopback refused");
    TAP_IS_INT(r.status, 0, "loopback refused: no status");
    TAP_IS_INT(accepted, before, "loopback refused: never connected");
    result_free(&r);
    free(u);

    req = (net_request_t){.url = "ftp://example.com/", .allow_private = 1};
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "invalid URL: scheme must be http or https", "invalid URL");
    result_free(&r);

    req = (net_request_t){.url = "http://user:pw@example.com/", .allow_private = 1};
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "invalid URL: user info is not allowed", "URL with user info");
    result_free(&r);
}

/* A listener whose accept queue is full drops new SYNs, so a connect to it hangs: the connect deadline ends
 * it. */
static void test_connect_timeout(net_t *net)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    socklen_t len = sizeof(addr);
    int ok = lfd >= 0 && bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) == 0 && listen(lfd, 0) == 0 &&
             getsockname(lfd, (struct sockaddr *)&addr, &len) == 0;
    TAP_OK(ok, "connect timeout: listener with a zero backlog");
    int fillers[4];
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fillers[i] >= 0 && connect(fillers[i], (struct sockaddr *)&addr, sizeof(addr)) != 0 &&
            errno != EINPROGRESS)
            TAP_OK(0, "connect timeout: filler %d: %s", i, strerror(errno));
    }
    run_for(50); /* the fillers complete their handshakes and fill the queue */

    result_t r;
    char *u = xasprintf("http://127.0.0.1:%d/", ntohs(addr.sin_port));
    net_request_t req = {.url = u, .allow_private = 1, .connect_timeout_ms = 200, .timeout_ms = 5000};
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "connect timeout after 0.2s", "connect timeout");
    TAP_OK(r.duration_ms >= 190 && r.duration_ms < 4000, "connect timeout: took %.0f ms", r.duration_ms);
    result_free(&r);
    free(u);
    for (int i = 0; i < 4; i++)
        if (fillers[i] >= 0)
            close(fillers[i]);
    close(lfd);
}

/* A connection opened for a request allowed to reach private targets must not carry a later request that is
 * not: the check runs again when the cached connection is reused. */
static void test_reuse_checked(net_t *net)
{
    result_t r;
    char *u = url("/ok");
    net_request_t req = {.url = u, .allow_private = 1};
    fetch(net, &req, &r);
    TAP_IS_INT(r.status, 200, "reuse: first request allowed");
    result_free(&r);
    int before = accepted;
    req.allow_private = 0;
    fetch(net, &req, &r);
    TAP_IS_STR(r.err, "target not allowed: resolves to a loopback address",
               "reuse: cached connection refused");
    TAP_IS_INT(accepted, before, "reuse: no new connection was opened");
    result_free(&r);
    free(u);
}

static void test_post(net_t *net)
{
    result_t r;
    char *u = url("/echo");
    static const char *const headers[] = {"Content-Type: application/json", "X-Test: yes", NULL};
    const char *body = "{\"a\": 1}";
    net_request_t req = {
        .url = u, .allow_private = 1, .headers = headers, .body = body, .body_len = strlen(body)};
    fetch(net, &req, &r);
    TAP_IS_INT(r.status, 200, "post: 200");
    TAP_OK(strncmp(r.body, "POST /echo HTTP/1.1\r\n", 21) == 0, "post: method and path");
    TAP_OK(strstr(r.body, "\r\nX-Test: yes\r\n") != NULL, "post: custom header arrived");
    TAP_OK(strstr(r.body, "\r\nContent-Type: application/json\r\n") != NULL, "post: content type arrived");
    TAP_OK(strstr(r.body, "\r\nUser-Agent: inkloop/" INKLOOP_VERSION "\r\n") != NULL,
           "post: default user agent");
    TAP_OK(strstr(r.body, "\r\nContent-Length: 8\r\n") != NULL, "post: content length");
    TAP_OK(strcasestr(r.body, "\r\nExpect:") == NULL, "post: no Expect header");
    TAP_OK(r.body_len > 8 && strcmp(r.body + r.body_len - 8, body) == 0, "post: body arrived");
    result_free(&r);

    static const char *const ua[] = {"User-Agent: inkloop-webhook/1", NULL};
    req = (net_request_t){
        .url = u, .allow_private = 1, .headers = ua, .method = "PUT", .body = "x", .body_len = 1};
    fetch(net, &req, &r);
    TAP_OK(strncmp(r.body, "PUT /echo ", 10) == 0, "put: method");
    TAP_OK(strstr(r.body, "\r\nUser-Agent: inkloop-webhook/1\r\n") != NULL, "put: caller's user agent");
    TAP_OK(strstr(r.body, "User-Agent: inkloop/") == NULL, "put: no default user agent");
    result_free(&r);

    req = (net_request_t){.url = u, .allow_private = 1, .method = "DELETE"};
    fetch(net, &req, &r);
    TAP_OK(strncmp(r.body, "DELETE /echo ", 13) == 0, "delete: method");
    result_free(&r);

    req = (net_request_t){.url = u, .allow_private = 1};
    fetch(net, &req, &r);
    TAP_OK(strncmp(r.body, "GET /echo ", 10) == 0, "default method: GET");
    TAP_OK(strcasestr(r.body, "\r\nAccept-Encoding:") != NULL, "default: Accept-Encoding offered");
    result_free(&r);
    free(u);
}

static int many_done, many_ok;

static void on_many(net_op_t *op)
{
    many_done++;
    if (op->err == NULL && op->status == 200 && op->body.len == 5)
        many_ok++;
}

static void test_concurrent(net_t *net)
{
    enum { N = 200 };
    char *u = url("/ok");
    net_request_t req = {.url = u, .allow_private = 1};
    for (int i = 0; i < N; i++)
        net_start(net, &req, on_many, NULL);
    TAP_IS_INT(net_in_flight(net), N, "concurrent: %d in flight", N);
    run_until(&many_done, N);
    TAP_IS_INT(many_done, N, "concurrent: every callback ran");
    TAP_IS_INT(many_ok, N, "concurrent: every request succeeded");
    TAP_IS_INT(net_in_flight(net), 0, "concurrent: nothing left in flight");
    free(u);
}

static int never_calls;

static void on_never(net_op_t *op)
{
    (void)op;
    never_calls++;
}

static void test_cancel(net_t *net)
{
    char *hang = url("/hang"), *ok = url("/ok");
    net_request_t r1 = {.url = hang, .allow_private = 1};
    net_request_t r2 = {.url = ok, .allow_private = 1};
    net_request_t r3 = {.url = "not a url"};
    net_op_t *a = net_start(net, &r1, on_never, NULL);
    net_op_t *b = net_start(net, &r2, on_never, NULL);
    net_op_t *c = net_start(net, &r3, on_never, NULL);
    net_op_t *d = net_start(net, &r1, on_never, NULL);
    TAP_IS_INT(net_in_flight(net), 4, "cancel: four in flight");
    net_cancel(a);
    net_cancel(b);
    net_cancel(c);
    run_for(100); /* d is connected and waiting by now */
    net_cancel(d);
    TAP_IS_INT(net_in_flight(net), 0, "cancel: nothing in flight");
    run_for(100);
    TAP_IS_INT(never_calls, 0, "cancel: no callback ran");
    free(hang);
    free(ok);
}

/* Callbacks that start, cancel and close from inside a callback. */
static int chain_calls;
static net_op_t *victim;
static net_t *chain_net;
static char *chain_url;

static void on_chain(net_op_t *op)
{
    chain_calls++;
    TAP_IS_INT(op->status, 200, "chain %d: 200", chain_calls);
    if (chain_calls < 3) {
        net_request_t req = {.url = chain_url, .allow_private = 1};
        net_start(chain_net, &req, on_chain, NULL);
    }
}

static void on_cancel_other(net_op_t *op)
{
    (void)op;
    chain_calls++;
    net_cancel(op); /* cancelling itself from its own callback is harmless */
    net_cancel(victim);
}

static void on_close_inside(net_op_t *op)
{
    int *closed = op->data;
    chain_calls++;
    net_close(chain_net, on_net_closed, closed);
}

static void test_reentrant(void)
{
    chain_net = net_create(loop);
    chain_url = url("/ok");
    net_request_t req = {.url = chain_url, .allow_private = 1};
    net_start(chain_net, &req, on_chain, NULL);
    run_until(&chain_calls, 3);
    TAP_IS_INT(net_in_flight(chain_net), 0, "chain: nothing left");

    /* Both invalid, so both complete in the same turn: the first cancels the second. */
    chain_calls = 0;
    net_request_t bad = {.url = "ftp://x/"};
    net_start(chain_net, &bad, on_cancel_other, NULL);
    victim = net_start(chain_net, &bad, on_never, NULL);
    run_for(50);
    TAP_IS_INT(chain_calls, 1, "cancel inside: first callback ran");
    TAP_IS_INT(never_calls, 0, "cancel inside: cancelled op's callback did not");
    TAP_IS_INT(net_in_flight(chain_net), 0, "cancel inside: nothing left");

    /* The first callback closes the net: the other done op and the running one are dropped silently. */
    chain_calls = 0;
    int closed = 0;
    char *hang = url("/hang");
    net_request_t h = {.url = hang, .allow_private = 1};
    net_start(chain_net, &bad, on_close_inside, &closed);
    net_start(chain_net, &bad, on_never, NULL);
    net_start(chain_net, &h, on_never, NULL);
    run_until(&closed, 1);
    TAP_IS_INT(chain_calls, 1, "close inside: one callback ran");
    TAP_IS_INT(closed, 1, "close inside: close callback ran");
    run_for(50);
    TAP_IS_INT(never_calls, 0, "close inside: other callbacks did not");
    free(hang);
    free(chain_url);
}

static void test_close_in_flight(void)
{
    net_t *net = net_create(loop);
    char *hang = url("/hang"), *ok = url("/ok");
    net_request_t h = {.url = hang, .allow_private = 1};
    net_request_t o = {.url = ok, .allow_private = 1};
    net_request_t bad = {.url = "http://"};
    for (int i = 0; i < 5; i++)
        net_start(net, &h, on_never, NULL);
    run_for(50); /* connections are open and the hanging requests sent */
    net_start(net, &o, on_never, NULL);
    net_start(net, &bad, on_never, NULL); /* done, its callback not yet run */
    net_start(net, &o, on_never, NULL);
    TAP_IS_INT(net_in_flight(net), 8, "close in flight: eight ops");
    close_net(net, "close in flight");
    run_for(50);
    TAP_IS_INT(never_calls, 0, "close in flight: no op callback ran");
    free(hang);
    free(ok);
}

static void on_watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "Bail out! test_net took more than 60 s\n";
    ssize_t n = write(1, msg, sizeof(msg) - 1);
    (void)n;
    _exit(1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_watchdog);
    alarm(60);
    /* The tests must never go through a proxy from the environment; net sets CURLOPT_PROXY "" anyway. */
    setenv("http_proxy", "http://192.0.2.1:9", 1);

    loop = xmalloc(sizeof(*loop));
    TAP_IS_INT(uv_loop_init(loop), 0, "loop init");
    server_start();

    net_t *net = net_create(loop);
    TAP_OK(net != NULL, "net_create");
    test_basic(net);
    test_statuses(net);
    test_headers(net);
    test_redirects(net);
    test_size_cap(net);
    test_failures(net);
    test_connect_timeout(net);
    test_reuse_checked(net);
    test_post(net);
    test_concurrent(net);
    test_cancel(net);
    close_net(net, "main net");

    test_reentrant();
    test_close_in_flight();

    /* An empty net closes too. */
    close_net(net_create(loop), "empty net");

    server_stop();
    TAP_IS_INT(uv_run(loop, UV_RUN_DEFAULT), 0, "loop drained");
    TAP_IS_INT(uv_loop_close(loop), 0, "uv_loop_close: every handle closed");
    free(loop);
    return tap_done();
}
