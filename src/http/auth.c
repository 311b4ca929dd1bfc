/* Authentication: the ROUTE_USER gate, signup/login/refresh/logout/me, and API keys.
 *
 * Access tokens are HS256 JWTs checked without a query. API keys are looked up by their SHA-256 on every
 * request, so a revoked key stops working at once on every process; last_used_at is written at most once a
 * minute per key (the lookup says whether it is stale, and a small per-process table suppresses repeats). */
#include "http/auth.h"
#include "app.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/password.h"
#include "core/timeutil.h"
#include "http/kit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* bcrypt cost: 2^12 rounds, about a quarter second per hash on one core. */
#define PASSWORD_COST 12
/* Passwords past this many bytes are refused rather than hashed (bounds the work one request can ask for). */
#define PASSWORD_MAX_BYTES 1024

static const db_named_sql_t statements[] = {
    {"auth_key",
     "SELECT id, user_id, (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds') AS stale"
     "  FROM api_keys WHERE key_hash = $1::bytea AND revoked_at IS NULL"},
    {"auth_key_touch", "UPDATE api_keys SET last_used_at = now() WHERE id = $1"},
    {"auth_exists", "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) OR lower(username) = "
                    "lower($2)) AS taken"},
    {"auth_insert_user", "INSERT INTO users (id, email, username, password_hash) VALUES ($1, $2, $3, $4)"},
    {"auth_grant", "SELECT credits_add($1, $2::int, 'grant', 'Signup credits')"},
    {"auth_insert_refresh", "INSERT INTO refresh_tokens (user_id, token_hash, expires_at)"
                            " VALUES ($1, $2::bytea, now() + make_interval(secs => $3::int))"},
    {"auth_user_by_id", "SELECT id, email, username, credits, plan FROM users WHERE id = $1"},
    {"auth_user_by_email",
     "SELECT id, email, username, credits, plan, password_hash FROM users WHERE lower(email) = lower($1)"},
    /* Rotation with a grace window (sql/0001_init.sql explains it): the presented token is marked rotated
     * (keeping the first rotation time and first successor) and a sibling in its family is issued. The new
     * token's id ($5) is chosen by the caller so one UPDATE can record it: a second CTE updating the same row
     * would be silently ignored by PostgreSQL (a row is modified at most once per statement). */
    {"auth_rotate",
     "WITH old AS ("
     "  UPDATE refresh_tokens SET rotated_at = coalesce(rotated_at, now()),"
     "                            replaced_by = coalesce(replaced_by, $5::uuid)"
     "   WHERE token_hash = $1::bytea AND revoked_at IS NULL AND expires_at > now()"
     "     AND (rotated_at IS NULL OR rotated_at > now() - make_interval(secs => $3::int))"
     "  RETURNING id, user_id, family_id),"
     " new AS ("
     "  INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)"
     "  SELECT $5::uuid, user_id, family_id, $2::bytea, now() + make_interval(secs => $4::int) FROM old"
     "  RETURNING id, user_id)"
     " SELECT u.id, u.email, u.username, u.credits, u.plan FROM new JOIN users u ON u.id = new.user_id"},
    /* Logout ends the session: the presented token and every rotation of it (its family), so a sibling minted
     * by a concurrent refresh cannot outlive the logout. */
    {"auth_revoke", "UPDATE refresh_tokens SET revoked_at = now()"
                    " WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1::bytea)"
                    "   AND revoked_at IS NULL"},
    /* Inserts nothing for a user that no longer exists (a valid access token can outlive its user). */
    {"apikey_insert", "INSERT INTO api_keys (user_id, name, prefix, key_hash) SELECT id, $2, $3, $4::bytea "
                      "FROM users WHERE id = $1"
                      " RETURNING id, name, prefix, created_at"},
    {"apikey_list",
     "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys"
     " WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3"},
    {"apikey_revoke", "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at "
                      "IS NULL RETURNING id"},
    /* Throttling (sql/0009_auth_throttle.sql): counts one attempt for the account ($1, an email) and the
     * client address ($2) and answers how many seconds until the window ends when either is past its limit
     * ($4, $5), else 0. The keys are upserted in key order so two attempts never wait on each other's rows
     * crosswise. */
    {"auth_throttle_hit",
     "WITH k(key, lim) AS (VALUES ('account:' || lower($1), $4::int), ('address:' || $2, $5::int)),"
     " up AS ("
     "  INSERT INTO auth_throttle AS t (key, window_start, attempts)"
     "  SELECT key, now(), 1 FROM k ORDER BY key"
     "  ON CONFLICT (key) DO UPDATE SET"
     "   window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $3::int) THEN now()"
     "                       ELSE t.window_start END,"
     "   attempts = CASE WHEN t.window_start <= now() - make_interval(secs => $3::int) THEN 1"
     "                   ELSE t.attempts + 1 END"
     "  RETURNING t.key, t.attempts, t.window_start)"
     " SELECT coalesce(max(greatest(1, ceil(extract(epoch FROM up.window_start"
     "                                            + make_interval(secs => $3::int) - now()))))"
     "                 FILTER (WHERE up.attempts > k.lim), 0)::int AS retry_after"
     " FROM up JOIN k USING (key)"},
    /* A success: the account starts afresh and the address gets its attempt back. */
    {"auth_throttle_clear",
     "WITH a AS (DELETE FROM auth_throttle WHERE key = 'account:' || lower($1))"
     " UPDATE auth_throttle SET attempts = attempts - 1 WHERE key = 'address:' || $2 AND attempts > 0"},
    {"auth_throttle_prune",
     "DELETE FROM auth_throttle WHERE window_start < now() - make_interval(secs => $1::int)"},
};

