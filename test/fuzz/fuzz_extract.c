/* libFuzzer target for extract_html: any bytes, with a Content-Type picked by the first input byte, must give
 * a result that keeps every documented invariant (valid UTF-8, within the caps, strlen(text) == text_len).
 * Built and run by scripts/fuzz.sh (clang with -fsanitize=fuzzer,address,undefined). */
#include "pipeline/extract.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t n = c < 0x80                   ? 1
                   : (c >= 0xC2 && c <= 0xDF) ? 2
                   : (c >= 0xE0 && c <= 0xEF) ? 3
                   : (c >= 0xF0 && c <= 0xF4) ? 4
                                              : 0;
        if (n == 0 || i + n > len)
            return 0;
        uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1Fu) : n == 3 ? (c & 0x0Fu) : (c & 0x07u);
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3Fu);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n;
    }
    return 1;
}

static void check_string(const char *s, size_t max)
{
    if (s == NULL)
        abort();
    size_t n = strlen(s);
    if (n > max || !utf8_valid(s, n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {NULL,
                                        "text/html",
                                        "text/html; charset=utf-8",
                                        "text/html; charset=ISO-8859-1",
                                        "text/html; charset=windows-1251",
                                        "text/html; charset=shift_jis",
                                        "text/html; charset=utf-16",
                                        "text/html; charset=no-such-charset"};
    const char *ct = NULL;
    if (size > 0) {
        ct = types[data[0] % (sizeof(types) / sizeof(types[0]))];
        data++;
        size--;
    }
    extract_result_t r;
    extract_html((const char *)data, size, ct, "https://example.com/a", &r);
    check_string(r.title, EXTRACT_TITLE_MAX);
    check_string(r.text, EXTRACT_TEXT_MAX);
    if (strlen(r.text) != r.text_len)
        abort();
    check_string(r.author, EXTRACT_META_MAX);
    check_string(r.date, EXTRACT_META_MAX);
    check_string(r.site_name, EXTRACT_META_MAX);
    check_string(r.lang, EXTRACT_META_MAX);
    extract_result_free(&r);
    return 0;
}
