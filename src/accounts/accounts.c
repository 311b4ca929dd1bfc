/* The accounts domain (see accounts.h): each operation is a short chain of batches and, for passwords, one
 * bcrypt job on the thread pool; its state lives in one struct freed by the step that calls back. */
#include "accounts/accounts.h"

#include "core/alloc.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/password.h"
#include "core/timeutil.h"
#include "queries.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bcrypt cost: 2^12 rounds, about a quarter second per hash on one core. */
#define PASSWORD_COST 12

int accounts_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_accounts, queries_accounts_count);
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

static void user_from_row(accounts_user_t *u, const PGresult *res, int row)
{
    snprintf(u->id, sizeof(u->id), "%s", db_value(res, row, "id"));
    snprintf(u->email, sizeof(u->email), "%s", db_value(res, row, "email"));
    snprintf(u->username, sizeof(u->username), "%s", db_value(res, row, "username"));
    snprintf(u->plan, sizeof(u->plan), "%s", db_value(res, row, "plan"));
    u->credits = db_int(res, row, "credits");
}

static void call_status(accounts_cb cb, void *data, accounts_status_t status)
{
    accounts_outcome_t out = {.status = status};
    cb(data, &out);
}

static void call_failed(accounts_cb cb, void *data, const db_result_t *r, const char *action)
{
    accounts_outcome_t out = {.status = ACCOUNTS_FAILED, .failure = r, .action = action};
    cb(data, &out);
}

/* Calls back with the user of row 0 of res and the new session's token. */
static void call_session(accounts_cb cb, void *data, const PGresult *res, const char *token)
{
    accounts_user_t u;
    user_from_row(&u, res, 0);
    accounts_outcome_t out = {.status = ACCOUNTS_OK, .user = &u, .refresh_token = token};
    cb(data, &out);
}

/* ---- the throttle of logins and signups ---- */

int accounts_addr_text(const struct sockaddr *sa, char *out, size_t cap)
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

int accounts_forwarded_addr(const char *xff, size_t len, char *out, size_t cap)
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
    return accounts_addr_text((const struct sockaddr *)&ss, out, cap);
}

/* The throttle's parameters for one attempt; the strings live in t. */
typedef struct {
    char window[16], acct_limit[16], addr_limit[16];
    const char *params[5];
} throttle_params_t;

static void throttle_params(const config_t *cfg, const char *email, const char *addr, throttle_params_t *t)
{
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
static void throttle_maybe_prune(db_pool_t *db, const config_t *cfg)
{
    static unsigned attempts;
    if (++attempts % 512 != 0)
        return;
    char window[16];
    snprintf(window, sizeof(window), "%d", cfg->login_failure_window_s);
    const char *params[] = {window};
    db_query(db, "auth_throttle_prune", 1, params, on_throttle_pruned, NULL);
}

/* ---- signup ---- */

typedef struct st_signup_t {
    uv_loop_t *loop;
    db_pool_t *db;
    const config_t *cfg;
    accounts_cb cb;
    void *data;
    char id[37];
    char *email, *username, *password, *addr;
    char refresh[44];
} signup_t;

static void signup_free(signup_t *s)
{
    free(s->email);
    free(s->username);
    free(s->addr);
    if (s->password != NULL) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    free(s);
}

static void on_signup_done(const db_result_t *r, size_t n, void *data)
{
    signup_t *s = data;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].sqlstate, "23505") == 0) {
            call_status(s->cb, s->data, ACCOUNTS_TAKEN);
            signup_free(s);
            return;
        }
        if (r[i].err != NULL) {
            call_failed(s->cb, s->data, &r[i], "creating a user");
            signup_free(s);
            return;
        }
    }
    log_info("creating a user", "user %s signed up", s->id);
    call_session(s->cb, s->data, r[n - 1].res, s->refresh);
    signup_free(s);
}

static void on_signup_hashed(void *data, const char *hash, int ok)
{
    (void)ok;
    signup_t *s = data;
    if (hash == NULL) {
        log_error("hashing a password", "bcrypt failed");
        call_status(s->cb, s->data, ACCOUNTS_INTERNAL);
        signup_free(s);
        return;
    }
    char credits[16], ttl[16], refresh_hash[67];
    snprintf(credits, sizeof(credits), "%d", s->cfg->signup_credits);
    snprintf(ttl, sizeof(ttl), "%d", ACCOUNTS_REFRESH_TTL_S);
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
    if (s->cfg->signup_credits > 0)
        stmts[k++] = (db_stmt_t){"auth_grant", NULL, 2, p_grant};
    stmts[k++] = (db_stmt_t){"auth_insert_refresh", NULL, 3, p_refresh};
    stmts[k++] = (db_stmt_t){"auth_throttle_clear", NULL, 2, p_clear};
    stmts[k++] = (db_stmt_t){"auth_user_by_id", NULL, 1, p_id};
    if (db_batch(s->db, stmts, k, on_signup_done, s) == NULL) {
        call_status(s->cb, s->data, ACCOUNTS_BUSY);
        signup_free(s);
    }
}

