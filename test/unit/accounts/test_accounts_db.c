/* The accounts rules against a real PostgreSQL (suite db, INKLOOP_TEST_DATABASE_URL): signup, the refresh
 * token rotation with its grace window and family revocation, the login throttle, API keys. A scratch
 * database gets every migration; the test ends with the pool closed and uv_loop_close == 0. */
#include "accounts/accounts.h"
#include "core/log.h"
#include "db/migrate.h"
#include "pgtest.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static uv_loop_t loop;
static db_pool_t *pool;
static config_t cfg;

/* The last outcome, copied out of the callback. */
static struct {
    int done;
    accounts_status_t status;
    int retry_after;
    accounts_user_t user;
    char token[64];
    char user_id[37];
    char key[64];
    int found;
    int failed;
} got;

static void reset(void)
{
    memset(&got, 0, sizeof(got));
}

static void on_run_timeout(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static int wait_done(void)
{
    uv_timer_t t;
    int timed_out = 0;
    uv_timer_init(&loop, &t);
    t.data = &timed_out;
    uv_timer_start(&t, on_run_timeout, 20000, 0);
    while (!got.done && !timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return got.done;
}

static void on_outcome(void *data, const accounts_outcome_t *out)
{
    (void)data;
    got.done = 1;
    got.status = out->status;
    got.retry_after = out->retry_after;
    if (out->status == ACCOUNTS_FAILED)
        printf("# failed while %s: %s\n", out->action, out->failure->err);
    if (out->user != NULL)
        got.user = *out->user;
    if (out->refresh_token != NULL)
        snprintf(got.token, sizeof(got.token), "%s", out->refresh_token);
}

static accounts_status_t signup(const char *email, const char *username, const char *password)
{
    reset();
    accounts_attempt_t a = {.email = email, .username = username, .password = password, .addr = "192.0.2.1"};
    if (accounts_signup(&loop, pool, &cfg, &a, on_outcome, NULL) != 0 || !wait_done())
        return (accounts_status_t)-1;
    return got.status;
}

static accounts_status_t login(const char *email, const char *password)
{
    reset();
    accounts_attempt_t a = {.email = email, .password = password, .addr = "192.0.2.1"};
    if (accounts_login(&loop, pool, &cfg, &a, on_outcome, NULL) != 0 || !wait_done())
        return (accounts_status_t)-1;
    return got.status;
}

static accounts_status_t refresh(const char *token)
{
    reset();
    if (accounts_refresh(pool, token, on_outcome, NULL) != 0 || !wait_done())
        return (accounts_status_t)-1;
    return got.status;
}

static void on_key_checked(void *data, const char *user_id, const db_result_t *failure)
{
    (void)data;
    got.done = 1;
    got.failed = failure != NULL;
    snprintf(got.user_id, sizeof(got.user_id), "%s", user_id != NULL ? user_id : "");
}

static void on_key_created(void *data, const accounts_new_key_t *k, const db_result_t *failure)
{
    (void)data;
    got.done = 1;
    got.failed = failure != NULL;
    snprintf(got.key, sizeof(got.key), "%s", k != NULL ? k->key : "");
}

static void on_key_revoked(void *data, int found, const db_result_t *failure)
{
    (void)data;
    got.done = 1;
    got.failed = failure != NULL;
    got.found = found;
}

static void on_closed(void *data)
{
    *(int *)data = 1;
}

int main(void)
{
    const char *base_url = getenv("INKLOOP_TEST_DATABASE_URL");
    if (base_url == NULL || base_url[0] == '\0') {
        if (getenv("CI") != NULL) {
            printf("Bail out! INKLOOP_TEST_DATABASE_URL is not set, and CI must run the db suite\n");
            return 1;
        }
        printf("1..0 # SKIP no INKLOOP_TEST_DATABASE_URL\n");
        return 0;
    }
    log_setup(getenv("INKLOOP_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, 0);
    char dbname[64], sql[200], err[300] = "";
    snprintf(dbname, sizeof(dbname), "inkloop_test_accounts_%d", (int)getpid());
    PGconn *admin = pgtest_connect(base_url);
    pgtest_exec(admin, "SET client_min_messages = warning");
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
    pgtest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    pgtest_exec(admin, sql);
    char *ci = pgtest_conninfo(base_url, dbname, NULL);
    int applied = 0;
    if (db_migrate(ci, &applied, err, sizeof(err)) != 0) {
        printf("Bail out! migrating the scratch database: %s\n", err);
        return 1;
    }
    PGconn *pg = pgtest_connect(ci);
    if (uv_loop_init(&loop) != 0)
        return 1;
    db_pool_config_t pc = {.conninfo = ci, .size = 2, .max_waiting = 64};
    pool = db_pool_create(&loop, &pc);
    if (pool == NULL || accounts_prepare(pool) != 0) {
        printf("Bail out! creating the pool\n");
        return 1;
    }
    db_pool_start(pool);
    cfg.signup_credits = 7;
    cfg.login_max_failures = 3;
    cfg.login_max_failures_addr = 100;
    cfg.login_failure_window_s = 900;

    /* Signup. */
    TAP_IS_INT(signup("Ann@Example.com", "ann", "correct horse"), ACCOUNTS_OK, "signup succeeds");
    TAP_IS_STR(got.user.email, "Ann@Example.com", "the user is answered");
    TAP_IS_INT((int)got.user.credits, 7, "with the signup credits");
    TAP_IS_INT((int)strlen(got.token), 43, "and a 43-character refresh token");
    char t1[64];
    snprintf(t1, sizeof(t1), "%s", got.token);
    TAP_IS_INT(signup("ann@example.com", "other", "correct horse"), ACCOUNTS_TAKEN,
               "the email in other case is taken");
    TAP_IS_INT(signup("bob@example.com", "ANN", "correct horse"), ACCOUNTS_TAKEN, "so is the username");

    /* Rotation: a rotated token refreshes again within the grace window, never after it. */
    TAP_IS_INT(refresh(t1), ACCOUNTS_OK, "the first refresh succeeds");
    char t2[64];
    snprintf(t2, sizeof(t2), "%s", got.token);
    TAP_OK(strcmp(t1, t2) != 0, "and issues a new token");
    TAP_IS_INT(refresh(t1), ACCOUNTS_OK, "the rotated token still refreshes within the grace window");
    char t3[64];
    snprintf(t3, sizeof(t3), "%s", got.token);
    TAP_IS_INT(refresh("no-such-token"), ACCOUNTS_DENIED, "an unknown token is denied");
    pgtest_exec(
        pg,
        "UPDATE refresh_tokens SET rotated_at = now() - interval '61 seconds' WHERE rotated_at IS NOT NULL");
    TAP_IS_INT(refresh(t1), ACCOUNTS_DENIED, "past the grace window the rotated token is denied");
    TAP_IS_INT(refresh(t2), ACCOUNTS_OK, "its successor refreshes");
    char t4[64];
    snprintf(t4, sizeof(t4), "%s", got.token);
    reset();
    TAP_OK(accounts_logout(pool, t4, on_outcome, NULL) == 0 && wait_done() && got.status == ACCOUNTS_OK,
           "logout succeeds");
    TAP_IS_INT(refresh(t3), ACCOUNTS_DENIED, "logout revoked the whole family (a sibling too)");
    TAP_IS_INT(refresh(t4), ACCOUNTS_DENIED, "and the token logged out with");

    /* The login throttle: LOGIN_MAX_FAILURES attempts per account, the next one is refused before the
     * password is looked at. */
    TAP_IS_INT(login("nobody@example.com", "guess 1"), ACCOUNTS_DENIED, "an unknown email is denied (1)");
    TAP_IS_INT(login("NOBODY@example.com", "guess 2"), ACCOUNTS_DENIED,
               "denied (2, the account ignores case)");
    TAP_IS_INT(login("nobody@example.com", "guess 3"), ACCOUNTS_DENIED, "denied (3)");
    TAP_IS_INT(login("nobody@example.com", "guess 4"), ACCOUNTS_THROTTLED, "the fourth attempt is throttled");
    TAP_OK(got.retry_after >= 1 && got.retry_after <= 900, "with a Retry-After within the window (%d)",
           got.retry_after);
    TAP_IS_INT(login("ann@example.com", "wrong"), ACCOUNTS_DENIED, "a wrong password is denied");
    TAP_IS_INT(login("ann@example.com", "correct horse"), ACCOUNTS_OK, "the right one logs in");
    TAP_IS_STR(got.user.username, "ann", "as the user");
    char user_id[37];
    snprintf(user_id, sizeof(user_id), "%s", got.user.id);

    /* API keys. */
    reset();
    TAP_OK(accounts_key_create(pool, user_id, "ci", on_key_created, NULL) == 0 && wait_done() && !got.failed,
           "a key is created");
    char key[64];
    snprintf(key, sizeof(key), "%s", got.key);
    TAP_OK(strncmp(key, "sk_", 3) == 0 && strlen(key) == 46, "sk_ and 43 characters (%s)", key);
    reset();
    TAP_OK(accounts_key_check(pool, key, strlen(key), on_key_checked, NULL) == 0 && wait_done(),
           "it is looked up");
    TAP_IS_STR(got.user_id, user_id, "and belongs to the user");
    reset();
    TAP_OK(accounts_key_check(pool, "sk_nope", 7, on_key_checked, NULL) == 0 && wait_done() && !got.failed &&
               got.user_id[0] == '\0',
           "an unknown key has no user");
    PGresult *r = PQexec(pg, "SELECT id FROM api_keys");
    char key_id[37] = "";
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        snprintf(key_id, sizeof(key_id), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    reset();
    TAP_OK(accounts_key_revoke(pool, key_id, user_id, on_key_revoked, NULL) == 0 && wait_done() && got.found,
           "the key is revoked");
    reset();
    TAP_OK(accounts_key_revoke(pool, key_id, user_id, on_key_revoked, NULL) == 0 && wait_done() && !got.found,
           "a second revocation finds nothing");
    reset();
    TAP_OK(accounts_key_check(pool, key, strlen(key), on_key_checked, NULL) == 0 && wait_done() &&
               got.user_id[0] == '\0',
           "a revoked key has no user");
    reset();
    TAP_OK(accounts_key_create(pool, "00000000-0000-4000-8000-000000000000", "x", on_key_created, NULL) ==
                   0 &&
               wait_done() && !got.failed && got.key[0] == '\0',
           "no key for a user that does not exist");

    int closed = 0;
    db_pool_close(pool, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    TAP_IS_INT(uv_loop_close(&loop), 0, "every handle closed (uv_loop_close == 0)");
    PQfinish(pg);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
    pgtest_exec(admin, sql);
    PQfinish(admin);
    free(ci);
    return tap_done();
}
