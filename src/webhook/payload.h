/* The outgoing webhook body and its signatures (API.md section 6). The body is serialized exactly as Python's
 * json.dumps(payload, sort_keys=True) would: keys sorted, ", " and ": " separators, every character outside
 * printable ASCII escaped as \uXXXX (surrogate pairs beyond the BMP), so receivers written for the original
 * system verify the signature over the raw body or over that canonical form alike. */
#ifndef INKLOOP_WEBHOOK_PAYLOAD_H
#define INKLOOP_WEBHOOK_PAYLOAD_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct st_webhook_source_t {
    const char *url;
    const char *title; /* NULL: null */
} webhook_source_t;

/** What an article.published event carries; NULL strings are written as null. */
typedef struct st_webhook_article_t {
    const char *id;
    const char *campaign_id;
    const char *title;
    const char *content;
    const char *content_html;
    const char *category;
    const char *const *keywords;
    size_t keyword_count;
    const char *meta_description;
    const char *slug;
    const webhook_source_t *sources;
    size_t source_count;
    int64_t word_count;       /* -1: null */
    const char *scheduled_at; /* ISO-8601 */
    const char *created_at;
} webhook_article_t;

/** Appends s as Python's json.dumps(s) (ensure_ascii) would write it. Invalid UTF-8 bytes become \ufffd. */
void webhook_py_string(buf_t *out, const char *s);
/** Appends the article.published body. */
void webhook_payload(buf_t *out, const webhook_article_t *a);
/** The test delivery body {"test": true, "timestamp": "..."}. */
void webhook_test_payload(buf_t *out, const char *timestamp);

/** X-Webhook-Signature: lowercase hex HMAC-SHA256 of body with the secret's bytes (out: 65 bytes). */
void webhook_sign_hex(const char *secret, const char *body, size_t len, char out[65]);
/** Standard Webhooks "v1,<base64 HMAC-SHA256 of id.timestamp.body>"; the key is the base64-decoded part after
 * "whsec_" for such secrets, the raw secret bytes otherwise (out: at least 64 bytes). */
void webhook_sign_standard(const char *secret, const char *msg_id, int64_t timestamp, const char *body,
                           size_t len, char *out, size_t outlen);

#endif