int auth_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, statements, sizeof(statements) / sizeof(statements[0]));
}

/* "\x" + hex of the SHA-256 of s: the text form of a bytea parameter. */
static void sha256_param(const char *s, size_t len, char out[67])
{
    uint8_t h[32];
    crypto_sha256(s, len, h);
    out[0] = '\\';
    out[1] = 'x';
    crypto_hex(h, 32, out + 2);
}

/* A new random token: 32 bytes, URL-safe base64 (43 characters). */
static void random_token(char out[44])
{
    uint8_t raw[32];
    crypto_random(raw, sizeof(raw));
    crypto_base64(raw, sizeof(raw), out, 1);
}

static void reply_401(http_req_t *req, const char *detail)
{
    http_add_header(req, "WWW-Authenticate", "Bearer");
    http_reply_error(req, 401, detail);
}

/* ---- throttling failed logins and signups ---- */

int auth_addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    char text[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) == NULL)
            return -1;
    } else if (sa->sa_family == AF_INET6) {
        struct in6_addr a = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            if (inet_ntop(AF_INET, a.s6_addr + 12, text, sizeof(text)) == NULL)
                return -1;
        } else {
            /* One host usually holds a whole /64: counting single addresses would let it rotate freely. */
            memset(a.s6_addr + 8, 0, 8);
            if (inet_ntop(AF_INET6, &a, text, sizeof(text)) == NULL)
                return -1;
            return snprintf(out, cap, "%s/64", text) < (int)cap ? 0 : -1;
        }
    } else {
        return -1;
    }
    return snprintf(out, cap, "%s", text) < (int)cap ? 0 : -1;
}

int auth_forwarded_addr(const char *xff, size_t len, char *out, size_t cap)
{
    /* The last entry is the one the trusted proxy appended: the address it saw; earlier ones are the client's
     * word. */
    const char *end = xff + len, *start = end;
    while (start > xff && start[-1] != ',')
        start--;
    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    char text[INET6_ADDRSTRLEN + 1];
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= sizeof(text))
        return -1;
    memcpy(text, start, n);
    text[n] = '\0';
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        return -1;
    return auth_addr_text((const struct sockaddr *)&ss, out, cap);
}

/* The client's address as the throttle counts it: the peer, or with TRUST_PROXY=1 the last X-Forwarded-For
 * entry when it is an address. */
