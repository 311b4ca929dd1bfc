/* Known-answer tests for the primitives the webhook signatures and tokens depend on. */
#include "core/crypto.h"
#include "core/timeutil.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* Base64 edge cases: every length 0..5 (no, one and two padding characters), both alphabets, padding
 * optional on input, and the inputs OpenSSL's EVP_DecodeBlock would accept but we refuse (it trims
 * whitespace at both ends and '-' at the end, and reads '=' anywhere as zero bits). */
static void test_base64_edges(void)
{
    static const struct {
        const char *in, *std, *url;
    } vec[] = {
        /* RFC 4648 section 10, plus bytes that hit '+', '/', '-' and '_'. */
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"},
        {"fooba", "Zm9vYmE=", "Zm9vYmE"},
        {"\xfb\xff\xbf", "+/+/", "-_-_"},
    };
    char b64[64];
    uint8_t out[64];
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        size_t n = strlen(vec[i].in);
        size_t len = crypto_base64((const uint8_t *)vec[i].in, n, b64, 0);
        TAP_IS_STR(b64, vec[i].std, "base64 of %zu bytes", n);
        TAP_IS_INT(len, strlen(vec[i].std), "base64 length of %zu bytes", n);
        len = crypto_base64((const uint8_t *)vec[i].in, n, b64, 1);
        TAP_IS_STR(b64, vec[i].url, "base64url of %zu bytes", n);
        TAP_IS_INT(len, strlen(vec[i].url), "base64url length of %zu bytes", n);
        const char *forms[] = {vec[i].std, vec[i].url};
        for (int f = 0; f < 2; f++) {
            memset(out, 0xaa, sizeof(out));
            long got = crypto_base64_decode(forms[f], strlen(forms[f]), out);
            TAP_OK(got == (long)n && memcmp(out, vec[i].in, n) == 0, "decode \"%s\" gives %zu bytes",
                   forms[f], n);
        }
    }
    /* Padding is optional and any amount of it is stripped, as before. */
    TAP_IS_INT(crypto_base64_decode("Zg=", 3, out), 1, "one '=' where two belong");
    TAP_IS_INT(crypto_base64_decode("Zm9v=", 5, out), 3, "stray '=' after a full group");
    /* A decoded length is never longer than the bytes really encoded (EVP_DecodeBlock counts padding). */
    TAP_IS_INT(crypto_base64_decode("Zm9vYg==", 8, out), 4, "padding not counted");
    TAP_OK(crypto_base64_decode("Zm9vYg", 6, out) == 4 && memcmp(out, "foob", 4) == 0, "unpadded group");
    /* Both alphabets in one input decode (jwt and webhook secrets never mix them, but nothing forbids it). */
    TAP_OK(crypto_base64_decode("+/-_", 4, out) == 3 && out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf,
           "mixed alphabets");

    static const struct {
        const char *in;
        size_t len;
        const char *what;
    } bad[] = {
        {"Z", 1, "one character"},           {"Zm9vY", 5, "five characters"},
        {"Zm9v!", 5, "invalid character"},   {"Zg==Zm9v", 8, "'=' inside"},
        {"Z=g=", 4, "'=' inside a group"},   {"=Zg=", 4, "leading '='"},
        {" Zm9v", 5, "leading space"},       {"\tZm9v", 5, "leading tab"},
        {"Zm9v ", 5, "trailing space"},      {"Zm9v\n", 5, "trailing newline"},
        {"Zm9v\r\n", 6, "trailing CRLF"},    {"Zm 9v", 5, "space inside"},
        {"Zm9v\nYmFy", 9, "newline inside"}, {"Zm9v\0Zm9v", 9, "NUL inside"},
        {"Zm9v\xc3\xa9", 6, "non-ASCII"},    {"Zm9v.", 5, "dot"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        TAP_IS_INT(crypto_base64_decode(bad[i].in, bad[i].len, out), -1, "refused: %s", bad[i].what);
    }
    /* A trailing '-' is URL-safe data (62), not something to trim. */
    TAP_OK(crypto_base64_decode("Zm9v----", 8, out) == 6 && memcmp(out, "foo\xfb\xef\xbe", 6) == 0,
           "trailing '-' decoded as data");

    /* Long inputs cross any internal block size; every length up to 3 KiB round-trips in both alphabets. */
    enum { MAX = 3100 };
    uint8_t *raw = malloc(MAX), *back = malloc(MAX + 3);
    char *enc = malloc(4 * ((MAX + 2) / 3) + 1);
    for (size_t i = 0; i < MAX; i++)
        raw[i] = (uint8_t)(i * 131 + 7);
    int ok = 1;
    for (size_t n = 0; n <= MAX && ok; n += (n < 64 ? 1 : 37)) {
        for (int url = 0; url < 2 && ok; url++) {
            size_t len = crypto_base64(raw, n, enc, url);
            size_t want = url ? (4 * n + 2) / 3 : 4 * ((n + 2) / 3);
            ok = len == want && strlen(enc) == len && crypto_base64_decode(enc, len, back) == (long)n &&
                 memcmp(back, raw, n) == 0;
            if (!ok)
                printf("# round trip failed at %zu bytes, url=%d\n", n, url);
        }
    }
    TAP_OK(ok, "round trips up to %d bytes", MAX);
    free(raw);
    free(back);
    free(enc);
}

