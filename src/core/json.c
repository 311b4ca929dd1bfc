#include "core/json.h"
#include "core/alloc.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *out)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
        *out = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *out = cp;
    return len;
}

static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    return utf8_decode(s, n, &cp);
}

void json_put_stringn(buf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    buf_reserve(b, n + 2);
    buf_putc(b, '"');
    /* Bytes that need nothing (printable ASCII but '"' and '\\', and valid UTF-8 sequences) are copied in
     * runs; only an escape or an invalid byte ends a run. */
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t len = 0;
        if (c >= 0x80 && (len = utf8_seq_len(p + i, n - i)) > 0) {
            i += len;
            continue;
        }
        buf_append(b, p + run, i - run);
        switch (c) {
        case '"':
            buf_append(b, "\\\"", 2);
            break;
        case '\\':
            buf_append(b, "\\\\", 2);
            break;
        case '\n':
            buf_append(b, "\\n", 2);
            break;
        case '\r':
            buf_append(b, "\\r", 2);
            break;
        case '\t':
            buf_append(b, "\\t", 2);
            break;
        case '\b':
            buf_append(b, "\\b", 2);
            break;
        case '\f':
            buf_append(b, "\\f", 2);
            break;
        default:
            if (c < 0x20) {
                static const char hex[] = "0123456789abcdef";
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_append(b, u, 6);
            } else {
                /* Not UTF-8: one replacement character per bad byte. */
                buf_append(b, "\\ufffd", 6);
            }
        }
        i++;
        run = i;
    }
    buf_append(b, p + run, n - run);
    buf_putc(b, '"');
}

void json_put_string(buf_t *b, const char *s)
{
    json_put_stringn(b, s, strlen(s));
}

/* yajl_gen allocates its state once, in yajl_gen_alloc, and nothing after that when it prints through a
 * callback; these hand it the writer's own arena, so a writer is a plain stack object with nothing to free.
 */
static void *arena_malloc(void *ctx, size_t n)
{
    json_writer_t *w = ctx;
    size_t align = _Alignof(max_align_t);
    size_t at = (w->_arena_used + align - 1) / align * align;
    if (n > sizeof(w->_arena) || at > sizeof(w->_arena) - n) {
        fprintf(stderr, "inkloop: yajl_gen needs more than JSON_WRITER_ARENA (%d) bytes\n",
                JSON_WRITER_ARENA);
        abort();
    }
    w->_arena_used = at + n;
    return w->_arena + at;
}

static void *arena_realloc(void *ctx, void *p, size_t n)
{
    if (p == NULL)
        return arena_malloc(ctx, n);
    fprintf(stderr, "inkloop: yajl_gen grew a buffer it should not have\n");
    abort();
}

static void arena_free(void *ctx, void *p)
{
    (void)ctx;
    (void)p;
}

static void on_print(void *ctx, const char *s, size_t n)
{
    buf_append(ctx, s, n);
}

void jw_init(json_writer_t *w, buf_t *out)
{
    w->out = out;
    w->_arena_used = 0;
    yajl_alloc_funcs funcs = {arena_malloc, arena_realloc, arena_free, w};
    w->_gen = yajl_gen_alloc(&funcs);
    if (w->_gen == NULL || !yajl_gen_config(w->_gen, yajl_gen_print_callback, on_print, out)) {
        fprintf(stderr, "inkloop: cannot set up yajl_gen\n");
        abort();
    }
}

/* Every status but ok is a caller's bug: a value where a key belongs, a second top-level value, a close
 * without an open, nesting past yajl's limit. */
static void check(yajl_gen_status st)
{
    assert(st == yajl_gen_status_ok);
    (void)st;
}

/* Strings keep the hand-written escaper (json_put_stringn); yajl_gen places the separator and the quotes of
 * an empty string, and the escaped string takes the place of those quotes. yajl_gen_string cannot give the
 * bytes every answer has today: it writes \u00XX in uppercase, and invalid UTF-8 passes through raw (or the
 * whole string is refused, with validation on) where we write \ufffd per bad byte, judged strictly (yajl's
 * check accepts overlong forms and surrogates). Nor is it faster on the hot path: on a GET /articles/{id}
 * body (bench/json/run.sh, 25.8 KB, two ~12 KB strings; best rounds, 2 cores under load 18, 2026-12-04)
 * yajl_gen doing everything took 51.9 us, this writer 45.7 us, the writer before yajl_gen 54.9 us; the spread
 * between runs was larger than those differences. */
static void put_string(json_writer_t *w, const char *s, size_t n)
{
    check(yajl_gen_string(w->_gen, (const unsigned char *)"", 0));
    assert(w->out->len >= 2 && memcmp(w->out->data + w->out->len - 2, "\"\"", 2) == 0);
    w->out->len -= 2;
    json_put_stringn(w->out, s, n);
}

