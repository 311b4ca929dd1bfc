#include "core/jwt.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tokens longer than this are refused before any decoding work. */
#define JWT_MAX_LEN 4096

char *jwt_sign(const char *secret, const char *sub, int64_t now_s, int64_t ttl_s)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    buf_t payload = BUF_INIT, out = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &payload);
    jw_object_begin(&w);
    jw_key(&w, "sub");
    jw_string(&w, sub);
    jw_key(&w, "iat");
    jw_int(&w, now_s);
    jw_key(&w, "exp");
    jw_int(&w, now_s + ttl_s);
    jw_key(&w, "type");
    jw_string(&w, "access");
    jw_object_end(&w);

    char *enc = xmalloc(4 * (payload.len + 2) / 3 + 8);
    char henc[64];
    crypto_base64((const uint8_t *)header, sizeof(header) - 1, henc, 1);
    crypto_base64((const uint8_t *)payload.data, payload.len, enc, 1);
    buf_printf(&out, "%s.%s", henc, enc);
    uint8_t mac[32];
    char sig[48];
    crypto_hmac_sha256(secret, strlen(secret), out.data, out.len, mac);
    crypto_base64(mac, 32, sig, 1);
    buf_printf(&out, ".%s", sig);
    free(enc);
    buf_free(&payload);
    return buf_release(&out);
}

/* Decodes one base64url part into a NUL-terminated malloc'd string; NULL when invalid. */
static char *decode_part(const char *p, size_t n)
{
    char *out = xmalloc(3 * (n / 4) + 4);
    long len = crypto_base64_decode(p, n, (uint8_t *)out);
    if (len < 0) {
        free(out);
        return NULL;
    }
    out[len] = '\0';
    return out;
}

int jwt_verify(const char *secret, const char *token, size_t len, int64_t now_s, int64_t max_ttl_s, char *sub,
               size_t subcap, char *err, size_t errlen)
{
    if (len == 0 || len > JWT_MAX_LEN) {
        snprintf(err, errlen, "token length out of range");
        return -1;
    }
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot1 == NULL || dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        snprintf(err, errlen, "not a JWT");
        return -1;
    }
    int rc = -1;
    char *header = NULL, *payload = NULL;
    yajl_val h = NULL, p = NULL;
    char jerr[128];

    header = decode_part(token, (size_t)(dot1 - token));
    if (header == NULL || (h = json_parse(header, strlen(header), jerr, sizeof(jerr))) == NULL) {
        snprintf(err, errlen, "bad header");
        goto out;
    }
    /* Only HS256: "none", RS256 with the secret as a public key and every other algorithm are refused. */
    yajl_val alg = json_get(h, "alg");
    if (alg == NULL || !YAJL_IS_STRING(alg) || strcmp(alg->u.string, "HS256") != 0) {
        snprintf(err, errlen, "algorithm not allowed");
        goto out;
    }
    uint8_t mac[32];
    char expect[48];
    crypto_hmac_sha256(secret, strlen(secret), token, (size_t)(dot2 - token), mac);
    crypto_base64(mac, 32, expect, 1);
    const char *sig = dot2 + 1;
    size_t siglen = len - (size_t)(sig - token);
    if (!crypto_equal(expect, strlen(expect), sig, siglen)) {
        snprintf(err, errlen, "bad signature");
        goto out;
    }
    payload = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (payload == NULL || (p = json_parse(payload, strlen(payload), jerr, sizeof(jerr))) == NULL) {
        snprintf(err, errlen, "bad payload");
        goto out;
    }
    yajl_val exp = json_get(p, "exp"), iat = json_get(p, "iat"), s = json_get(p, "sub"),
             type = json_get(p, "type");
    if (exp == NULL || !YAJL_IS_NUMBER(exp) || YAJL_GET_DOUBLE(exp) <= (double)now_s) {
        snprintf(err, errlen, "expired");
        goto out;
    }
    /* Doubles: exp and iat may be any JSON number (1e300 included); the comparisons stay exact for the
     * timestamps that matter (below 2^53). */
    double e = YAJL_GET_DOUBLE(exp);
    if (e - (double)now_s > (double)(max_ttl_s + JWT_CLOCK_SKEW_S)) {
        snprintf(err, errlen, "expiry too far ahead");
        goto out;
    }
    if (iat != NULL) {
        if (!YAJL_IS_NUMBER(iat) || YAJL_GET_DOUBLE(iat) > (double)(now_s + JWT_CLOCK_SKEW_S)) {
            snprintf(err, errlen, "bad issue time");
            goto out;
        }
        if (e - YAJL_GET_DOUBLE(iat) > (double)max_ttl_s) {
            snprintf(err, errlen, "lifetime too long");
            goto out;
        }
    }
    if (type != NULL && (!YAJL_IS_STRING(type) || strcmp(type->u.string, "access") != 0)) {
        snprintf(err, errlen, "not an access token");
        goto out;
    }
    if (s == NULL || !YAJL_IS_STRING(s) || strlen(s->u.string) >= subcap) {
        snprintf(err, errlen, "bad subject");
        goto out;
    }
    strcpy(sub, s->u.string);
    rc = 0;
out:
    if (h != NULL)
        yajl_tree_free(h);
    if (p != NULL)
        yajl_tree_free(p);
    free(header);
    free(payload);
    return rc;
}
