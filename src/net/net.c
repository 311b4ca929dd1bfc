/* Outbound HTTP: one curl multi handle driven by the libuv loop.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it up
 * (CURLMOPT_TIMERFUNCTION); we own one uv_poll_t per socket and one uv_timer_t, and hand readiness back with
 * curl_multi_socket_action. Sockets are also opened and closed through us (CURLOPT_OPENSOCKETFUNCTION and
 * CURLOPT_CLOSESOCKETFUNCTION) for two reasons: the target policy is checked on the address really being
 * connected to, and a socket's poll is stopped before its descriptor is closed, so the loop never watches a
 * number the kernel may already have given to a new socket.
 *
 * An op lives on exactly one list: running (its easy handle is in the multi), done (the result is final and
 * its callback has yet to run) or batch (the done ops being delivered in this loop turn). Callbacks only run
 * from deliver(), never from inside a curl call, so they may start, cancel or close freely. */
#include "net/net.h"

#include "core/alloc.h"
#include "core/log.h"
#include "net/url_policy.h"

#include <arpa/inet.h>
#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)2 * 1024 * 1024)

typedef struct st_net_link_t {
    struct st_net_link_t *prev, *next;
} net_link_t;

typedef enum {
    OP_STATE_RUNNING, /* the easy handle is in the multi; waits for curl to finish it */
    OP_STATE_DONE,    /* result final, on done or batch; waits for deliver() to run its callback */
    OP_STATE_CALLING, /* its callback is running; freed by deliver() when it returns */
} op_state_t;

/* The public op plus what only this file sees; callers get &impl->pub. */
typedef struct st_net_op_impl_t {
    net_op_t pub;
    net_link_t _link;
    op_state_t _state;
    net_t *_net;
    net_done_cb _cb;
    CURL *_easy;
    struct curl_slist *_headers;
    uint64_t _start_ns;
    long _connect_timeout_ms;
    long _timeout_ms;
    size_t _max_bytes;
    int _allow_private;
    int _too_large;     /* the write callback refused more body */
    int _connected;     /* a connection was established (or reused) for a request */
    char _refused[192]; /* why the policy refused an address; empty when it did not */
    char _curl_err[CURL_ERROR_SIZE];
    char _err[CURL_ERROR_SIZE + 64];
} net_op_impl_t;

/* One watched socket; the table net->socks is indexed by descriptor. */
typedef struct st_net_sock_t {
    uv_poll_t poll;
    net_t *net;
    curl_socket_t fd;
} net_sock_t;

struct st_net_t {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t curl_timer;  /* curl's own timeouts (CURLMOPT_TIMERFUNCTION) */
    uv_timer_t defer_timer; /* delivers done ops that did not come out of a curl callback (invalid URLs) */
    net_sock_t **socks;
    size_t socks_cap;
    net_link_t running, done, batch;
    size_t n_ops;        /* ops not yet freed: what net_in_flight reports */
    size_t open_handles; /* uv handles initialised and not yet through their close callback */
    int delivering;
    int closing;
    void (*close_cb)(void *data);
    void *close_data;
};

static uv_once_t global_once = UV_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_ALL);
}

static void list_init(net_link_t *l)
{
    l->prev = l->next = l;
}

static int list_empty(const net_link_t *l)
{
    return l->next == l;
}

