/* The outbound operations of the machines (pipeline, sched), each behind a small interface: the real client
 * in production, a fake in unit tests. Each has the real client's contract: the callback runs exactly once,
 * never synchronously, unless cancelled first; NULL when refused. A port with ctx NULL is not configured. */
#ifndef INKLOOP_PIPELINE_PORTS_H
#define INKLOOP_PIPELINE_PORTS_H

#include "net/net.h"
#include "pipeline/llm.h"
#include "pipeline/search.h"

/** One chat completion (llm_chat/llm_cancel). */
typedef struct st_llm_port_t {
    llm_call_t *(*chat)(void *ctx, const llm_message_t *messages, size_t n, int json_object, int max_tokens,
                        llm_cb cb, void *data);
    void (*cancel)(llm_call_t *call);
    void *ctx;
} llm_port_t;

/** One web search (search_start/search_cancel). */
typedef struct st_search_port_t {
    search_call_t *(*start)(void *ctx, const char *query, size_t max_results, search_cb cb, void *data);
    void (*cancel)(search_call_t *call);
    void *ctx;
} search_port_t;

/** One page fetch (net_start/net_cancel). */
typedef struct st_fetch_port_t {
    net_op_t *(*start)(void *ctx, const net_request_t *req, net_done_cb cb, void *data);
    void (*cancel)(net_op_t *op);
    void *ctx;
} fetch_port_t;

static inline llm_call_t *llm_port_chat_(void *ctx, const llm_message_t *m, size_t n, int json_object,
                                         int max_tokens, llm_cb cb, void *data)
{
    return llm_chat(ctx, m, n, json_object, max_tokens, cb, data);
}
/** The LLM client as a port (ctx NULL when llm is NULL). */
static inline llm_port_t llm_port(llm_t *llm)
{
    return (llm_port_t){.chat = llm_port_chat_, .cancel = llm_cancel, .ctx = llm};
}

static inline search_call_t *search_port_start_(void *ctx, const char *q, size_t max, search_cb cb,
                                                void *data)
{
    return search_start(ctx, q, max, cb, data);
}
/** The search client as a port (ctx NULL when s is NULL). */
static inline search_port_t search_port(search_t *s)
{
    return (search_port_t){.start = search_port_start_, .cancel = search_cancel, .ctx = s};
}

static inline net_op_t *fetch_port_start_(void *ctx, const net_request_t *req, net_done_cb cb, void *data)
{
    return net_start(ctx, req, cb, data);
}
/** The HTTP client as a port. */
static inline fetch_port_t fetch_port(net_t *net)
{
    return (fetch_port_t){.start = fetch_port_start_, .cancel = net_cancel, .ctx = net};
}

#endif
