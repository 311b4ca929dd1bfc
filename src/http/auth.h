/* Who is calling: the ROUTE_USER gate (access tokens and API keys) and the /auth and /api-keys resources. */
#ifndef INKLOOP_HTTP_AUTH_H
#define INKLOOP_HTTP_AUTH_H

#include "core/json.h"
#include "db/db.h"
#include "http/server.h"

/** Access tokens live this long (contract: 30 minutes). */
#define AUTH_ACCESS_TTL_S (30 * 60)
/** Refresh tokens (the cookie) live this long (contract: Max-Age=604800). */
#define AUTH_REFRESH_TTL_S 604800
/** A rotated refresh token still refreshes for this long, so concurrent refreshes with one cookie all succeed. */
#define AUTH_REFRESH_GRACE_S 60

/** The ROUTE_USER gate: accepts `Authorization: Bearer <jwt>`, `Authorization: Bearer sk_...` or
 * `X-API-Key: sk_...`; sets req->user_id and calls next, or answers 401 with WWW-Authenticate: Bearer. */
void auth_user(http_req_t *req, http_handler_cb next);
/** Registers the statements of the gate, /auth and /api-keys. */
int auth_prepare(db_pool_t *pool);
/** Writes the contract's user object {id, email, username, credits, plan} from row of res. */
void auth_write_user(json_writer_t *w, const PGresult *res, int row);

void auth_signup(http_req_t *req);
void auth_login(http_req_t *req);
void auth_refresh(http_req_t *req);
void auth_logout(http_req_t *req);
void auth_me(http_req_t *req);
void auth_google(http_req_t *req);

void apikeys_create(http_req_t *req);
void apikeys_list(http_req_t *req);
void apikeys_delete(http_req_t *req);

#endif
