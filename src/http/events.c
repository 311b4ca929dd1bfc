/* Article progress streams (see events.h): the endpoint, the per-process registry of streams keyed by article
 * id, the one LISTEN connection that feeds it, and the timer for keep-alives and lifetimes.
 *
 * Ordering. A stream subscribes (enters the registry) before it reads the article's row, so no notification
 * committed after that read is missed while the LISTEN connection is up. When it was not up (first start, a
 * reconnect), the registry re-reads every article it follows with one query ("resync") once it is subscribed
 * again. A row read can be older than a notification that arrives before it, so a resync skips articles that
 * got a notification after the query was sent, and a loading stream prefers the newest notification to its
 * row. A frame equal to the previous one (same status and detail) is not sent twice.
 *
 * Ownership. A subscription (sub_t) is owned by the registry and freed by end_sub, the one teardown, which
 * also ends or answers its request. The server tells a stream's owner to end (client gone, shutdown) from its
 * timer, never inside an http_* call, so end_sub may free there. Loops over subscriptions read the next link
 * before pushing a frame, because a final frame ends (frees) the subscription pushed to. */
#include "http/events.h"

#include "app.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/listen.h"
#include "http/kit.h"
#include "queries.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char ACTION[] = "streaming article events";
static const char CHANNEL[] = "inkloop_articles";

/* Buckets of the two hash tables (article id -> subscriptions, user id -> subscriptions); a power of two. */
#define NBUCKETS 1024
/* Every this many keep-alive ticks the followed articles are re-read: a safety net for what no notification
 * announces (an article deleted while streamed) and for notifications lost without a reconnect. */
#define RESYNC_EVERY_TICKS 4

#define SUB_STATES(X)                                                                                        \
    X(SUB_LOADING) /* waits for the article's row (404 check, first frame); the pool's deadline applies */   \
    X(SUB_OPEN) /* streaming: waits for notifications, the tick (keep-alive, lifetime), the server's news */
#define SUB_ENUM(name) name,
typedef enum { SUB_STATES(SUB_ENUM) } sub_state_t;

/* One status frame. */
typedef struct {
    char status[24]; /* "" when none yet */
    char *detail;    /* NULL: JSON null */
    char at[40];     /* ISO-8601 UTC, "" when unknown (null) */
} frame_t;

typedef struct st_sub_t {
    events_t *ev;
    http_req_t *req;
    sub_state_t state;
    char article_id[37];
    char user_id[37];
    db_query_t *load;          /* the row read while loading */
    int load_listen_ready;     /* the LISTEN connection was subscribed when load was sent */
    uint64_t opened_ms;        /* loop time the stream opened, for the lifetime limit */
    uint64_t notified_seq;     /* ev->notify_seq of this article's last notification, 0 when none */
    int in_resync;             /* its article is in the resync query in flight */
    frame_t sent;              /* the last frame sent (for de-duplication) */
    frame_t latest;            /* while loading: the newest notification, if any (latest.status != "") */
    h2o_linklist_t all;        /* ev->all */
    h2o_linklist_t by_article; /* ev->by_article[hash(article_id)] */
    h2o_linklist_t by_user;    /* ev->by_user[hash(user_id)] */
} sub_t;

struct st_events_t {
    uv_loop_t *loop;
    app_t *app;
    db_listen_t *listen; /* NULL until the first stream */
    uv_timer_t tick;     /* keep-alive, lifetime and periodic resync, while streams exist */
    unsigned ticks;
    h2o_linklist_t all;
    h2o_linklist_t by_article[NBUCKETS];
    h2o_linklist_t by_user[NBUCKETS];
    size_t nsubs;
    uint64_t notify_seq; /* notifications received so far */
    db_query_t *resync;  /* the re-read in flight */
    uint64_t resync_seq; /* notify_seq when it was sent */
    int resync_wanted;   /* a re-read is due as soon as none is in flight and the LISTEN connection is up */
    int closing;
    int handles; /* the tick timer and the LISTEN connection, until their close callbacks ran */
    void (*close_cb)(void *data);
    void *close_data;
};

int events_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_events, queries_events_count);
}

