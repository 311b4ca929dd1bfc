#include "http/kit.h"
#include "app.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void detail_begin(validator_t *v)
{
    if (v->errors == 0) {
        jw_init(&v->_w, &v->_detail);
        jw_object_begin(&v->_w);
        jw_key(&v->_w, "detail");
        jw_array_begin(&v->_w);
    }
}

void v_error(validator_t *v, const char *field, const char *msg, const char *type)
{
    detail_begin(v);
    jw_object_begin(&v->_w);
    jw_key(&v->_w, "loc");
    jw_array_begin(&v->_w);
    jw_string(&v->_w, v->where);
    if (field != NULL)
        jw_string(&v->_w, field);
    jw_array_end(&v->_w);
    jw_key(&v->_w, "msg");
    jw_string(&v->_w, msg);
    jw_key(&v->_w, "type");
    jw_string(&v->_w, type);
    jw_object_end(&v->_w);
    v->errors++;
}

int v_parse_body(validator_t *v, http_req_t *req, int empty_ok)
{
    memset(v, 0, sizeof(*v));
    v->req = req;
    v->where = "body";
    size_t len = req->body_len;
    const char *p = req->body;
    while (len > 0 && isspace((unsigned char)*p)) {
        p++;
        len--;
    }
    if (len == 0) {
        if (!empty_ok) {
            v_error(v, NULL, "Field required", "missing");
            return v_finish(v);
        }
        return 0;
    }
    char err[256];
    v->root = json_parse_request(p, len, err, sizeof(err));
    if (v->root == NULL) {
        v_error(v, NULL, "JSON decode error", "json_invalid");
        return v_finish(v);
    }
    if (!YAJL_IS_OBJECT(v->root)) {
        v_error(v, NULL, "Input should be a valid dictionary or object to extract fields from",
                "model_attributes_type");
        return v_finish(v);
    }
    return 0;
}

int v_has(validator_t *v, const char *field)
{
    yajl_val m = json_get(v->root, field);
    return m != NULL && !YAJL_IS_NULL(m);
}

yajl_val v_raw(validator_t *v, const char *field)
{
    yajl_val m = json_get(v->root, field);
    return (m == NULL || YAJL_IS_NULL(m)) ? NULL : m;
}

size_t kit_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

const char *v_string(validator_t *v, const char *field, int required, size_t min, size_t max,
                     int empty_absent)
{
    yajl_val m = v_raw(v, field);
    if (m != NULL && empty_absent && YAJL_IS_STRING(m) && m->u.string[0] == '\0')
        m = NULL;
    if (m == NULL) {
        if (required)
            v_error(v, field, "Field required", "missing");
        return NULL;
    }
    if (!YAJL_IS_STRING(m)) {
        v_error(v, field, "Input should be a valid string", "string_type");
        return NULL;
    }
    size_t len = kit_utf8_len(m->u.string);
    char msg[96];
    if (min > 0 && len < min) {
        snprintf(msg, sizeof(msg), "String should have at least %zu character%s", min, min == 1 ? "" : "s");
        v_error(v, field, msg, "string_too_short");
        return NULL;
    }
    if (max > 0 && len > max) {
        snprintf(msg, sizeof(msg), "String should have at most %zu character%s", max, max == 1 ? "" : "s");
        v_error(v, field, msg, "string_too_long");
        return NULL;
    }
    return m->u.string;
}

