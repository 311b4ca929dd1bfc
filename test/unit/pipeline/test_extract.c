/* extract: a corpus of saved pages with expected titles and text (test/data/html/NAME.html + NAME.expected),
 * then inputs meant to break it: random bytes, truncated documents, extreme nesting, odd encodings, size
 * caps.
 *
 * NAME.expected: the first line is the expected title; then, one per line,
 *   "+ text"           must appear in the extracted text
 *   "- text"           must not appear
 *   "max N" / "min N"  bounds on the text length in bytes
 *   "content-type V"   the Content-Type header to pass
 *   "encoding NAME"    the encoding extract_html must report
 *   "author V", "date V", "site V", "lang V"   the metadata extract_html must report
 * In texts, "\n" stands for a newline. */
#include "pipeline/extract.h"
#include "tap.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HTML_CORPUS_DIR
#error "HTML_CORPUS_DIR must be defined by the build"
#endif

static char *file_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    buf_t b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return buf_release(&b);
}

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

/* The result invariants every input must satisfy. */
static int result_sane(const extract_result_t *r)
{
    return r->title != NULL && r->text != NULL && strlen(r->text) == r->text_len &&
           r->text_len <= EXTRACT_TEXT_MAX && strlen(r->title) <= EXTRACT_TITLE_MAX &&
           utf8_valid(r->title, strlen(r->title)) && utf8_valid(r->text, r->text_len) && r->author != NULL &&
           r->date != NULL && r->site_name != NULL && r->lang != NULL &&
           strlen(r->author) <= EXTRACT_META_MAX && strlen(r->date) <= EXTRACT_META_MAX &&
           strlen(r->site_name) <= EXTRACT_META_MAX && strlen(r->lang) <= EXTRACT_META_MAX &&
           utf8_valid(r->author, strlen(r->author)) && utf8_valid(r->date, strlen(r->date)) &&
           utf8_valid(r->site_name, strlen(r->site_name)) && utf8_valid(r->lang, strlen(r->lang));
}

static char *unescape(const char *s)
{
    buf_t b = BUF_INIT;
    for (; *s != '\0'; s++) {
        if (s[0] == '\\' && s[1] == 'n') {
            buf_putc(&b, '\n');
            s++;
        } else {
            buf_putc(&b, *s);
        }
    }
    return buf_release(&b);
}

static void corpus_check(const char *name)
{
    char path[1024];
    size_t html_len, exp_len;
    snprintf(path, sizeof(path), "%s/%s.html", HTML_CORPUS_DIR, name);
    char *html = file_read(path, &html_len);
    snprintf(path, sizeof(path), "%s/%s.expected", HTML_CORPUS_DIR, name);
    char *exp = file_read(path, &exp_len);
    TAP_OK(html != NULL && exp != NULL, "%s: page and expectations readable", name);
    if (html == NULL || exp == NULL) {
        free(html);
        free(exp);
        return;
    }

    /* First pass over the expectations: the options that change the call. */
    char content_type[256] = "";
    for (char *line = exp; line != NULL;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, "content-type ", 13) == 0) {
            size_t n = nl ? (size_t)(nl - line - 13) : strlen(line + 13);
            snprintf(content_type, sizeof(content_type), "%.*s", (int)n, line + 13);
        }
        line = nl ? nl + 1 : NULL;
    }

    extract_result_t r;
    int rc =
        extract_html(html, html_len, *content_type ? content_type : NULL, "https://example.com/page", &r);
    TAP_IS_INT(rc, 0, "%s: extract_html succeeds", name);
    TAP_OK(result_sane(&r), "%s: result is valid UTF-8 within the caps", name);

    int lineno = 0, failed = 0;
    for (char *line = exp; line != NULL && *line != '\0'; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (lineno == 0) {
            TAP_IS_STR(r.title, line, "%s: title", name);
        } else if (line[0] == '+' || line[0] == '-') {
            char *want = unescape(line + 2);
            int found = strstr(r.text, want) != NULL;
            TAP_OK(found == (line[0] == '+'), "%s: %s \"%s\"", name, line[0] == '+' ? "has" : "lacks",
                   line + 2);
            if (found != (line[0] == '+'))
                failed = 1;
            free(want);
        } else if (strncmp(line, "max ", 4) == 0) {
            TAP_OK(r.text_len <= strtoul(line + 4, NULL, 10), "%s: text is at most %s bytes (%zu)", name,
                   line + 4, r.text_len);
        } else if (strncmp(line, "min ", 4) == 0) {
            TAP_OK(r.text_len >= strtoul(line + 4, NULL, 10), "%s: text is at least %s bytes (%zu)", name,
                   line + 4, r.text_len);
        } else if (strncmp(line, "encoding ", 9) == 0) {
            TAP_IS_STR(r.encoding, line + 9, "%s: decoded as %s", name, line + 9);
        } else if (strncmp(line, "author ", 7) == 0) {
            TAP_IS_STR(r.author, line + 7, "%s: author", name);
        } else if (strncmp(line, "date ", 5) == 0) {
            TAP_IS_STR(r.date, line + 5, "%s: date", name);
        } else if (strncmp(line, "site ", 5) == 0) {
            TAP_IS_STR(r.site_name, line + 5, "%s: site name", name);
        } else if (strncmp(line, "lang ", 5) == 0) {
            TAP_IS_STR(r.lang, line + 5, "%s: language", name);
        }
        line = nl ? nl + 1 : NULL;
    }
    if (failed) {
        /* Show what came out, as TAP comments, so a failure can be diagnosed from the log alone. */
        printf("# --- %s text ---\n# ", name);
        for (const char *p = r.text; *p; p++)
            printf(*p == '\n' ? "\n# " : "%c", *p);
        printf("\n# --- end ---\n");
    }

    /* Truncated copies of a real page: every prefix length class, never a crash, always sane. */
    int truncated_ok = 1;
    for (size_t cut = 1; cut < html_len; cut += html_len / 37 + 1) {
        extract_result_t t;
        extract_html(html, cut, *content_type ? content_type : NULL, NULL, &t);
        truncated_ok &= result_sane(&t);
        extract_result_free(&t);
    }
    TAP_OK(truncated_ok, "%s: truncated copies give sane results", name);

    extract_result_free(&r);
    free(html);
    free(exp);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_corpus(void)
{
    DIR *d = opendir(HTML_CORPUS_DIR);
    TAP_OK(d != NULL, "corpus directory %s opens", HTML_CORPUS_DIR);
    if (d == NULL)
        return;
    char *names[128];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 128) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".html") == 0)
            names[n++] = xstrndup(e->d_name, l - 5);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    TAP_OK(n >= 10, "corpus has %zu pages", n);
    for (size_t i = 0; i < n; i++) {
        corpus_check(names[i]);
        free(names[i]);
    }
}