/* --- frames ------------------------------------------------------------------------------------------- */

static int is_final(const char *status)
{
    return strcmp(status, "completed") == 0 || strcmp(status, "posted") == 0 ||
           strcmp(status, "failed") == 0 || strcmp(status, "delivery_failed") == 0 ||
           strcmp(status, "cancelled") == 0;
}

/* The pipeline stage a status stands for (API.md section 7), NULL for the others. */
static const char *stage_of(const char *status)
{
    static const char *const map[][2] = {
        {"researching", "research"}, {"scraping", "scrape"}, {"analyzing", "analyze"}, {"writing", "write"}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(status, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

static void frame_set(frame_t *f, const char *status, const char *detail, const char *at_iso)
{
    /* Never NULL from the callers; the check tells GCC so (YAJL_GET_STRING can yield NULL, and -O3 warns). */
    snprintf(f->status, sizeof(f->status), "%s", status != NULL ? status : "");
    free(f->detail);
    f->detail = detail != NULL ? xstrdup(detail) : NULL;
    snprintf(f->at, sizeof(f->at), "%s", at_iso != NULL ? at_iso : "");
}

static void frame_free(frame_t *f)
{
    free(f->detail);
    f->detail = NULL;
}

static int frame_same(const frame_t *a, const frame_t *b)
{
    if (strcmp(a->status, b->status) != 0)
        return 0;
    if (a->detail == NULL || b->detail == NULL)
        return a->detail == b->detail;
    return strcmp(a->detail, b->detail) == 0;
}

/* "event: <name>\ndata: <json>\n\n"; the JSON writer escapes newlines, so data stays on one line. */
static void frame_write(buf_t *out, const char *event, const frame_t *f)
{
    buf_printf(out, "event: %s\ndata: ", event);
    json_writer_t w;
    jw_init(&w, out);
    jw_object_begin(&w);
    jw_key(&w, "status");
    jw_string(&w, f->status);
    jw_key(&w, "stage");
    const char *stage = stage_of(f->status);
    if (stage != NULL)
        jw_string(&w, stage);
    else
        jw_null(&w);
    jw_key(&w, "detail");
    if (f->detail != NULL)
        jw_string(&w, f->detail);
    else
        jw_null(&w);
    jw_key(&w, "at");
    if (f->at[0] != '\0')
        jw_string(&w, f->at);
    else
        jw_null(&w);
    jw_object_end(&w);
    buf_append(out, "\n\n", 2);
}

/* The trigger's "at" is now() as JSON renders it in the notifying session's time zone, e.g.
 * "2026-11-25T10:00:00.123456+01:00"; the contract wants UTC with Z. Returns 0 or -1. */
static int json_ts_to_iso(const char *s, char *out, size_t outlen)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return -1;
    const char *p = s + n;
    long usec = 0;
    if (*p == '.') {
        int k = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, k++)
            if (k < 6)
                usec = usec * 10 + (*p - '0');
        for (; k < 6; k++)
            usec *= 10;
    }
    long off = 0;
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh = 0, om = 0, os = 0;
        if (sscanf(p + 1, "%2d:%2d:%2d", &oh, &om, &os) < 1)
            return -1;
        off = sign * (oh * 3600L + om * 60L + os);
    } else if (*p != 'Z' && *p != '\0') {
        return -1;
    }
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    int64_t secs = (int64_t)timegm(&tm) - off;
    return time_format_iso(secs * 1000000 + usec, out, outlen) > 0 ? 0 : -1;
}

/* --- the registry ------------------------------------------------------------------------------------- */

static size_t bucket_of(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *id != '\0'; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h & (NBUCKETS - 1);
}

static void maybe_finish_close(events_t *ev);
static void request_resync(events_t *ev);

static void stop_tick_when_idle(events_t *ev)
{
    if (ev->nsubs == 0 && !ev->closing)
        uv_timer_stop(&ev->tick);
}

/* The one teardown of a subscription. An open stream ends (a done frame, when due, was written by the
 * caller); a loading one, which has no response yet, is answered status/detail (503 when status is 0), unless
 * its request was answered already (sub->req NULL). */