void jw_object_begin(json_writer_t *w)
{
    check(yajl_gen_map_open(w->_gen));
}

void jw_object_end(json_writer_t *w)
{
    check(yajl_gen_map_close(w->_gen));
}

void jw_array_begin(json_writer_t *w)
{
    check(yajl_gen_array_open(w->_gen));
}

void jw_array_end(json_writer_t *w)
{
    check(yajl_gen_array_close(w->_gen));
}

void jw_key(json_writer_t *w, const char *key)
{
    put_string(w, key, strlen(key));
}

void jw_string(json_writer_t *w, const char *s)
{
    if (s == NULL)
        check(yajl_gen_null(w->_gen));
    else
        put_string(w, s, strlen(s));
}

void jw_int(json_writer_t *w, int64_t v)
{
    check(yajl_gen_integer(w->_gen, (long long)v));
}

void jw_double(json_writer_t *w, double v)
{
    /* yajl_gen_double refuses NaN and infinities (yajl_gen_invalid_number) and writes nothing. */
    if (!isfinite(v))
        check(yajl_gen_null(w->_gen));
    else
        check(yajl_gen_double(w->_gen, v));
}

void jw_bool(json_writer_t *w, int v)
{
    check(yajl_gen_bool(w->_gen, v));
}

void jw_null(json_writer_t *w)
{
    check(yajl_gen_null(w->_gen));
}

void jw_raw(json_writer_t *w, const char *json, size_t len)
{
    /* yajl_gen_number prints its text verbatim as one value: yajl's way to insert serialized JSON. */
    check(yajl_gen_number(w->_gen, json, len));
}

/* The value of the four hex digits at p, or -1 when they are not hex digits. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Measures nesting outside string literals, refuses escaped NULs (yajl hands strings out NUL-terminated, so
 * "a\u0000b" would silently become "a") and, when surrogates is set, UTF-16 surrogate escapes that are not a
 * high one followed by a low one (yajl turns those into '?'); yajl itself reports every other syntax error.
 * Returns 0, or -1 too deep, -2 for a NUL, -3 for a lone surrogate. */
static int scan(const char *text, size_t len, int surrogates)
{
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') {
                long u = i + 5 < len && text[i + 1] == 'u' ? hex4(text + i + 2) : -1;
                if (u >= 0) {
                    if (u == 0)
                        return -2;
                    if (surrogates && u >= 0xdc00 && u <= 0xdfff)
                        return -3; /* a low surrogate without a high one before it */
                    if (surrogates && u >= 0xd800 && u <= 0xdbff) {
                        long lo = i + 11 < len && text[i + 6] == '\\' && text[i + 7] == 'u'
                                      ? hex4(text + i + 8)
                                      : -1;
                        if (lo < 0xdc00 || lo > 0xdfff)
                            return -3; /* a high surrogate not followed by a low one */
                        i += 6;        /* past the high escape; the low one is skipped below */
                    }
                    i += 5;
                } else {
                    i++;
                }
            } else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > JSON_MAX_DEPTH)
                return -1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

static yajl_val parse(const char *text, size_t len, int surrogates, char *err, size_t errlen)
{
    int sc = scan(text, len, surrogates);
    if (sc == -1) {
        snprintf(err, errlen, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
        return NULL;
    }
    if (sc == -2) {
        snprintf(err, errlen, "NUL characters are not allowed in strings");
        return NULL;
    }
    if (sc == -3) {
        snprintf(err, errlen, "a string has an unpaired UTF-16 surrogate escape");
        return NULL;
    }
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq_len((const unsigned char *)text + i, len - i);
        if (n == 0 || text[i] == '\0') {
            snprintf(err, errlen, "body is not valid UTF-8 text");
            return NULL;
        }
        i += n;
    }
    /* yajl_tree_parse wants a NUL-terminated string. */
    char *copy = xstrndup(text, len);
    char yerr[256] = "";
    yajl_val v = yajl_tree_parse(copy, yerr, sizeof(yerr));
    free(copy);
    if (v == NULL) {
        /* yajl's message spans lines and quotes the input; keep its first line. */
        char *nl = strchr(yerr, '\n');
        if (nl != NULL)
            *nl = '\0';
        snprintf(err, errlen, "invalid JSON: %s", yerr[0] ? yerr : "parse error");
    }
    return v;
}

yajl_val json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    return parse(text, len, 0, err, errlen);
}

yajl_val json_parse_request(const char *text, size_t len, char *err, size_t errlen)
{
    return parse(text, len, 1, err, errlen);
}

yajl_val json_get(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}
