/* Configuration from the environment (API.md section 9), validated once at start-up. */
#ifndef INKLOOP_CORE_CONFIG_H
#define INKLOOP_CORE_CONFIG_H

#include "core/log.h"

#include <stddef.h>

/** Which parts of the service this process runs (INKLOOP_ROLES). */
enum { ROLE_API = 1, ROLE_WORKER = 2, ROLE_SCHEDULER = 4 };

typedef struct st_config_t {
    char *database_url;
    char *host;
    int port;
    char *jwt_secret;
    int dev_mode;          /* INKLOOP_DEV=1: a random JWT secret is allowed */
    char *internal_secret; /* NULL: every internal route answers 403 */
    char *admin_token;     /* NULL: every admin route answers 403 */
    char **cors_origins;   /* NULL-terminated */
    size_t cors_origin_count;
    char *llm_base_url;
    char *llm_api_key;
    char *llm_model;
    char *search_provider; /* "searxng", "brave" or NULL */
    char *search_url;
    char *search_api_key;
    int allow_private_urls;
    int webhook_max_attempts;
    int webhook_retry_delay_s;
    int webhook_timeout_s;
    int webhook_sweep_interval_s;
    int scheduler_interval_s;
    int generation_lead_s;
    int slot_grace_s;
    int signup_credits;
    int credits_per_article;
    log_level_t log_level;
    int log_json;
    int roles; /* ROLE_* bits */
    /* Beyond the contract: resource limits an operator may tune. */
    int db_pool_size;       /* DB_POOL_SIZE (4): connections per process */
    int db_max_waiting;     /* DB_MAX_WAITING (1024): queries queued for a connection before 503 */
    size_t max_body_bytes;  /* MAX_BODY_BYTES (1048576): request body limit, 413 past it */
    int shutdown_timeout_s; /* SHUTDOWN_TIMEOUT_S (10): how long SIGTERM waits for in-flight requests */
    int worker_concurrency; /* WORKER_CONCURRENCY (64): jobs one process runs at once */
    int job_lease_s;      /* JOB_LEASE_S (60): how long a claimed job survives its process without renewal */
    int llm_timeout_s;    /* LLM_TIMEOUT_S (180): one LLM request's deadline */
    int llm_max_attempts; /* LLM_MAX_ATTEMPTS (4): tries per LLM call on 429/5xx/timeouts */
    /* Throttling of failed logins and signups (shared by processes through PostgreSQL). */
    int login_max_failures;      /* LOGIN_MAX_FAILURES (10): per account per window, then 429 */
    int login_max_failures_addr; /* LOGIN_MAX_FAILURES_PER_ADDRESS (100): per client address per window */
    int login_failure_window_s;  /* LOGIN_FAILURE_WINDOW_S (900) */
    int trust_proxy;             /* TRUST_PROXY (0): 1 takes the client address from X-Forwarded-For */
} config_t;

/** Looks up one variable; returns NULL when it is not set. */
typedef const char *(*config_lookup_cb)(const char *name, void *ctx);

/** Loads and validates every variable through lookup (getenv when lookup is NULL). Returns 0, or -1 with a
 * message naming the variable in err. Unset and empty variables take their defaults. */
int config_load(config_t *cfg, config_lookup_cb lookup, void *ctx, char *err, size_t errlen);
/** Frees what config_load allocated. */
void config_free(config_t *cfg);
/** 1 when origin is one of CORS_ORIGINS (exact match). */
int config_origin_allowed(const config_t *cfg, const char *origin, size_t len);

#endif
