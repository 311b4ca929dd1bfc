#include "pipeline/search.h"
#include "core/alloc.h"
#include "core/json.h"
#include "pipeline/provider.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct st_search_t {
    provider_t *provider;
    int brave;
    char *base_url;
    char *key_header;
    void (*close_cb)(void *);
    void *close_data;
    struct st_search_impl_t *calls;
};

typedef struct st_search_impl_t {
    search_call_t pub;
    search_t *s;
    search_cb cb;
    provider_call_t *pcall;
    size_t max_results;
    char err[512];
    struct st_search_impl_t *prev, *next;
} search_impl_t;

search_t *search_create(uv_loop_t *loop, net_t *net, const config_t *cfg)
{
    if (cfg->search_provider == NULL)
        return NULL;
    search_t *s = xcalloc(1, sizeof(*s));
    s->brave = strcmp(cfg->search_provider, "brave") == 0;
    if (s->brave) {
        s->base_url = xstrdup(cfg->search_url ? cfg->search_url : "https://api.search.brave.com");
        s->key_header = xasprintf("X-Subscription-Token: %s", cfg->search_api_key);
    } else {
        s->base_url = xstrdup(cfg->search_url);
    }
    size_t n = strlen(s->base_url);
    while (n > 0 && s->base_url[n - 1] == '/')
        s->base_url[--n] = '\0';
    provider_config_t pc = {
        .name = "search", .max_in_flight = 16, .max_attempts = 3, .timeout_ms = 20000, .allow_private = 1};
    s->provider = provider_create(loop, net, &pc);
    return s;
}

static void free_results(search_call_t *call)
{
    for (size_t i = 0; i < call->count; i++) {
        free(call->results[i].url);
        free(call->results[i].title);
        free(call->results[i].snippet);
    }
    free(call->results);
    call->results = NULL;
    call->count = 0;
}

static const char *str_member(yajl_val obj, const char *key)
{
    yajl_val v = json_get(obj, key);
    return (v != NULL && YAJL_IS_STRING(v)) ? v->u.string : NULL;
}

int search_parse_reply(const char *body, size_t len, int brave, size_t max_results, search_call_t *call)
{
    char perr[128];
    yajl_val root = json_parse(body, len, perr, sizeof(perr));
    if (root == NULL)
        return -1;
    yajl_val list = brave ? json_get(json_get(root, "web"), "results") : json_get(root, "results");
    if (list == NULL || !YAJL_IS_ARRAY(list)) {
        /* A Brave reply without a "web" section is an empty answer, not an error. */
        int rc = (brave && YAJL_IS_OBJECT(root)) ? 0 : -1;
        yajl_tree_free(root);
        return rc;
    }
    call->results = xcalloc(list->u.array.len + 1, sizeof(search_result_t));
    for (size_t i = 0; i < list->u.array.len && call->count < max_results; i++) {
        yajl_val item = list->u.array.values[i];
        const char *url = str_member(item, "url");
        if (url == NULL || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0))
            continue;
        int dup = 0;
        for (size_t k = 0; k < call->count && !dup; k++)
            dup = strcmp(call->results[k].url, url) == 0;
        if (dup)
            continue;
        const char *title = str_member(item, "title");
        const char *snippet = str_member(item, brave ? "description" : "content");
        search_result_t *r = &call->results[call->count++];
        r->url = xstrdup(url);
        r->title = xstrdup(title ? title : "");
        r->snippet = xstrdup(snippet ? snippet : "");
    }
    yajl_tree_free(root);
    return 0;
}

static void unlink_call(search_impl_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->s->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void on_provider_done(provider_call_t *pc)
{
    search_impl_t *c = pc->data;
    c->pcall = NULL;
    if (pc->err != NULL) {
        snprintf(c->err, sizeof(c->err), "%s", pc->err);
        c->pub.err = c->err;
    } else if (search_parse_reply(pc->body.data ? pc->body.data : "", pc->body.len, c->s->brave,
                                  c->max_results, &c->pub) != 0) {
        snprintf(c->err, sizeof(c->err), "search: unexpected reply format");
        c->pub.err = c->err;
    }
    c->cb(&c->pub);
    unlink_call(c);
    free_results(&c->pub);
    free(c);
}

search_call_t *search_start(search_t *s, const char *query, size_t max_results, search_cb cb, void *data)
{
    char *q = curl_easy_escape(NULL, query, 0);
    if (q == NULL)
        return NULL;
    char *url = s->brave ? xasprintf("%s/res/v1/web/search?q=%s&count=%zu", s->base_url, q,
                                     max_results > 20 ? 20 : max_results)
                         : xasprintf("%s/search?q=%s&format=json", s->base_url, q);
    curl_free(q);
    const char *headers[] = {"Accept: application/json", s->key_header, NULL};
    net_request_t req = {.method = "GET", .url = url, .headers = headers};
    search_impl_t *c = xcalloc(1, sizeof(*c));
    c->s = s;
    c->cb = cb;
    c->max_results = max_results;
    c->pub.data = data;
    c->pcall = provider_start(s->provider, &req, on_provider_done, c);
    free(url);
    if (c->pcall == NULL) {
        free(c);
        return NULL;
    }
    c->next = s->calls;
    if (c->next)
        c->next->prev = c;
    s->calls = c;
    return &c->pub;
}

void search_cancel(search_call_t *call)
{
    search_impl_t *c = (search_impl_t *)call;
    if (c->pcall != NULL)
        provider_cancel(c->pcall);
    unlink_call(c);
    free_results(&c->pub);
    free(c);
}

static void on_provider_closed(void *data)
{
    search_t *s = data;
    void (*cb)(void *) = s->close_cb;
    void *cb_data = s->close_data;
    free(s->base_url);
    free(s->key_header);
    free(s);
    cb(cb_data);
}

void search_close(search_t *s, void (*cb)(void *data), void *data)
{
    s->close_cb = cb;
    s->close_data = data;
    while (s->calls != NULL)
        search_cancel(&s->calls->pub);
    provider_close(s->provider, on_provider_closed, s);
}
