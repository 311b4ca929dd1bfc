/* An OpenAI-compatible chat completions client (POST {LLM_BASE_URL}/chat/completions) on the provider layer:
 * retries, timeouts and a concurrency limit come from there; this file builds requests and reads replies. */
#ifndef INKLOOP_PIPELINE_LLM_H
#define INKLOOP_PIPELINE_LLM_H

#include "core/config.h"
#include "net/net.h"

#include <stdint.h>
#include <uv.h>

typedef struct st_llm_t llm_t;
typedef struct st_llm_call_t llm_call_t;

typedef struct st_llm_message_t {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} llm_message_t;

/** The outcome, readable in the callback; freed after it returns. */
struct st_llm_call_t {
    const char *err;        /* NULL on success */
    char *content;          /* the reply's text */
    char finish_reason[24]; /* "stop", "length", ... */
    int64_t prompt_tokens;  /* from the reply's usage */
    int64_t completion_tokens;
    void *data;
};

typedef void (*llm_cb)(llm_call_t *call);

/** Creates the client from LLM_BASE_URL, LLM_API_KEY and LLM_MODEL; NULL when LLM_BASE_URL is not set. */
llm_t *llm_create(uv_loop_t *loop, net_t *net, const config_t *cfg);
/** Sends the messages; json_object asks for a JSON object reply (response_format). max_tokens 0: no limit
 * sent. cb runs exactly once unless llm_cancel is called first. Returns NULL when the client is closing. */
llm_call_t *llm_chat(llm_t *llm, const llm_message_t *messages, size_t n, int json_object, int max_tokens,
                     llm_cb cb, void *data);
/** The callback of call will not run. */
void llm_cancel(llm_call_t *call);
/** Cancels every call and closes; llm is freed before cb runs. */
void llm_close(llm_t *llm, void (*cb)(void *data), void *data);

/** Builds the request body (exposed for tests). Returns a malloc'd JSON text. */
char *llm_request_body(const char *model, const llm_message_t *messages, size_t n, int json_object,
                       int max_tokens);
/** Reads a reply body into call (content, finish_reason, tokens; content is malloc'd); returns 0, or -1 with
 * call->err pointing at the reason written into err. */
int llm_parse_reply(const char *body, size_t len, llm_call_t *call, char *err, size_t errlen);

#endif
