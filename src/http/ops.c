/* GET /metrics, /queue/stats, /openapi.json and /docs. */
#include "http/ops.h"

#include "app.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/kit.h"
#include "jobs/queue.h"
#include "net/net.h"
#include "queries.h"

#include <stdlib.h>
#include <string.h>

/* The OpenAPI document, generated at build time from src/http/openapi.json by gen_embed.py (which also checks
 * that it parses). */
extern const char ops_openapi_json[];
extern const size_t ops_openapi_json_len;

/* The kinds and states sql/0001_init.sql allows. Each pair is always exported (0 when there are none), so a
 * dashboard's series do not vanish when a state empties; pairs the query returns beyond these (a later
 * migration's new kind) are exported as well. */
static const char *const job_kinds[] = {JOBS_KIND_GENERATE, JOBS_KIND_DELIVER};
static const char *const job_states[] = {"queued", "running", "done", "failed", "cancelled"};
#define NKINDS (sizeof(job_kinds) / sizeof(job_kinds[0]))
#define NSTATES (sizeof(job_states) / sizeof(job_states[0]))

int ops_prepare(db_pool_t *pool)
{
    metrics_process_started();
    /* health, ops_jobs and ops_queue (sql/queries/ops.sql). */
    return db_pool_prepare_all(pool, queries_ops, queries_ops_count);
}

/* --- /metrics ------------------------------------------------------------------------------------------ */

static void write_gauge(buf_t *out, const char *name, const char *help, double v)
{
    metrics_write_header(out, name, "gauge", help);
    metrics_write_sample(out, name, 0, NULL, NULL, v);
}

static void write_jobs(buf_t *out, const PGresult *res)
{
    static const char *const labels[] = {"kind", "state"};
    metrics_write_header(out, "inkloop_jobs", "gauge", "Jobs in the jobs table, by kind and state.");
    int rows = PQntuples(res);
    for (size_t k = 0; k < NKINDS; k++) {
        for (size_t s = 0; s < NSTATES; s++) {
            double n = 0;
            for (int i = 0; i < rows; i++)
                if (strcmp(db_value(res, i, "kind"), job_kinds[k]) == 0 &&
                    strcmp(db_value(res, i, "state"), job_states[s]) == 0)
                    n = (double)db_int(res, i, "n");
            metrics_write_sample(out, "inkloop_jobs", 2, labels,
                                 (const char *const[]){job_kinds[k], job_states[s]}, n);
        }
    }
    for (int i = 0; i < rows; i++) {
        const char *kind = db_value(res, i, "kind"), *state = db_value(res, i, "state");
        int known_kind = 0, known_state = 0;
        for (size_t k = 0; k < NKINDS; k++)
            known_kind |= strcmp(kind, job_kinds[k]) == 0;
        for (size_t s = 0; s < NSTATES; s++)
            known_state |= strcmp(state, job_states[s]) == 0;
        if (!known_kind || !known_state)
            metrics_write_sample(out, "inkloop_jobs", 2, labels, (const char *const[]){kind, state},
                                 (double)db_int(res, i, "n"));
    }
}

static void write_pool(buf_t *out, const db_pool_t *pool)
{
    db_pool_stats_t st;
    db_pool_stats(pool, &st);
    static const char *const state_label[] = {"state"};
    static const char *const result_label[] = {"result"};
    metrics_write_header(out, "inkloop_db_pool_connections", "gauge",
                         "Database connections: configured, and ready (connected and prepared).");
    metrics_write_sample(out, "inkloop_db_pool_connections", 1, state_label,
                         (const char *const[]){"configured"}, st.size);
    metrics_write_sample(out, "inkloop_db_pool_connections", 1, state_label, (const char *const[]){"ready"},
                         st.ready);
    write_gauge(out, "inkloop_db_pool_in_flight", "Query batches sent and not yet answered.", st.in_flight);
    write_gauge(out, "inkloop_db_pool_waiting", "Query batches waiting for a database connection.",
                st.waiting);
    metrics_write_header(out, "inkloop_db_queries_total", "counter", "Query batches finished, by result.");
    metrics_write_sample(out, "inkloop_db_queries_total", 1, result_label, (const char *const[]){"ok"},
                         (double)st.completed);
    metrics_write_sample(out, "inkloop_db_queries_total", 1, result_label, (const char *const[]){"error"},
                         (double)st.failed);
    metrics_write_header(out, "inkloop_db_reconnects_total", "counter", "Database reconnection attempts.");
    metrics_write_sample(out, "inkloop_db_reconnects_total", 0, NULL, NULL, (double)st.reconnects);
}

