/* Known-answer tests for the primitives the webhook signatures and tokens depend on. */
#include "core/crypto.h"
#include "core/timeutil.h"
#include "tap.h"

#include <string.h>

int main(void)
{
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