static void end_sub(sub_t *sub, int status, const char *detail)
{
    events_t *ev = sub->ev;
    h2o_linklist_unlink(&sub->all);
    h2o_linklist_unlink(&sub->by_article);
    h2o_linklist_unlink(&sub->by_user);
    ev->nsubs--;
    if (sub->load != NULL)
        db_query_cancel(sub->load);
    http_req_t *req = sub->req;
    if (req != NULL) {
        req->user = NULL;
        if (sub->state == SUB_OPEN)
            http_stream_end(req);
        else
            http_reply_error(req, status != 0 ? status : 503,
                             detail != NULL ? detail : "Service is shutting down");
    }
    frame_free(&sub->sent);
    frame_free(&sub->latest);
    free(sub);
    stop_tick_when_idle(ev);
    maybe_finish_close(ev);
}

/* Sends f unless it repeats the previous frame; after a final status also the done frame, and ends the
 * stream. Returns 1 when sub was ended (and freed). */
static int push(sub_t *sub, const frame_t *f)
{
    if (frame_same(&sub->sent, f))
        return 0;
    frame_set(&sub->sent, f->status, f->detail, f->at);
    buf_t out = BUF_INIT;
    frame_write(&out, "status", f);
    int final = is_final(f->status);
    if (final)
        frame_write(&out, "done", f);
    int r = http_stream_write(sub->req, out.data, out.len);
    buf_free(&out);
    /* A write that cannot reach the client (gone, dropped) ends the stream now rather than at the server's
     * later note. */
    if (final || r != 0) {
        end_sub(sub, 0, NULL);
        return 1;
    }
    return 0;
}

static void on_stream_event(http_req_t *req, http_stream_event_t what)
{
    sub_t *sub = req->user;
    log_debug(ACTION, "article %s: %s", sub->article_id,
              what == HTTP_STREAM_GONE ? "the client went away" : "the server is shutting down");
    end_sub(sub, 0, NULL);
}

/* --- notifications and resync ------------------------------------------------------------------------ */

static void on_notify(const char *channel, const char *payload, void *data)
{
    events_t *ev = data;
    (void)channel;
    char err[128];
    yajl_val root = json_parse(payload, strlen(payload), err, sizeof(err));
    yajl_val id = json_get(root, "id"), status = json_get(root, "status"), detail = json_get(root, "detail"),
             at = json_get(root, "at");
    if (!YAJL_IS_STRING(id) || !YAJL_IS_STRING(status)) {
        log_warn(ACTION, "ignoring a malformed notification on %s: %.200s", CHANNEL, payload);
        if (root != NULL)
            yajl_tree_free(root);
        return;
    }
    ev->notify_seq++;
    frame_t f = {{0}, NULL, {0}};
    char iso[40];
    frame_set(&f, YAJL_GET_STRING(status), YAJL_IS_STRING(detail) ? YAJL_GET_STRING(detail) : NULL,
              json_ts_to_iso(YAJL_IS_STRING(at) ? YAJL_GET_STRING(at) : NULL, iso, sizeof(iso)) == 0 ? iso
                                                                                                     : NULL);
    const char *aid = YAJL_GET_STRING(id);
    h2o_linklist_t *anchor = &ev->by_article[bucket_of(aid)];
    for (h2o_linklist_t *l = anchor->next, *next; l != anchor; l = next) {
        next = l->next; /* push may free the sub */
        sub_t *sub = H2O_STRUCT_FROM_MEMBER(sub_t, by_article, l);
        if (strcmp(sub->article_id, aid) != 0)
            continue;
        sub->notified_seq = ev->notify_seq;
        if (sub->state == SUB_LOADING)
            frame_set(&sub->latest, f.status, f.detail, f.at);
        else
            push(sub, &f);
    }
    frame_free(&f);
    yajl_tree_free(root);
}

