/* Authentication over HTTP: the ROUTE_USER gate, /auth (signup, login, refresh, logout, me) and /api-keys.
 * The rules (passwords, sessions, keys, the throttle) are the accounts module's (accounts/accounts.h); these
 * handlers parse and validate the request, call it and turn its outcome into the contract's answer.
 *
 * Access tokens are HS256 JWTs checked without a query. */
#include "http/auth.h"
#include "accounts/accounts.h"
#include "app.h"
#include "core/alloc.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http/kit.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int auth_prepare(db_pool_t *pool)
{
    return accounts_prepare(pool);
}

static void reply_401(http_req_t *req, const char *detail)
{
    http_add_header(req, "WWW-Authenticate", "Bearer");
    http_reply_error(req, 401, detail);
}

/* ---- throttling failed logins and signups ---- */

/* The client's address as the throttle counts it: the peer, or with TRUST_PROXY=1 the last X-Forwarded-For
 * entry when it is an address. */
static void client_addr(http_req_t *req, char *out, size_t cap)
{
    size_t len;
    const char *xff;
    if (req->app->cfg->trust_proxy && (xff = http_header(req, "x-forwarded-for", &len)) != NULL &&
        accounts_forwarded_addr(xff, len, out, cap) == 0)
        return;
    struct sockaddr_storage ss;
    if (req->h2o != NULL && req->h2o->conn->callbacks->get_peername != NULL &&
        req->h2o->conn->callbacks->get_peername(req->h2o->conn, (struct sockaddr *)&ss) > 0 &&
        accounts_addr_text((const struct sockaddr *)&ss, out, cap) == 0)
        return;
    snprintf(out, cap, "unknown");
}

/* The answer to an attempt past the limit: the same for every email, known or not. */
static void reply_throttled(http_req_t *req, int retry_after)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", retry_after);
    http_add_header(req, "Retry-After", v);
    http_reply_error(req, 429, "Too many failed attempts, try again later");
}

/* ---- the ROUTE_USER gate ---- */

static int is_key(const char *c, size_t n)
{
    return n > 3 && memcmp(c, "sk_", 3) == 0;
}

auth_cred_t auth_credential(const char *authorization, size_t alen, const char *api_key, size_t klen,
                            const char **cred, size_t *len)
{
    const char *c;
    size_t n;
    *cred = NULL;
    *len = 0;
    if (authorization != NULL) {
        c = authorization;
        n = alen;
        while (n > 0 && (c[n - 1] == ' ' || c[n - 1] == '\t'))
            n--;
        if (n < 6 || strncasecmp(c, "Bearer", 6) != 0 || (n > 6 && c[6] != ' ' && c[6] != '\t'))
            return n == 0 ? AUTH_CRED_NONE : AUTH_CRED_BAD;
        c += 6;
        n -= 6;
        while (n > 0 && (*c == ' ' || *c == '\t')) {
            c++;
            n--;
        }
    } else if (api_key != NULL) {
        c = api_key;
        n = klen;
        while (n > 0 && (*c == ' ' || *c == '\t')) {
            c++;
            n--;
        }
        while (n > 0 && (c[n - 1] == ' ' || c[n - 1] == '\t'))
            n--;
        /* X-API-Key carries API keys only; an access token there is a client bug, not a credential. */
        if (n > 0 && !is_key(c, n))
            return AUTH_CRED_BAD;
    } else {
        return AUTH_CRED_NONE;
    }
    if (n == 0)
        return AUTH_CRED_NONE;
    *cred = c;
    *len = n;
    return is_key(c, n) ? AUTH_CRED_KEY : AUTH_CRED_JWT;
}

typedef struct st_gate_t {
    http_req_t *req;
    http_handler_cb next;
} gate_t;

