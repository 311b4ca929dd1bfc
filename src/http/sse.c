/* The SSE glue of article progress streams (see sse.h): one stream per watch of the event hub.
 *
 * Ownership. A stream (stream_t) owns its watch and its request; end_stream, the one teardown, unwatches and
 * ends or answers the request. The hub and the server call it back from their own callbacks and timers, never
 * inside an http_* or events_* call that is still using the stream, so end_stream may free there. */
#include "http/sse.h"

#include "app.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "events/events.h"
#include "http/kit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ACTION[] = "streaming article events";

typedef struct st_stream_t {
    http_req_t *req; /* NULL once answered */
    events_watch_t *watch;
    int open;           /* the response started (http_stream_start) */
    uint64_t opened_ms; /* loop time the stream opened, for the lifetime limit */
    uv_loop_t *loop;
} stream_t;

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

/* "event: <name>\ndata: <json>\n\n"; the JSON writer escapes newlines, so data stays on one line. */
static void frame_write(buf_t *out, const char *event, const events_frame_t *f)
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

/* The one teardown. An open stream ends (a done frame, when due, was written by the caller); one not open yet
 * is answered status/detail (503 "Service is shutting down" when status is 0), unless it was answered
 * already (s->req NULL). */
static void end_stream(stream_t *s, int status, const char *detail)
{
    if (s->watch != NULL)
        events_unwatch(s->watch);
    http_req_t *req = s->req;
    if (req != NULL) {
        req->user = NULL;
        if (s->open)
            http_stream_end(req);
        else
            http_reply_error(req, status != 0 ? status : 503,
                             detail != NULL ? detail : "Service is shutting down");
    }
    free(s);
}

/* Sends f; after a final status also the done frame, and ends the stream (also when f cannot reach the
 * client). */
static void send_frame(stream_t *s, const events_frame_t *f)
{
    buf_t out = BUF_INIT;
    frame_write(&out, "status", f);
    int final = events_is_final(f->status);
    if (final)
        frame_write(&out, "done", f);
    int r = http_stream_write(s->req, out.data, out.len);
    buf_free(&out);
    /* A write that cannot reach the client (gone, dropped) ends the stream now rather than at the server's
     * later note. */
    if (final || r != 0)
        end_stream(s, 0, NULL);
}

static void on_stream_event(http_req_t *req, http_stream_event_t what)
{
    stream_t *s = req->user;
    log_debug(ACTION, "article %s: %s", s->watch->article_id,
              what == HTTP_STREAM_GONE ? "the client went away" : "the server is shutting down");
    end_stream(s, 0, NULL);
}

static void on_loaded(stream_t *s, const events_frame_t *f)
{
    http_req_t *req = s->req;
    http_add_header(req, "Cache-Control", "no-cache");
    http_add_header(req, "X-Accel-Buffering", "no"); /* nginx would otherwise hold the frames back */
    s->open = 1;
    s->opened_ms = uv_now(s->loop);
    if (http_stream_start(req, 200, "text/event-stream", on_stream_event) != 0) {
        end_stream(s, 0, NULL); /* the client left while loading, or HEAD */
        return;
    }
    send_frame(s, f);
}

static void on_tick(stream_t *s)
{
    static const char keepalive[] = ": keep-alive\n\n";
    if (uv_now(s->loop) - s->opened_ms >= SSE_MAX_LIFETIME_MS) {
        log_debug(ACTION, "article %s: the stream reached its lifetime limit", s->watch->article_id);
        end_stream(s, 0, NULL);
    } else if (http_stream_write(s->req, keepalive, sizeof(keepalive) - 1) != 0) {
        end_stream(s, 0, NULL);
    }
}

static void on_news(events_watch_t *w, events_news_t what, const events_frame_t *frame,
                    const db_result_t *failure)
{
    stream_t *s = w->data;
    switch (what) {
    case EVENTS_LOADED:
        on_loaded(s, frame);
        return;
    case EVENTS_NOT_FOUND:
        end_stream(s, 404, "Article not found");
        return;
    case EVENTS_FAILED: {
        http_req_t *req = s->req;
        s->req = NULL; /* answered here, so the teardown does not answer again */
        kit_db_failed(req, failure, ACTION);
        end_stream(s, 0, NULL);
        return;
    }
    case EVENTS_FRAME:
        send_frame(s, frame);
        return;
    case EVENTS_TICK:
        on_tick(s);
        return;
    case EVENTS_DELETED:
    case EVENTS_CLOSING:
        end_stream(s, 503, "Service is shutting down");
        return;
    }
}

void sse_article_events(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "article_id", id) != 0)
        return;
    events_t *ev = req->app->events;
    if (ev == NULL || events_closing(ev)) {
        http_reply_error(req, 503, "Service is shutting down");
        return;
    }
    if (events_count(ev) >= SSE_MAX_STREAMS) {
        log_warn(ACTION, "%zu streams open, the most one process serves; refusing another", events_count(ev));
        http_reply_error(req, 429, "Too many event streams");
        return;
    }
    if (events_count_user(ev, req->user_id) >= SSE_MAX_PER_USER) {
        http_reply_error(req, 429, "Too many event streams for this user");
        return;
    }
    stream_t *s = xcalloc(1, sizeof(*s));
    s->req = req;
    s->loop = req->app->loop;
    req->user = s;
    s->watch = events_watch(ev, id, req->user_id, on_news, s);
    if (s->watch == NULL)
        end_stream(s, 503, "Service temporarily unavailable");
}
