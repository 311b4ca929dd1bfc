#include "core/crypto.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
    SHA256(data, len, out);
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[32])
{
    unsigned int outlen = 32;
    if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) == NULL)
        abort();
}

void crypto_random(void *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1) {
        fprintf(stderr, "inkloop: no random bytes available\n");
        abort();
    }
}

void crypto_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* EVP_EncodeBlock and EVP_DecodeBlock take int lengths, so long inputs go through in blocks; a block of
 * input is a multiple of 3 bytes (encoding) or 4 characters (decoding), so only the last one is padded. */
#define B64_BLOCK_CHARS 1024
#define B64_BLOCK_BYTES (B64_BLOCK_CHARS / 4 * 3)

size_t crypto_base64(const uint8_t *in, size_t n, char *out, int url)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += B64_BLOCK_BYTES) {
        size_t chunk = n - i < B64_BLOCK_BYTES ? n - i : B64_BLOCK_BYTES;
        o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, in + i, (int)chunk);
    }
    out[o] = '\0';
    if (url) {
        /* RFC 4648 section 5: the two letters differ and the padding goes. */
        while (o > 0 && out[o - 1] == '=')
            out[--o] = '\0';
        for (size_t i = 0; i < o; i++) {
            if (out[i] == '+')
                out[i] = '-';
            else if (out[i] == '/')
                out[i] = '_';
        }
    }
    return o;
}

long crypto_base64_decode(const char *in, size_t len, uint8_t *out)
{
    while (len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    /* EVP_DecodeBlock reads only the standard alphabet in whole groups of four, and is lenient where this
     * function is not: it trims blanks at the start, blanks, newlines and '-' at the end, and reads '='
     * anywhere as zero bits. So each block is copied with the URL-safe letters translated and those
     * characters refused, and the last group is padded; what padding decodes to is not counted. */
    char block[B64_BLOCK_CHARS];
    size_t o = 0;
    for (size_t i = 0; i < len; i += B64_BLOCK_CHARS) {
        size_t n = len - i < B64_BLOCK_CHARS ? len - i : B64_BLOCK_CHARS;
        for (size_t k = 0; k < n; k++) {
            char c = in[i + k];
            if (c == '-')
                c = '+';
            else if (c == '_')
                c = '/';
            else if (c == '=' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
                return -1;
            block[k] = c;
        }
        size_t pad = (4 - n % 4) % 4;
        memset(block + n, '=', pad);
        int got = EVP_DecodeBlock(out + o, (const unsigned char *)block, (int)(n + pad));
        if (got < 0)
            return -1;
        o += (size_t)got - pad;
    }
    return (long)o;
}

static uint8_t equal_key[32];
static pthread_once_t equal_key_once = PTHREAD_ONCE_INIT;

static void make_equal_key(void)
{
    crypto_random(equal_key, sizeof(equal_key));
}

int crypto_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    /* Compare MACs of both sides so neither the length nor the position of a difference leaks. The key is
     * made once for the process; password checks call this from the thread pool too. */
    pthread_once(&equal_key_once, make_equal_key);
    uint8_t ma[32], mb[32];
    crypto_hmac_sha256(equal_key, sizeof(equal_key), a, alen, ma);
    crypto_hmac_sha256(equal_key, sizeof(equal_key), b, blen, mb);
    return CRYPTO_memcmp(ma, mb, 32) == 0;
}

void crypto_uuid4(char out[37])
{
    uint8_t b[16];
    crypto_random(b, sizeof(b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    char hex[33];
    crypto_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}