static void on_key_checked(void *data, const char *user_id, const db_result_t *failure)
{
    gate_t *g = data;
    http_req_t *req = g->req;
    http_handler_cb next = g->next;
    free(g);
    if (failure != NULL) {
        kit_db_failed(req, failure, "authenticating an API key");
        return;
    }
    if (user_id == NULL) {
        reply_401(req, "Could not validate credentials");
        return;
    }
    snprintf(req->user_id, sizeof(req->user_id), "%s", user_id);
    next(req);
}

void auth_user(http_req_t *req, http_handler_cb next)
{
    size_t alen = 0, klen = 0, len = 0;
    const char *a = http_header(req, "authorization", &alen);
    const char *k = http_header(req, "x-api-key", &klen);
    const char *cred = NULL;
    switch (auth_credential(a, alen, k, klen, &cred, &len)) {
    case AUTH_CRED_NONE:
        reply_401(req, "Not authenticated");
        return;
    case AUTH_CRED_BAD:
        reply_401(req, "Could not validate credentials");
        return;
    case AUTH_CRED_JWT:
        break;
    case AUTH_CRED_KEY: {
        if (len > ACCOUNTS_KEY_MAX) {
            reply_401(req, "Could not validate credentials");
            return;
        }
        gate_t *g = xmalloc(sizeof(*g));
        g->req = req;
        g->next = next;
        if (accounts_key_check(req->app->db, cred, len, on_key_checked, g) != 0) {
            free(g);
            kit_db_busy(req);
        }
        return;
    }
    }
    /* The subject must be a UUID: handlers pass user_id to SQL as a uuid, and a signed token with any other
     * sub (a bug elsewhere, or a leaked secret) must be a 401, never a 500 from a failed cast. */
    char err[64], sub[64];
    int rc = jwt_verify(req->app->cfg->jwt_secret, cred, len, time_now_us() / 1000000, AUTH_ACCESS_TTL_S, sub,
                        sizeof(sub), err, sizeof(err));
    if (rc == 0 && kit_uuid(sub, req->user_id) != 0) {
        snprintf(err, sizeof(err), "subject is not a UUID");
        rc = -1;
    }
    if (rc != 0) {
        log_debug("authenticating a request", "access token refused: %s", err);
        req->user_id[0] = '\0';
        reply_401(req, "Could not validate credentials");
        return;
    }
    next(req);
}

/* ---- replies shared by signup, login and refresh ---- */

void auth_write_user(json_writer_t *w, const accounts_user_t *u)
{
    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, u->id);
    jw_key(w, "email");
    jw_string(w, u->email);
    jw_key(w, "username");
    jw_string(w, u->username);
    jw_key(w, "credits");
    jw_int(w, u->credits);
    jw_key(w, "plan");
    jw_string(w, u->plan);
    jw_object_end(w);
}

static void set_refresh_cookie(http_req_t *req, const char *token)
{
    char cookie[160];
    snprintf(cookie, sizeof(cookie), "refresh_token=%s; HttpOnly; Max-Age=%d; Path=/; SameSite=Lax", token,
             ACCOUNTS_REFRESH_TTL_S);
    http_add_header(req, "Set-Cookie", cookie);
}

/* {"user": ..., "access_token": ..., "token_type": "bearer"} with a fresh access token and the cookie. */
static void reply_session(http_req_t *req, const accounts_user_t *user, const char *refresh_token)
{
    char *token = jwt_sign(req->app->cfg->jwt_secret, user->id, time_now_us() / 1000000, AUTH_ACCESS_TTL_S);
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "user");
    auth_write_user(&w, user);
    jw_key(&w, "access_token");
    jw_string(&w, token);
    jw_key(&w, "token_type");
    jw_string(&w, "bearer");
    jw_object_end(&w);
    set_refresh_cookie(req, refresh_token);
    http_reply_json(req, 200, &body);
    buf_free(&body);
    free(token);
}

/* Answers the outcomes every accounts operation can have; returns 1 when it did (status not handled by the
 * caller). */
