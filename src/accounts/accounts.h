/* The accounts domain: users, sessions and API keys, whatever protocol asks for them.
 *
 * - Signup and login hash and check passwords with bcrypt on the libuv thread pool (core/password.h); unknown
 *   emails are checked against a dummy hash so both answers take as long.
 * - Sessions are refresh tokens stored by their SHA-256. Refreshing rotates the presented token: it stays
 *   usable for ACCOUNTS_REFRESH_GRACE_S after its first rotation (so concurrent refreshes with one cookie all
 *   succeed) and every rotation of it belongs to one family, which logout revokes whole.
 * - API keys ("sk_" + 43 characters) are stored by their SHA-256 and looked up on every use, so a revoked key
 *   stops working at once on every process; last_used_at is written at most once a minute per key.
 * - Logins and signups are throttled in PostgreSQL (auth_throttle), per account and per client address.
 *
 * Every statement is in sql/queries/accounts.sql. Each asynchronous call returns 0, or -1 when the pool
 * refused the first query (nothing started, cb never runs); once started, cb runs exactly once. The strings
 * an outcome points at live until cb returns. */
#ifndef INKLOOP_ACCOUNTS_ACCOUNTS_H
#define INKLOOP_ACCOUNTS_ACCOUNTS_H

#include "core/config.h"
#include "db/db.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/** Refresh tokens (the cookie) live this long (contract: Max-Age=604800). */
#define ACCOUNTS_REFRESH_TTL_S 604800
/** A rotated refresh token still refreshes for this long, so concurrent refreshes with one cookie all
 * succeed. */
#define ACCOUNTS_REFRESH_GRACE_S 60
/** Passwords past this many bytes are refused rather than hashed (bounds the work one request can ask for).
 */
#define ACCOUNTS_PASSWORD_MAX_BYTES 1024
/** Longest API key looked up; ours are 46 characters, anything far longer is refused unhashed. */
#define ACCOUNTS_KEY_MAX 256
/** last_used_at of an API key is written at most this often per key (the lookup says when it is stale). */
#define ACCOUNTS_KEY_TOUCH_MS 60000
/** Slots of the per-process table that suppresses repeated last_used_at writes of one key. */
#define ACCOUNTS_TOUCH_SLOTS 256

/** A user as the contract shows it. */
typedef struct st_accounts_user_t {
    char id[37];
    char email[324];    /* at most 320 bytes (signup checks it) */
    char username[208]; /* at most 50 characters */
    char plan[64];
    int64_t credits;
} accounts_user_t;

/** How an accounts operation ended. */
typedef enum {
    ACCOUNTS_OK,        /* done: the outcome's user (and token) are set */
    ACCOUNTS_FAILED,    /* a query failed: failure and action say which and while doing what */
    ACCOUNTS_BUSY,      /* the pool or the thread pool refused the work: try again later */
    ACCOUNTS_INTERNAL,  /* hashing a password failed (logged) */
    ACCOUNTS_THROTTLED, /* too many attempts: retry_after seconds until the window ends */
    ACCOUNTS_TAKEN,     /* signup: the email or the username is registered already */
    ACCOUNTS_DENIED,    /* wrong email or password, an unknown or expired token, a vanished user */
} accounts_status_t;

/** The outcome of an accounts operation, valid while its callback runs. */
typedef struct st_accounts_outcome_t {
    accounts_status_t status;
    const db_result_t *failure;  /* ACCOUNTS_FAILED: the failed result */
    const char *action;          /* ACCOUNTS_FAILED: what was being done, for the log */
    int retry_after;             /* ACCOUNTS_THROTTLED */
    const accounts_user_t *user; /* ACCOUNTS_OK (not for logout or key revocation) */
    const char *refresh_token;   /* ACCOUNTS_OK of signup, login and refresh: the new session's token */
} accounts_outcome_t;

/** Completion of an accounts operation. */
typedef void (*accounts_cb)(void *data, const accounts_outcome_t *out);

/** Where an attempt comes from, for the throttle. */
typedef struct st_accounts_attempt_t {
    const char *email;    /* as given (the throttle lower-cases it) */
    const char *username; /* signup only */
    const char *password;
    const char *addr; /* the client address as accounts_addr_text writes it, or "unknown" */
} accounts_attempt_t;

/** Registers the statements of sql/queries/accounts.sql. */
int accounts_prepare(db_pool_t *pool);

