#include "core/json.h"
#include "core/alloc.h"

#include <assert.h>
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
    buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            size_t start = i;
            while (i < n && p[i] >= 0x20 && p[i] != '"' && p[i] != '\\' && p[i] < 0x80)
                i++;
            buf_append(b, p + start, i - start);
            continue;
        }
        switch (c) {
        case '"':
            buf_puts(b, "\\\"");
            break;
        case '\\':
            buf_puts(b, "\\\\");
            break;
        case '\n':
            buf_puts(b, "\\n");
            break;
        case '\r':
            buf_puts(b, "\\r");
            break;
        case '\t':
            buf_puts(b, "\\t");
            break;
        case '\b':
            buf_puts(b, "\\b");
            break;
        case '\f':
            buf_puts(b, "\\f");
            break;
        default:
            if (c < 0x20) {
                buf_printf(b, "\\u%04x", c);
            } else {
                size_t len = utf8_seq_len(p + i, n - i);
                if (len == 0) {
                    buf_puts(b, "\\ufffd");
                    i++;
                    continue;
                }
                buf_append(b, p + i, len);
                i += len;
                continue;
            }
        }
        i++;
    }
    buf_putc(b, '"');
}

void json_put_string(buf_t *b, const char *s)
{
    json_put_stringn(b, s, strlen(s));
}

void jw_init(json_writer_t *w, buf_t *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->_first[0] = 1;
}

/* Emits the separator a new value needs at the current position. */
static void before_value(json_writer_t *w)
{
    if (w->_after_key) {
        w->_after_key = 0;
        return;
    }
    if (!w->_first[w->depth])
        buf_putc(w->out, ',');
    w->_first[w->depth] = 0;
}

static void open_container(json_writer_t *w, char c)
{
    before_value(w);
    buf_putc(w->out, c);
    assert(w->depth < JSON_MAX_DEPTH);
    w->depth++;
    w->_first[w->depth] = 1;
}

static void close_container(json_writer_t *w, char c)
{
    assert(w->depth > 0);
    w->depth--;
    buf_putc(w->out, c);
}

void jw_object_begin(json_writer_t *w)
{
    open_container(w, '{');
}

void jw_object_end(json_writer_t *w)
{
    close_container(w, '}');
}

void jw_array_begin(json_writer_t *w)
{
    open_container(w, '[');
}

void jw_array_end(json_writer_t *w)
{
    close_container(w, ']');
}

void jw_key(json_writer_t *w, const char *key)
{
    before_value(w);
    json_put_string(w->out, key);
    buf_putc(w->out, ':');
    w->_after_key = 1;
}

void jw_string(json_writer_t *w, const char *s)
{
    before_value(w);
    if (s == NULL)
        buf_puts(w->out, "null");
    else
        json_put_string(w->out, s);
}

void jw_int(json_writer_t *w, int64_t v)
{
    before_value(w);
    buf_printf(w->out, "%lld", (long long)v);
}

void jw_double(json_writer_t *w, double v)
{
    before_value(w);
    buf_printf(w->out, "%.17g", v);
}

void jw_bool(json_writer_t *w, int v)
{
    before_value(w);
    buf_puts(w->out, v ? "true" : "false");
}

void jw_null(json_writer_t *w)
{
    before_value(w);
    buf_puts(w->out, "null");
}

void jw_raw(json_writer_t *w, const char *json, size_t len)
{
    before_value(w);
    buf_append(w->out, json, len);
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
