#include "pipeline/llm.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "pipeline/provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct st_llm_t {
    provider_t *provider;
    char *url;
    char *auth_header;
    char *model;
    void (*close_cb)(void *);
    void *close_data;
    struct st_llm_call_impl_t *calls; /* live calls, freed by llm_close if their owners did not cancel them */
};

typedef struct st_llm_call_impl_t {
    llm_call_t pub;
    llm_t *llm;
    struct st_llm_call_impl_t *prev, *next;
    llm_cb cb;
    provider_call_t *pcall;
    char err[512];
} llm_call_impl_t;

llm_t *llm_create(uv_loop_t *loop, net_t *net, const config_t *cfg)
{
    if (cfg->llm_base_url == NULL)
        return NULL;
    llm_t *llm = xcalloc(1, sizeof(*llm));
    size_t n = strlen(cfg->llm_base_url);
    while (n > 0 && cfg->llm_base_url[n - 1] == '/')
        n--;
    llm->url = xasprintf("%.*s/chat/completions", (int)n, cfg->llm_base_url);
    if (cfg->llm_api_key != NULL)
        llm->auth_header = xasprintf("Authorization: Bearer %s", cfg->llm_api_key);
    llm->model = xstrdup(cfg->llm_model);
    /* The operator chose this endpoint, so a local model server (private address) is allowed. A long article
     * takes minutes to write on a slow model: each attempt gets LLM_TIMEOUT_S (3 minutes by default). */
    provider_config_t pc = {.name = "llm",
                            .max_in_flight = 32,
                            .max_attempts = cfg->llm_max_attempts,
                            .timeout_ms = (long)cfg->llm_timeout_s * 1000,
                            .allow_private = 1};
    llm->provider = provider_create(loop, net, &pc);
    return llm;
}

char *llm_request_body(const char *model, const llm_message_t *messages, size_t n, int json_object,
                       int max_tokens)
{
    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_object_begin(&w);
    jw_key(&w, "model");
    jw_string(&w, model);
    jw_key(&w, "messages");
    jw_array_begin(&w);
    for (size_t i = 0; i < n; i++) {
        jw_object_begin(&w);
        jw_key(&w, "role");
        jw_string(&w, messages[i].role);
        jw_key(&w, "content");
        jw_string(&w, messages[i].content);
        jw_object_end(&w);
    }
    jw_array_end(&w);
    if (json_object) {
        jw_key(&w, "response_format");
        jw_raw(&w, "{\"type\":\"json_object\"}", 22);
    }
    if (max_tokens > 0) {
        jw_key(&w, "max_tokens");
        jw_int(&w, max_tokens);
    }
    jw_object_end(&w);
    return buf_release(&b);
}

static int64_t usage_field(yajl_val usage, const char *name)
{
    yajl_val v = json_get(usage, name);
    return (v != NULL && YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) >= 0) ? YAJL_GET_INTEGER(v) : 0;
}

int llm_parse_reply(const char *body, size_t len, llm_call_t *call, char *err, size_t errlen)
{
    char perr[128];
    yajl_val root = json_parse(body, len, perr, sizeof(perr));
    if (root == NULL) {
        snprintf(err, errlen, "llm: reply is not JSON (%s)", perr);
        call->err = err;
        return -1;
    }
    int rc = -1;
    yajl_val choices = json_get(root, "choices");
    yajl_val first =
        (choices && YAJL_IS_ARRAY(choices) && choices->u.array.len > 0) ? choices->u.array.values[0] : NULL;
    yajl_val message = json_get(first, "message");
    yajl_val content = json_get(message, "content");
    yajl_val finish = json_get(first, "finish_reason");
    yajl_val usage = json_get(root, "usage");
    /* Usage is counted even when the reply is unusable: the provider billed it. */
    call->prompt_tokens = usage_field(usage, "prompt_tokens");
    call->completion_tokens = usage_field(usage, "completion_tokens");
    if (content == NULL || !YAJL_IS_STRING(content)) {
        snprintf(err, errlen, "llm: reply has no choices[0].message.content");
        call->err = err;
        goto out;
    }
    free(call->content);
    call->content = xstrdup(content->u.string);
    snprintf(call->finish_reason, sizeof(call->finish_reason), "%s",
             (finish && YAJL_IS_STRING(finish)) ? finish->u.string : "stop");
    call->err = NULL;
    rc = 0;
out:
    yajl_tree_free(root);
    return rc;
}

static void link_call(llm_call_impl_t *c)
{
    c->next = c->llm->calls;
    if (c->next)
        c->next->prev = c;
    c->llm->calls = c;
}

static void free_call(llm_call_impl_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->llm->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->pub.content);
    free(c);
}

static void on_provider_done(provider_call_t *pc)
{
    llm_call_impl_t *c = pc->data;
    c->pcall = NULL;
    if (pc->err != NULL) {
        snprintf(c->err, sizeof(c->err), "%s", pc->err);
        c->pub.err = c->err;
    } else {
        llm_parse_reply(pc->body.data ? pc->body.data : "", pc->body.len, &c->pub, c->err, sizeof(c->err));
    }
    c->cb(&c->pub);
    free_call(c);
}

llm_call_t *llm_chat(llm_t *llm, const llm_message_t *messages, size_t n, int json_object, int max_tokens,
                     llm_cb cb, void *data)
{
    char *body = llm_request_body(llm->model, messages, n, json_object, max_tokens);
    const char *headers[] = {"Content-Type: application/json", "Accept: application/json", llm->auth_header,
                             NULL};
    net_request_t req = {
        .method = "POST", .url = llm->url, .headers = headers, .body = body, .body_len = strlen(body)};
    llm_call_impl_t *c = xcalloc(1, sizeof(*c));
    c->llm = llm;
    c->cb = cb;
    c->pub.data = data;
    c->pcall = provider_start(llm->provider, &req, on_provider_done, c);
    free(body);
    if (c->pcall == NULL) {
        free(c);
        return NULL;
    }
    link_call(c);
    return &c->pub;
}

void llm_cancel(llm_call_t *call)
{
    llm_call_impl_t *c = (llm_call_impl_t *)call;
    if (c->pcall != NULL)
        provider_cancel(c->pcall);
    free_call(c);
}

static void on_provider_closed(void *data)
{
    llm_t *llm = data;
    void (*cb)(void *) = llm->close_cb;
    void *cb_data = llm->close_data;
    free(llm->url);
    free(llm->auth_header);
    free(llm->model);
    free(llm);
    cb(cb_data);
}

void llm_close(llm_t *llm, void (*cb)(void *data), void *data)
{
    llm->close_cb = cb;
    llm->close_data = data;
    while (llm->calls != NULL)
        llm_cancel(&llm->calls->pub);
    provider_close(llm->provider, on_provider_closed, llm);
}