static int reply_common(http_req_t *req, const accounts_outcome_t *out)
{
    switch (out->status) {
    case ACCOUNTS_FAILED:
        kit_db_failed(req, out->failure, out->action);
        return 1;
    case ACCOUNTS_BUSY:
        kit_db_busy(req);
        return 1;
    case ACCOUNTS_INTERNAL:
        http_reply_error(req, 500, "Internal Server Error");
        return 1;
    case ACCOUNTS_THROTTLED:
        reply_throttled(req, out->retry_after);
        return 1;
    case ACCOUNTS_OK:
    case ACCOUNTS_TAKEN:
    case ACCOUNTS_DENIED:
        break;
    }
    return 0;
}

/* ---- signup and login ---- */

/* The code point of the UTF-8 sequence at p (already validated by the JSON parser); *n gets its length. */
static unsigned utf8_cp(const unsigned char *p, size_t *n)
{
    if (p[0] < 0x80) {
        *n = 1;
        return p[0];
    }
    if ((p[0] & 0xe0) == 0xc0 && p[1] != 0) {
        *n = 2;
        return ((p[0] & 0x1fu) << 6) | (p[1] & 0x3fu);
    }
    if ((p[0] & 0xf0) == 0xe0 && p[1] != 0 && p[2] != 0) {
        *n = 3;
        return ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
    }
    if ((p[0] & 0xf8) == 0xf0 && p[1] != 0 && p[2] != 0 && p[3] != 0) {
        *n = 4;
        return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3fu) << 12) | ((p[2] & 0x3fu) << 6) | (p[3] & 0x3fu);
    }
    *n = 1;
    return 0xfffd;
}

/* Spaces, controls and invisible formatting characters, ASCII or not: none belongs in an address, and a
 * no-break or zero-width space would make two addresses that look the same. */
static int invisible(unsigned cp)
{
    return cp <= ' ' || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) ||
           (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 || cp == 0xfeff || cp == 0xfffd;
}

int auth_email_ok(const char *e)
{
    const char *at = strchr(e, '@');
    if (at == NULL || at == e || strchr(at + 1, '@') != NULL || strlen(e) > 320)
        return 0;
    const char *dot = strrchr(at + 1, '.');
    if (dot == NULL || dot == at + 1 || dot[1] == '\0')
        return 0;
    for (const unsigned char *p = (const unsigned char *)e; *p;) {
        size_t n;
        unsigned cp = utf8_cp(p, &n);
        if (invisible(cp) || cp == '(' || cp == ')' || cp == ',' || cp == ';' || cp == '<' || cp == '>')
            return 0;
        p += n;
    }
    return 1;
}

int auth_username_ok(const char *u)
{
    for (; *u; u++)
        if (!((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z') || (*u >= '0' && *u <= '9') || *u == '_' ||
              *u == '.' || *u == '-'))
            return 0;
    return 1;
}

static void on_signed_up(void *data, const accounts_outcome_t *out)
{
    http_req_t *req = data;
    if (reply_common(req, out))
        return;
    if (out->status == ACCOUNTS_TAKEN)
        http_reply_error(req, 400, "Email or username already registered");
    else
        reply_session(req, out->user, out->refresh_token);
}

void auth_signup(http_req_t *req)
{
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        return;
    }
    const char *email = v_string(&v, "email", 1, 0, 320, 0);
    const char *username = v_string(&v, "username", 1, 3, 50, 0);
    const char *password = v_string(&v, "password", 1, 8, 0, 0);
    if (email != NULL && !auth_email_ok(email))
        v_error(&v, "email", "value is not a valid email address", "value_error");
    if (username != NULL && !auth_username_ok(username))
        v_error(&v, "username", "String should match pattern '^[A-Za-z0-9_.-]+$'", "string_pattern_mismatch");
    if (password != NULL && strlen(password) > ACCOUNTS_PASSWORD_MAX_BYTES)
        v_error(&v, "password", "String should have at most 1024 characters", "string_too_long");
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    char addr[INET6_ADDRSTRLEN + 4];
    client_addr(req, addr, sizeof(addr));
    accounts_attempt_t a = {.email = email, .username = username, .password = password, .addr = addr};
    if (accounts_signup(req->app->loop, req->app->db, req->app->cfg, &a, on_signed_up, req) != 0)
        kit_db_busy(req);
    v_free(&v);
}