/** Creates a user with cfg->signup_credits and a first session, in one atomic batch, after counting the
 * attempt (THROTTLED) and checking that neither the email nor the username is taken (TAKEN, also for a
 * concurrent signup that won). The strings of a are copied. */
int accounts_signup(uv_loop_t *loop, db_pool_t *db, const config_t *cfg, const accounts_attempt_t *a,
                    accounts_cb cb, void *data);
/** Counts the attempt (THROTTLED before anything else is looked at), checks the password (DENIED for a wrong
 * one or an unknown email, as slowly) and starts a session; a success gives the attempt back. */
int accounts_login(uv_loop_t *loop, db_pool_t *db, const config_t *cfg, const accounts_attempt_t *a,
                   accounts_cb cb, void *data);
/** Rotates the refresh token token (see the file comment): OK with the user and the new token, DENIED when
 * token is unknown, revoked, expired or rotated longer than the grace ago. */
int accounts_refresh(db_pool_t *db, const char *token, accounts_cb cb, void *data);
/** Revokes the session token belongs to: it and every rotation of it. OK also for an unknown token. */
int accounts_logout(db_pool_t *db, const char *token, accounts_cb cb, void *data);
/** Reads user user_id: OK with it, DENIED when it no longer exists. */
int accounts_user_get(db_pool_t *db, const char *user_id, accounts_cb cb, void *data);

/** Completion of accounts_key_check: user_id is the key's owner, NULL when the key is unknown or revoked
 * (failure NULL) or the lookup failed (failure set). */
typedef void (*accounts_key_cb)(void *data, const char *user_id, const db_result_t *failure);
/** Looks up the API key key (len bytes, at most ACCOUNTS_KEY_MAX) and records its use (at most once a minute
 * per key and process, not waited for). */
int accounts_key_check(db_pool_t *db, const char *key, size_t len, accounts_key_cb cb, void *data);

/** A new API key as its creation answers it (the only time the key itself is shown). */
typedef struct st_accounts_new_key_t {
    const char *id, *name, *prefix, *created_at; /* created_at as PostgreSQL writes it */
    const char *key;
} accounts_new_key_t;
/** Completion of accounts_key_create: k is NULL when the user no longer exists (failure NULL) or the insert
 * failed (failure set). */
typedef void (*accounts_key_created_cb)(void *data, const accounts_new_key_t *k, const db_result_t *failure);
/** Creates an API key named name for user_id. */
int accounts_key_create(db_pool_t *db, const char *user_id, const char *name, accounts_key_created_cb cb,
                        void *data);
/** Completion of accounts_key_revoke: found is 1 when a live key of the user was revoked. */
typedef void (*accounts_key_revoked_cb)(void *data, int found, const db_result_t *failure);
/** Revokes the API key key_id of user_id. */
int accounts_key_revoke(db_pool_t *db, const char *key_id, const char *user_id, accounts_key_revoked_cb cb,
                        void *data);
/** The statement that lists a user's live API keys, newest first: ($1 user id, $2 skip, $3 limit) giving
 * id, name, prefix, created_at, last_used_at, revoked_at. */
#define ACCOUNTS_KEY_LIST_STMT "apikey_list"

/** Which keys one process touched recently, so a burst of requests with one key writes last_used_at once. */
typedef struct st_accounts_touch_table_t {
    struct {
        char id[37];
        uint64_t at_ms;
    } slot[ACCOUNTS_TOUCH_SLOTS];
} accounts_touch_table_t;
/** True when key_id's last_used_at should be written at now_ms (and records it as written then): not when
 * the same key was recorded less than ACCOUNTS_KEY_TOUCH_MS ago. Pure apart from t. */
int accounts_touch_due(accounts_touch_table_t *t, const char *key_id, uint64_t now_ms);

/** The client address as the throttle counts it: IPv4 (also v4-mapped IPv6) as dotted text, other IPv6
 * addresses by their /64 ("2001:db8:1:2::/64"). Returns 0, or -1 for another family or a too small out.
 * Pure. */
int accounts_addr_text(const struct sockaddr *sa, char *out, size_t cap);
/** The last entry of an X-Forwarded-For value (the one a trusted proxy appended) as accounts_addr_text writes
 * it; -1 when it is not an IPv4 or IPv6 address. Pure. */
int accounts_forwarded_addr(const char *xff, size_t len, char *out, size_t cap);

#endif