int main(void)
{
    test_base64_edges();

    uint8_t mac[32];
    char hex[65];
    /* RFC 4231 test case 2. */
    crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
    crypto_hex(mac, 32, hex);
    TAP_IS_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
               "HMAC-SHA256 RFC 4231 #2");
    crypto_sha256("abc", 3, mac);
    crypto_hex(mac, 32, hex);
    TAP_IS_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "SHA-256 of abc");

    char b64[64];
    crypto_base64((const uint8_t *)"foob", 4, b64, 0);
    TAP_IS_STR(b64, "Zm9vYg==", "base64 with padding");
    crypto_base64((const uint8_t *)"fooba", 5, b64, 0);
    TAP_IS_STR(b64, "Zm9vYmE=", "base64 one pad");
    crypto_base64((const uint8_t *)"\xfb\xff", 2, b64, 1);
    TAP_IS_STR(b64, "-_8", "base64url without padding");
    uint8_t out[16];
    long n = crypto_base64_decode("Zm9vYmFy", 8, out);
    TAP_OK(n == 6 && memcmp(out, "foobar", 6) == 0, "decode");
    n = crypto_base64_decode("-_8", 3, out);
    TAP_OK(n == 2 && out[0] == 0xfb && out[1] == 0xff, "decode url-safe");
    TAP_IS_INT(crypto_base64_decode("Zm9v!", 5, out), -1, "invalid character refused");
    TAP_IS_INT(crypto_base64_decode("Z", 1, out), -1, "impossible length refused");

    TAP_OK(crypto_equal("secret", 6, "secret", 6), "equal strings");
    TAP_OK(!crypto_equal("secret", 6, "secreT", 6), "different strings");
    TAP_OK(!crypto_equal("secret", 6, "secret2", 7), "different lengths");

    char u1[37], u2[37];
    crypto_uuid4(u1);
    crypto_uuid4(u2);
    TAP_OK(strlen(u1) == 36 && u1[14] == '4' && u1[8] == '-' && strchr("89ab", u1[19]) != NULL,
           "uuid4 form %s", u1);
    TAP_OK(strcmp(u1, u2) != 0, "uuids differ");

    char ts[40];
    time_format_iso(1764061200123456LL, ts, sizeof(ts));
    TAP_IS_STR(ts, "2025-11-25T09:00:00.123456Z", "ISO timestamp with microseconds");
    TAP_OK(time_pg_to_iso("2026-11-25 09:00:00.5+00", ts, sizeof(ts)) == 0, "pg timestamp converts");
    TAP_IS_STR(ts, "2026-11-25T09:00:00.500000Z", "fraction padded");
    TAP_OK(time_pg_to_iso("2026-11-25 09:00:00+00", ts, sizeof(ts)) == 0 &&
               strcmp(ts, "2026-11-25T09:00:00.000000Z") == 0,
           "no fraction");
    TAP_OK(time_pg_to_iso("nonsense", ts, sizeof(ts)) != 0, "garbage refused");
    return tap_done();
}
