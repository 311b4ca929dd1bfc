#include "pipeline/markdown.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <md4c-html.h>
#include <md4c.h>

/* NOHTML: raw HTML blocks and inline tags are treated as text (and so escaped by the renderer). The input is
 * LLM output, which anyone who can influence a scraped page or a prompt can steer. */
#define MARKDOWN_FLAGS (MD_DIALECT_GITHUB | MD_FLAG_NOHTML)

/* ------------------------------------------------------------------------------------------------------------
 * HTML
 * ------------------------------------------------------------------------------------------------------------
 */

static void on_html_chunk(const MD_CHAR *text, MD_SIZE size, void *userdata)
{
    buf_append(userdata, text, size);
}

/* Allowed link targets. A value with neither ':' nor '&' is a relative path; '&' is refused there because an
 * entity such as "&#58;" is a ':' to the browser that reads the attribute. */
static int url_is_safe(const char *v, size_t n)
{
    static const char *const prefixes[] = {"http://", "https://", "mailto:", "#", "/",
                                           "./",      "../",      "?",       NULL};
    for (const char *const *p = prefixes; *p != NULL; p++) {
        size_t pl = strlen(*p);
        if (n >= pl && strncasecmp(v, *p, pl) == 0)
            return 1;
    }
    return memchr(v, ':', n) == NULL && memchr(v, '&', n) == NULL;
}

/* Replaces unsafe href/src values in md4c's output. Scanning the text is sound here because with NOHTML every
 * tag in the output is md4c's own, and a '"' inside text or attribute values is always written as &quot;: an
 * 'href="' can only be the start of a real attribute. */
static char *urls_sanitize(const buf_t *in)
{
    buf_t out = BUF_INIT;
    const char *s = in->data ? in->data : "";
    const char *end = s + in->len;
    while (s < end) {
        const char *h = strstr(s, " href=\"");
        const char *r = strstr(s, " src=\"");
        const char *at = (h == NULL) ? r : (r == NULL || h < r) ? h : r;
        if (at == NULL)
            break;
        const char *v = strchr(at, '"') + 1;
        const char *q = strchr(v, '"');
        if (q == NULL)
            break;
        buf_append(&out, s, (size_t)(v - s));
        if (url_is_safe(v, (size_t)(q - v)))
            buf_append(&out, v, (size_t)(q - v));
        else
            buf_putc(&out, '#');
        s = q;
    }
    buf_append(&out, s, (size_t)(end - s));
    return buf_release(&out);
}

char *markdown_to_html(const char *md, size_t len)
{
    if (md == NULL)
        md = "", len = 0;
    buf_t html = BUF_INIT;
    buf_reserve(&html, len + len / 4 + 64);
    if (md_html(md, (MD_SIZE)len, on_html_chunk, &html, MARKDOWN_FLAGS, 0) != 0) {
        buf_free(&html);
        return NULL;
    }
    char *safe = urls_sanitize(&html);
    buf_free(&html);
    return safe;
}

/* ------------------------------------------------------------------------------------------------------------
 * Text, for word counts and the title: md4c's parser callbacks hand over the text without the markup.
 * ------------------------------------------------------------------------------------------------------------
 */

/* Decodes one UTF-8 character; malformed bytes come out as U+FFFD one at a time. */
static uint32_t utf8_next(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    unsigned char c = *p;
    size_t n = c < 0x80                   ? 1
               : (c >= 0xC2 && c <= 0xDF) ? 2
               : (c >= 0xE0 && c <= 0xEF) ? 3
               : (c >= 0xF0 && c <= 0xF4) ? 4
                                          : 0;
    if (n == 0 || (size_t)(end - p) < n) {
        *pp = p + 1;
        return 0xFFFD;
    }
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1Fu) : n == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *pp = p + 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    *pp = p + n;
    return cp;
}

/* The named entities an LLM actually writes; anything else is decoded as a letter (most named entities are
 * accented letters, and the exact one does not matter for counting). */
