/* What every resource handler needs: the JSON body parsed and validated into typed values with FastAPI's
 * 422 shape (all problems reported at once), path ids checked, and database failures turned into replies. */
#ifndef INKLOOP_HTTP_KIT_H
#define INKLOOP_HTTP_KIT_H

#include "core/buf.h"
#include "core/json.h"
#include "db/db.h"
#include "http/server.h"

#include <stdint.h>

/** Validates one request body (or query string) and collects every problem before replying. */
typedef struct st_validator_t {
    http_req_t *req;
    yajl_val root;     /* the parsed body (an object) or NULL when there was none */
    const char *where; /* "body" or "query" */
    buf_t _detail;
    json_writer_t _w;
    int errors;
} validator_t;

/** Parses req's body as a JSON object into v. An empty body counts as {} when empty_ok, else as a missing
 * body. Returns 0, or -1 after replying 422 (invalid JSON or not an object). Always pair with v_free. */
int v_parse_body(validator_t *v, http_req_t *req, int empty_ok);
/** Records one problem: loc [where, field], msg, type (pydantic's kinds: missing, string_type,
 * string_too_short, int_parsing, greater_than_equal, value_error, ...). */
void v_error(validator_t *v, const char *field, const char *msg, const char *type);
/** True when the member is present and not null. */
int v_has(validator_t *v, const char *field);
/** A string member. NULL when absent or null (and, when required, records "Field required"); checks the
 * length in characters (UTF-8 code points) when min/max are not 0. "" counts as absent when empty_absent. */
const char *v_string(validator_t *v, const char *field, int required, size_t min, size_t max,
                     int empty_absent);
/** An integer member (JSON numbers without fraction, or numeric strings as pydantic accepts) within
 * [min, max]; *out keeps def when absent. Returns 1 when present and valid, 0 when absent, -1 on error. */
int v_int(validator_t *v, const char *field, int required, int64_t min, int64_t max, int64_t def,
          int64_t *out);
/** A boolean member; returns 1 present, 0 absent, -1 invalid. */
int v_bool(validator_t *v, const char *field, int *out);
/** A UUID member (any case; written lowercase into out). "" and null count as absent. Returns 1, 0 or -1. */
int v_uuid(validator_t *v, const char *field, int required, char out[37]);
/** The raw member (for arrays and objects) or NULL. */
yajl_val v_raw(validator_t *v, const char *field);
/** When errors were recorded, replies 422 with all of them and returns -1; otherwise 0. Does not free v. */
int v_finish(validator_t *v);
/** Frees the parse tree and the collected detail. */
void v_free(validator_t *v);

/** Checks that s is a UUID and writes it lowercase into out. Returns 0 or -1. */
int kit_uuid(const char *s, char out[37]);
/** Validates path parameter i as a UUID into out; replies 422 loc ["path", name] and returns -1 when not. */
int kit_path_uuid(http_req_t *req, size_t i, const char *name, char out[37]);
/** Number of UTF-8 code points in s. */
size_t kit_utf8_len(const char *s);
/** Parses ?skip= and ?limit= (defaults 0 and 50, limit at most 200); replies 422 and returns -1 when bad. */
int kit_paging(http_req_t *req, int64_t *skip, int64_t *limit);

/** A timestamp from a request, normalized for PostgreSQL. A statement reads it as inkloop_ts(text, has_offset
 * ("t"/"f"), timezone of a local time), a SQL function of 0010_sql_functions.sql. */
typedef struct st_kit_ts_t {
    char text[40];  /* "YYYY-MM-DD HH:MM:SS.ffffff" plus the offset when one was given ("+05:30", "+00:00") */
    int has_offset; /* 0: local time, to be read in the record's timezone */
} kit_ts_t;

/** Parses ISO-8601 "YYYY-MM-DD[T ]HH:MM[:SS[.fraction]][Z|+HH:MM|+HHMM|+HH]" (what an HTML datetime input
 * sends is valid) with a real calendar check. Returns 0 or -1. */
int kit_parse_timestamp(const char *s, kit_ts_t *out);
/** Parses "YYYY-MM-DD" with a real calendar check. Returns 0 or -1. */
int kit_parse_date(const char *s);
/** A timestamp member: 1 when present and valid, 0 absent (or null/""), -1 after recording an error. */
int v_timestamp(validator_t *v, const char *field, kit_ts_t *out);
/** db_batch owned by req: the batch is attached to req (http_req_set_cancel), so when req ends before the
 * results arrive (the client went away, or the shutdown deadline answered it), the batch is cancelled,
 * free_data(data) runs (when free_data is not NULL) and cb never does. Otherwise cb runs as for db_batch,
 * with the hook already cleared. Returns NULL (nothing attached, nothing freed) when the pool refused, like
 * db_batch; the caller answers 503 (kit_db_busy). One batch per request at a time. */
db_query_t *kit_batch(http_req_t *req, const db_stmt_t *stmts, size_t n, db_batch_cb cb, void *data,
                      void (*free_data)(void *data));
/** kit_batch of one statement, as db_query. */
db_query_t *kit_query(http_req_t *req, const char *name, int nparams, const char *const *params,
                      db_batch_cb cb, void *data, void (*free_data)(void *data));

/** kit_paging with the values as text, ready to be statement parameters. */
int kit_paging_text(http_req_t *req, char skip[24], char limit[24]);
/** The common list: runs stmt with ($1 the caller's user id, $2 skip, $3 limit) from the query string and
 * calls cb with req as data; replies 422 (bad paging) or 503 (pool full) itself. The query is owned by req
 * (kit_query): it is cancelled when req ends first. */
void kit_user_page(http_req_t *req, const char *stmt, db_batch_cb cb);

/** Writes one row of res as a JSON object. */
typedef void (*kit_row_writer)(json_writer_t *w, const PGresult *res, int row);
/** Replies 200 with a JSON array holding write(row) for every row of res. */
void kit_reply_rows(http_req_t *req, const PGresult *res, kit_row_writer write);

/** When r failed, replies (503 when the database is unreachable or busy, 500 otherwise, logging the error
 * with action) and returns 1; returns 0 when r succeeded. */
int kit_db_failed(http_req_t *req, const db_result_t *r, const char *action);
/** Replies 503 for a query the pool refused (wait queue full). */
void kit_db_busy(http_req_t *req);
/** Appends a database timestamp (text, UTC session) as an ISO-8601 value, or null. */
void kit_jw_ts(json_writer_t *w, const char *pg_ts);

#endif
