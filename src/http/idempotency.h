/* Idempotency-Key (API.md section 2) for the creating POSTs: /articles, /generate, /generate/batch,
 * /campaigns.
 *
 * The key is claimed inside the same atomic batch that creates the resources (sql/0001_init.sql describes the
 * flow): idem_statements gives the two statements to put first in that batch (purge the expired key, insert
 * the key with the request hash and the ids of the resources about to be created, which the caller generates
 * up front). A duplicate blocks on the key's primary key until the first transaction ends and then fails with
 * 23505, rolling its whole batch back: nothing is created or charged twice. The handler then calls
 * idem_replay, which answers 409 for a different request, the stored response for the same one, or, in the
 * instant between the first request's commit and the storing of its response, renders the resources the key
 * names through the caller's render callback. A successful first request replies through idem_reply, which
 * stores the response before sending it, so every replay after the client saw the answer is byte-identical.
 *
 * Usage in a handler (see articles_create):
 *     idem_t idem;                               // embedded in the handler's heap state
 *     if (idem_init(&idem, req, "POST /articles") != 0) return;   // replied 422
 *     idem_hash(&idem, v.root);                 // the parsed body (NULL for none)
 *     k += idem_statements(&idem, req->user_id, "article", ids, nids, stmts + k);  // first in the batch
 *     ... on failure: if (idem_is_duplicate(&idem, results, 0)) idem_replay(req, &idem, render);
 *     ... on success: idem_reply(req, &idem, 201, &body);
 *     idem_free(&idem);
 */
#ifndef INKLOOP_HTTP_IDEMPOTENCY_H
#define INKLOOP_HTTP_IDEMPOTENCY_H

#include "core/buf.h"
#include "core/json.h"
#include "db/db.h"
#include "http/server.h"

#include <stddef.h>

/** Longest key accepted (the column's CHECK). */
#define IDEM_KEY_MAX 255

/** One request's key; statements built from it point into it, so it must stay put until db_batch returned. */
typedef struct st_idem_t {
    int present; /* 0: no Idempotency-Key header; every other function is then a no-op */
    char key[IDEM_KEY_MAX + 1];
    char endpoint[64];   /* e.g. "POST /articles" */
    char hash[67];       /* "\x" + hex SHA-256 of endpoint and canonical body (bytea text form) */
    char *_resource_ids; /* "{id,id,...}", owned */
    const char *_params[6];
    const char *_purge_params[2];
} idem_t;

/** Renders the response for resources created by a first request whose stored response is not there yet.
 * ids are the resource ids in the order given to idem_statements. It must reply to req. */
typedef void (*idem_render_cb)(http_req_t *req, const char *resource_type, char **ids, size_t nids);

/** Registers the statements of this file. */
int idem_prepare(db_pool_t *pool);
/** Reads the Idempotency-Key header of req for endpoint. Returns 0 (idem->present tells whether a key was
 * sent), or -1 after replying 422 (loc ["header", "idempotency-key"]) when the key is longer than
 * IDEM_KEY_MAX or has control characters. An empty header counts as none. */
int idem_init(idem_t *idem, http_req_t *req, const char *endpoint);
/** Sets the request hash: SHA-256 over the endpoint and the canonical form of body (object keys sorted, no
 * insignificant whitespace, numbers as written), so a retry that re-serializes the same JSON still matches.
 */
void idem_hash(idem_t *idem, yajl_val body);
/** Writes the canonical JSON of v into out (exposed for tests). */
void idem_canonical_json(buf_t *out, yajl_val v);
/** Writes into out the statements that claim the key (2 of them; 0 when no key): they must come first in the
 * creating batch. ids are the resources the batch creates, of resource_type ("article", "campaign"). */
size_t idem_statements(idem_t *idem, const char *user_id, const char *resource_type, char *const *ids,
                       size_t nids, db_stmt_t *out);
/** True when the batch failed because the key is already taken (the insert at results[first + 1] hit the
 * primary key). first is the index of the first statement idem_statements wrote. */
int idem_is_duplicate(const idem_t *idem, const db_result_t *results, size_t n, size_t first);
/** Answers a duplicate: 409 {"detail": "Idempotency-Key reused with a different request"} when the hash or
 * endpoint differs, the stored status and body (with Idempotent-Replayed: true) when present, otherwise
 * render(req, type, ids, n). idem is copied: the caller may free it once this returns. */
void idem_replay(http_req_t *req, const idem_t *idem, idem_render_cb render);
/** Replies status with body (consumed, like http_reply_json); when a key is present, stores the response with
 * the key first so later duplicates replay it exactly. */
void idem_reply(http_req_t *req, const idem_t *idem, int status, buf_t *body);
/** Frees what idem_statements allocated. */
void idem_free(idem_t *idem);

#endif