static void test_empty_and_null(void)
{
    extract_result_t r;
    TAP_IS_INT(extract_html(NULL, 0, NULL, NULL, &r), 0, "NULL input is an empty result");
    TAP_OK(result_sane(&r) && r.text_len == 0 && r.title[0] == '\0', "NULL input: empty strings");
    extract_result_free(&r);
    extract_result_free(&r); /* freeing twice is allowed */
    extract_html("", 0, "text/html", NULL, &r);
    TAP_OK(result_sane(&r) && r.text_len == 0, "empty input: empty strings");
    extract_result_free(&r);
    const char ws[] = "   \n\t  ";
    extract_html(ws, sizeof(ws) - 1, NULL, NULL, &r);
    TAP_OK(result_sane(&r) && r.text_len == 0, "whitespace only: empty text");
    extract_result_free(&r);
    const char plain[] = "just some plain text, no markup at all, long enough to be a paragraph of its own";
    extract_html(plain, sizeof(plain) - 1, NULL, NULL, &r);
    TAP_IS_STR(r.text, plain, "plain text without tags comes through");
    extract_result_free(&r);
}

/* A deterministic generator, so a failure reproduces. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void test_random_bytes(void)
{
    int ok = 1;
    char *b = xmalloc(8192);
    for (int i = 0; i < 300; i++) {
        size_t n = rng() % 8192;
        for (size_t k = 0; k < n; k++)
            b[k] = (char)rng();
        extract_result_t r;
        extract_html(b, n, (i % 3 == 0) ? "text/html; charset=shift_jis" : NULL, NULL, &r);
        ok &= result_sane(&r);
        extract_result_free(&r);
    }
    TAP_OK(ok, "300 random byte strings give sane results");

    /* Random soup of tag fragments exercises the parser's recovery far more than random bytes do. */
    static const char *const parts[] = {
        "<div>",
        "</div>",
        "<p>",
        "</p>",
        "<a href=x>",
        "</a>",
        "<table>",
        "<td>",
        "<tr>",
        "</table>",
        "<!--",
        "-->",
        "<script>",
        "</script>",
        "<style>",
        "<![CDATA[",
        "]]>",
        "&amp;",
        "&#xD800;",
        "&#0;",
        "&bogus;",
        "<meta charset=\"koi8-r\">",
        "<title>",
        "</title>",
        "<h1>",
        "text words ",
        "\xC3\xA9",
        "\xFF\xFE",
        "\xE2\x80",
        "<pre>",
        "</pre>",
        "<br>",
        "<nav class=menu>",
        "<article>",
        "<main>",
        "\"",
        "'",
        "<",
        ">",
        "<!DOCTYPE html>",
        "<html>",
        "<body>",
        "<svg><math>",
        "<select><option>",
        "<template>",
        "\0",
        "<form>",
    };
    buf_t soup = BUF_INIT;
    ok = 1;
    for (int i = 0; i < 300; i++) {
        buf_reset(&soup);
        size_t n = rng() % 400;
        for (size_t k = 0; k < n; k++) {
            const char *p = parts[rng() % (sizeof(parts) / sizeof(parts[0]))];
            buf_append(&soup, p, *p ? strlen(p) : 1);
        }
        extract_result_t r;
        extract_html(soup.data ? soup.data : "", soup.len, NULL, NULL, &r);
        ok &= result_sane(&r);
        extract_result_free(&r);
    }
    TAP_OK(ok, "300 random tag soups give sane results");
    buf_free(&soup);
    free(b);
}

