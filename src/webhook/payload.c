#include "webhook/payload.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void webhook_py_string(buf_t *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    buf_putc(out, '"');
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode(p + i, n - i, &cp);
        if (len == 0) {
            cp = 0xfffd;
            len = 1;
        }
        i += len;
        switch (cp) {
        case '"':
            buf_puts(out, "\\\"");
            continue;
        case '\\':
            buf_puts(out, "\\\\");
            continue;
        case '\n':
            buf_puts(out, "\\n");
            continue;
        case '\r':
            buf_puts(out, "\\r");
            continue;
        case '\t':
            buf_puts(out, "\\t");
            continue;
        case '\b':
            buf_puts(out, "\\b");
            continue;
        case '\f':
            buf_puts(out, "\\f");
            continue;
        }
        if (cp >= 0x20 && cp <= 0x7e) {
            buf_putc(out, (char)cp);
        } else if (cp < 0x10000) {
            buf_printf(out, "\\u%04x", cp);
        } else {
            uint32_t v = cp - 0x10000;
            buf_printf(out, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
        }
    }
    buf_putc(out, '"');
}

static void py_opt_string(buf_t *out, const char *s)
{
    if (s == NULL)
        buf_puts(out, "null");
    else
        webhook_py_string(out, s);
}

/* Keys are written in sorted order by hand; test/unit/webhook checks the result against Python's output. */
void webhook_payload(buf_t *out, const webhook_article_t *a)
{
    buf_puts(out, "{\"article_id\": ");
    py_opt_string(out, a->id);
    buf_puts(out, ", \"campaign_id\": ");
    py_opt_string(out, a->campaign_id);
    buf_puts(out, ", \"category\": ");
    py_opt_string(out, a->category);
    buf_puts(out, ", \"content\": ");
    py_opt_string(out, a->content);
    buf_puts(out, ", \"content_html\": ");
    py_opt_string(out, a->content_html);
    buf_puts(out, ", \"created_at\": ");
    py_opt_string(out, a->created_at);
    buf_puts(out, ", \"event\": \"article.published\", \"id\": ");
    py_opt_string(out, a->id);
    buf_puts(out, ", \"keywords\": [");
    for (size_t i = 0; i < a->keyword_count; i++) {
        if (i > 0)
            buf_puts(out, ", ");
        webhook_py_string(out, a->keywords[i]);
    }
    buf_puts(out, "], \"meta_description\": ");
    py_opt_string(out, a->meta_description);
    buf_puts(out, ", \"scheduled_at\": ");
    py_opt_string(out, a->scheduled_at);
    buf_puts(out, ", \"slug\": ");
    py_opt_string(out, a->slug);
    buf_puts(out, ", \"sources\": [");
    for (size_t i = 0; i < a->source_count; i++) {
        buf_puts(out, i > 0 ? ", {\"title\": " : "{\"title\": ");
        py_opt_string(out, a->sources[i].title);
        buf_puts(out, ", \"url\": ");
        py_opt_string(out, a->sources[i].url);
        buf_putc(out, '}');
    }
    buf_puts(out, "], \"title\": ");
    py_opt_string(out, a->title);
    if (a->word_count < 0)
        buf_puts(out, ", \"word_count\": null}");
    else
        buf_printf(out, ", \"word_count\": %lld}", (long long)a->word_count);
}

void webhook_test_payload(buf_t *out, const char *timestamp)
{
    buf_puts(out, "{\"test\": true, \"timestamp\": ");
    webhook_py_string(out, timestamp);
    buf_putc(out, '}');
}

void webhook_sign_hex(const char *secret, const char *body, size_t len, char out[65])
{
    uint8_t mac[32];
    crypto_hmac_sha256(secret, strlen(secret), body, len, mac);
    crypto_hex(mac, 32, out);
}

void webhook_sign_standard(const char *secret, const char *msg_id, int64_t timestamp, const char *body,
                           size_t len, char *out, size_t outlen)
{
    size_t slen = strlen(secret);
    uint8_t *key = xmalloc(slen + 4);
    size_t keylen = slen;
    long dec = -1;
    if (strncmp(secret, "whsec_", 6) == 0)
        dec = crypto_base64_decode(secret + 6, slen - 6, key);
    if (dec > 0)
        keylen = (size_t)dec;
    else
        memcpy(key, secret, slen);
    buf_t msg = BUF_INIT;
    buf_printf(&msg, "%s.%lld.", msg_id, (long long)timestamp);
    buf_append(&msg, body, len);
    uint8_t mac[32];
    crypto_hmac_sha256(key, keylen, msg.data, msg.len, mac);
    char b64[48];
    crypto_base64(mac, 32, b64, 0);
    snprintf(out, outlen, "v1,%s", b64);
    buf_free(&msg);
    free(key);
}