static void on_resync(const db_result_t *r, size_t n, void *data)
{
    events_t *ev = data;
    (void)n;
    ev->resync = NULL;
    if (r->err != NULL) {
        log_warn(ACTION, "re-reading the followed articles failed: %s; retrying with the next keep-alive",
                 r->err);
        for (h2o_linklist_t *l = ev->all.next; l != &ev->all; l = l->next)
            H2O_STRUCT_FROM_MEMBER(sub_t, all, l)->in_resync = 0;
        ev->resync_wanted = 1;
        return;
    }
    int rows = PQntuples(r->res);
    for (int i = 0; i < rows; i++) {
        const char *aid = db_value(r->res, i, "id");
        char iso[40];
        const char *at = db_value(r->res, i, "at");
        frame_t f = {{0}, NULL, {0}};
        frame_set(&f, db_value(r->res, i, "status"), db_value(r->res, i, "progress_detail"),
                  at != NULL && time_pg_to_iso(at, iso, sizeof(iso)) == 0 ? iso : NULL);
        h2o_linklist_t *anchor = &ev->by_article[bucket_of(aid)];
        for (h2o_linklist_t *l = anchor->next, *next; l != anchor; l = next) {
            next = l->next;
            sub_t *sub = H2O_STRUCT_FROM_MEMBER(sub_t, by_article, l);
            if (!sub->in_resync || strcmp(sub->article_id, aid) != 0)
                continue;
            sub->in_resync = 0;
            /* A notification that arrived after the query was sent is at least as new as this row. */
            if (sub->notified_seq <= ev->resync_seq)
                push(sub, &f);
        }
        frame_free(&f);
    }
    /* Articles the query did not return were deleted: end their streams (a reconnect then gets 404). */
    for (h2o_linklist_t *l = ev->all.next, *next; l != &ev->all; l = next) {
        next = l->next;
        sub_t *sub = H2O_STRUCT_FROM_MEMBER(sub_t, all, l);
        if (sub->in_resync) {
            log_debug(ACTION, "article %s no longer exists; ending its stream", sub->article_id);
            end_sub(sub, 0, NULL);
        }
    }
    if (ev->resync_wanted)
        request_resync(ev);
}

/* Re-reads every followed article with one query, when the LISTEN connection is up (so nothing committed
 * after the read can be missed) and no re-read is in flight; otherwise remembers that one is due. */
static void request_resync(events_t *ev)
{
    ev->resync_wanted = 1;
    if (ev->resync != NULL || ev->closing || ev->listen == NULL || !db_listen_ready(ev->listen))
        return;
    buf_t ids = BUF_INIT;
    buf_append(&ids, "{", 1);
    size_t count = 0;
    for (h2o_linklist_t *l = ev->all.next; l != &ev->all; l = l->next) {
        sub_t *sub = H2O_STRUCT_FROM_MEMBER(sub_t, all, l);
        if (sub->state != SUB_OPEN)
            continue; /* a loading stream reads its row itself */
        sub->in_resync = 1;
        buf_printf(&ids, "%s%s", count++ ? "," : "", sub->article_id);
    }
    buf_append(&ids, "}", 1);
    ev->resync_wanted = 0;
    if (count > 0) {
        const char *params[] = {ids.data};
        ev->resync_seq = ev->notify_seq;
        ev->resync = db_query(ev->app->db, "events_resync", 1, params, on_resync, ev);
        if (ev->resync == NULL) { /* the pool is saturated: the next tick tries again */
            for (h2o_linklist_t *l = ev->all.next; l != &ev->all; l = l->next)
                H2O_STRUCT_FROM_MEMBER(sub_t, all, l)->in_resync = 0;
            ev->resync_wanted = 1;
        }
    }
    buf_free(&ids);
}

static void on_listening(int reconnected, void *data)
{
    events_t *ev = data;
    if (reconnected)
        log_info(ACTION, "LISTEN connection back; re-reading the %zu followed article streams", ev->nsubs);
    request_resync(ev);
}

static void ensure_listening(events_t *ev)
{
    if (ev->listen != NULL)
        return;
    db_listen_config_t lc = {.conninfo = ev->app->cfg->database_url};
    ev->listen = db_listen_create(ev->loop, &lc, on_notify, on_listening, ev);
    if (ev->listen == NULL)
        return; /* logged; streams then only get their first frame, keep-alives and resyncs never run */
    ev->handles++;
    if (db_listen_add(ev->listen, CHANNEL) != 0)
        log_error(ACTION, "could not subscribe to %s", CHANNEL);
    db_listen_start(ev->listen);
}