static void client_addr(http_req_t *req, char *out, size_t cap)
{
    size_t len;
    const char *xff;
    if (req->app->cfg->trust_proxy && (xff = http_header(req, "x-forwarded-for", &len)) != NULL &&
        auth_forwarded_addr(xff, len, out, cap) == 0)
        return;
    struct sockaddr_storage ss;
    if (req->h2o != NULL && req->h2o->conn->callbacks->get_peername != NULL &&
        req->h2o->conn->callbacks->get_peername(req->h2o->conn, (struct sockaddr *)&ss) > 0 &&
        auth_addr_text((const struct sockaddr *)&ss, out, cap) == 0)
        return;
    snprintf(out, cap, "unknown");
}

/* The throttle's parameters for one attempt; the strings live in t. */
typedef struct {
    char window[16], acct_limit[16], addr_limit[16];
    const char *params[5];
} throttle_params_t;

static void throttle_params(http_req_t *req, const char *email, const char *addr, throttle_params_t *t)
{
    const config_t *cfg = req->app->cfg;
    snprintf(t->window, sizeof(t->window), "%d", cfg->login_failure_window_s);
    snprintf(t->acct_limit, sizeof(t->acct_limit), "%d", cfg->login_max_failures);
    snprintf(t->addr_limit, sizeof(t->addr_limit), "%d", cfg->login_max_failures_addr);
    t->params[0] = email;
    t->params[1] = addr;
    t->params[2] = t->window;
    t->params[3] = t->acct_limit;
    t->params[4] = t->addr_limit;
}

static void on_throttle_pruned(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    (void)data;
    if (r[0].err != NULL)
        log_warn("pruning the login throttle", "%s", r[0].err);
}