static void on_signup_checked(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    signup_t *s = data;
    if (r[0].err != NULL || r[1].err != NULL) {
        int first = r[0].err != NULL ? 0 : 1;
        call_failed(s->cb, s->data, &r[first],
                    first == 0 ? "counting a signup attempt" : "checking a new user's email");
        signup_free(s);
        return;
    }
    int retry_after = (int)db_int(r[0].res, 0, "retry_after");
    if (retry_after > 0) {
        log_debug("signing up", "attempt from %s refused: too many failures", s->addr);
        accounts_outcome_t out = {.status = ACCOUNTS_THROTTLED, .retry_after = retry_after};
        s->cb(s->data, &out);
        signup_free(s);
        return;
    }
    if (db_bool(r[1].res, 0, "taken")) {
        call_status(s->cb, s->data, ACCOUNTS_TAKEN);
        signup_free(s);
        return;
    }
    if (password_hash_start(s->loop, s->password, PASSWORD_COST, on_signup_hashed, s) != 0) {
        call_status(s->cb, s->data, ACCOUNTS_BUSY);
        signup_free(s);
    }
}

int accounts_signup(uv_loop_t *loop, db_pool_t *db, const config_t *cfg, const accounts_attempt_t *a,
                    accounts_cb cb, void *data)
{
    signup_t *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->db = db;
    s->cfg = cfg;
    s->cb = cb;
    s->data = data;
    crypto_uuid4(s->id);
    s->email = xstrdup(a->email);
    s->username = xstrdup(a->username);
    s->password = xstrdup(a->password);
    s->addr = xstrdup(a->addr);
    throttle_params_t t;
    throttle_params(cfg, s->email, s->addr, &t);
    const char *params[] = {s->email, s->username};
    /* The attempt is counted before anything is checked: a throttled client learns nothing about the email.
     */
    db_stmt_t stmts[] = {{"auth_throttle_hit", NULL, 5, t.params}, {"auth_exists", NULL, 2, params}};
    if (db_batch(db, stmts, 2, on_signup_checked, s) == NULL) {
        signup_free(s);
        return -1;
    }
    throttle_maybe_prune(db, cfg);
    return 0;
}

/* ---- login ---- */

typedef struct st_login_t {
    uv_loop_t *loop;
    db_pool_t *db;
    accounts_cb cb;
    void *data;
    PGresult *user; /* kept across the password check */
    char refresh[44];
    char *email, *addr, *password; /* the password only until it was checked */
} login_t;

static void login_forget_password(login_t *l)
{
    if (l->password != NULL) {
        explicit_bzero(l->password, strlen(l->password));
        free(l->password);
        l->password = NULL;
    }
}

static void login_free(login_t *l)
{
    login_forget_password(l);
    PQclear(l->user);
    free(l->email);
    free(l->addr);
    free(l);
}

static void on_login_session(const db_result_t *r, size_t n, void *data)
{
    login_t *l = data;
    for (size_t i = 0; i < n; i++) {
        if (r[i].err != NULL) {
            call_failed(l->cb, l->data, &r[i], "starting a session");
            login_free(l);
            return;
        }
    }
    call_session(l->cb, l->data, l->user, l->refresh);
    login_free(l);
}

static void on_login_verified(void *data, const char *hash, int ok)
{
    (void)hash;
    login_t *l = data;
    if (!ok || l->user == NULL) {
        call_status(l->cb, l->data, ACCOUNTS_DENIED);
        login_free(l);
        return;
    }
    char ttl[16], refresh_hash[67];
    snprintf(ttl, sizeof(ttl), "%d", ACCOUNTS_REFRESH_TTL_S);
    random_token(l->refresh);
    sha256_param(l->refresh, strlen(l->refresh), refresh_hash);
    const char *params[] = {db_value(l->user, 0, "id"), refresh_hash, ttl};
    const char *p_clear[] = {l->email, l->addr};
    db_stmt_t stmts[] = {{"auth_insert_refresh", NULL, 3, params}, {"auth_throttle_clear", NULL, 2, p_clear}};
    if (db_batch(l->db, stmts, 2, on_login_session, l) == NULL) {
        call_status(l->cb, l->data, ACCOUNTS_BUSY);
        login_free(l);
    }
}

