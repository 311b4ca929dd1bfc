/* GET /health: answers 200 only when a query reached the database, so load balancers route around a process
 * whose database is gone, and reports the queue depth the same query read. */
#include "app.h"
#include "core/json.h"
#include "core/timeutil.h"
#include "db/db.h"
#include "http/handlers.h"
#include "queries.h"

static void reply_health(http_req_t *req, const PGresult *res, const char *err)
{
    char ts[40];
    time_format_iso(time_now_us(), ts, sizeof(ts));
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "status");
    jw_string(&w, err == NULL ? "healthy" : "unhealthy");
    jw_key(&w, "timestamp");
    jw_string(&w, ts);
    jw_key(&w, "database");
    jw_string(&w, err == NULL ? "ok" : err);
    jw_key(&w, "queue");
    if (err == NULL) {
        jw_object_begin(&w);
        jw_key(&w, "queued");
        jw_int(&w, db_int(res, 0, "queued"));
        jw_key(&w, "in_progress");
        jw_int(&w, db_int(res, 0, "in_progress"));
        jw_key(&w, "delayed");
        jw_int(&w, db_int(res, 0, "delayed"));
        jw_object_end(&w);
    } else {
        jw_null(&w);
    }
    jw_object_end(&w);
    http_reply_json(req, err == NULL ? 200 : 503, &body);
    buf_free(&body);
}

static void on_health_result(const db_result_t *results, size_t n, void *data)
{
    (void)n;
    reply_health(data, results[0].res, results[0].err);
}

void health_get(http_req_t *req)
{
    if (db_query(req->app->db, "health", 0, NULL, on_health_result, req) == NULL)
        reply_health(req, NULL, "database busy: too many queries waiting");
}
