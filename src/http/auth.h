/* Who is calling: the ROUTE_USER gate (access tokens and API keys) and the /auth and /api-keys resources. */
#ifndef INKLOOP_HTTP_AUTH_H
#define INKLOOP_HTTP_AUTH_H

#include "accounts/accounts.h"
#include "core/json.h"
#include "db/db.h"
#include "http/server.h"

/** Access tokens live this long (contract: 30 minutes). */
#define AUTH_ACCESS_TTL_S (30 * 60)

/** The ROUTE_USER gate: accepts `Authorization: Bearer <jwt>`, `Authorization: Bearer sk_...` or
 * `X-API-Key: sk_...`; sets req->user_id and calls next, or answers 401 with WWW-Authenticate: Bearer. */
void auth_user(http_req_t *req, http_handler_cb next);
/** Registers the statements of the gate, /auth and /api-keys (the accounts module's). */
int auth_prepare(db_pool_t *pool);
/** Writes the contract's user object {id, email, username, credits, plan}. */
void auth_write_user(json_writer_t *w, const accounts_user_t *u);

/** What a request presents as credentials (see auth_credential). */
typedef enum {
    AUTH_CRED_NONE, /* nothing: 401 "Not authenticated" */
    AUTH_CRED_BAD,  /* something unusable (another scheme, an access token in X-API-Key): 401 */
    AUTH_CRED_JWT,  /* a Bearer value that is not an API key: an access token to verify */
    AUTH_CRED_KEY,  /* an API key "sk_..." (Bearer or X-API-Key) */
} auth_cred_t;

/** Classifies the Authorization and X-API-Key header values (either may be NULL) and points *cred and *len at
 * the credential inside them. Authorization wins when both are present; its scheme is case-insensitive. Pure.
 */
auth_cred_t auth_credential(const char *authorization, size_t alen, const char *api_key, size_t klen,
                            const char **cred, size_t *len);
/** Finds cookie name in a Cookie header value ("a=1; b=2"); points *val and *vlen at its value without the
 * optional double quotes. Returns 1 when found (the value may be empty), 0 when not. Pure. */
int auth_cookie_value(const char *header, size_t len, const char *name, const char **val, size_t *vlen);
/** True when e looks like an email address: one @, a local part, a dotted domain, no spaces (ASCII or
 * Unicode), controls or the characters ()<>,; and at most 320 bytes. Pure. */
int auth_email_ok(const char *e);
/** True when u consists only of [A-Za-z0-9_.-] (the length is checked by the validator). Pure. */
int auth_username_ok(const char *u);

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
