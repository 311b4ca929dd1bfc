/* config_load: defaults, each validation naming its variable, and the CORS origin list. */
#include "core/config.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* A fake environment: NULL-terminated name/value pairs. */
static const char *lookup(const char *name, void *ctx)
{
    const char **env = ctx;
    for (size_t i = 0; env[i] != NULL; i += 2)
        if (strcmp(env[i], name) == 0)
            return env[i + 1];
    return NULL;
}

static int load(const char **env, config_t *cfg, char *err, size_t errlen)
{
    int r = config_load(cfg, lookup, env, err, errlen);
    return r;
}

/* Loading fails and the message starts with the variable's name. */
static void expect_error(const char **env, const char *var)
{
    config_t cfg;
    char err[256];
    int r = load(env, &cfg, err, sizeof(err));
    TAP_OK(r == -1 && strncmp(err, var, strlen(var)) == 0, "%s rejected: %s", var, err);
    config_free(&cfg);
}

int main(void)
{
    config_t cfg;
    char err[256];

    const char *dev[] = {"INKLOOP_DEV", "1", NULL};
    TAP_IS_INT(load(dev, &cfg, err, sizeof(err)), 0, "defaults load in dev mode");
    TAP_IS_STR(cfg.host, "0.0.0.0", "HOST default");
    TAP_IS_INT(cfg.port, 8000, "PORT default");
    TAP_IS_INT(cfg.webhook_max_attempts, 3, "WEBHOOK_MAX_ATTEMPTS default");
    TAP_IS_INT(cfg.webhook_retry_delay_s, 300, "WEBHOOK_RETRY_DELAY_S default");
    TAP_IS_INT(cfg.webhook_timeout_s, 30, "WEBHOOK_TIMEOUT_S default");
    TAP_IS_INT(cfg.webhook_sweep_interval_s, 60, "WEBHOOK_SWEEP_INTERVAL_S default");
    TAP_IS_INT(cfg.scheduler_interval_s, 60, "SCHEDULER_INTERVAL_S default");
    TAP_IS_INT(cfg.generation_lead_s, 3600, "GENERATION_LEAD_S default");
    TAP_IS_INT(cfg.slot_grace_s, 3600, "SLOT_GRACE_S default");
    TAP_IS_INT(cfg.signup_credits, 10, "SIGNUP_CREDITS default");
    TAP_IS_INT(cfg.credits_per_article, 1, "CREDITS_PER_ARTICLE default");
    TAP_IS_INT(cfg.allow_private_urls, 0, "ALLOW_PRIVATE_URLS default");
    TAP_IS_INT(cfg.roles, ROLE_API | ROLE_WORKER | ROLE_SCHEDULER, "INKLOOP_ROLES default: all");
    TAP_IS_INT(cfg.login_max_failures, 10, "LOGIN_MAX_FAILURES default");
    TAP_IS_INT(cfg.login_max_failures_addr, 100, "LOGIN_MAX_FAILURES_PER_ADDRESS default");
    TAP_IS_INT(cfg.login_failure_window_s, 900, "LOGIN_FAILURE_WINDOW_S default: 15 minutes");
    TAP_IS_INT(cfg.trust_proxy, 0, "TRUST_PROXY default: X-Forwarded-For is not trusted");
    TAP_IS_INT((long long)cfg.max_body_bytes, 1048576, "body limit default 1 MiB");
    TAP_IS_INT((long long)cfg.cors_origin_count, 2, "two default CORS origins");
    TAP_OK(config_origin_allowed(&cfg, "http://localhost:3000", 21), "default origin allowed");
    TAP_OK(!config_origin_allowed(&cfg, "http://localhost:300", 20), "prefix of an origin refused");
    TAP_OK(!config_origin_allowed(&cfg, "http://evil.test", 16), "other origin refused");
    TAP_OK(cfg.jwt_secret != NULL && strlen(cfg.jwt_secret) >= 32, "dev mode gets a random JWT secret");
    TAP_OK(cfg.internal_secret == NULL && cfg.admin_token == NULL, "no internal or admin secret by default");
    config_free(&cfg);

    const char *full[] = {"JWT_SECRET",
                          "0123456789abcdef0123",
                          "PORT",
                          "9001",
                          "HOST",
                          "127.0.0.1",
                          "CORS_ORIGINS",
                          " https://a.test/ ,http://b.test:8080",
                          "INKLOOP_ROLES",
                          "api, worker",
                          "LOG_LEVEL",
                          "debug",
                          "LOG_FORMAT",
                          "json",
                          "SEARCH_PROVIDER",
                          "searxng",
                          "SEARCH_URL",
                          "http://127.0.0.1:8888",
                          "PORT",
                          "1",
                          NULL};
    TAP_IS_INT(load(full, &cfg, err, sizeof(err)), 0, "explicit values load: %s", err);
    TAP_IS_INT(cfg.port, 9001, "PORT read (first definition wins in the fake env)");
    TAP_IS_INT(cfg.roles, ROLE_API | ROLE_WORKER, "roles parsed with spaces");
    TAP_IS_INT(cfg.log_json, 1, "json logs");
    TAP_IS_INT(cfg.log_level, LOG_LEVEL_DEBUG, "debug level");
    TAP_OK(config_origin_allowed(&cfg, "https://a.test", 14), "origin trimmed of spaces and trailing slash");
    TAP_OK(config_origin_allowed(&cfg, "http://b.test:8080", 18), "second origin");
    config_free(&cfg);

    const char *empty_is_default[] = {"INKLOOP_DEV", "1", "PORT", "", NULL};
    TAP_IS_INT(load(empty_is_default, &cfg, err, sizeof(err)), 0, "empty value means default");
    TAP_IS_INT(cfg.port, 8000, "empty PORT is 8000");
    config_free(&cfg);

    expect_error((const char *[]){NULL}, "JWT_SECRET");
    expect_error((const char *[]){"JWT_SECRET", "short", NULL}, "JWT_SECRET");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "PORT", "abc", NULL}, "PORT");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "PORT", "70000", NULL}, "PORT");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "PORT", "80x", NULL}, "PORT");
    expect_error((const char *[]){"INKLOOP_DEV", "maybe", NULL}, "INKLOOP_DEV");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "WEBHOOK_MAX_ATTEMPTS", "0", NULL},
                 "WEBHOOK_MAX_ATTEMPTS");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "WEBHOOK_TIMEOUT_S", "-5", NULL}, "WEBHOOK_TIMEOUT_S");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "ALLOW_PRIVATE_URLS", "2", NULL}, "ALLOW_PRIVATE_URLS");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "LOG_LEVEL", "loud", NULL}, "LOG_LEVEL");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "LOG_FORMAT", "xml", NULL}, "LOG_FORMAT");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "INKLOOP_ROLES", "api,cook", NULL}, "INKLOOP_ROLES");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "INKLOOP_ROLES", ",", NULL}, "INKLOOP_ROLES");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "SEARCH_PROVIDER", "google", NULL}, "SEARCH_PROVIDER");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "SEARCH_PROVIDER", "searxng", NULL}, "SEARCH_URL");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "SEARCH_PROVIDER", "brave", NULL}, "SEARCH_API_KEY");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "LLM_BASE_URL", "ftp://x", NULL}, "LLM_BASE_URL");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "CORS_ORIGINS", "localhost:3000", NULL},
                 "CORS_ORIGINS");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "MAX_BODY_BYTES", "10", NULL}, "MAX_BODY_BYTES");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "LOGIN_MAX_FAILURES", "0", NULL}, "LOGIN_MAX_FAILURES");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "LOGIN_MAX_FAILURES_PER_ADDRESS", "x", NULL},
                 "LOGIN_MAX_FAILURES_PER_ADDRESS");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "LOGIN_FAILURE_WINDOW_S", "0", NULL},
                 "LOGIN_FAILURE_WINDOW_S");
    expect_error((const char *[]){"INKLOOP_DEV", "1", "TRUST_PROXY", "yes please", NULL}, "TRUST_PROXY");
    return tap_done();
}