/* Every so many attempts, rows whose window ended are deleted (they only ever answer "start afresh"). */
static void throttle_maybe_prune(http_req_t *req)
{
    static unsigned attempts;
    if (++attempts % 512 != 0)
        return;
    char window[16];
    snprintf(window, sizeof(window), "%d", req->app->cfg->login_failure_window_s);
    const char *params[] = {window};
    db_query(req->app->db, "auth_throttle_prune", 1, params, on_throttle_pruned, NULL);
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

/* Which keys this process touched recently, so a burst of requests with one key writes last_used_at once. */
#define TOUCH_SLOTS 256
static struct {
    char id[37];
    uint64_t at_ms;
} touched[TOUCH_SLOTS];

static void on_touch_done(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    (void)data;
    if (r[0].err != NULL)
        log_warn("recording API key use", "%s", r[0].err);
}

static void touch_key(app_t *app, const char *key_id)
{
    uint8_t h[32];
    crypto_sha256(key_id, strlen(key_id), h);
    size_t slot = h[0] % TOUCH_SLOTS;
    uint64_t now = time_mono_ms();
    if (strcmp(touched[slot].id, key_id) == 0 && now - touched[slot].at_ms < 60000)
        return;
    memcpy(touched[slot].id, key_id, 37);
    touched[slot].at_ms = now;
    const char *params[] = {key_id};
    db_query(app->db, "auth_key_touch", 1, params, on_touch_done, NULL);
}

typedef struct st_gate_t {
    http_req_t *req;
    http_handler_cb next;
} gate_t;

static void on_key_found(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    gate_t *g = data;
    http_req_t *req = g->req;
    http_handler_cb next = g->next;
    free(g);
    if (kit_db_failed(req, &r[0], "authenticating an API key"))
        return;
    if (PQntuples(r[0].res) != 1) {
        reply_401(req, "Could not validate credentials");
        return;
    }
    snprintf(req->user_id, sizeof(req->user_id), "%s", db_value(r[0].res, 0, "user_id"));
    if (db_bool(r[0].res, 0, "stale"))
        touch_key(req->app, db_value(r[0].res, 0, "id"));
    next(req);
}

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
        if (len > 256) {
            reply_401(req, "Could not validate credentials");
            return;
        }
        char hash[67];
        sha256_param(cred, len, hash);
        gate_t *g = xmalloc(sizeof(*g));
        g->req = req;
        g->next = next;
        const char *params[] = {hash};
        if (db_query(req->app->db, "auth_key", 1, params, on_key_found, g) == NULL) {
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

void auth_write_user(json_writer_t *w, const PGresult *res, int row)
{
    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, db_value(res, row, "id"));
    jw_key(w, "email");
    jw_string(w, db_value(res, row, "email"));
    jw_key(w, "username");
    jw_string(w, db_value(res, row, "username"));
    jw_key(w, "credits");
    jw_int(w, db_int(res, row, "credits"));
    jw_key(w, "plan");
    jw_string(w, db_value(res, row, "plan"));
    jw_object_end(w);
}

static void set_refresh_cookie(http_req_t *req, const char *token)
{
    char cookie[160];
    snprintf(cookie, sizeof(cookie), "refresh_token=%s; HttpOnly; Max-Age=%d; Path=/; SameSite=Lax", token,
             AUTH_REFRESH_TTL_S);
    http_add_header(req, "Set-Cookie", cookie);
}

/* {"user": ..., "access_token": ..., "token_type": "bearer"} with a fresh access token and the cookie. */
static void reply_session(http_req_t *req, const PGresult *user, const char *refresh_token)
{
    char *token = jwt_sign(req->app->cfg->jwt_secret, db_value(user, 0, "id"), time_now_us() / 1000000,
                           AUTH_ACCESS_TTL_S);
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    jw_object_begin(&w);
    jw_key(&w, "user");
    auth_write_user(&w, user, 0);
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

/* ---- signup ---- */

typedef struct st_signup_t {
    http_req_t *req;
    char id[37];
    char *email, *username, *password;
    char refresh[44];
    char addr[INET6_ADDRSTRLEN + 4]; /* the client address the throttle counts */
} signup_t;

static void signup_free(signup_t *s)
{
    free(s->email);
    free(s->username);
    if (s->password != NULL) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    free(s);
}

static void on_signup_done(const db_result_t *r, size_t n, void *data)
{
    signup_t *s = data;
    http_req_t *req = s->req;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].sqlstate, "23505") == 0) {
            http_reply_error(req, 400, "Email or username already registered");
            signup_free(s);
            return;
        }
        if (kit_db_failed(req, &r[i], "creating a user")) {
            signup_free(s);
            return;
        }
    }
    log_info("creating a user", "user %s signed up", s->id);
    reply_session(req, r[n - 1].res, s->refresh);
    signup_free(s);
}

static void on_signup_hashed(void *data, const char *hash, int ok)
{
    (void)ok;
    signup_t *s = data;
    if (hash == NULL) {
        log_error("hashing a password", "bcrypt failed");
        http_reply_error(s->req, 500, "Internal Server Error");
        signup_free(s);
        return;
    }
    app_t *app = s->req->app;
    char credits[16], ttl[16], refresh_hash[67];
    snprintf(credits, sizeof(credits), "%d", app->cfg->signup_credits);
    snprintf(ttl, sizeof(ttl), "%d", AUTH_REFRESH_TTL_S);
    random_token(s->refresh);
    sha256_param(s->refresh, strlen(s->refresh), refresh_hash);
    const char *p_user[] = {s->id, s->email, s->username, hash};
    const char *p_grant[] = {s->id, credits};
    const char *p_refresh[] = {s->id, refresh_hash, ttl};
    const char *p_id[] = {s->id};
    const char *p_clear[] = {s->email, s->addr};
    /* One atomic batch: the user exists with its credits and its session, or not at all. */
    db_stmt_t stmts[5];
    size_t k = 0;
    stmts[k++] = (db_stmt_t){"auth_insert_user", NULL, 4, p_user};
    if (app->cfg->signup_credits > 0)
        stmts[k++] = (db_stmt_t){"auth_grant", NULL, 2, p_grant};
    stmts[k++] = (db_stmt_t){"auth_insert_refresh", NULL, 3, p_refresh};
    stmts[k++] = (db_stmt_t){"auth_throttle_clear", NULL, 2, p_clear};
    stmts[k++] = (db_stmt_t){"auth_user_by_id", NULL, 1, p_id};
    if (db_batch(app->db, stmts, k, on_signup_done, s) == NULL) {
        kit_db_busy(s->req);
        signup_free(s);
    }
}

