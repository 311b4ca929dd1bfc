/* Access tokens: round trip, expiry, tampering, and algorithms other than HS256. */
#include "core/crypto.h"
#include "core/jwt.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static const char secret[] = "test-secret-0123456789";
static const char uid[] = "3f1c2a4e-9b8d-4c7a-8e6f-0a1b2c3d4e5f";

static int verify(const char *tok, int64_t now, char *err)
{
    char sub[64];
    return jwt_verify(secret, tok, strlen(tok), now, 1800, sub, sizeof(sub), err, 64);
}

/* Builds header.payload.signature from JSON texts, signed with key (or with signature sig when given). */
static char *forge(const char *header, const char *payload, const char *key, const char *sig)
{
    char h[256], p[256], out[1024];
    crypto_base64((const uint8_t *)header, strlen(header), h, 1);
    crypto_base64((const uint8_t *)payload, strlen(payload), p, 1);
    snprintf(out, sizeof(out), "%s.%s", h, p);
    char s[64] = "";
    if (sig != NULL) {
        snprintf(s, sizeof(s), "%s", sig);
    } else {
        uint8_t mac[32];
        crypto_hmac_sha256(key, strlen(key), out, strlen(out), mac);
        crypto_base64(mac, 32, s, 1);
    }
    size_t n = strlen(out);
    snprintf(out + n, sizeof(out) - n, ".%s", s);
    return strdup(out);
}

int main(void)
{
    char err[64], sub[64];
    char *tok = jwt_sign(secret, uid, 1000, 1800);
    TAP_IS_INT(jwt_verify(secret, tok, strlen(tok), 1001, 1800, sub, sizeof(sub), err, sizeof(err)), 0,
               "round trip");
    TAP_IS_STR(sub, uid, "sub is the user id");
    TAP_IS_INT(verify(tok, 2800, err), -1, "expired at exp");
    TAP_IS_STR(err, "expired", "reason: expired");
    char sub2[8];
    TAP_IS_INT(jwt_verify(secret, tok, strlen(tok), 1001, 1800, sub2, sizeof(sub2), err, sizeof(err)), -1,
               "sub longer than the buffer refused");
    TAP_IS_INT(jwt_verify("other-secret-0123456789", tok, strlen(tok), 1001, 1800, sub, sizeof(sub), err,
                          sizeof(err)),
               -1, "other secret refused");

    /* Flip one character of the payload. */
    char *dot = strchr(tok, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    TAP_IS_INT(verify(tok, 1001, err), -1, "tampered payload refused");
    free(tok);

    const char *payload = "{\"sub\":\"3f1c2a4e-9b8d-4c7a-8e6f-0a1b2c3d4e5f\",\"exp\":2500}";
    char *t = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, secret, "");
    TAP_IS_INT(verify(t, 1001, err), -1, "alg none refused");
    TAP_IS_STR(err, "algorithm not allowed", "reason names the algorithm");
    free(t);
    t = forge("{\"alg\":\"HS512\"}", payload, secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "HS512 refused");
    free(t);
    t = forge("{\"alg\":\"RS256\"}", payload, secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "RS256 refused");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", payload, secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), 0, "a foreign HS256 token with the right key is accepted");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"exp\":5000,\"type\":\"refresh\"}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "a token of another type refused");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\"}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "no exp refused");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"exp\":5000}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "no sub refused");
    free(t);
    /* Lifetime bounds (max 1800 s): a validly signed token cannot outlast them. */
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"iat\":1000,\"exp\":2800}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), 0, "exp exactly the lifetime past iat is accepted");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"iat\":1000,\"exp\":2801}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "exp one second more than the lifetime past iat is refused");
    TAP_IS_STR(err, "lifetime too long", "reason: lifetime too long");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"iat\":1000,\"exp\":315360000}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "a ten-year token with a valid signature is refused");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"exp\":100000}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "without iat, exp far past now is refused");
    TAP_IS_STR(err, "expiry too far ahead", "reason: expiry too far ahead");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"exp\":2850}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), 0, "without iat, exp within the lifetime plus clock skew is accepted");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"iat\":99000,\"exp\":100000}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "iat and exp both far in the future (short span) are refused");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"iat\":1200,\"exp\":2000}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "iat in the future past the clock skew is refused");
    TAP_IS_STR(err, "bad issue time", "reason: bad issue time");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"iat\":\"1000\",\"exp\":2000}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "a string iat is refused");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"iat\":-1e400,\"exp\":2000}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "an iat of minus infinity is refused");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\",\"exp\":1e400}", secret, NULL);
    TAP_IS_INT(verify(t, 1001, err), -1, "an exp of infinity is refused");
    free(t);
    TAP_IS_INT(verify("a.b", 1001, err), -1, "two parts refused");
    TAP_IS_INT(verify("a.b.c.d", 1001, err), -1, "four parts refused");
    TAP_IS_INT(verify("!!.??.**", 1001, err), -1, "non-base64 refused");
    TAP_IS_INT(verify("", 1001, err), -1, "empty refused");
    return tap_done();
}
