/* The webhook body and signatures against a fixture written by Python
 * (test/data/webhook/payload_fixture.json): json.dumps(sort_keys=True) for the body, hmac/hashlib/base64 for
 * the signatures. */
#include "core/json.h"
#include "webhook/payload.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    *len = fread(p, 1, (size_t)n, f);
    p[*len] = '\0';
    fclose(f);
    return p;
}

static const char *str(yajl_val obj, const char *key)
{
    yajl_val v = json_get(obj, key);
    return (v != NULL && YAJL_IS_STRING(v)) ? v->u.string : NULL;
}

int main(int argc, char **argv)
{
    size_t len = 0;
    char *text = argc > 1 ? slurp(argv[1], &len) : NULL;
    TAP_OK(text != NULL, "fixture read from %s", argc > 1 ? argv[1] : "(no path)");
    if (text == NULL)
        return tap_done();
    char err[128];
    yajl_val fx = json_parse(text, len, err, sizeof(err));
    TAP_OK(fx != NULL, "fixture parses: %s", fx ? "ok" : err);
    yajl_val p = json_get(fx, "payload");

    yajl_val kw = json_get(p, "keywords"), src = json_get(p, "sources");
    const char *keywords[8];
    webhook_source_t sources[8];
    size_t nk = kw->u.array.len, ns = src->u.array.len;
    for (size_t i = 0; i < nk; i++)
        keywords[i] = kw->u.array.values[i]->u.string;
    for (size_t i = 0; i < ns; i++) {
        sources[i].url = str(src->u.array.values[i], "url");
        sources[i].title = str(src->u.array.values[i], "title");
    }
    webhook_article_t a = {.id = str(p, "id"),
                           .campaign_id = str(p, "campaign_id"),
                           .title = str(p, "title"),
                           .content = str(p, "content"),
                           .content_html = str(p, "content_html"),
                           .category = str(p, "category"),
                           .keywords = keywords,
                           .keyword_count = nk,
                           .meta_description = str(p, "meta_description"),
                           .slug = str(p, "slug"),
                           .sources = sources,
                           .source_count = ns,
                           .word_count = YAJL_GET_INTEGER(json_get(p, "word_count")),
                           .scheduled_at = str(p, "scheduled_at"),
                           .created_at = str(p, "created_at")};
    buf_t body = BUF_INIT;
    webhook_payload(&body, &a);
    const char *want = str(fx, "body");
    TAP_IS_STR(buf_cstr(&body), want, "body is byte-for-byte Python's json.dumps(sort_keys=True)");

    char hex[65], std[128];
    webhook_sign_hex(str(fx, "secret_raw"), body.data, body.len, hex);
    TAP_IS_STR(hex, str(fx, "hex_raw"), "X-Webhook-Signature with a plain secret");
    webhook_sign_hex(str(fx, "secret_whsec"), body.data, body.len, hex);
    TAP_IS_STR(hex, str(fx, "hex_whsec"), "X-Webhook-Signature with a whsec_ secret (its bytes as given)");
    int64_t ts = YAJL_GET_INTEGER(json_get(fx, "timestamp"));
    webhook_sign_standard(str(fx, "secret_raw"), str(fx, "msg_id"), ts, body.data, body.len, std,
                          sizeof(std));
    TAP_IS_STR(std, str(fx, "standard_raw"), "webhook-signature with a plain secret (raw bytes as key)");
    webhook_sign_standard(str(fx, "secret_whsec"), str(fx, "msg_id"), ts, body.data, body.len, std,
                          sizeof(std));
    TAP_IS_STR(std, str(fx, "standard_whsec"), "webhook-signature with whsec_ (base64-decoded key)");

    buf_reset(&body);
    webhook_test_payload(&body, "2026-11-25T09:00:00.000000Z");
    TAP_IS_STR(buf_cstr(&body), str(fx, "test_body"), "test delivery body");

    buf_reset(&body);
    webhook_py_string(&body, "bad \xff byte");
    TAP_IS_STR(buf_cstr(&body), "\"bad \\ufffd byte\"",
               "invalid UTF-8 becomes U+FFFD as Python would decode it");
    buf_free(&body);
    yajl_tree_free(fx);
    free(text);
    return tap_done();
}