static void on_signup_checked(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    signup_t *s = data;
    if (kit_db_failed(s->req, &r[0], "counting a signup attempt") ||
        kit_db_failed(s->req, &r[1], "checking a new user's email")) {
        signup_free(s);
        return;
    }
    int retry_after = (int)db_int(r[0].res, 0, "retry_after");
    if (retry_after > 0) {
        log_debug("signing up", "attempt from %s refused: too many failures", s->addr);
        reply_throttled(s->req, retry_after);
        signup_free(s);
        return;
    }
    if (db_bool(r[1].res, 0, "taken")) {
        http_reply_error(s->req, 400, "Email or username already registered");
        signup_free(s);
        return;
    }
    if (password_hash_start(s->req->app->loop, s->password, PASSWORD_COST, on_signup_hashed, s) != 0) {
        http_reply_error(s->req, 503, "Service temporarily unavailable");
        signup_free(s);
    }
}

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
    if (password != NULL && strlen(password) > PASSWORD_MAX_BYTES)
        v_error(&v, "password", "String should have at most 1024 characters", "string_too_long");
    if (v_finish(&v) != 0) {
        v_free(&v);
        return;
    }
    signup_t *s = xcalloc(1, sizeof(*s));
    s->req = req;
    crypto_uuid4(s->id);
    s->email = xstrdup(email);
    s->username = xstrdup(username);
    s->password = xstrdup(password);
    v_free(&v);
    client_addr(req, s->addr, sizeof(s->addr));
    throttle_params_t t;
    throttle_params(req, s->email, s->addr, &t);
    const char *params[] = {s->email, s->username};
    /* The attempt is counted before anything is checked: a throttled client learns nothing about the email.
     */
    db_stmt_t stmts[] = {{"auth_throttle_hit", NULL, 5, t.params}, {"auth_exists", NULL, 2, params}};
    if (db_batch(req->app->db, stmts, 2, on_signup_checked, s) == NULL) {
        kit_db_busy(req);
        signup_free(s);
        return;
    }
    throttle_maybe_prune(req);
}

/* ---- login ---- */

typedef struct st_login_t {
    http_req_t *req;
    PGresult *user; /* kept across the password check */
    char refresh[44];
    char *email;                     /* as given, for the throttle */
    char addr[INET6_ADDRSTRLEN + 4]; /* the client address the throttle counts */
} login_t;

static void login_free(login_t *l)
{
    PQclear(l->user);
    free(l->email);
    free(l);
}

static void on_login_session(const db_result_t *r, size_t n, void *data)
{
    login_t *l = data;
    int failed = 0;
    for (size_t i = 0; i < n && !failed; i++)
        failed = kit_db_failed(l->req, &r[i], "starting a session");
    if (!failed)
        reply_session(l->req, l->user, l->refresh);
    login_free(l);
}

static void on_login_verified(void *data, const char *hash, int ok)
{
    (void)hash;
    login_t *l = data;
    if (!ok || l->user == NULL) {
        http_reply_error(l->req, 401, "Incorrect email or password");
        login_free(l);
        return;
    }
    char ttl[16], refresh_hash[67];
    snprintf(ttl, sizeof(ttl), "%d", AUTH_REFRESH_TTL_S);
    random_token(l->refresh);
    sha256_param(l->refresh, strlen(l->refresh), refresh_hash);
    const char *params[] = {db_value(l->user, 0, "id"), refresh_hash, ttl};
    const char *p_clear[] = {l->email, l->addr};
    db_stmt_t stmts[] = {{"auth_insert_refresh", NULL, 3, params}, {"auth_throttle_clear", NULL, 2, p_clear}};
    if (db_batch(l->req->app->db, stmts, 2, on_login_session, l) == NULL) {
        kit_db_busy(l->req);
        login_free(l);
    }
}