static void on_logged_in(void *data, const accounts_outcome_t *out)
{
    http_req_t *req = data;
    if (reply_common(req, out))
        return;
    if (out->status != ACCOUNTS_OK)
        http_reply_error(req, 401, "Incorrect email or password");
    else
        reply_session(req, out->user, out->refresh_token);
}

void auth_login(http_req_t *req)
{
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        return;
    }
    const char *email = v_string(&v, "email", 1, 0, 0, 0);
    const char *password = v_string(&v, "password", 1, 0, 0, 0);
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    if (strlen(password) > ACCOUNTS_PASSWORD_MAX_BYTES || strlen(email) > 320) {
        v_free(&v);
        http_reply_error(req, 401, "Incorrect email or password");
        return;
    }
    char addr[INET6_ADDRSTRLEN + 4];
    client_addr(req, addr, sizeof(addr));
    accounts_attempt_t a = {.email = email, .password = password, .addr = addr};
    if (accounts_login(req->app->loop, req->app->db, req->app->cfg, &a, on_logged_in, req) != 0)
        kit_db_busy(req);
    v_free(&v);
}

/* ---- refresh and logout ---- */

int auth_cookie_value(const char *header, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *end = header + len, *p = header;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL) {
            const char *ne = eq;
            while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
                ne--;
            if ((size_t)(ne - p) == nlen && memcmp(p, name, nlen) == 0) {
                const char *v = eq + 1, *ve = stop;
                while (v < ve && (*v == ' ' || *v == '\t'))
                    v++;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
                    v++;
                    ve--;
                }
                *val = v;
                *vlen = (size_t)(ve - v);
                return 1;
            }
        }
        p = stop;
    }
    return 0;
}

/* Longest refresh cookie looked up; ours are 43 characters, anything far longer is refused unhashed. */
#define REFRESH_COOKIE_MAX 512

/* The refresh_token cookie's value (malloc'd), NULL when absent or empty; *too_long set when it is present
 * but longer than any token we issue. */
static char *refresh_cookie(http_req_t *req, int *too_long)
{
    size_t len, vlen;
    const char *v;
    *too_long = 0;
    const char *c = http_header(req, "cookie", &len);
    if (c == NULL || !auth_cookie_value(c, len, "refresh_token", &v, &vlen) || vlen == 0)
        return NULL;
    if (vlen > REFRESH_COOKIE_MAX) {
        *too_long = 1;
        return NULL;
    }
    return xstrndup(v, vlen);
}

static void on_refreshed(void *data, const accounts_outcome_t *out)
{
    http_req_t *req = data;
    if (reply_common(req, out))
        return;
    if (out->status != ACCOUNTS_OK)
        reply_401(req, "Invalid token");
    else
        reply_session(req, out->user, out->refresh_token);
}

void auth_refresh(http_req_t *req)
{
    int too_long;
    char *cookie = refresh_cookie(req, &too_long);
    if (cookie == NULL) {
        reply_401(req, too_long ? "Invalid token" : "Refresh token not found");
        return;
    }
    if (accounts_refresh(req->app->db, cookie, on_refreshed, req) != 0)
        kit_db_busy(req);
    free(cookie);
}

