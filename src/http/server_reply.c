/* The end of a request: whole replies, the response head they share with streams, the metrics and log line
 * every answer gets, and the request's headers and query string as handlers read them. */
#include "http/server_internal.h"

#include "core/alloc.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "http/url.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

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

const char *srv_status_reason(int status)
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

/* The three headers every response to an allowed Origin carries, preflight or not, error or not. */
void srv_add_cors_headers(h2o_mem_pool_t *pool, h2o_headers_t *headers, const char *origin, size_t len)
{
    h2o_iovec_t o = h2o_strdup(pool, origin, len);
    h2o_add_header(pool, headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, o.base, o.len);
    h2o_add_header_by_str(pool, headers, H2O_STRLIT("access-control-allow-credentials"), 0, NULL,
                          H2O_STRLIT("true"));
    h2o_add_header(pool, headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
}

void srv_json_detail(buf_t *out, const char *detail)
{
    json_writer_t w;
    jw_init(&w, out);
    jw_object_begin(&w);
    jw_key(&w, "detail");
    jw_string(&w, detail);
    jw_object_end(&w);
}

static void on_owned_body_dispose(void *p)
{
    free(*(char **)p);
}

/* Removes req from the server's accounting: from then on it only waits for its handler to free it. */
void srv_req_detach(http_req_t *req)
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
        srv_kick(srv);
}

void srv_req_free(http_req_t *req)
{
    srv_req_detach(req);
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

int srv_is_head(const h2o_req_t *h)
{
    return h2o_memis(h->method.base, h->method.len, H2O_STRLIT("HEAD"));
}

/* Hands the response to h2o. owned, when not NULL, is the malloc'd buffer body points into: its ownership
 * moves to h2o's pool (*owned becomes NULL) so the bytes live until the socket write completes. */
void srv_send_to_h2o(http_req_t *req, int status, const char *content_type, const char *body, size_t len,
                     char **owned)
{
    h2o_req_t *h = req->h2o;
    /* Detach first: finishing the response may dispose h2o's pool, which must not reach back into req. */
    if (req->_backref != NULL)
        ((backref_t *)req->_backref)->req = NULL;
    req->_backref = NULL;
    req->h2o = NULL;

    int bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
    srv_set_response_head(req, h, status, bodyless ? NULL : content_type);
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
    int send_body = buf.len != 0 && !srv_is_head(h);
    h2o_send(h, &buf, send_body ? 1 : 0, H2O_SEND_STATE_FINAL);
}

/* The status line and headers of a response: content type, CORS, and the headers the handler added. */
void srv_set_response_head(http_req_t *req, h2o_req_t *h, int status, const char *content_type)
{
    h->res.status = status;
    h->res.reason = srv_status_reason(status);
    if (content_type != NULL) {
        h2o_iovec_t ct = h2o_strdup(&h->pool, content_type, strlen(content_type));
        h2o_add_header(&h->pool, &h->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct.base, ct.len);
    }
    if (req->_origin != NULL)
        srv_add_cors_headers(&h->pool, &h->res.headers, req->_origin, strlen(req->_origin));
    for (size_t off = 0; off < req->_extra.len;) {
        const char *name = req->_extra.data + off;
        size_t nlen = strlen(name);
        const char *value = name + nlen + 1;
        size_t vlen = strlen(value);
        off += nlen + vlen + 2;
        /* h2o wants lowercase names (it compares them byte-wise to its tokens) and keeps pointers, not
         * copies. */
        h2o_iovec_t n = h2o_strdup(&h->pool, name, nlen);
        h2o_strtolower(n.base, n.len);
        h2o_iovec_t v = h2o_strdup(&h->pool, value, vlen);
        h2o_add_header_by_str(&h->pool, &h->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    }
}

/* The decoded path for a log line, with control characters (a decoded %0A) replaced: a path cannot forge
 * log lines. */
const char *srv_log_path(const http_req_t *req, char *out, size_t outlen)
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

void srv_log_request(const http_req_t *req, int status, int sent)
{
    if (!log_enabled(LOG_LEVEL_DEBUG))
        return;
    char path[256];
    log_debug("serving HTTP request", "%s %s -> %d in %llu ms%s", req->method[0] ? req->method : "?",
              srv_log_path(req, path, sizeof(path)), status,
              (unsigned long long)(time_mono_ms() - req->start_ms),
              sent ? "" : " (client gone, reply dropped)");
}

/* Seconds since h2o stamped the request's arrival (microseconds, unlike start_ms); -1 when it did not. */
double srv_seconds_since(const h2o_req_t *h)
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
void srv_record_request(const http_req_t *req, int status)
{
    double seconds = srv_seconds_since(req->h2o);
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
        srv_record_request(req, status);
    if (sent)
        srv_send_to_h2o(req, status, content_type, body, len, &owned);
    srv_log_request(req, status, sent);
    free(owned);
    srv_req_free(req);
}

void http_reply(http_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    if (status < 100 || status > 999) {
        /* A handler bug; the client still gets a well-formed answer. */
        char path[256];
        log_error("replying to an HTTP request", "invalid status %d for %s %s", status, req->method,
                  srv_log_path(req, path, sizeof(path)));
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
    srv_json_detail(&b, detail);
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
    /* h2o lowercases the names of request headers as it parses them, so a lowercased name finds any
     * spelling the client sent. */
    size_t nlen = strlen(name);
    char lower[64];
    h2o_iovec_t n = nlen < sizeof(lower) ? h2o_iovec_init(memcpy(lower, name, nlen), nlen)
                                         : h2o_strdup(&req->h2o->pool, name, nlen);
    h2o_strtolower(n.base, n.len);
    ssize_t i = h2o_find_header_by_str(&req->h2o->headers, n.base, n.len, -1);
    if (i < 0)
        return NULL;
    const h2o_header_t *h = req->h2o->headers.entries + i;
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
        long kdec = url_percent_decode(p, klen, key, 0, 1);
        if ((size_t)kdec == nlen && memcmp(key, name, nlen) == 0) {
            const char *v = eq != NULL ? eq + 1 : p + plen;
            size_t vlen = eq != NULL ? plen - klen - 1 : 0;
            found = xmalloc(vlen + 1);
            found[url_percent_decode(v, vlen, found, 0, 1)] = '\0';
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