typedef struct st_login_start_t {
    login_t *l;
    char *password;
} login_start_t;

static void on_login_user(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    login_start_t *ls = data;
    login_t *l = ls->l;
    char *password = ls->password;
    free(ls);
    int retry_after = 0;
    if (kit_db_failed(l->req, &r[0], "counting a login attempt") ||
        kit_db_failed(l->req, &r[1], "looking up a user")) {
        login_free(l);
    } else if ((retry_after = (int)db_int(r[0].res, 0, "retry_after")) > 0) {
        /* Before the password and whether the user exists are looked at: the answer is the same for all. */
        log_debug("logging in", "attempt from %s refused: too many failures", l->addr);
        reply_throttled(l->req, retry_after);
        login_free(l);
    } else {
        const char *hash = NULL;
        if (PQntuples(r[1].res) == 1) {
            /* The result is freed when this callback returns; keep a copy for after the password check. */
            l->user = PQcopyResult(r[1].res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
            hash = db_value(l->user, 0, "password_hash");
        }
        /* Unknown emails are checked against a dummy hash so both answers take as long. */
        if (password_verify_start(l->req->app->loop, password, hash, on_login_verified, l) != 0) {
            http_reply_error(l->req, 503, "Service temporarily unavailable");
            login_free(l);
        }
    }
    explicit_bzero(password, strlen(password));
    free(password);
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
    if (strlen(password) > PASSWORD_MAX_BYTES || strlen(email) > 320) {
        v_free(&v);
        http_reply_error(req, 401, "Incorrect email or password");
        return;
    }
    login_t *l = xcalloc(1, sizeof(*l));
    l->req = req;
    l->email = xstrdup(email);
    client_addr(req, l->addr, sizeof(l->addr));
    login_start_t *ls = xmalloc(sizeof(*ls));
    ls->l = l;
    ls->password = xstrdup(password);
    throttle_params_t t;
    throttle_params(req, l->email, l->addr, &t);
    const char *params[] = {l->email};
    /* The attempt is counted before the password is checked, so concurrent guesses cannot overrun the limit;
     * a success gives it back. */
    db_stmt_t stmts[] = {{"auth_throttle_hit", NULL, 5, t.params}, {"auth_user_by_email", NULL, 1, params}};
    v_free(&v);
    if (db_batch(req->app->db, stmts, 2, on_login_user, ls) == NULL) {
        kit_db_busy(req);
        explicit_bzero(ls->password, strlen(ls->password));
        free(ls->password);
        free(ls);
        login_free(l);
        return;
    }
    throttle_maybe_prune(req);
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

typedef struct st_refresh_t {
    http_req_t *req;
    char refresh[44];
} refresh_t;

static void on_rotated(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    refresh_t *rt = data;
    if (!kit_db_failed(rt->req, &r[0], "refreshing a session")) {
        if (PQntuples(r[0].res) != 1)
            reply_401(rt->req, "Invalid token");
        else
            reply_session(rt->req, r[0].res, rt->refresh);
    }
    free(rt);
}

void auth_refresh(http_req_t *req)
{
    int too_long;
    char *cookie = refresh_cookie(req, &too_long);
    if (cookie == NULL) {
        reply_401(req, too_long ? "Invalid token" : "Refresh token not found");
        return;
    }
    refresh_t *rt = xcalloc(1, sizeof(*rt));
    rt->req = req;
    random_token(rt->refresh);
    char old_hash[67], new_hash[67], grace[16], ttl[16], new_id[37];
    crypto_uuid4(new_id);
    sha256_param(cookie, strlen(cookie), old_hash);
    sha256_param(rt->refresh, strlen(rt->refresh), new_hash);
    snprintf(grace, sizeof(grace), "%d", AUTH_REFRESH_GRACE_S);
    snprintf(ttl, sizeof(ttl), "%d", AUTH_REFRESH_TTL_S);
    free(cookie);
    const char *params[] = {old_hash, new_hash, grace, ttl, new_id};
    if (db_query(req->app->db, "auth_rotate", 5, params, on_rotated, rt) == NULL) {
        kit_db_busy(req);
        free(rt);
    }
}

static void reply_logged_out(http_req_t *req)
{
    http_add_header(req, "Set-Cookie", "refresh_token=\"\"; HttpOnly; Max-Age=0; Path=/; SameSite=Lax");
    buf_t body = BUF_INIT;
    buf_puts(&body, "{\"success\":true,\"message\":\"Logged out\"}");
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

static void on_revoked(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (!kit_db_failed(req, &r[0], "revoking a refresh token"))
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
    char hash[67];
    sha256_param(cookie, strlen(cookie), hash);
    free(cookie);
    const char *params[] = {hash};
    if (db_query(req->app->db, "auth_revoke", 1, params, on_revoked, req) == NULL)
        kit_db_busy(req);
}

/* ---- me, google ---- */

static void on_me(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "reading the current user"))
        return;
    if (PQntuples(r[0].res) != 1) {
        reply_401(req, "Could not validate credentials");
        return;
    }
    buf_t body = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &body);
    auth_write_user(&w, r[0].res, 0);
    http_reply_json(req, 200, &body);
    buf_free(&body);
}