static void reply_logged_out(http_req_t *req)
{
    http_add_header(req, "Set-Cookie", "refresh_token=\"\"; HttpOnly; Max-Age=0; Path=/; SameSite=Lax");
    buf_t body = BUF_INIT;
    buf_puts(&body, "{\"success\":true,\"message\":\"Logged out\"}");
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

static void on_logged_out(void *data, const accounts_outcome_t *out)
{
    http_req_t *req = data;
    if (!reply_common(req, out))
        reply_logged_out(req);
}

void auth_logout(http_req_t *req)
{
    int too_long;
    char *cookie = refresh_cookie(req, &too_long);
    if (cookie == NULL) {
        reply_logged_out(req);
        return;
    }
    if (accounts_logout(req->app->db, cookie, on_logged_out, req) != 0)
        kit_db_busy(req);
    free(cookie);
}

/* ---- me, google ---- */

static void on_me(void *data, const accounts_outcome_t *out)
{
    http_req_t *req = data;
    if (reply_common(req, out))
        return;
    if (out->status != ACCOUNTS_OK) {
        reply_401(req, "Could not validate credentials");
        return;
    }
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    auth_write_user(&w, out->user);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void auth_me(http_req_t *req)
{
    if (accounts_user_get(req->app->db, req->user_id, on_me, req) != 0)
        kit_db_busy(req);
}

void auth_google(http_req_t *req)
{
    http_reply_error(req, 501, "Google sign-in is not configured");
}

/* ---- API keys ---- */

static void on_apikey_created(void *data, const accounts_new_key_t *k, const db_result_t *failure)
{
    http_req_t *req = data;
    if (failure != NULL) {
        kit_db_failed(req, failure, "creating an API key");
        return;
    }
    if (k == NULL) {
        reply_401(req, "Could not validate credentials");
        return;
    }
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "id");
    jw_string(&w, k->id);
    jw_key(&w, "name");
    jw_string(&w, k->name);
    jw_key(&w, "key");
    jw_string(&w, k->key);
    jw_key(&w, "prefix");
    jw_string(&w, k->prefix);
    jw_key(&w, "created_at");
    kit_jw_ts(&w, k->created_at);
    jw_object_end(&w);
    http_reply_json(req, 201, &body);
    buf_free(&body);
}

void apikeys_create(http_req_t *req)
{
    validator_t v;
    if (v_parse_body(&v, req, 0) != 0) {
        v_free(&v);
        return;
    }
    const char *name = v_string(&v, "name", 1, 1, 200, 0);
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    if (accounts_key_create(req->app->db, req->user_id, name, on_apikey_created, req) != 0)
        kit_db_busy(req);
    v_free(&v);
}

static void write_apikey(json_writer_t *w, const PGresult *res, int row)
{
    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, db_value(res, row, "id"));
    jw_key(w, "name");
    jw_string(w, db_value(res, row, "name"));
    jw_key(w, "prefix");
    jw_string(w, db_value(res, row, "prefix"));
    jw_key(w, "created_at");
    kit_jw_ts(w, db_value(res, row, "created_at"));
    jw_key(w, "last_used_at");
    kit_jw_ts(w, db_value(res, row, "last_used_at"));
    jw_key(w, "revoked_at");
    kit_jw_ts(w, db_value(res, row, "revoked_at"));
    jw_object_end(w);
}

static void on_apikeys_listed(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "listing API keys"))
        return;
    kit_reply_rows(req, r[0].res, write_apikey);
}

void apikeys_list(http_req_t *req)
{
    kit_user_page(req, ACCOUNTS_KEY_LIST_STMT, on_apikeys_listed);
}

static void on_apikey_revoked(void *data, int found, const db_result_t *failure)
{
    http_req_t *req = data;
    if (failure != NULL) {
        kit_db_failed(req, failure, "revoking an API key");
        return;
    }
    if (!found) {
        http_reply_error(req, 404, "API key not found");
        return;
    }
    buf_t body = BUF_INIT;
    buf_puts(&body, "{\"success\":true,\"message\":\"API key revoked\"}");
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void apikeys_delete(http_req_t *req)
{
    char id[37];
    if (kit_path_uuid(req, 0, "key_id", id) != 0)
        return;
    if (accounts_key_revoke(req->app->db, id, req->user_id, on_apikey_revoked, req) != 0)
        kit_db_busy(req);
}
