/* Idempotency-Key: claim inside the creating transaction, replay of duplicates (see idempotency.h). */
#include "http/idempotency.h"
#include "app.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/log.h"
#include "http/kit.h"
#include "queries.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The index of idem_insert among the two statements idem_statements writes. */
#define IDEM_INSERT_OFFSET 1

int idem_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_idempotency, queries_idempotency_count);
}

int idem_init(idem_t *idem, http_req_t *req, const char *endpoint)
{
    memset(idem, 0, sizeof(*idem));
    snprintf(idem->endpoint, sizeof(idem->endpoint), "%s", endpoint);
    size_t len = 0;
    const char *h = http_header(req, "idempotency-key", &len);
    while (h != NULL && len > 0 && (h[0] == ' ' || h[0] == '\t')) {
        h++;
        len--;
    }
    while (h != NULL && len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
        len--;
    if (h == NULL || len == 0)
        return 0;
    int bad = len > IDEM_KEY_MAX;
    for (size_t i = 0; !bad && i < len; i++)
        if ((unsigned char)h[i] < 0x20 || h[i] == 0x7f)
            bad = 1;
    if (bad) {
        http_reply_invalid(req, "header", "idempotency-key",
                           "Idempotency-Key must be 1 to 255 characters without control characters",
                           "value_error");
        return -1;
    }
    memcpy(idem->key, h, len);
    idem->key[len] = '\0';
    idem->present = 1;
    return 0;
}

/* Object keys in byte order, so {"a":1,"b":2} and {"b":2,"a":1} hash alike. */
static int key_order(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

void idem_canonical_json(buf_t *out, yajl_val v)
{
    if (v == NULL || YAJL_IS_NULL(v)) {
        buf_puts(out, "null");
    } else if (YAJL_IS_TRUE(v)) {
        buf_puts(out, "true");
    } else if (YAJL_IS_FALSE(v)) {
        buf_puts(out, "false");
    } else if (YAJL_IS_STRING(v)) {
        json_put_string(out, v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        buf_puts(out, v->u.number.r);
    } else if (YAJL_IS_ARRAY(v)) {
        buf_putc(out, '[');
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i > 0)
                buf_putc(out, ',');
            idem_canonical_json(out, v->u.array.values[i]);
        }
        buf_putc(out, ']');
    } else if (YAJL_IS_OBJECT(v)) {
        size_t n = v->u.object.len;
        /* Sort indexes by key: keep pairs together by sorting pointers to the keys, then map back. */
        const char **keys = xmalloc((n > 0 ? n : 1) * sizeof(*keys));
        for (size_t i = 0; i < n; i++)
            keys[i] = v->u.object.keys[i];
        qsort(keys, n, sizeof(*keys), key_order);
        buf_putc(out, '{');
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                buf_putc(out, ',');
            json_put_string(out, keys[i]);
            buf_putc(out, ':');
            /* The first member with this key, which is also the one the handlers read (json_get). */
            idem_canonical_json(out, json_get(v, keys[i]));
        }
        buf_putc(out, '}');
        free(keys);
    } else {
        buf_puts(out, "null");
    }
}

void idem_hash(idem_t *idem, yajl_val body)
{
    if (!idem->present)
        return;
    buf_t b = BUF_INIT;
    buf_puts(&b, idem->endpoint);
    buf_putc(&b, '\n');
    idem_canonical_json(&b, body);
    uint8_t h[32];
    crypto_sha256(b.data, b.len, h);
    buf_free(&b);
    idem->hash[0] = '\\';
    idem->hash[1] = 'x';
    crypto_hex(h, 32, idem->hash + 2);
}

size_t idem_statements(idem_t *idem, const char *user_id, const char *resource_type, char *const *ids,
                       size_t nids, db_stmt_t *out)
{
    if (!idem->present)
        return 0;
    buf_t b = BUF_INIT;
    buf_putc(&b, '{');
    for (size_t i = 0; i < nids; i++) {
        if (i > 0)
            buf_putc(&b, ',');
        buf_puts(&b, ids[i]);
    }
    buf_putc(&b, '}');
    free(idem->_resource_ids);
    idem->_resource_ids = buf_release(&b);
    idem->_purge_params[0] = user_id;
    idem->_purge_params[1] = idem->key;
    idem->_params[0] = user_id;
    idem->_params[1] = idem->key;
    idem->_params[2] = idem->endpoint;
    idem->_params[3] = idem->hash;
    idem->_params[4] = resource_type;
    idem->_params[5] = idem->_resource_ids;
    out[0] = (db_stmt_t){"idem_purge", NULL, 2, idem->_purge_params};
    out[IDEM_INSERT_OFFSET] = (db_stmt_t){"idem_insert", NULL, 6, idem->_params};
    return 2;
}

