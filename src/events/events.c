/* The article-event hub (see events.h): the registry of watches keyed by article id (and user id, for the
 * per-user limit), the one LISTEN connection that feeds it, the resync and the tick. */
#include "events/events.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/listen.h"
#include "queries.h"

#include <assert.h>
#include <h2o/linklist.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char ACTION[] = "streaming article events";
static const char CHANNEL[] = "inkloop_articles";

/* Buckets of the two hash tables (article id -> watches, user id -> watches); a power of two. */
#define NBUCKETS 1024
/* Every this many ticks the watched articles are re-read: a safety net for what no notification announces (an
 * article deleted while watched) and for notifications lost without a reconnect. */
#define RESYNC_EVERY_TICKS 4

#define WATCH_STATES(X)                                                                                      \
    X(WATCH_LOADING) /* waits for the article's row (404 check, first frame); the pool's deadline applies */ \
    X(WATCH_OPEN)    /* waits for notifications, the tick, the resync */
#define WATCH_ENUM(name) name,
typedef enum { WATCH_STATES(WATCH_ENUM) } watch_state_t;

#define W_FROM(member, l) ((watch_t *)((char *)(l)-offsetof(watch_t, member)))

typedef struct st_watch_t {
    events_watch_t pub; /* first: events_watch_t * and watch_t * are the same pointer */
    events_t *ev;
    events_watch_cb cb;
    watch_state_t state;
    db_query_t *load;          /* the row read while loading */
    int load_listen_ready;     /* the LISTEN connection was subscribed when load was sent */
    uint64_t notified_seq;     /* ev->notify_seq of this article's last notification, 0 when none */
    int in_resync;             /* its article is in the resync query in flight */
    events_frame_t sent;       /* the last frame passed on (for de-duplication) */
    events_frame_t latest;     /* while loading: the newest notification, if any (latest.status != "") */
    h2o_linklist_t all;        /* ev->all */
    h2o_linklist_t by_article; /* ev->by_article[hash(article_id)] */
    h2o_linklist_t by_user;    /* ev->by_user[hash(user_id)] */
} watch_t;