void auth_me(http_req_t *req)
{
    const char *params[] = {req->user_id};
    if (db_query(req->app->db, "auth_user_by_id", 1, params, on_me, req) == NULL)
        kit_db_busy(req);
}

void auth_google(http_req_t *req)
{
    http_reply_error(req, 501, "Google sign-in is not configured");
}

/* ---- API keys ---- */

typedef struct st_apikey_new_t {
    http_req_t *req;
    char key[48];
} apikey_new_t;

static void on_apikey_created(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    apikey_new_t *k = data;
    http_req_t *req = k->req;
    if (kit_db_failed(req, &r[0], "creating an API key")) {
        /* replied */
    } else if (PQntuples(r[0].res) != 1) {
        reply_401(req, "Could not validate credentials");
    } else {
        const PGresult *res = r[0].res;
        buf_t body = BUF_INIT;
        json_writer_t w;
        jw_init(&w, &body);
        jw_object_begin(&w);
        jw_key(&w, "id");
        jw_string(&w, db_value(res, 0, "id"));
        jw_key(&w, "name");
        jw_string(&w, db_value(res, 0, "name"));
        jw_key(&w, "key");
        jw_string(&w, k->key);
        jw_key(&w, "prefix");
        jw_string(&w, db_value(res, 0, "prefix"));
        jw_key(&w, "created_at");
        kit_jw_ts(&w, db_value(res, 0, "created_at"));
        jw_object_end(&w);
        http_reply_json(req, 201, &body);
        buf_free(&body);
    }
    explicit_bzero(k->key, sizeof(k->key));
    free(k);
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
    apikey_new_t *k = xcalloc(1, sizeof(*k));
    k->req = req;
    memcpy(k->key, "sk_", 3);
    random_token(k->key + 3);
    char prefix[13], hash[67];
    memcpy(prefix, k->key, 12);
    prefix[12] = '\0';
    sha256_param(k->key, strlen(k->key), hash);
    const char *params[] = {req->user_id, name, prefix, hash};
    if (db_query(req->app->db, "apikey_insert", 4, params, on_apikey_created, k) == NULL) {
        kit_db_busy(req);
        free(k);
    }
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
    kit_user_page(req, "apikey_list", on_apikeys_listed);
}

static void on_apikey_revoked(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    http_req_t *req = data;
    if (kit_db_failed(req, &r[0], "revoking an API key"))
        return;
    if (PQntuples(r[0].res) != 1) {
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
    const char *params[] = {id, req->user_id};
    if (db_query(req->app->db, "apikey_revoke", 2, params, on_apikey_revoked, req) == NULL)
        kit_db_busy(req);
}