static void list_push(net_link_t *head, net_link_t *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void list_unlink(net_link_t *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

/* Moves every element of from to the end of to. */
static void list_splice(net_link_t *to, net_link_t *from)
{
    if (list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    list_init(from);
}

static net_op_impl_t *op_of_link(net_link_t *l)
{
    return (net_op_impl_t *)((char *)l - offsetof(net_op_impl_t, _link));
}

static net_op_impl_t *op_of_pub(net_op_t *pub)
{
    return (net_op_impl_t *)((char *)pub - offsetof(net_op_impl_t, pub));
}

/* ---- handles and their teardown ---- */

static void maybe_finish_close(net_t *net)
{
    if (!net->closing || net->open_handles > 0)
        return;
    if (net->close_cb != NULL)
        net->close_cb(net->close_data);
    free(net->socks);
    free(net);
}

static void on_timer_closed(uv_handle_t *h)
{
    net_t *net = h->data;
    net->open_handles--;
    maybe_finish_close(net);
}

static void on_sock_closed(uv_handle_t *h)
{
    net_sock_t *s = h->data;
    net_t *net = s->net;
    free(s);
    net->open_handles--;
    maybe_finish_close(net);
}

/* Stops watching fd. Called when curl says it no longer cares and again just before the descriptor is
 * closed; whichever comes first does the work. */
static void sock_forget(net_t *net, curl_socket_t fd)
{
    if (fd < 0 || (size_t)fd >= net->socks_cap || net->socks[fd] == NULL)
        return;
    net_sock_t *s = net->socks[fd];
    net->socks[fd] = NULL;
    int rc = uv_poll_stop(&s->poll);
    if (rc != 0)
        log_warn("stopping a socket poll", "uv_poll_stop: %s", uv_strerror(rc));
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* ---- completion ---- */

static void format_seconds(char *out, size_t outlen, long ms)
{
    if (ms % 1000 == 0)
        snprintf(out, outlen, "%lds", ms / 1000);
    else
        snprintf(out, outlen, "%.1fs", (double)ms / 1000.0);
}

/* Turns curl's result into the op's short, human error (NULL when an HTTP response arrived). */
static void set_error(net_op_impl_t *op, CURLcode rc)
{
    char secs[32];

    if (rc == CURLE_OK) {
        op->pub.err = NULL;
        return;
    }
    if (op->_refused[0] != '\0') {
        /* The address itself stays in the log: users would otherwise learn what internal names resolve to. */
        const char *kind = strstr(op->_refused, " is a ");
        log_debug("checking an outbound target", "refused: %s", op->_refused);
        if (kind != NULL)
            snprintf(op->_err, sizeof(op->_err), "target not allowed: resolves to a %s", kind + 6);
        else
            snprintf(op->_err, sizeof(op->_err), "target not allowed: %s", op->_refused);
    } else if (op->_too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(op->_err, sizeof(op->_err), "response too large (over %zu bytes)", op->_max_bytes);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        /* curl reports both deadlines with one code; _connected (set by the prereq callback) tells which
         * phase we were in, and the connect deadline only applies when it is the shorter one. */
        if (!op->_connected && op->_connect_timeout_ms < op->_timeout_ms) {
            format_seconds(secs, sizeof(secs), op->_connect_timeout_ms);
            snprintf(op->_err, sizeof(op->_err), "connect timeout after %s", secs);
        } else {
            format_seconds(secs, sizeof(secs), op->_timeout_ms);
            snprintf(op->_err, sizeof(op->_err), "timeout after %s", secs);
        }
    } else if (rc == CURLE_COULDNT_RESOLVE_HOST) {
        snprintf(op->_err, sizeof(op->_err), "could not resolve host");
    } else if (rc == CURLE_TOO_MANY_REDIRECTS) {
        snprintf(op->_err, sizeof(op->_err), "too many redirects");
    } else if (rc == CURLE_COULDNT_CONNECT) {
        long os_errno = 0;
        if (curl_easy_getinfo(op->_easy, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK)
            os_errno = 0;
        if (os_errno == ECONNREFUSED)
            snprintf(op->_err, sizeof(op->_err), "connection refused");
        else if (os_errno != 0)
            snprintf(op->_err, sizeof(op->_err), "could not connect: %s", strerror((int)os_errno));
        else
            snprintf(op->_err, sizeof(op->_err), "%s",
                     op->_curl_err[0] != '\0' ? op->_curl_err : curl_easy_strerror(rc));
    } else if (op->_curl_err[0] != '\0') {
        snprintf(op->_err, sizeof(op->_err), "%s", op->_curl_err);
    } else {
        snprintf(op->_err, sizeof(op->_err), "%s", curl_easy_strerror(rc));
    }
    op->pub.err = op->_err;
}

/* What the op exposes of the response headers is read from curl's own header store once the transfer is
 * over. request -1 is the last request of a redirect chain, and origin CURLH_HEADER | CURLH_TRAILER leaves
 * out interim 1xx answers, so only the final answer speaks. The last instance of a repeated header wins; curl
 * has trimmed the blanks around the value. NULL when absent. */
static const char *final_header(CURL *easy, const char *name)
{
    const unsigned int origin = CURLH_HEADER | CURLH_TRAILER;
    struct curl_header *h;
    if (curl_easy_header(easy, name, 0, origin, -1, &h) != CURLHE_OK)
        return NULL;
    if (h->amount > 1 && curl_easy_header(easy, name, h->amount - 1, origin, -1, &h) != CURLHE_OK)
        return NULL;
    return h->value;
}

/* Retry-After in seconds, -1 when absent or unreadable. curl parses it (CURLINFO_RETRY_AFTER: delta seconds,
 * else an HTTP date turned into seconds from now) but reports 0 both for "now" and for a value it could not
 * read; a value that is neither of RFC 9110's two forms counts as absent here, so a receiver saying "soon"
 * gets the normal retry delay, not an immediate retry. */
static long final_retry_after(CURL *easy)
{
    const char *v = final_header(easy, "Retry-After");
    curl_off_t s = 0;
    if (v == NULL || curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &s) != CURLE_OK)
        return -1;
    size_t digits = strspn(v, "0123456789");
    if (digits > 0 && v[digits] == '\0') {
        /* curl gives 0 for a number too large to hold. */
        if (s == 0 && strspn(v, "0") != digits)
            return -1;
    } else if (curl_getdate(v, NULL) == (time_t)-1) {
        return -1;
    }
    if (s < 0) /* a date in the past */
        return 0;
    return s > LONG_MAX ? LONG_MAX : (long)s;
}

/* Copies what the op exposes of the final answer's headers out of the easy handle. */
static void take_headers(net_op_impl_t *op)
{
    const char *v = final_header(op->_easy, "Content-Type");
    op->pub.content_type = v != NULL ? xstrdup(v) : NULL;
    v = final_header(op->_easy, "Location");
    op->pub.location = v != NULL ? xstrdup(v) : NULL;
    op->pub.retry_after_s = final_retry_after(op->_easy);
}

static void op_free(net_op_impl_t *op)
{
    net_t *net = op->_net;
    if (op->_easy != NULL)
        curl_easy_cleanup(op->_easy);
    curl_slist_free_all(op->_headers);
    buf_free(&op->pub.body);
    free(op->pub.content_type);
    free(op->pub.location);
    free(op);
    assert(net->n_ops > 0);
    net->n_ops--;
}

/* Makes op's result final and queues it for delivery. The easy handle leaves the multi here, so the
 * connection goes back to the cache at once and nothing of curl's runs for the op again. */
static void op_finish(net_op_impl_t *op, CURLcode rc)
{
    net_t *net = op->_net;
    if (op->_easy != NULL) {
        long status = 0;
        if (curl_easy_getinfo(op->_easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
            op->pub.status = status;
        set_error(op, rc);
        take_headers(op);
        CURLMcode mrc = curl_multi_remove_handle(net->multi, op->_easy);
        if (mrc != CURLM_OK)
            log_warn("finishing an outbound request", "curl_multi_remove_handle: %s",
                     curl_multi_strerror(mrc));
        curl_easy_cleanup(op->_easy);
        op->_easy = NULL;
    }
    op->pub.duration_ms = (double)(uv_hrtime() - op->_start_ns) / 1e6;
    list_unlink(&op->_link);
    op->_state = OP_STATE_DONE;
    list_push(&net->done, &op->_link);
}

/* Collects everything curl has finished. Must follow every curl_multi_socket_action. No user code runs. */
static void collect_done(net_t *net)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(net->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* msg does not survive curl_multi_remove_handle, so take what we need first. */
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL) {
            log_error("collecting finished outbound requests", "easy handle without an op");
            continue;
        }
        op_finish((net_op_impl_t *)(void *)priv, rc);
    }
}

static void schedule_deliver(net_t *net);

/* Runs the callbacks of the ops that are done now. Ops finished by these callbacks wait for the next turn
 * (defer_timer), so a callback that keeps starting failing requests cannot hold the loop. */
static void deliver(net_t *net)
{
    if (net->delivering || net->closing)
        return;
    net->delivering = 1;
    list_splice(&net->batch, &net->done);
    while (!list_empty(&net->batch) && !net->closing) {
        net_op_impl_t *op = op_of_link(net->batch.next);
        list_unlink(&op->_link);
        op->_state = OP_STATE_CALLING;
        op->_cb(&op->pub);
        /* The callback may have called net_close; net stays allocated until its handles are closed, which
         * happens on a later loop turn, so touching it here is safe. */
        op_free(op);
    }
    net->delivering = 0;
    if (!net->closing && !list_empty(&net->done))
        schedule_deliver(net);
}

static void on_defer(uv_timer_t *t)
{
    deliver(t->data);
}

static void schedule_deliver(net_t *net)
{
    int rc = uv_timer_start(&net->defer_timer, on_defer, 0, 0);
    if (rc != 0)
        log_error("scheduling outbound completions", "uv_timer_start: %s", uv_strerror(rc));
}

/* ---- curl multi <-> libuv ---- */

static void socket_action(net_t *net, curl_socket_t fd, int flags)
{
    int running = 0;
    CURLMcode mrc = curl_multi_socket_action(net->multi, fd, flags, &running);
    if (mrc != CURLM_OK)
        log_error("driving outbound requests", "curl_multi_socket_action: %s", curl_multi_strerror(mrc));
    collect_done(net);
    deliver(net);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    net_sock_t *s = p->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    /* s may be closed during socket_action, so only its values are used from here on. */
    socket_action(s->net, s->fd, flags);
}

static void on_curl_timer(uv_timer_t *t)
{
    socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* Failures here return 0, not -1: -1 makes curl mark the whole multi handle dead, failing every request for
 * the rest of the process, while a transfer left unwatched still ends at its own timeout. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    net_t *net = userp;
    (void)easy;
    (void)socketp; /* the table keyed by descriptor is the truth; socketp can outlive a closed socket */

    if (what == CURL_POLL_REMOVE) {
        sock_forget(net, fd);
        return 0;
    }
    if (fd < 0)
        return 0;
    if ((size_t)fd >= net->socks_cap) {
        size_t cap = net->socks_cap ? net->socks_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        net->socks = xrealloc(net->socks, cap * sizeof(*net->socks));
        memset(net->socks + net->socks_cap, 0, (cap - net->socks_cap) * sizeof(*net->socks));
        net->socks_cap = cap;
    }
    net_sock_t *s = net->socks[fd];
    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->net = net;
        s->fd = fd;
        int rc = uv_poll_init_socket(net->loop, &s->poll, fd);
        if (rc != 0) {
            log_error("watching an outbound socket", "uv_poll_init_socket(%d): %s", (int)fd, uv_strerror(rc));
            free(s);
            return 0;
        }
        s->poll.data = s;
        net->open_handles++;
        net->socks[fd] = s;
        CURLMcode mrc = curl_multi_assign(net->multi, fd, s);
        if (mrc != CURLM_OK)
            log_warn("watching an outbound socket", "curl_multi_assign: %s", curl_multi_strerror(mrc));
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    int rc = uv_poll_start(&s->poll, events, on_poll);
    if (rc != 0) {
        log_error("watching an outbound socket", "uv_poll_start(%d): %s", (int)fd, uv_strerror(rc));
    }
    return 0;
}

static int on_curl_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    net_t *net = userp;
    (void)multi;
    int rc;
    if (timeout_ms < 0)
        rc = uv_timer_stop(&net->curl_timer);
    else
        /* 0 means "now", but curl forbids calling socket_action from here; the next loop turn is soon enough.
         */
        rc = uv_timer_start(&net->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    if (rc != 0) {
        /* Without the timer no request would ever time out; failing them all (what -1 asks of curl) is
         * better. */
        log_error("arming the outbound timer", "uv_timer: %s", uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- per-request curl callbacks ---- */

static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    net_op_impl_t *op = clientp;
    (void)purpose;

    /* curl's struct ends with a struct sockaddr but really holds addrlen bytes; copy them out whole. */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    size_t n = address->addrlen < sizeof(ss) ? address->addrlen : sizeof(ss);
    memcpy(&ss, &address->addr, n);

    char why[sizeof(op->_refused)];
    if (url_policy_check_addr((const struct sockaddr *)&ss, op->_allow_private, why, sizeof(why)) != 0) {
        if (op->_refused[0] == '\0')
            snprintf(op->_refused, sizeof(op->_refused), "%s", why);
        return CURL_SOCKET_BAD;
    }
    int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    return fd;
}

static int on_close_socket(void *clientp, curl_socket_t fd)
{
    /* clientp is the net, not the op: a cached connection can be closed long after its op is gone. */
    net_t *net = clientp;
    sock_forget(net, fd);
    return close(fd);
}

/* Runs once the connection is ready for a request, including a connection reused from the cache, which
 * opensocket never saw for this op; so the policy is checked here as well. */
static int on_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    net_op_impl_t *op = clientp;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;

    op->_connected = 1;
    if (op->_allow_private)
        return CURL_PREREQFUNC_OK;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (primary_ip != NULL && inet_pton(AF_INET, primary_ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
    } else if (primary_ip != NULL && inet_pton(AF_INET6, primary_ip, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
    } else {
        snprintf(op->_refused, sizeof(op->_refused), "cannot tell which address was connected to");
        return CURL_PREREQFUNC_ABORT;
    }
    char why[sizeof(op->_refused)];
    if (url_policy_check_addr((const struct sockaddr *)&ss, 0, why, sizeof(why)) != 0) {
        snprintf(op->_refused, sizeof(op->_refused), "%s", why);
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    net_op_impl_t *op = userdata;
    size_t n = size * nmemb;
    if (n > op->_max_bytes - op->pub.body.len) {
        op->_too_large = 1;
        return 0; /* anything but n aborts the transfer with CURLE_WRITE_ERROR */
    }
    buf_append(&op->pub.body, ptr, n);
    return n;
}

/* ---- public API ---- */

net_t *net_create(uv_loop_t *loop)
{
    uv_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        log_error("starting outbound HTTP", "curl_global_init: %s", curl_easy_strerror(global_rc));
        return NULL;
    }
    net_t *net = xcalloc(1, sizeof(*net));
    net->loop = loop;
    list_init(&net->running);
    list_init(&net->done);
    list_init(&net->batch);

    net->multi = curl_multi_init();
    if (net->multi == NULL) {
        log_error("starting outbound HTTP", "curl_multi_init failed");
        free(net);
        return NULL;
    }
    int rc = uv_timer_init(loop, &net->curl_timer);
    if (rc == 0) {
        net->curl_timer.data = net;
        net->open_handles++;
        rc = uv_timer_init(loop, &net->defer_timer);
        if (rc == 0) {
            net->defer_timer.data = net;
            net->open_handles++;
        }
    }
    if (rc != 0) {
        /* uv_timer_init cannot fail on a live loop; if it ever does, there is no handle to close yet. */
        log_error("starting outbound HTTP", "uv_timer_init: %s", uv_strerror(rc));
        abort();
    }
    if (curl_multi_setopt(net->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(net->multi, CURLMOPT_SOCKETDATA, net) != CURLM_OK ||
        curl_multi_setopt(net->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer_change) != CURLM_OK ||
        curl_multi_setopt(net->multi, CURLMOPT_TIMERDATA, net) != CURLM_OK) {
        log_error("starting outbound HTTP", "curl_multi_setopt failed");
        net_close(net, NULL, NULL);
        return NULL;
    }
    return net;
}

static int has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);
    for (; headers != NULL && *headers != NULL; headers++)
        if (strncasecmp(*headers, name, n) == 0 && (*headers)[n] == ':')
            return 1;
    return 0;
}

/* Configures op's easy handle; returns CURLE_OK or the first failure. */
static CURLcode setup_easy(net_op_impl_t *op, const net_request_t *req)
{
    CURL *e = op->_easy;
    CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                                                        \
    do {                                                                                                     \
        if (rc == CURLE_OK)                                                                                  \
            rc = curl_easy_setopt(e, opt, val);                                                              \
    } while (0)

    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PRIVATE, (void *)op);
    SET(CURLOPT_ERRORBUFFER, op->_curl_err);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* An empty proxy disables the environment's http_proxy: targets must be reached, and checked, directly.
     */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_CONNECTTIMEOUT_MS, op->_connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, op->_timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)op->_max_bytes);
    if (req->max_redirects > 0) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)req->max_redirects);
    }
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, (void *)op);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, (void *)op->_net);
    SET(CURLOPT_PREREQFUNCTION, on_prereq);
    SET(CURLOPT_PREREQDATA, (void *)op);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, (void *)op);
    if (!has_header(req->headers, "User-Agent"))
        SET(CURLOPT_USERAGENT, "inkloop/" INKLOOP_VERSION);

    if (req->body != NULL) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_COPYPOSTFIELDS, req->body);
        if (req->method != NULL && strcasecmp(req->method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, req->method);
    } else if (req->method != NULL) {
        if (strcasecmp(req->method, "GET") == 0)
            SET(CURLOPT_HTTPGET, 1L);
        else if (strcasecmp(req->method, "HEAD") == 0)
            SET(CURLOPT_NOBODY, 1L);
        else
            SET(CURLOPT_CUSTOMREQUEST, req->method);
    }

    for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
        struct curl_slist *l = curl_slist_append(op->_headers, *h);
        if (l == NULL)
            abort();
        op->_headers = l;
    }
    /* Without this curl waits up to a second for "100 Continue" before sending larger bodies, which many
     * webhook receivers never send. */
    if (req->body != NULL && !has_header(req->headers, "Expect")) {
        struct curl_slist *l = curl_slist_append(op->_headers, "Expect:");
        if (l == NULL)
            abort();
        op->_headers = l;
    }
    if (op->_headers != NULL)
        SET(CURLOPT_HTTPHEADER, op->_headers);
