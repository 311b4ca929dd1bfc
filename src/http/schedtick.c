/* POST /admin/scheduler/tick {at?}: one scheduler tick as if the time were `at` (default now), answered once
 * the tick has finished (API.md section 5). The same tick the timer runs (src/sched), so backfills and tests
 * exercise the production path. */
#include "app.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http/handlers.h"
#include "http/kit.h"
#include "sched/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* kit_ts_t's text ("YYYY-MM-DD HH:MM:SS.ffffff" and "+HH:MM" when an offset was given) as microseconds since
 * the epoch; without an offset the time is UTC (the tick has no record whose timezone could apply). */
static int ts_to_us(const kit_ts_t *ts, int64_t *out)
{
    int y, mo, d, h, mi, s, oh = 0, om = 0;
    char frac[7], sign = '+';
    if (sscanf(ts->text, "%4d-%2d-%2d %2d:%2d:%2d.%6[0-9]", &y, &mo, &d, &h, &mi, &s, frac) != 7)
        return -1;
    if (ts->has_offset && sscanf(ts->text + 26, "%c%2d:%2d", &sign, &oh, &om) != 3)
        return -1;
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    int64_t secs = (int64_t)timegm(&tm) - (sign == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
    *out = secs * 1000000 + atoll(frac);
    return 0;
}

static void on_ticked(const sched_report_t *r, void *data)
{
    http_req_t *req = data;
    if (r->err != NULL) {
        char detail[400];
        snprintf(detail, sizeof(detail), "Scheduler tick failed: %s", r->err);
        log_warn("running a scheduler tick for an admin", "%s", detail);
        http_reply_error(req, 503, detail);
        return;
    }
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "success");
    jw_bool(&w, 1);
    jw_key(&w, "campaigns");
    jw_int(&w, r->campaigns);
    jw_key(&w, "articles_created");
    jw_int(&w, r->articles_created);
    jw_key(&w, "slots_pending");
    jw_int(&w, r->slots_pending);
    jw_key(&w, "failed");
    jw_int(&w, r->failed);
    jw_key(&w, "paused");
    jw_int(&w, r->paused);
    jw_key(&w, "completed");
    jw_int(&w, r->completed);
    jw_object_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void schedtick_post(http_req_t *req)
{
    validator_t v;
    if (v_parse_body(&v, req, 1) != 0) {
        v_free(&v);
        return;
    }
    kit_ts_t ts;
    int has_at = v_timestamp(&v, "at", &ts);
    int64_t at_us = time_now_us();
    if (has_at == 1 && ts_to_us(&ts, &at_us) != 0)
        v_error(&v, "at", "Input should be a valid datetime", "datetime_parsing");
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    v_free(&v);
    if (sched_tick(req->app->sched, at_us, on_ticked, req) == NULL)
        http_reply_error(req, 503, "Service is shutting down");
}
