/* Micro-benchmark of the JSON writer on the body of GET /articles/{id}: 33 members, two of them the ~12 KB
 * strings content (Markdown) and content_html. Prints ns per body for
 *   - ref:      the hand-written writer inkloop used before yajl_gen (kept here, verbatim in behaviour, as
 * the reference point),
 *   - yajl:     yajl_gen doing everything, strings included (yajl_gen_string, no UTF-8 validation),
 *   - current:  src/core/json.c as built (jw_*).
 * Not a test: bench/json/run.sh builds it (release) and runs it. */
#include "core/buf.h"
#include "core/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>

/* ---- the reference: the string escaper and separators as they were ---- */

static void ref_string(buf_t *b, const char *s, size_t n)
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
                uint32_t cp;
                size_t len = utf8_decode(p + i, n - i, &cp);
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

typedef struct {
    buf_t *out;
    int first, after_key;
} ref_w;

static void ref_sep(ref_w *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (!w->first)
        buf_putc(w->out, ',');
    w->first = 0;
}

static void ref_key(ref_w *w, const char *k)
{
    ref_sep(w);
    ref_string(w->out, k, strlen(k));
    buf_putc(w->out, ':');
    w->after_key = 1;
}

static void ref_str(ref_w *w, const char *s)
{
    ref_sep(w);
    ref_string(w->out, s, strlen(s));
}

static void ref_int(ref_w *w, long long v)
{
    ref_sep(w);
    buf_printf(w->out, "%lld", v);
}

/* ---- the article ---- */

static const char *keys_s[] = {"id",           "topic",     "raw_query",  "status",
                               "scheduled_at", "timezone",  "created_at", "updated_at",
                               "completed_at", "posted_at", "category",   "language"};
static const char *keys_i[] = {"target_length", "source_count",      "word_count",  "tokens_used",
                               "prompt_tokens", "completion_tokens", "retry_count", "posting_attempt_count"};
static const char *short_val = "2026-11-25T09:00:00.000000Z";
static char *content, *content_html;

static char *make_text(size_t n, int html)
{
    static const char *md[] = {
        "## Why it matters\n\n",    "Caf\xc3\xa9 owners say \"it works\" \xe2\x80\x94 ",
        "the results are clear. ",  "- one point\n",
        "**bold** and `code`\n",    "See https://example.com/a/b?c=d for more. ",
        "\xe2\x80\x99tis fine.\n\n"};
    static const char *ht[] = {"<h2>Why it matters</h2>\n",
                               "<p>Caf\xc3\xa9 owners say &quot;it works&quot; ",
                               "\xe2\x80\x94 the results are clear.</p>\n",
                               "<a href=\"https://example.com/a\">x</a>",
                               "<ul>\n<li>one point</li>\n</ul>\n",
                               "<p><strong>bold</strong></p>\n"};
    const char **parts = html ? ht : md;
    size_t np = html ? sizeof(ht) / sizeof(ht[0]) : sizeof(md) / sizeof(md[0]);
    buf_t b = BUF_INIT;
    for (size_t i = 0; b.len < n; i++)
        buf_puts(&b, parts[i % np]);
    return b.data;
}

static void body_ref(buf_t *out)
{
    ref_w w = {out, 1, 0};
    buf_putc(out, '{');
    for (size_t i = 0; i < sizeof(keys_s) / sizeof(keys_s[0]); i++) {
        ref_key(&w, keys_s[i]);
        ref_str(&w, short_val);
    }
    ref_key(&w, "content");
    ref_str(&w, content);
    ref_key(&w, "content_html");
    ref_str(&w, content_html);
    for (size_t i = 0; i < sizeof(keys_i) / sizeof(keys_i[0]); i++) {
        ref_key(&w, keys_i[i]);
        ref_int(&w, 1234);
    }
    buf_putc(out, '}');
}

static void yajl_print(void *ctx, const char *s, size_t n)
{
    buf_append(ctx, s, n);
}

static void ystr(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void body_yajl(buf_t *out)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_config(g, yajl_gen_print_callback, yajl_print, out);
    yajl_gen_map_open(g);
    for (size_t i = 0; i < sizeof(keys_s) / sizeof(keys_s[0]); i++) {
        ystr(g, keys_s[i]);
        ystr(g, short_val);
    }
    ystr(g, "content");
    ystr(g, content);
    ystr(g, "content_html");
    ystr(g, content_html);
    for (size_t i = 0; i < sizeof(keys_i) / sizeof(keys_i[0]); i++) {
        ystr(g, keys_i[i]);
        yajl_gen_integer(g, 1234);
    }
    yajl_gen_map_close(g);
    yajl_gen_free(g);
}

static void body_current(buf_t *out)
{
    json_writer_t w;
    jw_init(&w, out);
    jw_object_begin(&w);
    for (size_t i = 0; i < sizeof(keys_s) / sizeof(keys_s[0]); i++) {
        jw_key(&w, keys_s[i]);
        jw_string(&w, short_val);
    }
    jw_key(&w, "content");
    jw_string(&w, content);
    jw_key(&w, "content_html");
    jw_string(&w, content_html);
    for (size_t i = 0; i < sizeof(keys_i) / sizeof(keys_i[0]); i++) {
        jw_key(&w, keys_i[i]);
        jw_int(&w, 1234);
    }
    jw_object_end(&w);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ns per body for one round of iters bodies. */
static double round_ns(void (*fn)(buf_t *), int iters, buf_t *b)
{
    double t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        b->len = 0;
        fn(b);
    }
    return (now_ns() - t0) / iters;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    content = make_text(12000, 0);
    content_html = make_text(12000, 1);
    buf_t a = BUF_INIT, c = BUF_INIT;
    body_ref(&a);
    body_current(&c);
    if (a.len != c.len || memcmp(a.data, c.data, a.len) != 0) {
        fprintf(stderr, "json_bench: the current writer's body differs from the reference\n");
        return 1;
    }
    /* The variants take turns, round after round, and each keeps its best round: on a shared machine the
     * best round is the least disturbed one, and taking turns exposes all three to the same load. */
    enum { ROUNDS = 40 };
    static const char *names[] = {"ref", "yajl", "current"};
    void (*fns[])(buf_t *) = {body_ref, body_yajl, body_current};
    double best[3] = {1e30, 1e30, 1e30};
    buf_t b = BUF_INIT;
    for (int r = 0; r < ROUNDS; r++)
        for (int v = 0; v < 3; v++) {
            double ns = round_ns(fns[v], iters, &b);
            if (ns < best[v])
                best[v] = ns;
        }
    printf("body: %zu bytes (content %zu, content_html %zu); best of %d rounds of %d bodies, taking turns\n",
           a.len, strlen(content), strlen(content_html), ROUNDS, iters);
    for (int v = 0; v < 3; v++)
        printf("%-8s %9.1f us/body  %6.1f MB/s  %.2fx ref\n", names[v], best[v] / 1e3,
               (double)a.len / best[v] * 1e3, best[v] / best[0]);
    buf_free(&b);
    buf_free(&a);
    buf_free(&c);
    free(content);
    free(content_html);
    return 0;
}