static uint32_t entity_decode(const char *s, size_t n)
{
    if (n < 3 || s[0] != '&' || s[n - 1] != ';')
        return 0xFFFD;
    if (s[1] == '#') {
        unsigned long v = (s[2] == 'x' || s[2] == 'X') ? strtoul(s + 3, NULL, 16) : strtoul(s + 2, NULL, 10);
        return (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) ? 0xFFFD : (uint32_t)v;
    }
    static const struct {
        const char *name;
        uint32_t cp;
    } named[] = {{"amp", '&'},       {"lt", '<'},       {"gt", '>'},       {"quot", '"'},
                 {"apos", '\''},     {"nbsp", 0xA0},    {"ndash", 0x2013}, {"mdash", 0x2014},
                 {"hellip", 0x2026}, {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122},
                 {"lsquo", 0x2018},  {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D},
                 {"laquo", 0xAB},    {"raquo", 0xBB},   {"middot", 0xB7},  {"bull", 0x2022},
                 {"euro", 0x20AC},   {"times", 0xD7},   {"deg", 0xB0}};
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
        if (strlen(named[i].name) == n - 2 && memcmp(named[i].name, s + 1, n - 2) == 0)
            return named[i].cp;
    return 'a';
}

/* Letters and digits, by exclusion for non-ASCII: the Latin-1 punctuation and symbols, Unicode spaces and
 * general punctuation, currency, arrows and other symbols, CJK punctuation, variation selectors, BOM, emoji.
 */
static int is_word_cp(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
    if (cp <= 0xBF)
        return cp == 0xAA || cp == 0xB5 || cp == 0xBA;
    if (cp == 0xD7 || cp == 0xF7 || cp == 0xFFFD)
        return 0;
    if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFE00 && cp <= 0xFE0F) ||
        (cp >= 0xFE10 && cp <= 0xFE1F) || (cp >= 0xFE30 && cp <= 0xFE4F) || cp == 0xFEFF ||
        (cp >= 0xFF01 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0x1F000 && cp <= 0x1FAFF))
        return 0;
    return 1;
}

static int is_digit_cp(uint32_t cp)
{
    return cp >= '0' && cp <= '9';
}

typedef struct st_count_t {
    long words;
    int in_word;     /* the last character continued a word */
    int join;        /* a joining character followed it: the next letter continues the same word */
    int join_digits; /* ...but only if the next character is a digit ('.' or ',') */
    int prev_digit;
    MD_ATTRIBUTE href; /* of the innermost link; lets a bare URL autolink count as one word */
    int in_link;
} count_t;

static void count_break(count_t *c)
{
    c->in_word = c->join = 0;
}

static void count_cp(count_t *c, uint32_t cp)
{
    if (is_word_cp(cp)) {
        int digit = is_digit_cp(cp);
        if (!c->in_word || (c->join && c->join_digits && !(c->prev_digit && digit)))
            c->words++;
        c->in_word = 1;
        c->join = 0;
        c->prev_digit = digit;
        return;
    }
    if (c->in_word && !c->join) {
        if (cp == '\'' || cp == 0x2019 || cp == '-' || cp == 0x2010 || cp == 0x2011 || cp == '_') {
            c->join = 1, c->join_digits = 0;
            return;
        }
        if ((cp == '.' || cp == ',') && c->prev_digit) {
            c->join = 1, c->join_digits = 1;
            return;
        }
    }
    count_break(c);
}

static int count_enter_block(MD_BLOCKTYPE type, void *detail, void *userdata)
{
    (void)type, (void)detail;
    count_break(userdata);
    return 0;
}

static int count_enter_span(MD_SPANTYPE type, void *detail, void *userdata)
{
    count_t *c = userdata;
    if (type == MD_SPAN_A) {
        c->href = ((MD_SPAN_A_DETAIL *)detail)->href;
        c->in_link = 1;
    }
    return 0;
}

static int count_leave_span(MD_SPANTYPE type, void *detail, void *userdata)
{
    (void)detail;
    if (type == MD_SPAN_A)
        ((count_t *)userdata)->in_link = 0;
    return 0;
}

/* An autolink's text is its URL (or the URL without the "http://" or "mailto:" md4c adds). */
static int is_autolink_text(const count_t *c, const MD_CHAR *text, MD_SIZE size)
{
    if (!c->in_link || c->href.text == NULL || size == 0 || size > c->href.size)
        return 0;
    return memcmp(c->href.text + (c->href.size - size), text, size) == 0 && memchr(text, '.', size) != NULL;
}

static int count_text(MD_TEXTTYPE type, const MD_CHAR *text, MD_SIZE size, void *userdata)
{
    count_t *c = userdata;
    switch (type) {
    case MD_TEXT_ENTITY:
        count_cp(c, entity_decode(text, size));
        return 0;
    case MD_TEXT_BR:
    case MD_TEXT_SOFTBR:
    case MD_TEXT_NULLCHAR:
        count_break(c);
        return 0;
    default:
        break;
    }
    if (is_autolink_text(c, text, size)) {
        count_break(c);
        c->words++;
        return 0;
    }
    const unsigned char *p = (const unsigned char *)text, *end = p + size;
    while (p < end)
        count_cp(c, utf8_next(&p, end));
    return 0;
}