static void nested(const char *open, const char *close, size_t depth, const char *label)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "<html><head><title>Deep</title></head><body>");
    for (size_t i = 0; i < depth; i++)
        buf_puts(&b, open);
    buf_puts(&b,
             "<p>The innermost paragraph has enough words to be found by the scorer, commas, and all.</p>");
    for (size_t i = 0; close != NULL && i < depth; i++)
        buf_puts(&b, close);
    buf_puts(&b, "</body></html>");
    extract_result_t r;
    int rc = extract_html(b.data, b.len, NULL, NULL, &r);
    TAP_OK(rc == 0 && result_sane(&r), "%zu nested %s: no crash, sane result", depth, label);
    TAP_IS_STR(r.title, "Deep", "%zu nested %s: title", depth, label);
    extract_result_free(&r);
    buf_free(&b);
}

static void test_deep_nesting(void)
{
    nested("<div>", "</div>", 10000, "divs");
    nested("<div>", "</div>", 100000, "divs");
    nested("<div class=x><span>", NULL, 100000, "unclosed divs and spans");
    nested("<ul><li>", NULL, 50000, "unclosed lists");
    nested("<table><tr><td>", NULL, 20000, "unclosed tables");
    nested("<b><i>", NULL, 50000, "unclosed inline tags");
}

static void test_encodings(void)
{
    extract_result_t r;

    /* Content-Type beats <meta>: the bytes are Latin-1, the meta lies. */
    const char lat[] =
        "<html><head><meta charset=\"utf-8\"><title>Caf\xE9</title></head><body><p>Cr\xE8me br\xFBl\xE9"
        "e</p></body></html>";
    extract_html(lat, sizeof(lat) - 1, "text/html; charset=\"iso-8859-1\"", NULL, &r);
    TAP_IS_STR(r.title, "Café", "Content-Type charset wins over <meta>");
    TAP_IS_STR(r.text, "Crème brûlée", "Latin-1 body decoded");
    extract_result_free(&r);

    /* No declaration and bytes that are not UTF-8: read as windows-1252. */
    const char undeclared[] = "<p>Cr\xE8me br\xFBl\xE9"
                              "e</p>";
    extract_html(undeclared, sizeof(undeclared) - 1, NULL, NULL, &r);
    TAP_IS_STR(r.encoding, "windows-1252", "undeclared non-UTF-8 falls back to windows-1252");
    TAP_IS_STR(r.text, "Crème brûlée", "...and decodes");
    extract_result_free(&r);

    /* No declaration and valid UTF-8. */
    const char u8[] = "<p>\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E and \xF0\x9F\x98\x80</p>";
    extract_html(u8, sizeof(u8) - 1, NULL, NULL, &r);
    TAP_IS_STR(r.text, "日本語 and 😀", "undeclared UTF-8 stays UTF-8");
    extract_result_free(&r);

    /* A declared but unknown charset falls back. */
    extract_html(u8, sizeof(u8) - 1, "text/html; charset=x-no-such-thing", NULL, &r);
    TAP_IS_STR(r.text, "日本語 and 😀", "unknown charset label falls back to sniffing");
    extract_result_free(&r);

    /* A legacy multi-byte encoding through iconv: "日本" in Shift_JIS. */
    const char sj[] =
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=Shift_JIS\">"
        "</head><body><p>\x93\xFA\x96\x7B</p></body></html>";
    extract_html(sj, sizeof(sj) - 1, NULL, NULL, &r);
    TAP_IS_STR(r.text, "日本", "Shift_JIS from <meta http-equiv> decoded");
    TAP_IS_STR(r.encoding, "Shift_JIS", "...and reported");
    extract_result_free(&r);

    /* UTF-16LE with a BOM. */
    const char u16[] = "\xFF\xFE<\0p\0>\0h\0\xE9\0l\0l\0o\0<\0/\0p\0>\0";
    extract_html(u16, sizeof(u16) - 1, "text/html; charset=iso-8859-1", NULL, &r);
    TAP_IS_STR(r.text, "héllo", "UTF-16LE BOM wins over the header");
    extract_result_free(&r);

    /* Invalid UTF-8 in a UTF-8 page, and NUL and control bytes: replaced, never passed through. */
    const char bad[] = "<p>ok \xC3 \xED\xA0\x80 \xF8\x88\x80\x80\x80 a\0b\x01 c</p>";
    extract_html(bad, sizeof(bad) - 1, "text/html; charset=utf-8", NULL, &r);
    TAP_OK(result_sane(&r), "malformed UTF-8 and control bytes give valid UTF-8");
    TAP_OK(strstr(r.text, "ok \xEF\xBF\xBD") == r.text && strstr(r.text, "a b c") != NULL,
           "malformed sequences become U+FFFD, NUL and controls spaces: \"%s\"", r.text);
    extract_result_free(&r);

    /* Entities and no-break spaces. */
    const char ent[] = "<p>Fish&nbsp;&amp;&nbsp;chips &lt;3 &#x263A; &eacute;t&eacute; caf&#233;\xC2\xAD"
                       "s</p>";
    extract_html(ent, sizeof(ent) - 1, NULL, NULL, &r);
    TAP_IS_STR(r.text, "Fish & chips <3 ☺ été cafés",
               "entities decoded, nbsp collapsed, soft hyphen dropped");
    extract_result_free(&r);
}