#undef SET
    return rc;
}

/* Completes op without curl (on the next loop turn): used when the request cannot even start. */
static void fail_early(net_op_impl_t *op, const char *fmt, const char *detail)
{
    net_t *net = op->_net;
    snprintf(op->_err, sizeof(op->_err), fmt, detail);
    op->pub.err = op->_err;
    op->pub.duration_ms = (double)(uv_hrtime() - op->_start_ns) / 1e6;
    if (op->_easy != NULL) {
        curl_easy_cleanup(op->_easy);
        op->_easy = NULL;
    }
    op->_state = OP_STATE_DONE;
    list_push(&net->done, &op->_link);
    schedule_deliver(net);
}

net_op_t *net_start(net_t *net, const net_request_t *req, net_done_cb cb, void *data)
{
    assert(net != NULL && !net->closing);
    assert(req != NULL && cb != NULL);

    net_op_impl_t *op = xcalloc(1, sizeof(*op));
    op->pub.body = BUF_INIT;
    op->pub.retry_after_s = -1;
    op->pub.data = data;
    op->_net = net;
    op->_cb = cb;
    op->_start_ns = uv_hrtime();
    op->_connect_timeout_ms =
        req->connect_timeout_ms > 0 ? req->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    op->_timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    op->_max_bytes = req->max_response_bytes > 0 ? req->max_response_bytes : DEFAULT_MAX_RESPONSE_BYTES;
    op->_allow_private = req->allow_private;
    list_init(&op->_link);
    net->n_ops++;

    char why[128];
    if (url_policy_check_url(req->url, why, sizeof(why)) != 0) {
        fail_early(op, "invalid URL: %s", why);
        return &op->pub;
    }
    op->_easy = curl_easy_init();
    if (op->_easy == NULL) {
        fail_early(op, "%s", "could not create a curl handle");
        return &op->pub;
    }
    CURLcode rc = setup_easy(op, req);
    if (rc != CURLE_OK) {
        fail_early(op, "could not set up the request: %s", curl_easy_strerror(rc));
        return &op->pub;
    }
    op->_state = OP_STATE_RUNNING;
    list_push(&net->running, &op->_link);
    CURLMcode mrc = curl_multi_add_handle(net->multi, op->_easy);
    if (mrc != CURLM_OK) {
        list_unlink(&op->_link);
        fail_early(op, "could not start the request: %s", curl_multi_strerror(mrc));
    }
    return &op->pub;
}