int markdown_word_count(const char *md, size_t len)
{
    if (md == NULL)
        return 0;
    count_t c = {0};
    MD_PARSER parser = {
        .flags = MARKDOWN_FLAGS,
        .enter_block = count_enter_block,
        .leave_block = count_enter_block,
        .enter_span = count_enter_span,
        .leave_span = count_leave_span,
        .text = count_text,
    };
    if (md_parse(md, (MD_SIZE)len, &parser, &c) != 0)
        return -1;
    return c.words > INT32_MAX ? INT32_MAX : (int)c.words;
}

/* ------------------------------------------------------------------------------------------------------------
 */

typedef struct st_title_t {
    buf_t text;
    int capturing; /* inside the first level-1 heading */
    int done;
    int space; /* whitespace seen since the last character written */
    /* the Markdown parsed, and the part of it the captured heading's text came from */
    const char *src, *src_end;
    const char *lo, *hi;
} title_t;

static void title_cp(title_t *t, uint32_t cp)
{
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0xA0) {
        t->space = 1;
        return;
    }
    if (cp < 0x20 || cp == 0x7F)
        return;
    if (t->space && t->text.len > 0)
        buf_putc(&t->text, ' ');
    t->space = 0;
    char s[4];
    size_t n;
    if (cp < 0x80)
        s[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        s[0] = (char)(0xC0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        s[0] = (char)(0xE0 | (cp >> 12)), s[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
        s[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    else
        s[0] = (char)(0xF0 | (cp >> 18)), s[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), s[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    buf_append(&t->text, s, n);
}

static int title_enter_block(MD_BLOCKTYPE type, void *detail, void *userdata)
{
    title_t *t = userdata;
    if (type == MD_BLOCK_H && ((MD_BLOCK_H_DETAIL *)detail)->level == 1) {
        t->capturing = 1;
        t->lo = t->hi = NULL;
    }
    return 0;
}

static int title_leave_block(MD_BLOCKTYPE type, void *detail, void *userdata)
{
    title_t *t = userdata;
    (void)detail;
    if (type == MD_BLOCK_H && t->capturing) {
        t->capturing = 0;
        if (t->text.len > 0) {
            t->done = 1;
            return 1; /* stops the parse: nothing after the title matters */
        }
    }
    return 0;
}

static int title_span(MD_SPANTYPE type, void *detail, void *userdata)
{
    (void)type, (void)detail, (void)userdata;
    return 0;
}

static int title_text(MD_TEXTTYPE type, const MD_CHAR *text, MD_SIZE size, void *userdata)
{
    title_t *t = userdata;
    if (!t->capturing)
        return 0;
    /* Text comes straight from the source except for a few replacements (NUL): those are not located. */
    if (text >= t->src && text + size <= t->src_end) {
        if (t->lo == NULL || text < t->lo)
            t->lo = text;
        if (t->hi == NULL || text + size > t->hi)
            t->hi = text + size;
    }
    if (type == MD_TEXT_ENTITY) {
        uint32_t cp = entity_decode(text, size);
        if (cp == 'a' && size > 2) /* an entity we do not know: keep it as written */
            for (MD_SIZE i = 0; i < size; i++)
                title_cp(t, (unsigned char)text[i]);
        else
            title_cp(t, cp);
        return 0;
    }
    if (type == MD_TEXT_SOFTBR || type == MD_TEXT_BR) {
        t->space = 1;
        return 0;
    }
    if (type == MD_TEXT_NULLCHAR) {
        title_cp(t, 0xFFFD);
        return 0;
    }
    const unsigned char *p = (const unsigned char *)text, *end = p + size;
    while (p < end)
        title_cp(t, utf8_next(&p, end));
    return 0;
}

/* Finds the first level-1 heading with text: 1 with its text in t (and where it came from), else 0. */
static int find_title(const char *md, size_t len, title_t *t)
{
    *t = (title_t){.text = BUF_INIT, .src = md, .src_end = md + len};
    MD_PARSER parser = {
        .flags = MARKDOWN_FLAGS,
        .enter_block = title_enter_block,
        .leave_block = title_leave_block,
        .enter_span = title_span,
        .leave_span = title_span,
        .text = title_text,
    };
    md_parse(md, (MD_SIZE)len, &parser, t);
    if (!t->done) {
        buf_free(&t->text);
        return 0;
    }
    return 1;
}

char *markdown_title(const char *md)
{
    if (md == NULL)
        return NULL;
    title_t t;
    if (!find_title(md, strlen(md), &t))
        return NULL;
    return buf_release(&t.text);
}

/* title with its whitespace runs (and control characters) collapsed to single spaces, trimmed. */
static char *collapse_spaces(const char *title)
{
    buf_t b = BUF_INIT;
    int space = 0;
    for (const unsigned char *p = (const unsigned char *)title; *p != '\0'; p++) {
        if (*p <= 0x20 || *p == 0x7F) {
            space = 1;
            continue;
        }
        if (space && b.len > 0)
            buf_putc(&b, ' ');
        space = 0;
        buf_putc(&b, (char)*p);
    }
    return buf_release(&b);
}

/* "# title", backslash-escaping ASCII punctuation when escape is set. */
static char *heading_line(const char *title, int escape)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "# ");
    for (const char *p = title; *p != '\0'; p++) {
        if (escape && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", *p) != NULL)
            buf_putc(&b, '\\');
        buf_putc(&b, *p);
    }
    return buf_release(&b);
}

/* Whether the line from s to end is a setext level-1 underline: up to 3 spaces, '='s, trailing blanks. */
static int is_setext_underline(const char *s, const char *end)
{
    int indent = 0;
    while (s < end && *s == ' ' && indent < 3)
        s++, indent++;
    if (s == end || *s != '=')
        return 0;
    while (s < end && *s == '=')
        s++;
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
        s++;
    return s == end;
}

static int title_is(const char *md, const char *want)
{
    char *got = markdown_title(md);
    int same = got != NULL && strcmp(got, want) == 0;
    free(got);
    return same;
}

char *markdown_set_title(const char *md, const char *title)
{
    if (md == NULL)
        md = "";
    char *want = collapse_spaces(title != NULL ? title : "");
    if (want[0] == '\0') {
        free(want);
        return xstrdup(md);
    }
    /* Written as given when that reads back as the title; escaped when it would not (a trailing " #", "*x*",
     * "&amp;", ...). */
    char *line = heading_line(want, 0);
    if (!title_is(line, want)) {
        free(line);
        line = heading_line(want, 1);
    }
    size_t len = strlen(md);
    title_t t;
    buf_t out = BUF_INIT;
    int found = find_title(md, len, &t);
    if (found)
        buf_free(&t.text);
    if (found && t.lo != NULL) {
        /* The heading's lines: from the start of the line its text begins on to the end of the line it ends
         * on, and for a setext heading ("Title" over "=====") the underline too. */
        const char *start = t.lo, *end = t.hi;
        while (start > md && start[-1] != '\n')
            start--;
        while (end < md + len && *end != '\n')
            end++;
        if (end > t.hi && end[-1] == '\r')
            end--; /* the line keeps its CRLF */
        const char *p = start;
        for (int i = 0; i < 3 && *p == ' '; i++)
            p++;
        int atx =
            p[0] == '#' && (p[1] == ' ' || p[1] == '\t' || p[1] == '\r' || p[1] == '\n' || p[1] == '\0');
        if (!atx && end < md + len) {
            const char *next = end + (*end == '\r' ? 2 : 1), *next_end = next;
            if (next > md + len)
                next = md + len;
            while (next_end < md + len && *next_end != '\n')
                next_end++;
            if (is_setext_underline(next, next_end))
                end = next_end > next && next_end[-1] == '\r' ? next_end - 1 : next_end;
        }
        buf_append(&out, md, (size_t)(start - md));
        buf_puts(&out, line);
        buf_append(&out, end, (size_t)(md + len - end));
        char *reads = markdown_title(line);
        if (reads == NULL || !title_is(buf_cstr(&out), reads))
            buf_reset(&out);
        free(reads); /* a heading in a container (quote, list) that did not come out as a title */
    }
    if (out.len == 0) {
        /* No level-1 heading (or one that could not be replaced in place): the title goes first. */
        buf_puts(&out, line);
        buf_puts(&out, "\n\n");
        buf_puts(&out, md);
    }
    free(line);
    free(want);
    return buf_release(&out);
}
