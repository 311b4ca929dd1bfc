/* Streamed responses (http_stream_*): the status line and headers go out at once, then the owner's writes,
 * one send with h2o at a time, and the end. */
#include "http/server_internal.h"

#include "core/log.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* Queues a note for req's owner, delivered from on_timer. A request the shutdown deadline already ended has
 * no server left; its owner was told HTTP_STREAM_SHUTDOWN before that. */
void srv_notify_stream(http_req_t *req, http_stream_event_t ev)
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
    srv_kick(srv);
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
void srv_stream_close_h2o_side(http_req_t *req)
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
             req->method, srv_log_path(req, path, sizeof(path)), HTTP_STREAM_MAX_BUFFERED);
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
              req->method, srv_log_path(req, path, sizeof(path)));
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
    srv_set_response_head(req, h, status, content_type);
    h->res.content_length = SIZE_MAX; /* HTTP/1.1: chunked */
    b->generator.proceed = on_stream_proceed;
    b->generator.stop = NULL; /* the backref's dispose does the cleanup, stopped or not */
    h2o_start_response(h, &b->generator);
    if (srv_is_head(h)) {
        srv_stream_close_h2o_side(req);
        return -1;
    }
    /* A stream started while draining (a request pipelined on a kept-alive connection) must end too. */
    if (req->_server != NULL && req->_server->state != SRV_RUNNING)
        srv_notify_stream(req, HTTP_STREAM_SHUTDOWN);
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
        srv_record_request(req, req->_stream_status);
    srv_log_request(req, req->_stream_status, req->h2o != NULL);
    backref_t *b = req->_backref;
    if (b != NULL && b->state == STREAM_DROPPED) {
        /* h2o is failing the connection; nothing more is sent, the backref only forgets req. */
        b->req = NULL;
        req->h2o = NULL;
        req->_backref = NULL;
    } else {
        srv_stream_close_h2o_side(req);
    }
    srv_req_free(req);
}
