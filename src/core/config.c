#include "core/config.h"
#include "core/alloc.h"
#include "core/crypto.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    config_lookup_cb lookup;
    void *ctx;
    char *err;
    size_t errlen;
} loader_t;

static const char *env_lookup(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

/* The value of a variable, NULL when unset or empty (both mean "use the default"). */
static const char *get(loader_t *l, const char *name)
{
    const char *v = l->lookup(name, l->ctx);
    return (v == NULL || v[0] == '\0') ? NULL : v;
}

static int fail(loader_t *l, const char *name, const char *why, const char *value)
{
    if (value != NULL)
        snprintf(l->err, l->errlen, "%s: %s (got \"%.100s\")", name, why, value);
    else
        snprintf(l->err, l->errlen, "%s: %s", name, why);
    return -1;
}

static int get_int(loader_t *l, const char *name, int def, int min, int max, int *out)
{
    const char *v = get(l, name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') {
        return fail(l, name, "must be an integer", v);
    }
    if (n < min || n > max) {
        char why[96];
        snprintf(why, sizeof(why), "must be between %d and %d", min, max);
        return fail(l, name, why, v);
    }
    *out = (int)n;
    return 0;
}

static int get_bool(loader_t *l, const char *name, int def, int *out)
{
    const char *v = get(l, name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0) {
        *out = 1;
    } else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0) {
        *out = 0;
    } else {
        return fail(l, name, "must be 0 or 1", v);
    }
    return 0;
}

static char *get_str(loader_t *l, const char *name, const char *def)
{
    const char *v = get(l, name);
    return xstrdup(v != NULL ? v : def);
}

/* An http(s) URL with a host, used for the provider base URLs. */
static int check_http_url(loader_t *l, const char *name, const char *v)
{
    if (v == NULL)
        return 0;
    const char *rest;
    if (strncmp(v, "http://", 7) == 0)
        rest = v + 7;
    else if (strncmp(v, "https://", 8) == 0)
        rest = v + 8;
    else
        return fail(l, name, "must be an http:// or https:// URL", v);
    if (*rest == '\0' || *rest == '/' || *rest == ':')
        return fail(l, name, "must name a host", v);
    return 0;
}

static int parse_origins(loader_t *l, config_t *cfg)
{
    const char *v = get(l, "CORS_ORIGINS");
    if (v == NULL)
        v = "http://localhost:3000,http://localhost:3001";
    size_t count = 0;
    cfg->cors_origins = xcalloc(strlen(v) + 2, sizeof(char *));
    const char *p = v;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '/'))
            n--;
        if (n > 0) {
            char *o = xstrndup(p, n);
            if (strcmp(o, "*") != 0 && strncmp(o, "http://", 7) != 0 && strncmp(o, "https://", 8) != 0) {
                int r = fail(l, "CORS_ORIGINS", "each origin must start with http:// or https://", o);
                free(o);
                return r;
            }
            cfg->cors_origins[count++] = o;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    cfg->cors_origin_count = count;
    return 0;
}

static int parse_roles(loader_t *l, config_t *cfg)
{
    const char *v = get(l, "INKLOOP_ROLES");
    if (v == NULL) {
        cfg->roles = ROLE_API | ROLE_WORKER | ROLE_SCHEDULER;
        return 0;
    }
    cfg->roles = 0;
    const char *p = v;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 3 && strncmp(p, "api", 3) == 0)
            cfg->roles |= ROLE_API;
        else if (n == 6 && strncmp(p, "worker", 6) == 0)
            cfg->roles |= ROLE_WORKER;
        else if (n == 9 && strncmp(p, "scheduler", 9) == 0)
            cfg->roles |= ROLE_SCHEDULER;
        else if (n > 0)
            return fail(l, "INKLOOP_ROLES", "must be a comma-separated list of api, worker, scheduler", v);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (cfg->roles == 0)
        return fail(l, "INKLOOP_ROLES", "must name at least one role", v);
    return 0;
}