int v_int(validator_t *v, const char *field, int required, int64_t min, int64_t max, int64_t def,
          int64_t *out)
{
    *out = def;
    yajl_val m = v_raw(v, field);
    if (m == NULL) {
        if (required) {
            v_error(v, field, "Field required", "missing");
            return -1;
        }
        return 0;
    }
    int64_t n;
    if (YAJL_IS_INTEGER(m)) {
        n = YAJL_GET_INTEGER(m);
    } else if (YAJL_IS_DOUBLE(m) && (m->u.number.d >= 9.0e18 || m->u.number.d <= -9.0e18)) {
        /* Beyond int64 (yajl gives such integers as doubles): casting would be undefined; it is out of any
         * range we accept, so let the range check below report it. */
        n = m->u.number.d > 0 ? INT64_MAX : INT64_MIN;
    } else if (YAJL_IS_DOUBLE(m) && m->u.number.d == (double)(int64_t)m->u.number.d) {
        n = (int64_t)m->u.number.d;
    } else if (YAJL_IS_STRING(m)) {
        char *end;
        errno = 0;
        long long x = strtoll(m->u.string, &end, 10);
        if (errno != 0 || end == m->u.string || *end != '\0') {
            v_error(v, field, "Input should be a valid integer, unable to parse string as an integer",
                    "int_parsing");
            return -1;
        }
        n = x;
    } else if (YAJL_IS_DOUBLE(m)) {
        v_error(v, field, "Input should be a valid integer, got a number with a fractional part",
                "int_from_float");
        return -1;
    } else {
        v_error(v, field, "Input should be a valid integer", "int_type");
        return -1;
    }
    char msg[96];
    if (n < min) {
        snprintf(msg, sizeof(msg), "Input should be greater than or equal to %lld", (long long)min);
        v_error(v, field, msg, "greater_than_equal");
        return -1;
    }
    if (n > max) {
        snprintf(msg, sizeof(msg), "Input should be less than or equal to %lld", (long long)max);
        v_error(v, field, msg, "less_than_equal");
        return -1;
    }
    *out = n;
    return 1;
}

int v_bool(validator_t *v, const char *field, int *out)
{
    yajl_val m = v_raw(v, field);
    if (m == NULL)
        return 0;
    if (YAJL_IS_TRUE(m) || YAJL_IS_FALSE(m)) {
        *out = YAJL_IS_TRUE(m);
        return 1;
    }
    v_error(v, field, "Input should be a valid boolean", "bool_type");
    return -1;
}

int kit_uuid(const char *s, char out[37])
{
    if (s == NULL || strlen(s) != 36)
        return -1;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return -1;
        } else if (!isxdigit((unsigned char)c)) {
            return -1;
        }
        out[i] = (char)tolower((unsigned char)c);
    }
    out[36] = '\0';
    return 0;
}

int v_uuid(validator_t *v, const char *field, int required, char out[37])
{
    out[0] = '\0';
    yajl_val m = v_raw(v, field);
    if (m != NULL && YAJL_IS_STRING(m) && m->u.string[0] == '\0')
        m = NULL;
    if (m == NULL) {
        if (required) {
            v_error(v, field, "Field required", "missing");
            return -1;
        }
        return 0;
    }
    if (!YAJL_IS_STRING(m) || kit_uuid(m->u.string, out) != 0) {
        v_error(v, field, "Input should be a valid UUID", "uuid_parsing");
        out[0] = '\0';
        return -1;
    }
    return 1;
}

int v_finish(validator_t *v)
{
    if (v->errors == 0)
        return 0;
    jw_array_end(&v->_w);
    jw_object_end(&v->_w);
    http_reply_json(v->req, 422, &v->_detail);
    v->req = NULL;
    return -1;
}

void v_free(validator_t *v)
{
    if (v->root != NULL)
        yajl_tree_free(v->root);
    v->root = NULL;
    buf_free(&v->_detail);
}

int kit_path_uuid(http_req_t *req, size_t i, const char *name, char out[37])
{
    if (i < req->nparams && kit_uuid(req->params[i], out) == 0)
        return 0;
    http_reply_invalid(req, "path", name, "Input should be a valid UUID", "uuid_parsing");
    return -1;
}