static void reply_metrics(http_req_t *req, const PGresult *jobs)
{
    buf_t out = BUF_INIT;
    metrics_render_default(&out);
    app_t *app = req->app;
    if (app->http != NULL)
        write_gauge(&out, "inkloop_http_in_flight", "HTTP requests received and not yet answered.",
                    (double)http_server_in_flight(app->http));
    if (app->net != NULL)
        write_gauge(&out, "inkloop_http_client_in_flight",
                    "Outbound HTTP requests (webhooks, providers) in flight.",
                    (double)net_in_flight(app->net));
    if (app->db != NULL)
        write_pool(&out, app->db);
    write_gauge(&out, "inkloop_jobs_scrape_ok", "1 when this scrape could read the jobs table, else 0.",
                jobs != NULL ? 1 : 0);
    if (jobs != NULL)
        write_jobs(&out, jobs);
    size_t len = out.len;
    char *body = buf_release(&out);
    http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
    free(body);
}

static void on_jobs_counted(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    /* The process's own numbers are worth more than nothing while the database is away. */
    if (r[0].err != NULL)
        log_warn("reading job counts for /metrics", "%s", r[0].err);
    reply_metrics(req, r[0].err == NULL ? r[0].res : NULL);
}

void ops_metrics(http_req_t *req)
{
    if (req->app->db == NULL || db_query(req->app->db, "ops_jobs", 0, NULL, on_jobs_counted, req) == NULL)
        reply_metrics(req, NULL);
}

/* --- /queue/stats -------------------------------------------------------------------------------------- */

static void on_queue_counted(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "reading queue statistics"))
        return;
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "queue_name");
    jw_string(&w, "inkloop_jobs");
    static const char *const fields[] = {"queued", "in_progress", "delayed", "failed"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        jw_key(&w, fields[i]);
        jw_int(&w, db_int(r[0].res, 0, fields[i]));
    }
    jw_object_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void ops_queue_stats(http_req_t *req)
{
    if (db_query(req->app->db, "ops_queue", 0, NULL, on_queue_counted, req) == NULL)
        kit_db_busy(req);
}

/* --- /openapi.json and /docs --------------------------------------------------------------------------- */

void ops_openapi(http_req_t *req)
{
    http_reply(req, 200, "application/json", ops_openapi_json, ops_openapi_json_len);
}

/* Swagger UI from a CDN, loaded by the reader's browser, as FastAPI's /docs does; the version is pinned so
 * the page does not change under us. Only this small page is served by inkloop. */
static const char docs_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>inkloop API</title>\n"
    "<link rel=\"stylesheet\" href=\"https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.17.14/swagger-ui.css\">\n"
    "</head>\n"
    "<body>\n"
    "<div id=\"swagger-ui\"></div>\n"
    "<script src=\"https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.17.14/swagger-ui-bundle.js\" "
    "crossorigin=\"anonymous\"></script>\n"
    "<script>\n"
    "window.ui = SwaggerUIBundle({url: \"/openapi.json\", dom_id: \"#swagger-ui\", deepLinking: true,\n"
    "                             withCredentials: true, persistAuthorization: true});\n"
    "</script>\n"
    "<noscript>The API description is at <a href=\"/openapi.json\">/openapi.json</a>.</noscript>\n"
    "</body>\n"
    "</html>\n";

void ops_docs(http_req_t *req)
{
    http_reply(req, 200, "text/html; charset=utf-8", docs_html, sizeof(docs_html) - 1);
}