/* --- the tick ----------------------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    events_t *ev = t->data;
    uint64_t now = uv_now(ev->loop);
    static const char keepalive[] = ": keep-alive\n\n";
    for (h2o_linklist_t *l = ev->all.next, *next; l != &ev->all; l = next) {
        next = l->next;
        sub_t *sub = H2O_STRUCT_FROM_MEMBER(sub_t, all, l);
        if (sub->state != SUB_OPEN)
            continue;
        if (now - sub->opened_ms >= EVENTS_MAX_LIFETIME_MS) {
            log_debug(ACTION, "article %s: the stream reached its lifetime limit", sub->article_id);
            end_sub(sub, 0, NULL);
        } else if (http_stream_write(sub->req, keepalive, sizeof(keepalive) - 1) != 0) {
            end_sub(sub, 0, NULL);
        }
    }
    if (++ev->ticks % RESYNC_EVERY_TICKS == 0 && ev->nsubs > 0)
        ev->resync_wanted = 1;
    if (ev->resync_wanted)
        request_resync(ev);
}

/* --- the endpoint ------------------------------------------------------------------------------------- */

static size_t user_streams(events_t *ev, const char *user_id)
{
    size_t n = 0;
    h2o_linklist_t *anchor = &ev->by_user[bucket_of(user_id)];
    for (h2o_linklist_t *l = anchor->next; l != anchor; l = l->next)
        n += strcmp(H2O_STRUCT_FROM_MEMBER(sub_t, by_user, l)->user_id, user_id) == 0;
    return n;
}

static void on_loaded(const db_result_t *r, size_t n, void *data)
{
    sub_t *sub = data;
    (void)n;
    sub->load = NULL;
    if (r->err != NULL) {
        http_req_t *req = sub->req;
        sub->req = NULL; /* answered here, so the teardown does not answer again */
        kit_db_failed(req, r, ACTION);
        end_sub(sub, 0, NULL);
        return;
    }
    if (PQntuples(r->res) == 0) {
        end_sub(sub, 404, "Article not found");
        return;
    }
    frame_t f = {{0}, NULL, {0}};
    if (sub->latest.status[0] != '\0') {
        frame_set(&f, sub->latest.status, sub->latest.detail, sub->latest.at);
    } else {
        char iso[40];
        const char *at = db_value(r->res, 0, "at");
        frame_set(&f, db_value(r->res, 0, "status"), db_value(r->res, 0, "progress_detail"),
                  at != NULL && time_pg_to_iso(at, iso, sizeof(iso)) == 0 ? iso : NULL);
    }
    frame_free(&sub->latest);

    http_req_t *req = sub->req;
    http_add_header(req, "Cache-Control", "no-cache");
    http_add_header(req, "X-Accel-Buffering", "no"); /* nginx would otherwise hold the frames back */
    sub->state = SUB_OPEN;
    sub->opened_ms = uv_now(sub->ev->loop);
    if (http_stream_start(req, 200, "text/event-stream", on_stream_event) != 0) {
        frame_free(&f);
        end_sub(sub, 0, NULL); /* the client left while loading, or HEAD */
        return;
    }
    int listen_was_ready = sub->load_listen_ready;
    events_t *ev = sub->ev;
    int ended = push(sub, &f);
    frame_free(&f);
    /* Its row was read before the LISTEN connection was subscribed: what changed in between is only found by
     * reading it again. */
    if (!ended && !listen_was_ready)
        request_resync(ev);
}