/* Parses one non-negative paging parameter; records a query error when it is not an integer in range. */
static int paging_param(validator_t *v, const char *name, int64_t def, int64_t max, int64_t *out)
{
    *out = def;
    char *s = http_query_param(v->req, name);
    if (s == NULL)
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    int bad = errno != 0 || end == s || *end != '\0';
    free(s);
    char msg[96];
    if (bad) {
        v_error(v, name, "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing");
        return -1;
    }
    if (n < (strcmp(name, "limit") == 0 ? 1 : 0)) {
        snprintf(msg, sizeof(msg), "Input should be greater than or equal to %d",
                 strcmp(name, "limit") == 0 ? 1 : 0);
        v_error(v, name, msg, "greater_than_equal");
        return -1;
    }
    if (n > max) {
        snprintf(msg, sizeof(msg), "Input should be less than or equal to %lld", (long long)max);
        v_error(v, name, msg, "less_than_equal");
        return -1;
    }
    *out = n;
    return 0;
}

int kit_paging(http_req_t *req, int64_t *skip, int64_t *limit)
{
    validator_t v;
    memset(&v, 0, sizeof(v));
    v.req = req;
    v.where = "query";
    paging_param(&v, "skip", 0, INT32_MAX, skip);
    paging_param(&v, "limit", 50, 200, limit);
    int r = v_finish(&v);
    v_free(&v);
    return r;
}

int kit_paging_text(http_req_t *req, char skip[24], char limit[24])
{
    int64_t s, l;
    if (kit_paging(req, &s, &l) != 0)
        return -1;
    snprintf(skip, 24, "%lld", (long long)s);
    snprintf(limit, 24, "%lld", (long long)l);
    return 0;
}

/* A batch attached to its request: what the cancel hook needs to end it, and the caller's completion. */
typedef struct st_kit_query_t {
    http_req_t *req;
    db_query_t *query;
    db_batch_cb cb;
    void *data;
    void (*free_data)(void *data);
} kit_query_t;

static void on_kit_batch_done(const db_result_t *results, size_t n, void *p)
{
    kit_query_t *kq = p;
    db_batch_cb cb = kq->cb;
    void *data = kq->data;
    http_req_clear_cancel(kq->req);
    free(kq);
    cb(results, n, data);
}

static void on_kit_batch_cancel(http_req_t *req, void *p)
{
    kit_query_t *kq = p;
    (void)req;
    db_query_cancel(kq->query);
    if (kq->free_data != NULL)
        kq->free_data(kq->data);
    free(kq);
}

db_query_t *kit_batch(http_req_t *req, const db_stmt_t *stmts, size_t n, db_batch_cb cb, void *data,
                      void (*free_data)(void *data))
{
    kit_query_t *kq = xcalloc(1, sizeof(*kq));
    kq->req = req;
    kq->cb = cb;
    kq->data = data;
    kq->free_data = free_data;
    kq->query = db_batch(req->app->db, stmts, n, on_kit_batch_done, kq);
    if (kq->query == NULL) {
        free(kq);
        return NULL;
    }
    http_req_set_cancel(req, on_kit_batch_cancel, kq);
    return kq->query;
}

db_query_t *kit_query(http_req_t *req, const char *name, int nparams, const char *const *params,
                      db_batch_cb cb, void *data, void (*free_data)(void *data))
{
    db_stmt_t stmt = {.name = name, .nparams = nparams, .params = params};
    return kit_batch(req, &stmt, 1, cb, data, free_data);
}

void kit_user_page(http_req_t *req, const char *stmt, db_batch_cb cb)
{
    char skip[24], limit[24];
    if (kit_paging_text(req, skip, limit) != 0)
        return;
    const char *params[] = {req->user_id, skip, limit};
    if (kit_query(req, stmt, 3, params, cb, req, NULL) == NULL)
        kit_db_busy(req);
}

