/* One call to an external provider (LLM, search) with retries: 429, 5xx, timeouts and connection failures are
 * retried with exponential backoff (a Retry-After wins, up to a cap), then the call fails with the provider's
 * error. A per-provider limit bounds how many calls are in flight; the rest wait in FIFO order. */
#ifndef INKLOOP_PIPELINE_PROVIDER_H
#define INKLOOP_PIPELINE_PROVIDER_H

#include "core/buf.h"
#include "net/net.h"

#include <stdint.h>
#include <uv.h>

typedef struct st_provider_t provider_t;
typedef struct st_provider_call_t provider_call_t;

typedef struct st_provider_config_t {
    const char *name;   /* "llm", "search": used in errors and logs */
    int max_in_flight;  /* concurrent requests (default 16) */
    int max_attempts;   /* tries per call (default 4) */
    int backoff_ms;     /* first retry delay (default 1000), doubled each time */
    int max_backoff_ms; /* cap of a computed delay and of a Retry-After (default 30000) */
    long timeout_ms;    /* per attempt (default 120000) */
    int allow_private;  /* providers are configured by the operator: private addresses allowed */
} provider_config_t;

/** The outcome, readable in the callback; the call is freed after the callback returns. */
struct st_provider_call_t {
    const char *err; /* NULL: a 2xx arrived; otherwise why it failed for good (e.g. "llm: HTTP 429 after 4
                        attempts") */
    long status;     /* last HTTP status, 0 when none */
    buf_t body;      /* body of the last response */
    int attempts;
    void *data;
};

typedef void (*provider_cb)(provider_call_t *call);

/** Creates a provider on net (the config strings are copied). */
provider_t *provider_create(uv_loop_t *loop, net_t *net, const provider_config_t *cfg);
/** Starts a call; req is copied. cb runs exactly once unless provider_cancel is called first; never
 * synchronously. */
provider_call_t *provider_start(provider_t *p, const net_request_t *req, provider_cb cb, void *data);
/** The callback of call will not run. */
void provider_cancel(provider_call_t *call);
/** Calls in flight or waiting. */
size_t provider_pending(const provider_t *p);
/** Cancels every call, closes handles, then calls cb; p is freed after cb returns. */
void provider_close(provider_t *p, void (*cb)(void *data), void *data);

/** The delay before retry number attempt (1-based) given a Retry-After (seconds, -1 when absent). */
uint64_t provider_backoff_ms(const provider_config_t *cfg, int attempt, long retry_after_s);

#endif
