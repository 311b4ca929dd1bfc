/* A request's lifetime owns the operation serving it: when the request ends before its reply (h2o disposed
 * it, the liveness check found its client gone, or the shutdown deadline answered it), the operation's cancel
 * hook runs from the server's timer and the request is freed. */
#include "http/server_internal.h"

#include "core/log.h"
#include "core/timeutil.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

/* How often the connections of requests with a cancel hook are checked for a client that went away. h2o
 * (HTTP/1.1) stops reading a connection while its request is being served, so it would notice only when the
 * reply is written (nginx checks the same way while it proxies, in ngx_http_test_reading). */
#define LIVENESS_CHECK_MS 500

void srv_on_backref_dispose(void *p)
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
            srv_notify_stream(req, HTTP_STREAM_GONE);
        else if (req->_cancel_cb != NULL)
            srv_notify_cancel(req);
    }
}

/* Queues the cancel of the operation serving req, delivered from on_timer. A request the shutdown deadline
 * already answered has no server left; its operation was cancelled then, or was attached after it (nothing
 * can be cancelled: its handler replies to free it, as without a hook). */
void srv_notify_cancel(http_req_t *req)
{
    http_server_t *srv = req->_server;
    if (srv == NULL || h2o_linklist_is_linked(&req->_note))
        return;
    h2o_linklist_insert(&srv->notes, &req->_note);
    srv_kick(srv);
}

/* Runs the cancel hook of a request that ended before its reply, then frees the request: the one place,
 * besides req_finish, where a request ends. status is what the metrics count it as: 499 (nginx's "client
 * closed request") for a client that went away, or the 503 already sent at the shutdown deadline. */
void srv_run_cancel(http_req_t *req, int status)
{
    http_cancel_cb cb = req->_cancel_cb;
    void *data = req->_cancel_data;
    req->_cancel_cb = NULL;
    req->_cancel_data = NULL;
    if (req->_server != NULL)
        srv_record_request(req, status);
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char path[256];
        log_debug("serving HTTP request", "%s %s -> %d in %llu ms (%s; its operation is cancelled)",
                  req->method[0] ? req->method : "?", srv_log_path(req, path, sizeof(path)), status,
                  (unsigned long long)(time_mono_ms() - req->start_ms),
                  status == 503 ? "shutdown deadline" : "client gone");
    }
    if (req->h2o != NULL) {
        /* The liveness check found the client gone before h2o did: h2o still needs a response to end its
         * request. The socket is already shut down, so the write fails and h2o closes the connection. */
        srv_send_to_h2o(req, status, NULL, "", 0, NULL);
    }
    srv_req_detach(req);
    req->_cancelling = 1;
    cb(req, data);
    req->_cancelling = 0;
    srv_req_free(req);
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
        /* Shut down now, so that the response srv_run_cancel hands h2o fails at once instead of going out. */
        if (shutdown(fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
            log_debug("serving HTTP request", "shutdown(): %s", strerror(errno));
        srv_notify_cancel(req);
    }
    int r;
    if (watched == 0 && (r = uv_timer_stop(timer)) != 0) /* set_cancel starts it again */
        log_error("watching for HTTP clients that went away", "uv_timer_stop: %s", uv_strerror(r));
}

void http_req_set_cancel(http_req_t *req, http_cancel_cb cb, void *data)
{
    assert(cb != NULL && req->_stream_cb == NULL && !req->_cancelling);
    req->_cancel_cb = cb;
    req->_cancel_data = data;
    http_server_t *srv = req->_server;
    if (req->h2o == NULL) {
        srv_notify_cancel(req); /* the client is already gone */
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