static void test_caps(void)
{
    /* 3 MiB of paragraphs made of 3-byte characters: the text cap must cut at a character boundary. */
    buf_t b = BUF_INIT;
    buf_puts(&b, "<html><body><article>");
    /* Numbered, so that no paragraph repeats another (repeats are dropped as duplicated captions). */
    for (unsigned i = 0; b.len < 3 * 1024 * 1024; i++)
        buf_printf(
            &b, "<p>\xE2\x82\xAC\xE2\x82\xAC words words words %u, \xE2\x82\xAC more words here.</p>\n", i);
    buf_puts(&b, "</article></body></html>");
    extract_result_t r;
    extract_html(b.data, b.len, NULL, NULL, &r);
    TAP_OK(result_sane(&r), "huge page: sane result");
    TAP_OK(r.text_len > EXTRACT_TEXT_MAX - 100 && r.text_len <= EXTRACT_TEXT_MAX,
           "huge page: text capped at %d bytes (%zu)", EXTRACT_TEXT_MAX, r.text_len);
    extract_result_free(&r);
    buf_free(&b);

    /* A site name taken from a long title's tail is capped at EXTRACT_META_MAX (found by the fuzzer). */
    buf_puts(&b, "<title>Short title | ");
    for (int i = 0; i < 120; i++)
        buf_puts(&b, "\xC3\xA9t\xC3\xA9 ");
    buf_puts(&b, "</title><p>Body text of the page.</p>");
    extract_html(b.data, b.len, NULL, NULL, &r);
    TAP_OK(result_sane(&r) && strlen(r.site_name) > EXTRACT_META_MAX - 8, "long site name capped (%zu bytes)",
           strlen(r.site_name));
    TAP_IS_STR(r.title, "Short title", "...and cut off the title");
    extract_result_free(&r);
    buf_free(&b);

    /* A huge title is capped too. */
    buf_puts(&b, "<title>");
    for (int i = 0; i < 2000; i++)
        buf_puts(&b, "\xC3\xA9t\xC3\xA9 ");
    buf_puts(&b, "</title><p>x</p>");
    extract_html(b.data, b.len, NULL, NULL, &r);
    TAP_OK(result_sane(&r) && strlen(r.title) > EXTRACT_TITLE_MAX - 8, "huge title capped (%zu bytes)",
           strlen(r.title));
    extract_result_free(&r);
    buf_free(&b);
}

static void test_titles(void)
{
    extract_result_t r;
    const char og[] = "<html><head><meta property=\"og:title\" content=\"  From   Open Graph \"></head>"
                      "<body><h1>Heading</h1></body></html>";
    extract_html(og, sizeof(og) - 1, NULL, NULL, &r);
    TAP_IS_STR(r.title, "From Open Graph", "og:title used without <title>");
    extract_result_free(&r);
    const char h1[] = "<html><head><title>  </title></head><body><h1>The <em>first</em>\n heading</h1>"
                      "<h1>Second</h1></body></html>";
    extract_html(h1, sizeof(h1) - 1, NULL, NULL, &r);
    TAP_IS_STR(r.title, "The first heading", "first <h1> used when <title> is blank");
    extract_result_free(&r);
    const char none[] = "<p>No title anywhere</p>";
    extract_html(none, sizeof(none) - 1, NULL, NULL, &r);
    TAP_IS_STR(r.title, "", "no title: empty string");
    extract_result_free(&r);
}

int main(void)
{
    test_corpus();
    test_empty_and_null();
    test_titles();
    test_encodings();
    test_caps();
    test_random_bytes();
    test_deep_nesting();
    return tap_done();
}
