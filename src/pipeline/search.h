/* Web search for the research stage: SearXNG (GET {SEARCH_URL}/search?q=...&format=json) or the Brave Search
 * API (SEARCH_API_KEY), on the provider layer (retries, timeouts, concurrency limit). */
#ifndef INKLOOP_PIPELINE_SEARCH_H
#define INKLOOP_PIPELINE_SEARCH_H

#include "core/config.h"
#include "net/net.h"

#include <stddef.h>
#include <uv.h>

typedef struct st_search_t search_t;

typedef struct st_search_result_t {
    char *url;
    char *title;
    char *snippet;
} search_result_t;

/** The outcome, readable in the callback; freed after it returns. */
typedef struct st_search_call_t {
    const char *err;          /* NULL on success (possibly with zero results) */
    search_result_t *results; /* de-duplicated by URL, in the provider's order */
    size_t count;
    void *data;
} search_call_t;

typedef void (*search_cb)(search_call_t *call);

/** Creates the client from SEARCH_PROVIDER/SEARCH_URL/SEARCH_API_KEY; NULL when no provider is configured. */
search_t *search_create(uv_loop_t *loop, net_t *net, const config_t *cfg);
/** Searches for query, keeping at most max_results http(s) results. cb runs once unless search_cancel first.
 */
search_call_t *search_start(search_t *s, const char *query, size_t max_results, search_cb cb, void *data);
/** The callback of call will not run. */
void search_cancel(search_call_t *call);
/** Cancels every call and closes; s is freed before cb runs. */
void search_close(search_t *s, void (*cb)(void *data), void *data);

/** Parses a SearXNG (brave = 0) or Brave (brave = 1) JSON reply into call (exposed for tests). 0 or -1. */
int search_parse_reply(const char *body, size_t len, int brave, size_t max_results, search_call_t *call);

#endif