int config_load(config_t *cfg, config_lookup_cb lookup, void *ctx, char *err, size_t errlen)
{
    loader_t l = {lookup ? lookup : env_lookup, ctx, err, errlen};
    memset(cfg, 0, sizeof(*cfg));
    err[0] = '\0';

    cfg->database_url = get_str(&l, "DATABASE_URL", NULL);
    cfg->host = get_str(&l, "HOST", "0.0.0.0");
    if (get_int(&l, "PORT", 8000, 1, 65535, &cfg->port) != 0)
        return -1;
    if (get_bool(&l, "INKLOOP_DEV", 0, &cfg->dev_mode) != 0)
        return -1;
    cfg->jwt_secret = get_str(&l, "JWT_SECRET", NULL);
    if (cfg->jwt_secret == NULL) {
        if (!cfg->dev_mode)
            return fail(&l, "JWT_SECRET",
                        "is required (or set INKLOOP_DEV=1 for a random per-process secret)", NULL);
        uint8_t raw[32];
        char b64[48];
        crypto_random(raw, sizeof(raw));
        crypto_base64(raw, sizeof(raw), b64, 1);
        cfg->jwt_secret = xstrdup(b64);
    } else if (strlen(cfg->jwt_secret) < 16) {
        return fail(&l, "JWT_SECRET", "must be at least 16 characters", NULL);
    }
    cfg->internal_secret = get_str(&l, "INTERNAL_SECRET", NULL);
    cfg->admin_token = get_str(&l, "ADMIN_TOKEN", NULL);
    if (parse_origins(&l, cfg) != 0)
        return -1;

    cfg->llm_base_url = get_str(&l, "LLM_BASE_URL", NULL);
    if (check_http_url(&l, "LLM_BASE_URL", cfg->llm_base_url) != 0)
        return -1;
    cfg->llm_api_key = get_str(&l, "LLM_API_KEY", NULL);
    cfg->llm_model = get_str(&l, "LLM_MODEL", "gpt-4o-mini");
    cfg->search_provider = get_str(&l, "SEARCH_PROVIDER", NULL);
    if (cfg->search_provider != NULL && strcmp(cfg->search_provider, "searxng") != 0 &&
        strcmp(cfg->search_provider, "brave") != 0)
        return fail(&l, "SEARCH_PROVIDER", "must be searxng or brave", cfg->search_provider);
    cfg->search_url = get_str(&l, "SEARCH_URL", NULL);
    if (check_http_url(&l, "SEARCH_URL", cfg->search_url) != 0)
        return -1;
    cfg->search_api_key = get_str(&l, "SEARCH_API_KEY", NULL);
    if (cfg->search_provider != NULL && strcmp(cfg->search_provider, "searxng") == 0 &&
        cfg->search_url == NULL)
        return fail(&l, "SEARCH_URL", "is required when SEARCH_PROVIDER=searxng", NULL);
    if (cfg->search_provider != NULL && strcmp(cfg->search_provider, "brave") == 0 &&
        cfg->search_api_key == NULL)
        return fail(&l, "SEARCH_API_KEY", "is required when SEARCH_PROVIDER=brave", NULL);

    if (get_bool(&l, "ALLOW_PRIVATE_URLS", 0, &cfg->allow_private_urls) != 0 ||
        get_int(&l, "WEBHOOK_MAX_ATTEMPTS", 3, 1, 100, &cfg->webhook_max_attempts) != 0 ||
        get_int(&l, "WEBHOOK_RETRY_DELAY_S", 300, 0, 86400, &cfg->webhook_retry_delay_s) != 0 ||
        get_int(&l, "WEBHOOK_TIMEOUT_S", 30, 1, 600, &cfg->webhook_timeout_s) != 0 ||
        get_int(&l, "WEBHOOK_SWEEP_INTERVAL_S", 60, 1, 86400, &cfg->webhook_sweep_interval_s) != 0 ||
        get_int(&l, "SCHEDULER_INTERVAL_S", 60, 1, 86400, &cfg->scheduler_interval_s) != 0 ||
        get_int(&l, "GENERATION_LEAD_S", 3600, 0, 7 * 86400, &cfg->generation_lead_s) != 0 ||
        get_int(&l, "SLOT_GRACE_S", 3600, 0, 7 * 86400, &cfg->slot_grace_s) != 0 ||
        get_int(&l, "SIGNUP_CREDITS", 10, 0, 1000000, &cfg->signup_credits) != 0 ||
        get_int(&l, "CREDITS_PER_ARTICLE", 1, 0, 1000000, &cfg->credits_per_article) != 0)
        return -1;

    const char *level = get(&l, "LOG_LEVEL");
    cfg->log_level = LOG_LEVEL_INFO;
    if (level != NULL && log_parse_level(level, &cfg->log_level) != 0)
        return fail(&l, "LOG_LEVEL", "must be debug, info, warn or error", level);
    const char *format = get(&l, "LOG_FORMAT");
    if (format != NULL && strcmp(format, "json") == 0)
        cfg->log_json = 1;
    else if (format != NULL && strcmp(format, "text") != 0)
        return fail(&l, "LOG_FORMAT", "must be text or json", format);
    if (parse_roles(&l, cfg) != 0)
        return -1;

    int body = 0;
    if (get_int(&l, "DB_POOL_SIZE", 4, 1, 256, &cfg->db_pool_size) != 0 ||
        get_int(&l, "DB_MAX_WAITING", 1024, 0, 1000000, &cfg->db_max_waiting) != 0 ||
        get_int(&l, "MAX_BODY_BYTES", 1048576, 1024, 64 * 1048576, &body) != 0 ||
        get_int(&l, "SHUTDOWN_TIMEOUT_S", 10, 0, 3600, &cfg->shutdown_timeout_s) != 0 ||
        get_int(&l, "WORKER_CONCURRENCY", 64, 1, 10000, &cfg->worker_concurrency) != 0 ||
        get_int(&l, "JOB_LEASE_S", 60, 2, 3600, &cfg->job_lease_s) != 0 ||
        get_int(&l, "LLM_TIMEOUT_S", 180, 1, 3600, &cfg->llm_timeout_s) != 0 ||
        get_int(&l, "LLM_MAX_ATTEMPTS", 4, 1, 10, &cfg->llm_max_attempts) != 0)
        return -1;
    cfg->max_body_bytes = (size_t)body;
    if (get_int(&l, "LOGIN_MAX_FAILURES", 10, 1, 1000000, &cfg->login_max_failures) != 0 ||
        get_int(&l, "LOGIN_MAX_FAILURES_PER_ADDRESS", 100, 1, 1000000, &cfg->login_max_failures_addr) != 0 ||
        get_int(&l, "LOGIN_FAILURE_WINDOW_S", 900, 1, 86400, &cfg->login_failure_window_s) != 0 ||
        get_bool(&l, "TRUST_PROXY", 0, &cfg->trust_proxy) != 0)
        return -1;
    return 0;
}

void config_free(config_t *cfg)
{
    free(cfg->database_url);
    free(cfg->host);
    free(cfg->jwt_secret);
    free(cfg->internal_secret);
    free(cfg->admin_token);
    if (cfg->cors_origins != NULL)
        for (size_t i = 0; i < cfg->cors_origin_count; i++)
            free(cfg->cors_origins[i]);
    free(cfg->cors_origins);
    free(cfg->llm_base_url);
    free(cfg->llm_api_key);
    free(cfg->llm_model);
    free(cfg->search_provider);
    free(cfg->search_url);
    free(cfg->search_api_key);
    memset(cfg, 0, sizeof(*cfg));
}

int config_origin_allowed(const config_t *cfg, const char *origin, size_t len)
{
    for (size_t i = 0; i < cfg->cors_origin_count; i++) {
        const char *o = cfg->cors_origins[i];
        if (strcmp(o, "*") == 0 || (strlen(o) == len && memcmp(o, origin, len) == 0))
            return 1;
    }
    return 0;
}