int idem_is_duplicate(const idem_t *idem, const db_result_t *results, size_t n, size_t first)
{
    return idem->present && first + IDEM_INSERT_OFFSET < n &&
           strcmp(results[first + IDEM_INSERT_OFFSET].sqlstate, "23505") == 0;
}

void idem_free(idem_t *idem)
{
    free(idem->_resource_ids);
    idem->_resource_ids = NULL;
}

/* ---- replay ---- */

typedef struct st_replay_t {
    http_req_t *req;
    idem_render_cb render;
} replay_t;

/* Splits PostgreSQL's text form of uuid[] ("{a,b}") into malloc'd strings; returns the count. */
static size_t split_uuid_array(const char *text, char ***out)
{
    *out = NULL;
    if (text == NULL || text[0] != '{')
        return 0;
    size_t n = 0, cap = 0;
    char **ids = NULL;
    const char *p = text + 1;
    while (*p != '\0' && *p != '}') {
        const char *e = p;
        while (*e != '\0' && *e != ',' && *e != '}')
            e++;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            ids = xrealloc(ids, cap * sizeof(*ids));
        }
        ids[n++] = xstrndup(p, (size_t)(e - p));
        p = *e == ',' ? e + 1 : e;
    }
    *out = ids;
    return n;
}

static void on_key_read(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    replay_t *rp = data;
    http_req_t *req = rp->req;
    idem_render_cb render = rp->render;
    free(rp);
    if (kit_db_failed(req, &r[0], "reading an idempotency key"))
        return;
    const PGresult *res = r[0].res;
    if (PQntuples(res) != 1) {
        /* The key expired (and was purged) between the failed claim and this read: extremely rare; the client
         * may simply retry. */
        http_reply_error(req, 409, "Idempotency-Key is in use by another request");
        return;
    }
    if (!db_bool(res, 0, "same")) {
        http_reply_error(req, 409, "Idempotency-Key reused with a different request");
        return;
    }
    const char *body = db_value(res, 0, "response_body");
    if (body != NULL) {
        http_add_header(req, "Idempotent-Replayed", "true");
        http_reply(req, (int)db_int(res, 0, "response_status"), "application/json", body, strlen(body));
        return;
    }
    char **ids;
    size_t nids = split_uuid_array(db_value(res, 0, "resource_ids"), &ids);
    http_add_header(req, "Idempotent-Replayed", "true");
    render(req, db_value(res, 0, "resource_type"), ids, nids);
    for (size_t i = 0; i < nids; i++)
        free(ids[i]);
    free(ids);
}

void idem_replay(http_req_t *req, const idem_t *idem, idem_render_cb render)
{
    replay_t *rp = xmalloc(sizeof(*rp));
    rp->req = req;
    rp->render = render;
    const char *params[] = {req->user_id, idem->key, idem->endpoint, idem->hash};
    if (db_query(req->app->db, "idem_get", 4, params, on_key_read, rp) == NULL) {
        free(rp);
        kit_db_busy(req);
    }
}

/* ---- storing the first response ---- */

typedef struct st_store_t {
    http_req_t *req;
    int status;
    buf_t body;
} store_t;

static void on_stored(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    store_t *s = data;
    /* The resources exist and the key names them, so a failure here only means duplicates render the
     * resources instead of replaying these bytes: reply anyway. */
    if (r[0].err != NULL)
        log_warn("storing an idempotent response", "%s", r[0].err);
    http_reply_json(s->req, s->status, &s->body);
    buf_free(&s->body);
    free(s);
}

void idem_reply(http_req_t *req, const idem_t *idem, int status, buf_t *body)
{
    if (!idem->present) {
        http_reply_json(req, status, body);
        return;
    }
    store_t *s = xmalloc(sizeof(*s));
    s->req = req;
    s->status = status;
    s->body = *body;
    *body = BUF_INIT;
    char st[16];
    snprintf(st, sizeof(st), "%d", status);
    const char *params[] = {req->user_id, idem->key, st, buf_cstr(&s->body)};
    if (db_query(req->app->db, "idem_store", 4, params, on_stored, s) == NULL) {
        log_warn("storing an idempotent response", "pool busy; replying without storing");
        http_reply_json(req, status, &s->body);
        buf_free(&s->body);
        free(s);
    }
}