void kit_reply_rows(http_req_t *req, const PGresult *res, kit_row_writer write)
{
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_array_begin(&w);
    for (int i = 0; i < PQntuples(res); i++)
        write(&w, res, i);
    jw_array_end(&w);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

int kit_db_failed(http_req_t *req, const db_result_t *r, const char *action)
{
    if (r->err == NULL)
        return 0;
    /* Lost connections and an unreachable server are the database's availability, not a bug: 503. */
    if (r->sqlstate[0] == '\0' || strncmp(r->sqlstate, "08", 2) == 0 || strcmp(r->sqlstate, "57P01") == 0) {
        log_warn(action, "database unavailable: %s", r->err);
        http_reply_error(req, 503, "Service temporarily unavailable");
    } else {
        log_error(action, "query failed: %s (SQLSTATE %s)", r->err, r->sqlstate);
        http_reply_error(req, 500, "Internal Server Error");
    }
    return 1;
}

void kit_db_busy(http_req_t *req)
{
    http_reply_error(req, 503, "Service temporarily unavailable");
}

void kit_jw_ts(json_writer_t *w, const char *pg_ts)
{
    char iso[40];
    if (pg_ts == NULL || time_pg_to_iso(pg_ts, iso, sizeof(iso)) != 0)
        jw_null(w);
    else
        jw_string(w, iso);
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* YYYY-MM-DD at s; returns 0 and the parts, or -1. */
static int parse_ymd(const char *s, int *y, int *m, int *d)
{
    if (digits(s, 4, y) != 0 || s[4] != '-' || digits(s + 5, 2, m) != 0 || s[7] != '-' ||
        digits(s + 8, 2, d) != 0)
        return -1;
    if (*y < 1 || *m < 1 || *m > 12 || *d < 1 || *d > days_in_month(*y, *m))
        return -1;
    return 0;
}

int kit_parse_date(const char *s)
{
    int y, m, d;
    return (strlen(s) == 10 && parse_ymd(s, &y, &m, &d) == 0) ? 0 : -1;
}

int kit_parse_timestamp(const char *s, kit_ts_t *out)
{
    int y, mo, d, h, mi, sec = 0;
    size_t len = strlen(s);
    if (len < 16 || len > 40 || parse_ymd(s, &y, &mo, &d) != 0 ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
        return -1;
    if (digits(s + 11, 2, &h) != 0 || s[13] != ':' || digits(s + 14, 2, &mi) != 0 || h > 23 || mi > 59)
        return -1;
    const char *p = s + 16;
    char frac[7] = "000000";
    if (*p == ':') {
        if (digits(p + 1, 2, &sec) != 0 || sec > 59)
            return -1;
        p += 3;
        if (*p == '.' || *p == ',') {
            p++;
            int k = 0;
            if (*p < '0' || *p > '9')
                return -1;
            while (*p >= '0' && *p <= '9') {
                if (k < 6)
                    frac[k++] = *p;
                p++;
            }
        }
    }
    char offset[8] = "";
    if (*p == 'Z' || *p == 'z') {
        strcpy(offset, "+00:00");
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om = 0;
        if (digits(p + 1, 2, &oh) != 0 || oh > 23)
            return -1;
        const char *q = p + 3;
        if (*q == ':')
            q++;
        if (*q != '\0') {
            if (digits(q, 2, &om) != 0 || om > 59)
                return -1;
            q += 2;
        }
        snprintf(offset, sizeof(offset), "%c%02d:%02d", *p, oh, om);
        p = q;
    }
    if (*p != '\0')
        return -1;
    snprintf(out->text, sizeof(out->text), "%04d-%02d-%02d %02d:%02d:%02d.%s%s", y, mo, d, h, mi, sec, frac,
             offset);
    out->has_offset = offset[0] != '\0';
    return 0;
}

int v_timestamp(validator_t *v, const char *field, kit_ts_t *out)
{
    yajl_val m = v_raw(v, field);
    if (m == NULL || (YAJL_IS_STRING(m) && m->u.string[0] == '\0'))
        return 0;
    if (!YAJL_IS_STRING(m) || kit_parse_timestamp(m->u.string, out) != 0) {
        v_error(v, field, "Input should be a valid datetime", "datetime_parsing");
        return -1;
    }
    return 1;
}