static void on_login_user(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    login_t *l = data;
    int retry_after = 0;
    if (r[0].err != NULL) {
        call_failed(l->cb, l->data, &r[0], "counting a login attempt");
        login_free(l);
    } else if (r[1].err != NULL) {
        call_failed(l->cb, l->data, &r[1], "looking up a user");
        login_free(l);
    } else if ((retry_after = (int)db_int(r[0].res, 0, "retry_after")) > 0) {
        /* Before the password and whether the user exists are looked at: the answer is the same for all. */
        log_debug("logging in", "attempt from %s refused: too many failures", l->addr);
        accounts_outcome_t out = {.status = ACCOUNTS_THROTTLED, .retry_after = retry_after};
        l->cb(l->data, &out);
        login_free(l);
    } else {
        const char *hash = NULL;
        if (PQntuples(r[1].res) == 1) {
            /* The result is freed when this callback returns; keep a copy for after the password check. */
            l->user = PQcopyResult(r[1].res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
            hash = db_value(l->user, 0, "password_hash");
        }
        /* Unknown emails are checked against a dummy hash so both answers take as long. */
        int rc = password_verify_start(l->loop, l->password, hash, on_login_verified, l);
        login_forget_password(l); /* the job copied it */
        if (rc != 0) {
            call_status(l->cb, l->data, ACCOUNTS_BUSY);
            login_free(l);
        }
    }
}

int accounts_login(uv_loop_t *loop, db_pool_t *db, const config_t *cfg, const accounts_attempt_t *a,
                   accounts_cb cb, void *data)
{
    login_t *l = xcalloc(1, sizeof(*l));
    l->loop = loop;
    l->db = db;
    l->cb = cb;
    l->data = data;
    l->email = xstrdup(a->email);
    l->addr = xstrdup(a->addr);
    l->password = xstrdup(a->password);
    throttle_params_t t;
    throttle_params(cfg, l->email, l->addr, &t);
    const char *params[] = {l->email};
    /* The attempt is counted before the password is checked, so concurrent guesses cannot overrun the limit;
     * a success gives it back. */
    db_stmt_t stmts[] = {{"auth_throttle_hit", NULL, 5, t.params}, {"auth_user_by_email", NULL, 1, params}};
    if (db_batch(db, stmts, 2, on_login_user, l) == NULL) {
        login_free(l);
        return -1;
    }
    throttle_maybe_prune(db, cfg);
    return 0;
}

/* ---- refresh, logout, the current user ---- */

typedef struct st_op_t {
    accounts_cb cb;
    void *data;
    char refresh[44];
} op_t;

static op_t *op_new(accounts_cb cb, void *data)
{
    op_t *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->data = data;
    return op;
}

static void on_rotated(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    op_t *op = data;
    if (r[0].err != NULL)
        call_failed(op->cb, op->data, &r[0], "refreshing a session");
    else if (PQntuples(r[0].res) != 1)
        call_status(op->cb, op->data, ACCOUNTS_DENIED);
    else
        call_session(op->cb, op->data, r[0].res, op->refresh);
    free(op);
}

int accounts_refresh(db_pool_t *db, const char *token, accounts_cb cb, void *data)
{
    op_t *op = op_new(cb, data);
    random_token(op->refresh);
    char old_hash[67], new_hash[67], grace[16], ttl[16], new_id[37];
    crypto_uuid4(new_id);
    sha256_param(token, strlen(token), old_hash);
    sha256_param(op->refresh, strlen(op->refresh), new_hash);
    snprintf(grace, sizeof(grace), "%d", ACCOUNTS_REFRESH_GRACE_S);
    snprintf(ttl, sizeof(ttl), "%d", ACCOUNTS_REFRESH_TTL_S);
    const char *params[] = {old_hash, new_hash, grace, ttl, new_id};
    if (db_query(db, "auth_rotate", 5, params, on_rotated, op) == NULL) {
        free(op);
        return -1;
    }
    return 0;
}

static void on_revoked(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    op_t *op = data;
    if (r[0].err != NULL)
        call_failed(op->cb, op->data, &r[0], "revoking a refresh token");
    else
        call_status(op->cb, op->data, ACCOUNTS_OK);
    free(op);
}

int accounts_logout(db_pool_t *db, const char *token, accounts_cb cb, void *data)
{
    char hash[67];
    sha256_param(token, strlen(token), hash);
    op_t *op = op_new(cb, data);
    const char *params[] = {hash};
    if (db_query(db, "auth_revoke", 1, params, on_revoked, op) == NULL) {
        free(op);
        return -1;
    }
    return 0;
}

static void on_user(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    op_t *op = data;
    if (r[0].err != NULL)
        call_failed(op->cb, op->data, &r[0], "reading the current user");
    else if (PQntuples(r[0].res) != 1)
        call_status(op->cb, op->data, ACCOUNTS_DENIED);
    else
        call_session(op->cb, op->data, r[0].res, NULL);
    free(op);
}

int accounts_user_get(db_pool_t *db, const char *user_id, accounts_cb cb, void *data)
{
    op_t *op = op_new(cb, data);
    const char *params[] = {user_id};
    if (db_query(db, "auth_user_by_id", 1, params, on_user, op) == NULL) {
        free(op);
        return -1;
    }
    return 0;
}

/* ---- API keys ---- */

int accounts_touch_due(accounts_touch_table_t *t, const char *key_id, uint64_t now_ms)
{
    uint8_t h[32];
    crypto_sha256(key_id, strlen(key_id), h);
    size_t i = h[0] % ACCOUNTS_TOUCH_SLOTS;
    if (strcmp(t->slot[i].id, key_id) == 0 && now_ms - t->slot[i].at_ms < ACCOUNTS_KEY_TOUCH_MS)
        return 0;
    snprintf(t->slot[i].id, sizeof(t->slot[i].id), "%s", key_id);
    t->slot[i].at_ms = now_ms;
    return 1;
}

static void on_touch_done(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    (void)data;
    if (r[0].err != NULL)
        log_warn("recording API key use", "%s", r[0].err);
}

/* Writes last_used_at unless this process did so for the key less than a minute ago. */
static void touch_key(db_pool_t *db, const char *key_id)
{
    static accounts_touch_table_t touched;
    if (!accounts_touch_due(&touched, key_id, time_mono_ms()))
        return;
    const char *params[] = {key_id};
    db_query(db, "auth_key_touch", 1, params, on_touch_done, NULL);
}

typedef struct st_key_check_t {
    db_pool_t *db;
    accounts_key_cb cb;
    void *data;
} key_check_t;

static void on_key_found(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    key_check_t k = *(key_check_t *)data;
    free(data);
    if (r[0].err != NULL) {
        k.cb(k.data, NULL, &r[0]);
        return;
    }
    if (PQntuples(r[0].res) != 1) {
        k.cb(k.data, NULL, NULL);
        return;
    }
    if (db_bool(r[0].res, 0, "stale"))
        touch_key(k.db, db_value(r[0].res, 0, "id"));
    k.cb(k.data, db_value(r[0].res, 0, "user_id"), NULL);
}

int accounts_key_check(db_pool_t *db, const char *key, size_t len, accounts_key_cb cb, void *data)
{
    char hash[67];
    sha256_param(key, len, hash);
    key_check_t *k = xmalloc(sizeof(*k));
    *k = (key_check_t){db, cb, data};
    const char *params[] = {hash};
    if (db_query(db, "auth_key", 1, params, on_key_found, k) == NULL) {
        free(k);
        return -1;
    }
    return 0;
}

typedef struct st_key_new_t {
    accounts_key_created_cb cb;
    void *data;
    char key[48];
} key_new_t;

static void on_key_created(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    key_new_t *k = data;
    if (r[0].err != NULL) {
        k->cb(k->data, NULL, &r[0]);
    } else if (PQntuples(r[0].res) != 1) {
        k->cb(k->data, NULL, NULL);
    } else {
        const PGresult *res = r[0].res;
        accounts_new_key_t nk = {db_value(res, 0, "id"), db_value(res, 0, "name"), db_value(res, 0, "prefix"),
                                 db_value(res, 0, "created_at"), k->key};
        k->cb(k->data, &nk, NULL);
    }
    explicit_bzero(k->key, sizeof(k->key));
    free(k);
}

int accounts_key_create(db_pool_t *db, const char *user_id, const char *name, accounts_key_created_cb cb,
                        void *data)
{
    key_new_t *k = xcalloc(1, sizeof(*k));
    k->cb = cb;
    k->data = data;
    memcpy(k->key, "sk_", 3);
    random_token(k->key + 3);
    char prefix[13], hash[67];
    memcpy(prefix, k->key, 12);
    prefix[12] = '\0';
    sha256_param(k->key, strlen(k->key), hash);
    const char *params[] = {user_id, name, prefix, hash};
    if (db_query(db, "apikey_insert", 4, params, on_key_created, k) == NULL) {
        explicit_bzero(k->key, sizeof(k->key));
        free(k);
        return -1;
    }
    return 0;
}

typedef struct st_key_revoke_t {
    accounts_key_revoked_cb cb;
    void *data;
} key_revoke_t;

static void on_key_revoked(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    key_revoke_t k = *(key_revoke_t *)data;
    free(data);
    if (r[0].err != NULL)
        k.cb(k.data, 0, &r[0]);
    else
        k.cb(k.data, PQntuples(r[0].res) == 1, NULL);
}

int accounts_key_revoke(db_pool_t *db, const char *key_id, const char *user_id, accounts_key_revoked_cb cb,
                        void *data)
{
    key_revoke_t *k = xmalloc(sizeof(*k));
    *k = (key_revoke_t){cb, data};
    const char *params[] = {key_id, user_id};
    if (db_query(db, "apikey_revoke", 2, params, on_key_revoked, k) == NULL) {
        free(k);
        return -1;
    }
    return 0;
}
