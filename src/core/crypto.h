/* Hashes, MACs, encodings and randomness on OpenSSL. */
#ifndef INKLOOP_CORE_CRYPTO_H
#define INKLOOP_CORE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/** SHA-256 of data into out (32 bytes). */
void crypto_sha256(const void *data, size_t len, uint8_t out[32]);
/** HMAC-SHA256 of data with key into out (32 bytes). */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[32]);
/** Fills out with n cryptographically strong random bytes; aborts if the system cannot provide them. */
void crypto_random(void *out, size_t n);
/** Lowercase hex of n bytes into out (2n+1 bytes). */
void crypto_hex(const uint8_t *in, size_t n, char *out);
/** Base64 (url = 1: URL-safe alphabet without padding) of n bytes into out; returns the length written.
 * out needs 4 * ((n + 2) / 3) + 1 bytes. */
size_t crypto_base64(const uint8_t *in, size_t n, char *out, int url);
/** Decodes standard or URL-safe base64 (padding optional; whitespace and inner "=" are invalid); returns the
 * length or -1 when invalid.
 * out needs 3 * (len / 4) + 3 bytes. */
long crypto_base64_decode(const char *in, size_t len, uint8_t *out);
/** Compares two byte strings in time independent of their contents (lengths may differ); 1 when equal. */
int crypto_equal(const void *a, size_t alen, const void *b, size_t blen);
/** A random UUID (version 4) in lowercase hyphenated form into out (37 bytes). */
void crypto_uuid4(char out[37]);

#endif