void events_get(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "article_id", id) != 0)
        return;
    events_t *ev = req->app->events;
    if (ev == NULL || ev->closing) {
        http_reply_error(req, 503, "Service is shutting down");
        return;
    }
    if (ev->nsubs >= EVENTS_MAX_STREAMS) {
        log_warn(ACTION, "%zu streams open, the most one process serves; refusing another", ev->nsubs);
        http_reply_error(req, 429, "Too many event streams");
        return;
    }
    if (user_streams(ev, req->user_id) >= EVENTS_MAX_PER_USER) {
        http_reply_error(req, 429, "Too many event streams for this user");
        return;
    }

    sub_t *sub = xcalloc(1, sizeof(*sub));
    sub->ev = ev;
    sub->req = req;
    sub->state = SUB_LOADING;
    memcpy(sub->article_id, id, sizeof(id));
    snprintf(sub->user_id, sizeof(sub->user_id), "%s", req->user_id);
    req->user = sub;
    /* Subscribed before the row is read: notifications from then on are kept (see the file comment). */
    h2o_linklist_insert(&ev->all, &sub->all);
    h2o_linklist_insert(&ev->by_article[bucket_of(id)], &sub->by_article);
    h2o_linklist_insert(&ev->by_user[bucket_of(sub->user_id)], &sub->by_user);
    ev->nsubs++;
    if (!uv_is_active((uv_handle_t *)&ev->tick)) {
        int rc = uv_timer_start(&ev->tick, on_tick, EVENTS_KEEPALIVE_MS, EVENTS_KEEPALIVE_MS);
        if (rc != 0)
            log_error(ACTION, "uv_timer_start: %s", uv_strerror(rc));
    }
    ensure_listening(ev);

    sub->load_listen_ready = ev->listen != NULL && db_listen_ready(ev->listen);
    const char *params[] = {sub->article_id, sub->user_id};
    sub->load = db_query(ev->app->db, "events_article", 2, params, on_loaded, sub);
    if (sub->load == NULL)
        end_sub(sub, 503, "Service temporarily unavailable");
}

/* --- lifetime of the registry ------------------------------------------------------------------------ */

events_t *events_create(uv_loop_t *loop, app_t *app)
{
    events_t *ev = xcalloc(1, sizeof(*ev));
    ev->loop = loop;
    ev->app = app;
    h2o_linklist_init_anchor(&ev->all);
    for (size_t i = 0; i < NBUCKETS; i++) {
        h2o_linklist_init_anchor(&ev->by_article[i]);
        h2o_linklist_init_anchor(&ev->by_user[i]);
    }
    int rc = uv_timer_init(loop, &ev->tick);
    if (rc != 0) { /* only for an invalid loop: a caller bug */
        log_error(ACTION, "uv_timer_init: %s", uv_strerror(rc));
        abort();
    }
    ev->tick.data = ev;
    ev->handles = 1;
    return ev;
}

static void on_part_closed(events_t *ev)
{
    if (--ev->handles > 0)
        return;
    log_debug(ACTION, "closed");
    if (ev->close_cb != NULL)
        ev->close_cb(ev->close_data);
    free(ev);
}

static void on_tick_closed(uv_handle_t *h)
{
    on_part_closed(h->data);
}

static void on_listen_closed(void *data)
{
    on_part_closed(data);
}

/* Once closing and every stream has ended: closes the LISTEN connection and the timer. */
static void maybe_finish_close(events_t *ev)
{
    if (!ev->closing || ev->nsubs != 0 || uv_is_closing((uv_handle_t *)&ev->tick))
        return;
    if (ev->resync != NULL) {
        db_query_cancel(ev->resync);
        ev->resync = NULL;
    }
    if (ev->listen != NULL) {
        db_listen_t *l = ev->listen;
        ev->listen = NULL;
        db_listen_close(l, on_listen_closed, ev);
    }
    uv_close((uv_handle_t *)&ev->tick, on_tick_closed);
}

void events_close(events_t *ev, void (*cb)(void *data), void *data)
{
    assert(!ev->closing);
    log_info(ACTION, "ending %zu streams: the process is stopping", ev->nsubs);
    ev->closing = 1;
    ev->close_cb = cb;
    ev->close_data = data;
    /* end_sub frees the head each time (its last one also calls maybe_finish_close). */
    while (!h2o_linklist_is_empty(&ev->all))
        end_sub(H2O_STRUCT_FROM_MEMBER(sub_t, all, ev->all.next), 503, "Service is shutting down");
    maybe_finish_close(ev);
}