static void op_discard(net_op_impl_t *op)
{
    net_t *net = op->_net;
    if (op->_state == OP_STATE_RUNNING && op->_easy != NULL) {
        CURLMcode mrc = curl_multi_remove_handle(net->multi, op->_easy);
        if (mrc != CURLM_OK)
            log_warn("cancelling an outbound request", "curl_multi_remove_handle: %s",
                     curl_multi_strerror(mrc));
    }
    list_unlink(&op->_link);
    op_free(op);
}

void net_cancel(net_op_t *pub)
{
    if (pub == NULL)
        return;
    net_op_impl_t *op = op_of_pub(pub);
    /* Cancelling from inside the op's own callback has nothing left to prevent; deliver() frees it. */
    if (op->_state == OP_STATE_CALLING)
        return;
    op_discard(op);
}

size_t net_in_flight(const net_t *net)
{
    return net->n_ops;
}

static void discard_all(net_link_t *head)
{
    while (!list_empty(head))
        op_discard(op_of_link(head->next));
}

void net_close(net_t *net, void (*cb)(void *data), void *data)
{
    if (net == NULL || net->closing)
        return;
    net->close_cb = cb;
    net->close_data = data;
    discard_all(&net->running);
    discard_all(&net->done);
    discard_all(&net->batch);
    /* Cleanup closes cached connections through on_close_socket and on_curl_socket, which close their polls;
     * only then is the net marked closing, so those callbacks still find everything in place. */
    CURLMcode mrc = curl_multi_cleanup(net->multi);
    if (mrc != CURLM_OK)
        log_warn("closing outbound HTTP", "curl_multi_cleanup: %s", curl_multi_strerror(mrc));
    net->multi = NULL;
    for (size_t i = 0; i < net->socks_cap; i++)
        sock_forget(net, (curl_socket_t)i);
    net->closing = 1;
    uv_close((uv_handle_t *)&net->curl_timer, on_timer_closed);
    uv_close((uv_handle_t *)&net->defer_timer, on_timer_closed);
}