struct st_events_t {
    uv_loop_t *loop;
    db_pool_t *db;
    const char *conninfo;
    db_listen_t *listen; /* NULL until the first watch */
    uv_timer_t tick;     /* ticks and periodic resync, while watches exist */
    unsigned ticks;
    h2o_linklist_t all;
    h2o_linklist_t by_article[NBUCKETS];
    h2o_linklist_t by_user[NBUCKETS];
    size_t nwatches;
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

int events_is_final(const char *status)
{
    return strcmp(status, "completed") == 0 || strcmp(status, "posted") == 0 ||
           strcmp(status, "failed") == 0 || strcmp(status, "delivery_failed") == 0 ||
           strcmp(status, "cancelled") == 0;
}

static void frame_set(events_frame_t *f, const char *status, const char *detail, const char *at_iso)
{
    /* Never NULL from the callers; the check tells GCC so (YAJL_GET_STRING can yield NULL, and -O3 warns). */
    snprintf(f->status, sizeof(f->status), "%s", status != NULL ? status : "");
    free(f->detail);
    f->detail = detail != NULL ? xstrdup(detail) : NULL;
    snprintf(f->at, sizeof(f->at), "%s", at_iso != NULL ? at_iso : "");
}

static void frame_free(events_frame_t *f)
{
    free(f->detail);
    f->detail = NULL;
}

static int frame_same(const events_frame_t *a, const events_frame_t *b)
{
    if (strcmp(a->status, b->status) != 0)
        return 0;
    if (a->detail == NULL || b->detail == NULL)
        return a->detail == b->detail;
    return strcmp(a->detail, b->detail) == 0;
}

/* A frame from a row of events_article or events_resync. */
static void frame_from_row(events_frame_t *f, const PGresult *res, int row)
{
    char iso[40];
    const char *at = db_value(res, row, "at");
    frame_set(f, db_value(res, row, "status"), db_value(res, row, "progress_detail"),
              at != NULL && time_pg_to_iso(at, iso, sizeof(iso)) == 0 ? iso : NULL);
}

int events_json_ts_to_iso(const char *s, char *out, size_t outlen)
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

size_t events_count(const events_t *ev)
{
    return ev->nwatches;
}

size_t events_count_user(const events_t *ev, const char *user_id)
{
    size_t n = 0;
    const h2o_linklist_t *anchor = &ev->by_user[bucket_of(user_id)];
    for (const h2o_linklist_t *l = anchor->next; l != anchor; l = l->next)
        n += strcmp(W_FROM(by_user, l)->pub.user_id, user_id) == 0;
    return n;
}

int events_closing(const events_t *ev)
{
    return ev->closing;
}

void events_unwatch(events_watch_t *pub)
{
    watch_t *w = (watch_t *)pub;
    events_t *ev = w->ev;
    h2o_linklist_unlink(&w->all);
    h2o_linklist_unlink(&w->by_article);
    h2o_linklist_unlink(&w->by_user);
    ev->nwatches--;
    if (w->load != NULL)
        db_query_cancel(w->load);
    frame_free(&w->sent);
    frame_free(&w->latest);
    free(w);
    if (ev->nwatches == 0 && !ev->closing)
        uv_timer_stop(&ev->tick);
    maybe_finish_close(ev);
}

/* Passes f on unless it repeats the previous frame. */
static void push(watch_t *w, const events_frame_t *f)
{
    if (frame_same(&w->sent, f))
        return;
    frame_set(&w->sent, f->status, f->detail, f->at);
    w->cb(&w->pub, EVENTS_FRAME, f, NULL);
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
    events_frame_t f = {{0}, NULL, {0}};
    char iso[40];
    frame_set(&f, YAJL_GET_STRING(status), YAJL_IS_STRING(detail) ? YAJL_GET_STRING(detail) : NULL,
              events_json_ts_to_iso(YAJL_IS_STRING(at) ? YAJL_GET_STRING(at) : NULL, iso, sizeof(iso)) == 0
                  ? iso
                  : NULL);
    const char *aid = YAJL_GET_STRING(id);
    h2o_linklist_t *anchor = &ev->by_article[bucket_of(aid)];
    for (h2o_linklist_t *l = anchor->next, *next; l != anchor; l = next) {
        next = l->next; /* the callback may end the watch */
        watch_t *w = W_FROM(by_article, l);
        if (strcmp(w->pub.article_id, aid) != 0)
            continue;
        w->notified_seq = ev->notify_seq;
        if (w->state == WATCH_LOADING)
            frame_set(&w->latest, f.status, f.detail, f.at);
        else
            push(w, &f);
    }
    frame_free(&f);
    yajl_tree_free(root);
}

static void clear_in_resync(events_t *ev)
{
    for (h2o_linklist_t *l = ev->all.next; l != &ev->all; l = l->next)
        W_FROM(all, l)->in_resync = 0;
}

static void on_resync(const db_result_t *r, size_t n, void *data)
{
    events_t *ev = data;
    (void)n;
    ev->resync = NULL;
    if (r->err != NULL) {
        log_warn(ACTION, "re-reading the followed articles failed: %s; retrying with the next keep-alive",
                 r->err);
        clear_in_resync(ev);
        ev->resync_wanted = 1;
        return;
    }
    int rows = PQntuples(r->res);
    for (int i = 0; i < rows; i++) {
        const char *aid = db_value(r->res, i, "id");
        events_frame_t f = {{0}, NULL, {0}};
        frame_from_row(&f, r->res, i);
        h2o_linklist_t *anchor = &ev->by_article[bucket_of(aid)];
        for (h2o_linklist_t *l = anchor->next, *next; l != anchor; l = next) {
            next = l->next;
            watch_t *w = W_FROM(by_article, l);
            if (!w->in_resync || strcmp(w->pub.article_id, aid) != 0)
                continue;
            w->in_resync = 0;
            /* A notification that arrived after the query was sent is at least as new as this row. */
            if (w->notified_seq <= ev->resync_seq)
                push(w, &f);
        }
        frame_free(&f);
    }
    /* Articles the query did not return were deleted. */
    for (h2o_linklist_t *l = ev->all.next, *next; l != &ev->all; l = next) {
        next = l->next;
        watch_t *w = W_FROM(all, l);
        if (w->in_resync) {
            w->in_resync = 0;
            log_debug(ACTION, "article %s no longer exists; ending its stream", w->pub.article_id);
            w->cb(&w->pub, EVENTS_DELETED, NULL, NULL);
        }
    }
    if (ev->resync_wanted)
        request_resync(ev);
}

/* Re-reads every watched article with one query, when the LISTEN connection is up (so nothing committed after
 * the read can be missed) and no re-read is in flight; otherwise remembers that one is due. */
static void request_resync(events_t *ev)
{
    ev->resync_wanted = 1;
    if (ev->resync != NULL || ev->closing || ev->listen == NULL || !db_listen_ready(ev->listen))
        return;
    buf_t ids = BUF_INIT;
    buf_append(&ids, "{", 1);
    size_t count = 0;
    for (h2o_linklist_t *l = ev->all.next; l != &ev->all; l = l->next) {
        watch_t *w = W_FROM(all, l);
        if (w->state != WATCH_OPEN)
            continue; /* a loading watch reads its row itself */
        w->in_resync = 1;
        buf_printf(&ids, "%s%s", count++ ? "," : "", w->pub.article_id);
    }
    buf_append(&ids, "}", 1);
    ev->resync_wanted = 0;
    if (count > 0) {
        const char *params[] = {ids.data};
        ev->resync_seq = ev->notify_seq;
        ev->resync = db_query(ev->db, "events_resync", 1, params, on_resync, ev);
        if (ev->resync == NULL) { /* the pool is saturated: the next tick tries again */
            clear_in_resync(ev);
            ev->resync_wanted = 1;
        }
    }
    buf_free(&ids);
}

static void on_listening(int reconnected, void *data)
{
    events_t *ev = data;
    if (reconnected)
        log_info(ACTION, "LISTEN connection back; re-reading the %zu followed article streams", ev->nwatches);
    request_resync(ev);
}

static void ensure_listening(events_t *ev)
{
    if (ev->listen != NULL)
        return;
    db_listen_config_t lc = {.conninfo = ev->conninfo};
    ev->listen = db_listen_create(ev->loop, &lc, on_notify, on_listening, ev);
    if (ev->listen == NULL)
        return; /* logged; watches then only get their first frame and ticks, resyncs never run */
    ev->handles++;
    if (db_listen_add(ev->listen, CHANNEL) != 0)
        log_error(ACTION, "could not subscribe to %s", CHANNEL);
    db_listen_start(ev->listen);
}

/* --- the tick ----------------------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    events_t *ev = t->data;
    for (h2o_linklist_t *l = ev->all.next, *next; l != &ev->all; l = next) {
        next = l->next;
        watch_t *w = W_FROM(all, l);
        if (w->state == WATCH_OPEN)
            w->cb(&w->pub, EVENTS_TICK, NULL, NULL);
    }
    if (++ev->ticks % RESYNC_EVERY_TICKS == 0 && ev->nwatches > 0)
        ev->resync_wanted = 1;
    if (ev->resync_wanted)
        request_resync(ev);
}

/* --- watches ------------------------------------------------------------------------------------------ */

static void on_loaded(const db_result_t *r, size_t n, void *data)
{
    watch_t *w = data;
    (void)n;
    w->load = NULL;
    if (r->err != NULL) {
        w->cb(&w->pub, EVENTS_FAILED, NULL, r);
        return;
    }
    if (PQntuples(r->res) == 0) {
        w->cb(&w->pub, EVENTS_NOT_FOUND, NULL, NULL);
        return;
    }
    events_frame_t f = {{0}, NULL, {0}};
    if (w->latest.status[0] != '\0')
        frame_set(&f, w->latest.status, w->latest.detail, w->latest.at);
    else
        frame_from_row(&f, r->res, 0);
    frame_free(&w->latest);
    w->state = WATCH_OPEN;
    frame_set(&w->sent, f.status, f.detail, f.at);
    int listen_was_ready = w->load_listen_ready;
    events_t *ev = w->ev;
    w->cb(&w->pub, EVENTS_LOADED, &f, NULL); /* may end w */
    frame_free(&f);
    /* Its row was read before the LISTEN connection was subscribed: what changed in between is only found by
     * reading it again. */
    if (!listen_was_ready)
        request_resync(ev);
}

events_watch_t *events_watch(events_t *ev, const char *article_id, const char *user_id, events_watch_cb cb,
                             void *data)
{
    assert(!ev->closing);
    watch_t *w = xcalloc(1, sizeof(*w));
    w->ev = ev;
    w->cb = cb;
    w->pub.data = data;
    w->state = WATCH_LOADING;
    snprintf(w->pub.article_id, sizeof(w->pub.article_id), "%s", article_id);
    snprintf(w->pub.user_id, sizeof(w->pub.user_id), "%s", user_id);
    /* Registered before the row is read: notifications from then on are kept (see events.h). */
    h2o_linklist_insert(&ev->all, &w->all);
    h2o_linklist_insert(&ev->by_article[bucket_of(w->pub.article_id)], &w->by_article);
    h2o_linklist_insert(&ev->by_user[bucket_of(w->pub.user_id)], &w->by_user);
    ev->nwatches++;
    if (!uv_is_active((uv_handle_t *)&ev->tick)) {
        int rc = uv_timer_start(&ev->tick, on_tick, EVENTS_KEEPALIVE_MS, EVENTS_KEEPALIVE_MS);
        if (rc != 0)
            log_error(ACTION, "uv_timer_start: %s", uv_strerror(rc));
    }
    ensure_listening(ev);

    w->load_listen_ready = ev->listen != NULL && db_listen_ready(ev->listen);
    const char *params[] = {w->pub.article_id, w->pub.user_id};
    w->load = db_query(ev->db, "events_article", 2, params, on_loaded, w);
    if (w->load == NULL) {
        events_unwatch(&w->pub);
        return NULL;
    }
    return &w->pub;
}

/* --- lifetime of the hub ------------------------------------------------------------------------------ */

events_t *events_create(uv_loop_t *loop, db_pool_t *db, const char *conninfo)
{
    events_t *ev = xcalloc(1, sizeof(*ev));
    ev->loop = loop;
    ev->db = db;
    ev->conninfo = conninfo;
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

/* Once closing and every watch has ended: closes the LISTEN connection and the timer. */
static void maybe_finish_close(events_t *ev)
{
    if (!ev->closing || ev->nwatches != 0 || uv_is_closing((uv_handle_t *)&ev->tick))
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
    log_info(ACTION, "ending %zu streams: the process is stopping", ev->nwatches);
    ev->closing = 1;
    ev->close_cb = cb;
    ev->close_data = data;
    /* Each owner unwatches (which frees the head); one that does not is unwatched here. */
    while (!h2o_linklist_is_empty(&ev->all)) {
        watch_t *w = W_FROM(all, ev->all.next);
        w->cb(&w->pub, EVENTS_CLOSING, NULL, NULL);
        if (!h2o_linklist_is_empty(&ev->all) && W_FROM(all, ev->all.next) == w)
            events_unwatch(&w->pub);
    }
    maybe_finish_close(ev);
}
