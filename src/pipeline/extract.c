#include "pipeline/extract.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

/* ------------------------------------------------------------------------------------------------------------
 * Decoding: every input becomes valid UTF-8 before libxml sees it. Doing it here rather than letting libxml
 * follow <meta charset> keeps one precedence order (BOM, Content-Type, <meta>, sniffing) and guarantees valid
 * output even for bytes the declared encoding cannot represent: those become U+FFFD instead of stopping the
 * parser halfway through the document.
 * ------------------------------------------------------------------------------------------------------------
 */

/* Browsers look at the first 1024 bytes; real pages put <meta charset> after long comments and scripts often
 * enough that a larger window pays off, and a false hit is unlikely this early in the document. */
#define META_PRESCAN_BYTES 8192

static const char REPLACEMENT[] = "\xEF\xBF\xBD";

static void put_utf8(buf_t *b, uint32_t cp)
{
    char s[4];
    if (cp < 0x80) {
        s[0] = (char)cp;
        buf_append(b, s, 1);
    } else if (cp < 0x800) {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
        buf_append(b, s, 2);
    } else if (cp < 0x10000) {
        s[0] = (char)(0xE0 | (cp >> 12));
        s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F));
        buf_append(b, s, 3);
    } else {
        s[0] = (char)(0xF0 | (cp >> 18));
        s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[3] = (char)(0x80 | (cp & 0x3F));
        buf_append(b, s, 4);
    }
}

/* Length of the well-formed UTF-8 sequence at p (shortest form, no surrogates, at most U+10FFFF), or 0. */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t min;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Counts malformed sequences; used to decide whether undeclared input is UTF-8 at all. */
static size_t utf8_invalid_count(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t bad = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq_len(p + i, len - i);
        if (n == 0) {
            bad++;
            i++;
        } else {
            i += n;
        }
    }
    return bad;
}

/* Copies UTF-8 into b replacing malformed sequences with U+FFFD, and control characters the HTML parser would
 * choke on (NUL among them, which would end the text early) with a space. */
static void utf8_sanitize_into(buf_t *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of the pending run of good bytes, copied in one append */
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq_len(p + i, len - i);
        int ctl = n == 1 && p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r' && p[i] != '\f';
        if (n != 0 && !ctl) {
            i += n;
            continue;
        }
        buf_append(b, s + run, i - run);
        if (ctl)
            buf_putc(b, ' ');
        else
            buf_append(b, REPLACEMENT, 3);
        i++;
        run = i;
    }
    buf_append(b, s + run, i - run);
}

/* windows-1252 bytes 0x80-0x9F; the rest of the range is ISO-8859-1, i.e. the code point equals the byte.
 * Undefined positions decode to the C1 control of the same value, as the WHATWG Encoding Standard says. */
static const uint16_t CP1252_HIGH[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static void cp1252_decode_into(buf_t *b, const char *s, size_t len)
{
    buf_reserve(b, len + len / 2);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f')
            buf_putc(b, ' ');
        else if (c < 0x80)
            buf_putc(b, (char)c);
        else if (c < 0xA0)
            put_utf8(b, CP1252_HIGH[c - 0x80]);
        else
            put_utf8(b, c);
    }
}

/* Decodes with iconv; each byte it cannot convert becomes U+FFFD and decoding carries on. Returns -1 when
 * iconv does not know the encoding. */
static int iconv_decode_into(buf_t *b, const char *s, size_t len, const char *encoding)
{
    iconv_t cd = iconv_open("UTF-8", encoding);
    if (cd == (iconv_t)-1)
        return -1;
    buf_t raw = BUF_INIT;
    char *in = (char *)s;
    size_t inleft = len;
    while (inleft > 0) {
        buf_reserve(&raw, inleft * 2 + 16);
        char *out = raw.data + raw.len;
        size_t outleft = raw.cap - raw.len - 1;
        size_t rc = iconv(cd, &in, &inleft, &out, &outleft);
        raw.len = (size_t)(out - raw.data);
        if (rc != (size_t)-1)
            break;
        if (errno == E2BIG)
            continue;
        /* EILSEQ (bad sequence) or EINVAL (truncated at the end): skip one byte. */
        buf_append(&raw, REPLACEMENT, 3);
        in++;
        inleft--;
    }
    iconv_close(cd);
    /* iconv's output is UTF-8 already, but control characters still have to go. */
    utf8_sanitize_into(b, raw.data ? raw.data : "", raw.len);
    buf_free(&raw);
    return 0;
}

/* Finds `charset=VALUE` in s (a Content-Type value or the inside of a <meta> tag); copies VALUE to out. */
static int charset_find(const char *s, size_t len, char *out, size_t outlen)
{
    static const char key[] = "charset";
    const size_t klen = sizeof(key) - 1;
    for (size_t i = 0; i + klen <= len; i++) {
        if (strncasecmp(s + i, key, klen) != 0)
            continue;
        size_t j = i + klen;
        while (j < len && (s[j] == ' ' || s[j] == '\t'))
            j++;
        if (j >= len || s[j] != '=')
            continue;
        j++;
        while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '"' || s[j] == '\''))
            j++;
        size_t n = 0;
        while (j < len && n + 1 < outlen &&
               ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
                (s[j] >= '0' && s[j] <= '9') || s[j] == '-' || s[j] == '_' || s[j] == '.' || s[j] == ':'))
            out[n++] = s[j++];
        out[n] = '\0';
        if (n > 0)
            return 1;
    }
    return 0;
}

/* Looks for a charset in the <meta> tags near the start of the document. */
static int charset_from_meta(const char *html, size_t len, char *out, size_t outlen)
{
    size_t end = len < META_PRESCAN_BYTES ? len : META_PRESCAN_BYTES;
    for (size_t i = 0; i + 5 < end; i++) {
        if (html[i] != '<' || strncasecmp(html + i + 1, "meta", 4) != 0)
            continue;
        const char *close = memchr(html + i, '>', end - i);
        if (close == NULL)
            return 0;
        if (charset_find(html + i, (size_t)(close - (html + i)), out, outlen))
            return 1;
    }
    return 0;
}

/* Maps a charset label to the name the decoders use; "" for labels that mean UTF-8. Labels that the WHATWG
 * Encoding Standard reads as windows-1252 (latin1, ascii, ...) are mapped to it, because pages that say
 * ISO-8859-1 routinely contain curly quotes and euro signs from the 0x80-0x9F range. */
static const char *charset_normalize(const char *label)
{
    static const char *const utf8[] = {"utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8",
                                       "x-unicode20utf8"};
    static const char *const cp1252[] = {"windows-1252", "cp1252",     "x-cp1252", "iso-8859-1",
                                         "iso8859-1",    "iso_8859-1", "iso88591", "latin1",
                                         "l1",           "ascii",      "us-ascii", "ansi_x3.4-1968",
                                         "iso-ir-100",   "cp819",      "ibm819"};
    for (size_t i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++)
        if (strcasecmp(label, utf8[i]) == 0)
            return "";
    for (size_t i = 0; i < sizeof(cp1252) / sizeof(cp1252[0]); i++)
        if (strcasecmp(label, cp1252[i]) == 0)
            return "windows-1252";
    /* A <meta> cannot really declare UTF-16 (the bytes to read it would already be UTF-16): browsers treat
     * the claim as UTF-8, and a real UTF-16 document is caught by its BOM before we get here. */
    if (strncasecmp(label, "utf-16", 6) == 0 || strncasecmp(label, "utf16", 5) == 0)
        return "";
    return label;
}

/* Decodes html to sanitized UTF-8 in b; records the encoding used in enc. */
static void input_decode(const char *html, size_t len, const char *content_type, buf_t *b, char *enc,
                         size_t enclen)
{
    /* A byte order mark beats every declaration, as in browsers. */
    if (len >= 3 && memcmp(html, "\xEF\xBB\xBF", 3) == 0) {
        snprintf(enc, enclen, "UTF-8");
        utf8_sanitize_into(b, html + 3, len - 3);
        return;
    }
    if (len >= 2 && (memcmp(html, "\xFF\xFE", 2) == 0 || memcmp(html, "\xFE\xFF", 2) == 0)) {
        const char *e = html[0] == '\xFF' ? "UTF-16LE" : "UTF-16BE";
        if (iconv_decode_into(b, html + 2, len - 2, e) == 0) {
            snprintf(enc, enclen, "%s", e);
            return;
        }
    }

    char label[64] = "";
    int declared =
        (content_type != NULL && charset_find(content_type, strlen(content_type), label, sizeof(label))) ||
        charset_from_meta(html, len, label, sizeof(label));
    if (declared) {
        const char *name = charset_normalize(label);
        if (strcmp(name, "windows-1252") == 0) {
            snprintf(enc, enclen, "windows-1252");
            cp1252_decode_into(b, html, len);
            return;
        }
        if (*name == '\0') {
            snprintf(enc, enclen, "UTF-8");
            utf8_sanitize_into(b, html, len);
            return;
        }
        if (iconv_decode_into(b, html, len, name) == 0) {
            snprintf(enc, enclen, "%s", name);
            return;
        }
        /* A label nobody knows: treated as undeclared. */
    }
    /* Undeclared (or unknown): UTF-8 when the bytes say so. A page with more than a stray bad byte per
     * kilobyte is almost certainly a legacy single-byte page, and windows-1252 is what browsers guess for
     * the western pages that make up most of what we scrape. */
    if (utf8_invalid_count(html, len) <= len / 1024) {
        snprintf(enc, enclen, "UTF-8");
        utf8_sanitize_into(b, html, len);
    } else {
        snprintf(enc, enclen, "windows-1252");
        cp1252_decode_into(b, html, len);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Tree walking. Every walk is iterative (next/parent pointers), so no nesting depth can overflow our stack.
 * ------------------------------------------------------------------------------------------------------------
 */

typedef struct st_walk_ops_t {
    /* Called on entering a node; returns nonzero to descend into its children. */
    int (*enter)(xmlNode *n, void *ctx);
    /* Called on leaving a node (also when enter declined to descend). May be NULL. */
    void (*leave)(xmlNode *n, void *ctx);
} walk_ops_t;

static void walk(xmlNode *top, const walk_ops_t *ops, void *ctx)
{
    xmlNode *n = top;
    while (n != NULL) {
        if (ops->enter(n, ctx) && n->children != NULL) {
            n = n->children;
            continue;
        }
        for (;;) {
            if (ops->leave != NULL)
                ops->leave(n, ctx);
            if (n == top) {
                n = NULL;
                break;
            }
            if (n->next != NULL) {
                n = n->next;
                break;
            }
            n = n->parent;
        }
    }
}

static int is_tag(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->name != NULL && strcmp((const char *)n->name, name) == 0;
}

static int tag_in(const xmlNode *n, const char *const *names)
{
    if (n->type != XML_ELEMENT_NODE || n->name == NULL)
        return 0;
    const char *name = (const char *)n->name;
    for (; *names != NULL; names++) /* the first letter first: most names differ there */
        if (name[0] == (*names)[0] && strcmp(name, *names) == 0)
            return 1;
    return 0;
}

/* The value of attribute name (the HTML parser lowercases names), without copying; NULL when absent. Values
 * the parser stored as anything but a single text node are ignored: they do not occur in parsed HTML. */
static const char *attr_get(const xmlNode *n, const char *name)
{
    for (const xmlAttr *a = n->properties; a != NULL; a = a->next) {
        if (a->name == NULL || (a->name[0] | 0x20) != (name[0] | 0x20) ||
            strcasecmp((const char *)a->name, name) != 0)
            continue;
        if (a->children == NULL)
            return "";
        if (a->children->type == XML_TEXT_NODE && a->children->content != NULL)
            return (const char *)a->children->content;
        return "";
    }
    return NULL;
}

static int attr_has(const xmlNode *n, const char *name)
{
    return attr_get(n, name) != NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * Boilerplate detection.
 * ------------------------------------------------------------------------------------------------------------
 */

/* Never content, whatever the page: dropped without looking further. */
static const char *const TAGS_NEVER[] = {
    "script",   "style",  "template", "svg",    "iframe",   "button", "select", "option", "input",
    "textarea", "object", "embed",    "canvas", "video",    "audio",  "map",    "dialog", "menu",
    "link",     "meta",   "title",    "label",  "datalist", "math",   NULL};

/* Not content either, as a rule; but libxml's HTML parser, which predates HTML5, can nest the rest of a page
 * inside a <header> or <nav> it failed to close (and some pages put everything in <noscript> or text in
 * <head>), so they are SOFT: kept when they hold most of the page's text. */
static const char *const TAGS_SOFT[] = {"head",   "nav",      "aside",      "header",
                                        "footer", "noscript", "figcaption", NULL};

/* Block-level: starts and ends a paragraph in the output. */
static const char *const TAGS_BLOCK[] = {
    "address", "article", "aside", "blockquote", "body",     "caption",    "center", "dd",      "details",
    "dialog",  "div",     "dl",    "dt",         "fieldset", "figcaption", "figure", "footer",  "form",
    "h1",      "h2",      "h3",    "h4",         "h5",       "h6",         "header", "hr",      "html",
    "legend",  "li",      "main",  "nav",        "ol",       "p",          "pre",    "section", "summary",
    "table",   "tbody",   "td",    "tfoot",      "th",       "thead",      "tr",     "ul",      NULL};

/* Elements whose own (inline) text makes them a paragraph for scoring. */
static const char *const TAGS_PARAGRAPH[] = {"p",   "pre",     "td",      "blockquote", "li",     "dd",
                                             "div", "section", "article", "main",       "center", NULL};

/* Containers whose class/id are trusted over the word list: WordPress, for one, puts taxonomy classes such as
 * "tag-social-media" on <article> and "has-sidebar" on <body>. */
static const char *const TAGS_NO_CLASS_CHECK[] = {"html", "body", "article", "main", NULL};

typedef struct st_word_t {
    const char *word;
    unsigned char substring; /* match anywhere in a token ("mainsidebar"), not only the whole token */
    unsigned char rescue;    /* may be kept anyway when it holds most of the page's text (see soft_resolve) */
} word_t;

/* Words in class/id/aria-label tokens that mark boilerplate. Short words match whole tokens only ("ad" must
 * not hit "header" or "download"); long ones match inside a token, which catches "commentlist" and
 * "siteFooter". Almost every match is only a presumption: a word can sit on the wrapper of the whole article
 * ("Page-ad-margins", "body_overlay", "modal-enabled", "content-with-sidebar", a WordPress category class
 * "category-native-advertising"), so soft_resolve keeps an element that holds most of the page's text. The
 * rescue flag is off only for comment threads and consent banners, which can be longer than the article. */
static const word_t BOILER_WORDS[] = {
    {"ad", 0, 1},           {"ads", 0, 1},         {"advert", 1, 1},     {"sponsor", 1, 1},
    {"promo", 0, 1},        {"nav", 0, 1},         {"navbar", 1, 1},     {"navigation", 1, 1},
    {"menu", 1, 1},         {"menubar", 1, 1},     {"dropdown", 1, 1},   {"header", 0, 1},
    {"masthead", 1, 1},     {"footer", 1, 1},      {"sidebar", 1, 1},    {"widget", 0, 1},
    {"banner", 0, 1},       {"toolbar", 1, 1},     {"breadcrumb", 1, 1}, {"breadcrumbs", 1, 1},
    {"comment", 1, 0},      {"comments", 1, 0},    {"disqus", 1, 0},     {"share", 0, 1},
    {"shares", 0, 1},       {"sharing", 0, 1},     {"sharebar", 1, 1},   {"sharethis", 1, 1},
    {"addthis", 1, 1},      {"social", 1, 1},      {"cookie", 1, 0},     {"cookies", 1, 0},
    {"consent", 1, 0},      {"gdpr", 1, 0},        {"newsletter", 1, 1}, {"subscribe", 1, 1},
    {"signup", 1, 1},       {"related", 1, 1},     {"popup", 1, 1},      {"modal", 1, 1},
    {"overlay", 1, 1},      {"outbrain", 1, 0},    {"taboola", 1, 0},    {"pagination", 1, 1},
    {"pager", 0, 1},        {"skip", 0, 1},        {"tooltip", 1, 1},    {"login", 1, 1},
    {"recommended", 1, 1},  {"trending", 1, 1},    {"byline", 1, 1},     {"dateline", 1, 1},
    {"credit", 0, 1},       {"credits", 0, 1},     {"gallery", 1, 1},    {"slideshow", 1, 1},
    {"carousel", 1, 1},     {"teaser", 1, 1},      {"teasers", 1, 1},    {"ticker", 1, 1},
    {"latest", 0, 1},       {"morestories", 1, 1}, {"readmore", 1, 1},   {"tags", 0, 1},
    {"tagcloud", 1, 1},     {"postmeta", 1, 1},    {"entrymeta", 1, 1},  {"articlemeta", 1, 1},
    {"author", 0, 1},       {"authorbox", 1, 1},   {"authorbio", 1, 1},  {"timestamp", 1, 1},
    {"print", 0, 1},        {"rating", 0, 1},      {"hidden", 0, 1},     {"hide", 0, 1},
    {"caption", 1, 1},      {"offscreen", 1, 1},   {"sronly", 1, 1},     {"visuallyhidden", 1, 1},
    {"screenreader", 1, 1},
};

/* ARIA roles that are never the main text. */
static const char *const ROLES_BOILER[] = {"navigation", "banner",  "contentinfo", "complementary", "search",
                                           "menu",       "menubar", "dialog",      "alertdialog",   "tooltip",
                                           "toolbar",    "tablist", NULL};

/* Class strings repeat across a page (and across pages of one site), and matching one against every word is
 * the costliest step of classification, so results are remembered per thread by the string itself (the
 * result depends on nothing else, so an entry is never stale). */
#define MEMO_SLOTS 1024
#define MEMO_KEY_MAX 80

typedef struct st_memo_t {
    char key[MEMO_KEY_MAX];
    signed char result[2]; /* per kind; -1 while unknown */
} memo_t;

static __thread memo_t memo[MEMO_SLOTS];

static signed char *memo_slot(const char *v, int kind)
{
    size_t n = strlen(v);
    if (n == 0 || n >= MEMO_KEY_MAX)
        return NULL;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)v[i]) * 16777619u;
    memo_t *e = &memo[h % MEMO_SLOTS];
    if (strcmp(e->key, v) != 0) {
        memcpy(e->key, v, n + 1);
        e->result[0] = e->result[1] = -1;
    }
    return &e->result[kind];
}

static int words_match_uncached(const char *s);
static int hint_match_uncached(const char *v);

static int words_match(const char *s)
{
    signed char *slot = memo_slot(s, 0);
    if (slot == NULL)
        return words_match_uncached(s);
    if (*slot < 0)
        *slot = (signed char)words_match_uncached(s);
    return *slot;
}

static int hint_match(const char *v)
{
    signed char *slot = memo_slot(v, 1);
    if (slot == NULL)
        return hint_match_uncached(v);
    if (*slot < 0)
        *slot = (signed char)hint_match_uncached(v);
    return *slot;
}

/* How a token list matched: 0 no, 1 yes but rescuable, 2 yes and never rescued. */
static int words_match_uncached(const char *s)
{
    int result = 0;
    char tok[64], whole[96];
    while (*s != '\0' && result < 2) {
        /* A class token ("entry-meta") is matched word by word ("entry", "meta") for the short words and as
         * one run of its letters ("entrymeta") for the long ones. */
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f')
            s++;
        size_t wn = 0;
        const char *t = s;
        while (*t != '\0' && *t != ' ' && *t != '\t' && *t != '\n' && *t != '\r' && *t != '\f') {
            if (((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9')) &&
                wn + 1 < sizeof(whole))
                whole[wn++] = (char)((*t >= 'A' && *t <= 'Z') ? *t + 32 : *t);
            t++;
        }
        whole[wn] = '\0';
        for (size_t i = 0; wn > 0 && i < sizeof(BOILER_WORDS) / sizeof(BOILER_WORDS[0]); i++) {
            const word_t *w = &BOILER_WORDS[i];
            if (w->substring && strstr(whole, w->word) != NULL) {
                int r = w->rescue ? 1 : 2;
                if (r > result)
                    result = r;
            }
        }
        while (s < t) {
            while (s < t &&
                   !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
                s++;
            size_t n = 0;
            while (s < t &&
                   ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))) {
                if (n + 1 < sizeof(tok))
                    tok[n++] = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
                s++;
            }
            tok[n] = '\0';
            if (n == 0)
                continue;
            for (size_t i = 0; i < sizeof(BOILER_WORDS) / sizeof(BOILER_WORDS[0]); i++) {
                const word_t *w = &BOILER_WORDS[i];
                if (w->substring ? strstr(tok, w->word) != NULL : strcmp(tok, w->word) == 0) {
                    int r = w->rescue ? 1 : 2;
                    if (r > result)
                        result = r;
                }
            }
        }
    }
    return result;
}

static int style_hidden(const char *style)
{
    /* Compare with the whitespace removed, so "display : none" counts too. */
    char s[256];
    size_t n = 0;
    for (; *style != '\0' && n + 1 < sizeof(s); style++)
        if (*style != ' ' && *style != '\t' && *style != '\n' && *style != '\r')
            s[n++] = (char)((*style >= 'A' && *style <= 'Z') ? *style + 32 : *style);
    s[n] = '\0';
    return strstr(s, "display:none") != NULL || strstr(s, "visibility:hidden") != NULL;
}

enum { BOILER_NO = 0, BOILER_SOFT = 1, BOILER_HARD = 2 };

/* Classifies an element from its own markup. SOFT ones are dropped unless soft_resolve finds they hold most
 * of the page's text: a false positive on a page-wide wrapper would otherwise lose the whole article. */
static int boiler_classify(const xmlNode *n, int use_words)
{
    if (tag_in(n, TAGS_NEVER))
        return BOILER_HARD;
    if (tag_in(n, TAGS_SOFT)) {
        /* An article's own <header> holds its standfirst; the headline and byline in it go by other rules. */
        if (is_tag(n, "header"))
            for (const xmlNode *a = n->parent; a != NULL && a->type == XML_ELEMENT_NODE; a = a->parent)
                if (is_tag(a, "article") || is_tag(a, "main"))
                    return BOILER_NO;
        return BOILER_SOFT;
    }
    if (attr_has(n, "hidden"))
        return BOILER_HARD;
    const char *v;
    if ((v = attr_get(n, "style")) != NULL && style_hidden(v))
        return BOILER_HARD;
    int soft = 0;
    if ((v = attr_get(n, "role")) != NULL) {
        for (const char *const *r = ROLES_BOILER; *r != NULL; r++)
            if (strcasecmp(v, *r) == 0)
                return BOILER_SOFT; /* soft like the tags: a role="complementary" left open holds the page */
        if (strcasecmp(v, "main") == 0 || strcasecmp(v, "article") == 0)
            return BOILER_NO;
    }
    if (tag_in(n, TAGS_NO_CLASS_CHECK))
        return BOILER_NO;
    /* <form> is not suspect by itself: ASP.NET wraps whole pages in one, shops their product text; the
     * search and login forms are made of inputs, labels and buttons, which are dropped anyway. */
    if ((v = attr_get(n, "aria-hidden")) != NULL && strcasecmp(v, "true") == 0)
        soft = 1;
    static const char *const attrs[] = {"class", "id", "aria-label", NULL};
    for (const char *const *a = attrs; use_words && *a != NULL; a++) {
        if ((v = attr_get(n, *a)) == NULL)
            continue;
        int m = words_match(v);
        if (m == 2)
            return BOILER_HARD;
        if (m == 1)
            soft = 1;
    }
    return soft ? BOILER_SOFT : BOILER_NO;
}

/* ------------------------------------------------------------------------------------------------------------
 * Measuring: one post-order pass sums, for every element, the visible text below it. Per-element data lives
 * in an array; node->_private holds the index + 1 (libxml leaves _private to the application).
 * ------------------------------------------------------------------------------------------------------------
 */

typedef struct st_info_t {
    xmlNode *node;
    size_t text;          /* visible non-space characters in the subtree */
    size_t link;          /* of those, inside <a> */
    size_t inline_;       /* not inside a block-level descendant: the element's own paragraph text */
    size_t commas;        /* commas in inline_ text, a readability signal for prose */
    double score;         /* content score from the paragraphs below */
    unsigned char boiler; /* BOILER_* from the markup */
    unsigned char skip;   /* dropped: boiler HARD, or SOFT and not rescued */
    unsigned char block;
} info_t;

typedef struct st_measure_t {
    info_t *info;
    size_t count, cap;
    int first_pass;    /* assigns indexes and classifies; later passes reuse both */
    int use_words;     /* class/id/aria-label words count (off for the retry of a page that came out short) */
    size_t link_depth; /* how many <a> we are inside */
} measure_t;

static info_t *info_of(const measure_t *m, const xmlNode *n)
{
    uintptr_t i = (uintptr_t)n->_private;
    return (n->type == XML_ELEMENT_NODE && i != 0 && i <= m->count) ? &m->info[i - 1] : NULL;
}

static int is_space_at(const unsigned char *p, size_t *adv);

/* Non-space characters and commas in a text node. */
static void text_measure(const char *s, size_t *chars, size_t *commas)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        size_t adv;
        if (is_space_at(p, &adv)) {
            p += adv;
            continue;
        }
        if (*p == ',')
            (*commas)++;
        if ((*p & 0xC0) != 0x80)
            (*chars)++;
        p++;
    }
}

static int measure_enter(xmlNode *n, void *ctx)
{
    measure_t *m = ctx;
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        if (n->content == NULL || n->parent == NULL)
            return 0;
        info_t *p = info_of(m, n->parent);
        if (p == NULL)
            return 0;
        size_t chars = 0, commas = 0;
        text_measure((const char *)n->content, &chars, &commas);
        p->text += chars;
        p->inline_ += chars;
        p->commas += commas;
        if (m->link_depth > 0)
            p->link += chars;
        return 0;
    }
    if (n->type != XML_ELEMENT_NODE && n->type != XML_DOCUMENT_NODE && n->type != XML_HTML_DOCUMENT_NODE)
        return 0;
    if (n->type != XML_ELEMENT_NODE)
        return 1;
    info_t *inf;
    if (m->first_pass) {
        if (m->count == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 256;
            m->info = xrealloc(m->info, m->cap * sizeof(*m->info));
        }
        inf = &m->info[m->count++];
        memset(inf, 0, sizeof(*inf));
        inf->node = n;
        n->_private = (void *)(uintptr_t)m->count;
        inf->boiler = (unsigned char)boiler_classify(n, m->use_words);
        inf->skip = inf->boiler == BOILER_HARD;
        inf->block = (unsigned char)tag_in(n, TAGS_BLOCK);
    } else {
        inf = info_of(m, n);
        if (inf == NULL)
            return 0;
        inf->text = inf->link = inf->inline_ = inf->commas = 0;
        inf->score = 0;
    }
    if (inf->skip)
        return 0;
    if (is_tag(n, "a"))
        m->link_depth++;
    return 1;
}

static void measure_leave(xmlNode *n, void *ctx)
{
    measure_t *m = ctx;
    info_t *inf = info_of(m, n);
    if (inf == NULL || inf->skip)
        return;
    if (is_tag(n, "a") && m->link_depth > 0)
        m->link_depth--;
    info_t *p = n->parent != NULL ? info_of(m, n->parent) : NULL;
    if (p == NULL)
        return;
    p->text += inf->text;
    p->link += inf->link;
    if (!inf->block) {
        /* Inline markup (<b>, <a>, <span>) is part of the parent's paragraph. */
        p->inline_ += inf->inline_;
        p->commas += inf->commas;
    }
}

static void measure(xmlNode *root, measure_t *m)
{
    static const walk_ops_t ops = {measure_enter, measure_leave};
    m->link_depth = 0;
    walk(root, &ops, m);
}

/* Decides the SOFT elements: kept only when they hold at least half of the page's text outside links, and at
 * least 200 characters of it. The first pass measured with every SOFT element
 * included, so the numbers compare like with like. */
static void soft_resolve(xmlNode *root, measure_t *m)
{
    info_t *top = info_of(m, root);
    size_t total = top != NULL ? top->text - top->link : 0;
    for (size_t i = 0; i < m->count; i++) {
        info_t *inf = &m->info[i];
        if (inf->boiler != BOILER_SOFT)
            continue;
        /* Link density is not looked at: an element holding half of the page's text outside links is not a
         * link list, and ASP.NET's page-wide <form> or a "content-with-sidebar" wrapper often has many. */
        size_t useful = inf->text - inf->link;
        int rescued = useful >= 200 && useful * 2 >= total;
        inf->skip = !rescued;
    }
}

static double link_density(const info_t *inf)
{
    return inf->text > 0 ? (double)inf->link / (double)inf->text : 0.0;
}

/* ------------------------------------------------------------------------------------------------------------
 * Choosing the main container.
 * ------------------------------------------------------------------------------------------------------------
 */

/* Semantic containers beyond this many are ignored; a page with more is a listing, not an article. */
#define SEMANTIC_MAX 64

typedef struct st_pick_t {
    measure_t *m;
    xmlNode *semantic[SEMANTIC_MAX]; /* <article>, <main>, role=main, in document order */
    size_t nsemantic;
    xmlNode *hinted[SEMANTIC_MAX]; /* elements whose class, id or itemprop name the article body */
    size_t nhinted;
} pick_t;

/* Class and id words that name the container of an article's body, compared with a token's letters only
 * ("entry-content", "c-article__body" and "postContent" all match); the convention of most CMS themes. */
static const char *const HINT_WORDS[] = {"entrycontent",
                                         "postcontent",
                                         "articlebody",
                                         "articlecontent",
                                         "storybody",
                                         "storycontent",
                                         "postbody",
                                         "articletext",
                                         "posttext",
                                         "entrybody",
                                         "contentbody",
                                         "bodytext",
                                         "articleinner",
                                         "postentry",
                                         "singlecontent",
                                         "blogpost",
                                         "newsbody",
                                         "newscontent",
                                         "textcontent",
                                         "maincontent",
                                         "pagecontent",
                                         "contenttext",
                                         "richtext",
                                         "artikeltext",
                                         "articlecopy",
                                         "storytext",
                                         "contentarticle",
                                         "postarticle",
                                         "entrytext",
                                         "blogcontent",
                                         "blogentry",
                                         "itemfulltext",
                                         "itembody",
                                         "article_body",
                                         "detailtext",
                                         "contentmain",
                                         NULL};

static int hint_match_uncached(const char *v)
{
    while (*v != '\0') {
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        char w[96];
        size_t n = 0;
        for (; *v != '\0' && *v != ' ' && *v != '\t' && *v != '\n' && *v != '\r'; v++)
            if (((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9')) &&
                n + 1 < sizeof(w))
                w[n++] = (char)((*v >= 'A' && *v <= 'Z') ? *v + 32 : *v);
        w[n] = '\0';
        for (const char *const *h = HINT_WORDS; n > 0 && *h != NULL; h++)
            if (strstr(w, *h) != NULL)
                return 1;
    }
    return 0;
}

/* Whether n's own markup says it holds the article body. */
static int content_hint(const xmlNode *n)
{
    const char *v;
    if ((v = attr_get(n, "itemprop")) != NULL &&
        (strcasecmp(v, "articleBody") == 0 || strcasecmp(v, "text") == 0))
        return 1;
    if (is_tag(n, "body") || is_tag(n, "html"))
        return 0;
    return ((v = attr_get(n, "class")) != NULL && hint_match(v)) ||
           ((v = attr_get(n, "id")) != NULL && hint_match(v));
}

static int is_semantic_main(const xmlNode *n)
{
    if (is_tag(n, "article") || is_tag(n, "main"))
        return 1;
    const char *role = attr_get(n, "role");
    return role != NULL && strcasecmp(role, "main") == 0;
}

static size_t useful_text(const info_t *inf)
{
    return inf->text - inf->link;
}

/* Scores paragraphs into their ancestors and collects the semantic containers, in one walk. */
static int pick_enter(xmlNode *n, void *ctx)
{
    pick_t *pk = ctx;
    if (n->type != XML_ELEMENT_NODE)
        return n->type == XML_DOCUMENT_NODE || n->type == XML_HTML_DOCUMENT_NODE;
    info_t *inf = info_of(pk->m, n);
    if (inf == NULL || inf->skip)
        return 0;
    if (is_semantic_main(n) && pk->nsemantic < SEMANTIC_MAX)
        pk->semantic[pk->nsemantic++] = n;
    if (pk->nhinted < SEMANTIC_MAX && content_hint(n))
        pk->hinted[pk->nhinted++] = n;
    if (tag_in(n, TAGS_PARAGRAPH) && inf->inline_ >= 25) {
        /* Readability's formula: a point per paragraph, one per comma (at most 3 here, so that a photo
         * caption listing twenty names does not outscore the story), one per 100 characters (at most 3),
         * given in full to the parent, half to the grandparent, a third to the great-grandparent. */
        double s = 1.0 + (inf->commas < 3 ? (double)inf->commas : 3.0) +
                   (inf->inline_ / 100 < 3 ? (double)(inf->inline_ / 100) : 3.0);
        double div = 1.0;
        for (xmlNode *a = n->parent; a != NULL && div <= 3.0; a = a->parent, div += 1.0) {
            info_t *ai = info_of(pk->m, a);
            if (ai == NULL)
                break;
            ai->score += s / div;
        }
    }
    return 1;
}

static int is_ancestor(const xmlNode *a, const xmlNode *n)
{
    for (n = n->parent; n != NULL; n = n->parent)
        if (n == a)
            return 1;
    return 0;
}

/* The container to use among list (semantic or hinted), or NULL. The one with the most text wins, but a
 * container nested in it that holds most of that text is better still: <main> often wraps the <article>
 * plus "more stories" lists that the word list did not catch. */
static xmlNode *container_best(const measure_t *m, xmlNode *const *list, size_t n)
{
    xmlNode *best = NULL;
    size_t best_useful = 0;
    for (size_t i = 0; i < n; i++) {
        size_t u = useful_text(info_of(m, list[i]));
        if (best == NULL || u > best_useful)
            best = list[i], best_useful = u;
    }
    for (int again = best != NULL; again;) {
        again = 0;
        for (size_t i = 0; i < n; i++) {
            xmlNode *c = list[i];
            size_t u = useful_text(info_of(m, c));
            if (c != best && u * 10 >= best_useful * 6 && is_ancestor(best, c)) {
                best = c, best_useful = u;
                again = 1;
                break;
            }
        }
    }
    return best;
}

typedef struct st_choice_t {
    xmlNode *root;    /* the main container */
    double threshold; /* > 0: also its siblings that pass sibling_take with this threshold */
    int same_tag; /* also its siblings of the same tag that read as prose (an article split in sections) */
} choice_t;

static double final_score(const info_t *inf)
{
    return inf->score * (1.0 - link_density(inf));
}

/* Content split across siblings (a lede in one div, the body in the next) is collected too. */
static int sibling_take(const measure_t *m, const xmlNode *s, double threshold)
{
    const info_t *si = info_of(m, s);
    return si != NULL && !si->skip &&
           (final_score(si) >= threshold || (is_tag(s, "p") && si->text >= 80 && link_density(si) < 0.25));
}

/* A sibling of the chosen container that continues it: same tag, prose rather than links. */
static int sibling_continues(const measure_t *m, const xmlNode *root, const xmlNode *s)
{
    const info_t *si = info_of(m, s);
    if (si == NULL || si->skip || s->type != XML_ELEMENT_NODE ||
        strcmp((const char *)s->name, (const char *)root->name) != 0)
        return 0;
    const char *a = attr_get(root, "class"), *b = attr_get(s, "class");
    if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0 && !content_hint(s)))
        return 0;
    return useful_text(si) >= 100 && link_density(si) < 0.3 && si->score > 0;
}

static void choose(xmlNode *root, measure_t *m, choice_t *out)
{
    pick_t pk = {.m = m};
    static const walk_ops_t ops = {pick_enter, NULL};
    walk(root, &ops, &pk);

    out->root = root;
    out->threshold = 0;
    out->same_tag = 0;
    size_t total_useful = useful_text(info_of(m, root));
    xmlNode *sem = container_best(m, pk.semantic, pk.nsemantic);
    xmlNode *hint = container_best(m, pk.hinted, pk.nhinted);
    size_t su = sem != NULL ? useful_text(info_of(m, sem)) : 0;
    size_t hu = hint != NULL ? useful_text(info_of(m, hint)) : 0;
    int sem_ok = sem != NULL && (su >= 140 || su * 2 >= total_useful);
    int hint_ok = hint != NULL && (hu >= 140 || hu * 2 >= total_useful);
    xmlNode *cand = NULL;
    if (sem_ok && hint_ok) {
        /* Nested: the inner one unless it lost half the text; disjoint: the longer. */
        if (is_ancestor(sem, hint))
            cand = hu * 2 >= su ? hint : sem;
        else if (is_ancestor(hint, sem))
            cand = su * 10 >= hu * 6 ? sem : hint;
        else
            cand = hu >= su ? hint : sem;
    } else if (hint_ok) {
        cand = hint;
    } else if (sem_ok) {
        cand = sem;
    }
    if (cand != NULL) {
        for (xmlNode *p = cand->parent;
             p != NULL && p->type == XML_ELEMENT_NODE && !is_tag(p, "body") && !is_tag(p, "html");
             p = p->parent) {
            const info_t *ci = info_of(m, cand), *pi = info_of(m, p);
            if (pi == NULL || ci == NULL || useful_text(ci) * 3 >= total_useful || link_density(pi) >= 0.3)
                break;
            cand = p;
        }
        out->root = cand;
        out->same_tag = cand->parent != NULL && cand->parent->type == XML_ELEMENT_NODE;
        return;
    }

    /* Readability-style: the element with the best score from the paragraphs below it. */
    xmlNode *best = NULL;
    double best_score = 0;
    for (size_t i = 0; i < m->count; i++) {
        const info_t *inf = &m->info[i];
        if (inf->skip || inf->score <= 0)
            continue;
        double s = final_score(inf);
        if (s > best_score)
            best_score = s, best = inf->node;
    }
    if (best == NULL)
        return;
    /* The best-scored element can be one box of an article cut into many (a recipe's steps, a company page's
     * sections): climb while it holds less than half of the page's prose and its parent is not a link list.
     */
    for (xmlNode *p = best->parent;
         p != NULL && p->type == XML_ELEMENT_NODE && !is_tag(p, "body") && !is_tag(p, "html");
         p = p->parent) {
        const info_t *bi = info_of(m, best), *pi = info_of(m, p);
        if (pi == NULL || bi == NULL || useful_text(bi) * 2 >= total_useful || link_density(pi) >= 0.35)
            break;
        best = p;
    }
    out->root = best;
    if (best->parent != NULL && best->parent->type == XML_ELEMENT_NODE)
        out->threshold = best_score * 0.2 > 10 ? best_score * 0.2 : 10;
}

/* ------------------------------------------------------------------------------------------------------------
 * Emitting text.
 * ------------------------------------------------------------------------------------------------------------
 */

enum { PEND_NONE, PEND_SPACE, PEND_LINE, PEND_PARA };

typedef struct st_emit_t {
    measure_t *m;
    xmlNode *root;
    buf_t out;
    int pending;
    size_t pre_depth;
    size_t pre_newlines; /* newlines inside <pre> not written yet */
    int full;
    const char *prefix; /* light markup ("## ", "- ", " | ") written before the next text, or NULL */
    size_t row_start;   /* out.len when the current table row began */
    int markup;         /* write the light markup at all (not for titles) */
} emit_t;

/* Whitespace for collapsing: ASCII space characters, no-break space, the Unicode spaces U+2000-U+200A,
 * U+202F, U+205F and U+3000. */
static int is_space_at(const unsigned char *p, size_t *adv)
{
    if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') {
        *adv = 1;
        return 1;
    }
    if (p[0] == 0xC2 && p[1] == 0xA0) {
        *adv = 2;
        return 1;
    }
    if (p[0] == 0xE2 && p[1] == 0x80 && p[2] != 0 && ((p[2] >= 0x80 && p[2] <= 0x8A) || p[2] == 0xAF)) {
        *adv = 3;
        return 1;
    }
    if ((p[0] == 0xE2 && p[1] == 0x81 && p[2] == 0x9F) || (p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80)) {
        *adv = 3;
        return 1;
    }
    return 0;
}

/* Invisible characters that only get in the way of whoever reads the text: zero-width spaces and joiners,
 * soft hyphens, the BOM. */
static int is_invisible_at(const unsigned char *p, size_t *adv)
{
    if (p[0] == 0xC2 && p[1] == 0xAD) {
        *adv = 2;
        return 1;
    }
    if (p[0] == 0xE2 && p[1] == 0x80 && p[2] >= 0x8B && p[2] <= 0x8D) {
        *adv = 3;
        return 1;
    }
    if (p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
        *adv = 3;
        return 1;
    }
    return 0;
}

static void emit_pending(emit_t *e)
{
    const char *prefix = e->prefix;
    e->prefix = NULL;
    if (prefix != NULL && prefix[0] == ' ' && e->pending != PEND_PARA && e->out.len > e->row_start) {
        /* A cell separator: only between cells that both have text. */
        buf_puts(&e->out, prefix);
        e->pending = PEND_NONE;
        e->pre_newlines = 0;
        return;
    }
    if (prefix != NULL && prefix[0] == ' ')
        prefix = NULL;
    if (e->out.len > 0) {
        if (e->pending == PEND_PARA)
            buf_append(&e->out, "\n\n", 2);
        else if (e->pre_newlines > 0)
            for (size_t i = 0; i < e->pre_newlines; i++)
                buf_putc(&e->out, '\n');
        else if (e->pending == PEND_LINE)
            buf_putc(&e->out, '\n');
        else if (e->pending == PEND_SPACE)
            buf_putc(&e->out, ' ');
    }
    if (prefix != NULL)
        buf_puts(&e->out, prefix);
    e->pending = PEND_NONE;
    e->pre_newlines = 0;
}

static void emit_text(emit_t *e, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        if (e->out.len >= EXTRACT_TEXT_MAX) {
            e->full = 1;
            return;
        }
        size_t adv;
        if (is_invisible_at(p, &adv)) {
            p += adv;
            continue;
        }
        if (e->pre_depth > 0 && (*p == '\n' || *p == '\r')) {
            /* Code keeps its lines ("\r\n" counts once). They are held back until more code follows, so that
             * a trailing newline before the end of the block does not add to the paragraph break. */
            if (*p == '\r' && p[1] == '\n')
                p++;
            if (e->pending != PEND_PARA)
                e->pre_newlines++;
            p++;
            continue;
        }
        if (e->pre_depth > 0 && (*p == ' ' || *p == '\t')) {
            if (e->pending != PEND_NONE || e->pre_newlines > 0)
                emit_pending(e);
            buf_putc(&e->out, (char)*p);
            p++;
            continue;
        }
        if (is_space_at(p, &adv)) {
            if (e->pending == PEND_NONE)
                e->pending = PEND_SPACE;
            p += adv;
            continue;
        }
        emit_pending(e);
        /* Copy the run of ordinary characters up to the next space in one go. */
        const unsigned char *start = p;
        while (*p != '\0' && !is_space_at(p, &adv) && !is_invisible_at(p, &adv) &&
               !(e->pre_depth > 0 && (*p == '\n' || *p == '\r')))
            p++;
        buf_append(&e->out, start, (size_t)(p - start));
    }
}

static void emit_block_break(emit_t *e)
{
    e->pending = PEND_PARA;
    e->pre_newlines = 0;
}

/* Inside the chosen container, lists and boxes that are mostly links (tag clouds, "see also" lists, tables of
 * contents) are navigation that the word list missed. */
static int link_box(const emit_t *e, const xmlNode *n, const info_t *inf)
{
    static const char *const boxes[] = {"ul", "ol", "dl", "div", "section", "table", "p", NULL};
    return n != e->root && tag_in(n, boxes) && inf->text > 0 && link_density(inf) > 0.5 &&
           !(is_tag(n, "p") && inf->text >= 80);
}

static int emit_enter(xmlNode *n, void *ctx)
{
    emit_t *e = ctx;
    if (e->full)
        return 0;
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        if (n->content != NULL)
            emit_text(e, (const char *)n->content);
        return 0;
    }
    if (n->type != XML_ELEMENT_NODE)
        return 0;
    const info_t *inf = info_of(e->m, n);
    if (inf == NULL || inf->skip || link_box(e, n, inf))
        return 0;
    if (is_tag(n, "br")) {
        e->pending = e->pending == PEND_LINE ? PEND_PARA : (e->pending == PEND_PARA ? PEND_PARA : PEND_LINE);
        return 0;
    }
    if (inf->block)
        emit_block_break(e);
    if (is_tag(n, "pre"))
        e->pre_depth++;
    if (e->markup && n->name[0] == 'h' && n->name[1] >= '1' && n->name[1] <= '6' && n->name[2] == '\0') {
        static const char *const hashes[] = {"# ", "## ", "### ", "#### ", "##### ", "###### "};
        e->prefix = hashes[n->name[1] - '1'];
    } else if (e->markup && is_tag(n, "li")) {
        e->prefix = "- ";
    } else if (e->markup && is_tag(n, "tr")) {
        e->row_start = e->out.len + 2;
        e->prefix = NULL;
    } else if (e->markup && (is_tag(n, "td") || is_tag(n, "th"))) {
        e->prefix = " | ";
        if (e->pending == PEND_PARA && e->out.len + 2 > e->row_start)
            e->pending = PEND_SPACE; /* inside a row, block content of a cell does not split the row */
    }
    return 1;
}

static void emit_leave(xmlNode *n, void *ctx)
{
    emit_t *e = ctx;
    if (n->type != XML_ELEMENT_NODE)
        return;
    const info_t *inf = info_of(e->m, n);
    if (inf == NULL || inf->skip)
        return;
    if (is_tag(n, "pre") && e->pre_depth > 0)
        e->pre_depth--;
    if (e->markup && (is_tag(n, "td") || is_tag(n, "th")))
        return; /* the row, not the cell, ends the line */
    if (inf->block)
        emit_block_break(e);
}

/* Cuts s to at most max bytes at a character boundary, then drops trailing whitespace. */
static void utf8_truncate(buf_t *b, size_t max)
{
    if (b->len > max) {
        size_t n = max;
        while (n > 0 && ((unsigned char)b->data[n] & 0xC0) == 0x80)
            n--;
        b->len = n;
        b->data[n] = '\0';
    }
    while (b->len > 0 && (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\n'))
        b->data[--b->len] = '\0';
}

/* ------------------------------------------------------------------------------------------------------------
 * Line filter: what survives the choice of container but is still not article text, recognised by its shape.
 * ------------------------------------------------------------------------------------------------------------
 */

static int starts_with_ci(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && strncasecmp(s, prefix, k) == 0;
}

/* A short line made of a date or time and a few words around it ("Aktualisiert: 03.04.2020, 14:12 Uhr",
 * "Published 12 March 2021"). */
static int is_date_line(const char *s, size_t n)
{
    if (n > 60)
        return 0;
    size_t digits = 0, letters = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0xC0)
            letters++;
    }
    if (digits < 4 || letters > 25)
        return 0;
    /* A year (19xx, 20xx) or a clock time (12:30), not just any figures ("13.4 MB (-81%)"). */
    for (size_t i = 0; i + 4 <= n; i++) {
        int lead = i == 0 || !(s[i - 1] >= '0' && s[i - 1] <= '9');
        int trail = i + 4 == n || !(s[i + 4] >= '0' && s[i + 4] <= '9');
        if (lead && trail && ((s[i] == '1' && s[i + 1] == '9') || (s[i] == '2' && s[i + 1] == '0')) &&
            s[i + 2] >= '0' && s[i + 2] <= '9' && s[i + 3] >= '0' && s[i + 3] <= '9')
            return 1;
        if (s[i] >= '0' && s[i] <= '9' && s[i + 1] == ':' && s[i + 2] >= '0' && s[i + 2] <= '5' &&
            s[i + 3] >= '0' && s[i + 3] <= '9')
            return 1;
    }
    return 0;
}

/* "Image 1 of 5", "Bild 3 von 12", "2 / 7": a gallery's counter. */
static int is_counter_line(const char *s, size_t n)
{
    if (n > 30)
        return 0;
    size_t i = 0, nums = 0;
    while (i < n) {
        if (s[i] >= '0' && s[i] <= '9') {
            nums++;
            while (i < n && s[i] >= '0' && s[i] <= '9')
                i++;
        } else {
            i++;
        }
    }
    if (nums != 2)
        return 0;
    static const char *const words[] = {" of ", " von ", " / ", "/", " de ", " sur ", NULL};
    char tmp[32];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    for (const char *const *w = words; *w != NULL; w++)
        if (strstr(tmp, *w) != NULL)
            return 1;
    return 0;
}

/* Bylines and credits: "By Jane Doe", "Foto: dpa", "Credit: Getty Images". */
static int is_byline(const char *s, size_t n)
{
    static const char *const prefixes[] = {"by ",
                                           "von ",
                                           "par ",
                                           "por ",
                                           "autor:",
                                           "author:",
                                           "text:",
                                           "foto:",
                                           "fotos:",
                                           "photo:",
                                           "photos:",
                                           "bild:",
                                           "credit:",
                                           "credits:",
                                           "image:",
                                           "bildquelle:",
                                           "©",
                                           "(c) ",
                                           "posted by ",
                                           "written by ",
                                           "geschrieben von ",
                                           "quelle: foto",
                                           "bild via",
                                           "foto via",
                                           "photo via",
                                           "image via",
                                           "fotocredit",
                                           "bildnachweis",
                                           "source: getty",
                                           NULL};
    if (n > 80)
        return 0;
    for (const char *const *p = prefixes; *p != NULL; p++)
        if (starts_with_ci(s, n, *p))
            return 1;
    return 0;
}

/* Short headings after which an article has ended: what follows are teasers, the author box or comments. */
static const char *const TAIL_MARKERS[] = {"mehr zum thema",
                                           "weiterführende informationen",
                                           "ähnliche beiträge",
                                           "ähnliche artikel",
                                           "à lire aussi",
                                           "lire aussi",
                                           "über den autor",
                                           "über die autorin",
                                           "related posts",
                                           "related articles",
                                           "related stories",
                                           "related content",
                                           "you may also like",
                                           "you might also like",
                                           "more stories",
                                           "more from",
                                           "weitere artikel",
                                           "das könnte sie auch interessieren",
                                           "das könnte dich auch interessieren",
                                           "auch interessant",
                                           "leave a reply",
                                           "leave a comment",
                                           "schreibe einen kommentar",
                                           "hinterlasse einen kommentar",
                                           "about the author",
                                           "empfohlene artikel",
                                           "latest stories",
                                           "latest news",
                                           "top stories",
                                           "most popular",
                                           "meistgelesen",
                                           "neueste beiträge",
                                           "aktuelle beiträge",
                                           "recent posts",
                                           "artikel teilen",
                                           "share this",
                                           "diesen artikel teilen",
                                           "kommentare",
                                           "comments",
                                           "weitere meldungen",
                                           "weitere nachrichten",
                                           "zurück zur übersicht",
                                           "zurück zur listenansicht",
                                           NULL};

static int is_tail_marker(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ':' || s[n - 1] == ' ' || s[n - 1] == '.'))
        n--;
    for (const char *const *m = TAIL_MARKERS; *m != NULL; m++) {
        size_t k = strlen(*m);
        /* Only ASCII letters fold case; the markers' other letters are written as pages write them. */
        if (n >= k && n <= k + 12 && strncasecmp(s, *m, k) == 0 &&
            (n == k || s[k] == ' ' || s[k] == '(' || s[k] == ':'))
            return 1;
    }
    return 0;
}

/* Drops, from text (blocks separated by "\n\n"), the headline when it repeats the title, date lines,
 * bylines and credits, gallery counters, and repeats of a short block already written (a caption shown
 * twice, a credit under every photo). */
static char *text_filter(char *text, const char *title)
{
    buf_t out = BUF_INIT;
    size_t seen_cap = 64, nseen = 0;
    uint64_t *seen = xmalloc(seen_cap * sizeof(*seen));
    size_t index = 0;
    for (char *p = text; *p != '\0'; index++) {
        char *end = strstr(p, "\n\n");
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *b = p;
        size_t bn = n;
        while (bn > 0 && *b == '#') /* a heading is judged by its text */
            b++, bn--;
        if (bn < n && bn > 0 && *b == ' ')
            b++, bn--;
        int drop = 0;
        if (out.len >= 150 && is_tail_marker(b, bn))
            break;
        if (index < 4 && *title != '\0' && bn == strlen(title) && strncasecmp(b, title, bn) == 0)
            drop = 1;
        else if (bn == n && !(n > 2 && p[0] == '-' && p[1] == ' ') && memmem(b, bn, " | ", 3) == NULL &&
                 (is_date_line(b, bn) || is_counter_line(b, bn)))
            drop = 1; /* not for headings, list items and table rows: those are structure, not datelines */
        else if (is_byline(b, bn))
            drop = 1;
        else if (bn < 150) {
            uint64_t h = 1469598103934665603ULL; /* FNV-1a */
            for (size_t i = 0; i < bn; i++)
                h = (h ^ (unsigned char)b[i]) * 1099511628211ULL;
            for (size_t i = 0; i < nseen && !drop; i++)
                drop = seen[i] == h && bn >= 20;
            if (!drop && nseen < 4096) {
                if (nseen == seen_cap)
                    seen = xrealloc(seen, (seen_cap *= 2) * sizeof(*seen));
                seen[nseen++] = h;
            }
        }
        if (!drop) {
            if (out.len > 0)
                buf_append(&out, "\n\n", 2);
            buf_append(&out, p, n);
        }
        p = end != NULL ? end + 2 : p + n;
    }
    free(seen);
    free(text);
    if (out.data == NULL)
        return xstrdup("");
    return buf_release(&out);
}

static char *emit_main(measure_t *m, const choice_t *c)
{
    emit_t e = {.m = m, .root = c->root, .out = BUF_INIT, .markup = 1};
    static const walk_ops_t ops = {emit_enter, emit_leave};
    if (c->threshold > 0 || c->same_tag) {
        for (xmlNode *s = c->root->parent->children; s != NULL && !e.full; s = s->next) {
            if (s == c->root || sibling_continues(m, c->root, s) ||
                (!c->same_tag && sibling_take(m, s, c->threshold))) {
                e.root = s;
                walk(s, &ops, &e);
            }
        }
    } else {
        walk(c->root, &ops, &e);
    }
    utf8_truncate(&e.out, EXTRACT_TEXT_MAX);
    return buf_release(&e.out);
}

/* ------------------------------------------------------------------------------------------------------------
 * Title.
 * ------------------------------------------------------------------------------------------------------------
 */

static int title_text_enter(xmlNode *n, void *ctx)
{
    emit_t *e = ctx;
    if (e->out.len >= EXTRACT_TITLE_MAX) {
        e->full = 1;
        return 0;
    }
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        if (n->content != NULL)
            emit_text(e, (const char *)n->content);
        return 0;
    }
    if (n->type == XML_ELEMENT_NODE && (is_tag(n, "script") || is_tag(n, "style")))
        return 0;
    if (n->type == XML_ELEMENT_NODE && is_tag(n, "br"))
        e->pending = PEND_SPACE;
    return n->type == XML_ELEMENT_NODE;
}

/* All text below n as one whitespace-collapsed line. */
static char *title_from(xmlNode *n, const char *attr_value)
{
    emit_t e = {.out = BUF_INIT};
    if (attr_value != NULL) {
        emit_text(&e, attr_value);
    } else {
        static const walk_ops_t ops = {title_text_enter, NULL};
        walk(n, &ops, &e);
    }
    utf8_truncate(&e.out, EXTRACT_TITLE_MAX);
    return buf_release(&e.out);
}

/* What the page says about itself, gathered in one walk: the first value found for each field wins, and
 * fields of a higher rank (meta tags) replace those of a lower one (elements in the body). */
typedef struct st_meta_t {
    xmlNode *title_el, *h1, *time_el, *author_el;
    const char *og_title, *tw_title, *site, *author, *date, *lang, *locale;
    int author_rank, date_rank;
} meta_t;

static int meta_enter(xmlNode *n, void *ctx)
{
    meta_t *mt = ctx;
    if (n->type != XML_ELEMENT_NODE)
        return n->type == XML_DOCUMENT_NODE || n->type == XML_HTML_DOCUMENT_NODE;
    const char *v;
    if (is_tag(n, "html") && mt->lang == NULL && (v = attr_get(n, "lang")) != NULL && *v != '\0')
        mt->lang = v;
    if (is_tag(n, "script") || is_tag(n, "style") || is_tag(n, "svg") || is_tag(n, "template"))
        return 0;
    if (is_tag(n, "title")) {
        if (mt->title_el == NULL)
            mt->title_el = n;
        return 0;
    }
    if (is_tag(n, "meta")) {
        const char *key = attr_get(n, "property");
        if (key == NULL)
            key = attr_get(n, "name");
        if (key == NULL)
            key = attr_get(n, "itemprop");
        const char *content = attr_get(n, "content");
        const char *equiv = attr_get(n, "http-equiv");
        if (equiv != NULL && content != NULL && strcasecmp(equiv, "content-language") == 0 &&
            mt->lang == NULL)
            mt->lang = content;
        if (key == NULL || content == NULL || *content == '\0')
            return 0;
        if (strcasecmp(key, "og:title") == 0 && mt->og_title == NULL)
            mt->og_title = content;
        else if (strcasecmp(key, "twitter:title") == 0 && mt->tw_title == NULL)
            mt->tw_title = content;
        else if ((strcasecmp(key, "og:site_name") == 0 || strcasecmp(key, "application-name") == 0) &&
                 mt->site == NULL)
            mt->site = content;
        else if ((strcasecmp(key, "author") == 0 || strcasecmp(key, "article:author") == 0 ||
                  strcasecmp(key, "dc.creator") == 0 || strcasecmp(key, "parsely-author") == 0) &&
                 mt->author_rank < 3 && strncmp(content, "http", 4) != 0)
            mt->author = content, mt->author_rank = 3;
        else if ((strcasecmp(key, "article:published_time") == 0 || strcasecmp(key, "datePublished") == 0 ||
                  strcasecmp(key, "date") == 0 || strcasecmp(key, "pubdate") == 0 ||
                  strcasecmp(key, "publishdate") == 0 || strcasecmp(key, "dc.date.issued") == 0 ||
                  strcasecmp(key, "dc.date") == 0 || strcasecmp(key, "parsely-pub-date") == 0 ||
                  strcasecmp(key, "og:published_time") == 0) &&
                 mt->date_rank < 3)
            mt->date = content, mt->date_rank = 3;
        else if (strcasecmp(key, "og:locale") == 0 && mt->locale == NULL)
            mt->locale = content;
        return 0;
    }
    if (mt->h1 == NULL && is_tag(n, "h1"))
        mt->h1 = n;
    if (mt->date_rank < 2 && ((v = attr_get(n, "itemprop")) != NULL && strcasecmp(v, "datePublished") == 0)) {
        const char *d = attr_get(n, "datetime");
        if (d == NULL)
            d = attr_get(n, "content");
        if (d != NULL && *d != '\0')
            mt->date = d, mt->date_rank = 2;
    }
    if (mt->date_rank < 1 && is_tag(n, "time") && (v = attr_get(n, "datetime")) != NULL && *v != '\0')
        mt->date = v, mt->date_rank = 1;
    if (mt->author_rank < 2) {
        const char *rel = attr_get(n, "rel"), *ip = attr_get(n, "itemprop");
        if ((rel != NULL && strcasecmp(rel, "author") == 0) ||
            (ip != NULL && strcasecmp(ip, "author") == 0)) {
            mt->author_el = n, mt->author_rank = 2;
            return 0;
        }
    }
    if (mt->author_rank < 1 && (v = attr_get(n, "class")) != NULL &&
        (strstr(v, "byline") != NULL || strstr(v, "author-name") != NULL)) {
        mt->author_el = n, mt->author_rank = 1;
        return 0;
    }
    return 1;
}

/* A value as one whitespace-collapsed line of at most max bytes. */
static char *meta_value(xmlNode *n, const char *attr_value, size_t max)
{
    char *t = title_from(n, attr_value);
    if (strlen(t) > max) {
        buf_t b = {t, strlen(t), strlen(t) + 1};
        utf8_truncate(&b, max);
    }
    return t;
}

/* Separators between a page's title and its site's name: "Title | Site", "Site - Title". */
static const char *const TITLE_SEPS[] = {
    " | ", " - ", " \xE2\x80\x93 ", " \xE2\x80\x94 ", " :: ", " \xC2\xB7 ", " \xC2\xBB ", " // ", NULL};

/* Cuts the site's name off a <title>: the side that is the site name when it is known, otherwise the part
 * after the last separator (the usual order); the removed part becomes the site name when none is known. A
 * title whose remaining part would be a single word is left whole. */
static void title_strip(char *title, char **site)
{
    for (const char *const *sep = TITLE_SEPS; *sep != NULL; sep++) {
        size_t sl = strlen(*sep);
        char *last = NULL;
        for (char *p = strstr(title, *sep); p != NULL; p = strstr(p + 1, *sep))
            last = p;
        if (last == NULL)
            continue;
        char *first = strstr(title, *sep);
        if (**site != '\0' && strncasecmp(title, *site, strlen(*site)) == 0 &&
            first == title + strlen(*site)) {
            memmove(title, first + sl, strlen(first + sl) + 1); /* "Site | Title" */
            return;
        }
        const char *tail = last + sl;
        size_t head_len = (size_t)(last - title);
        if (head_len == 0 || memchr(title, ' ', head_len) == NULL)
            return;
        if (**site == '\0') {
            free(*site);
            *site = meta_value(NULL, tail, EXTRACT_META_MAX); /* a title's tail can be 500 bytes long */
        }
        *last = '\0';
        return;
    }
}

/* Title and metadata of the page into out. */
static void meta_find(xmlNode *doc, extract_result_t *out)
{
    meta_t mt = {0};
    static const walk_ops_t ops = {meta_enter, NULL};
    walk(doc, &ops, &mt);
    free(out->site_name);
    out->site_name = mt.site != NULL ? meta_value(NULL, mt.site, EXTRACT_META_MAX) : xstrdup("");
    char *t = NULL;
    if (mt.og_title != NULL && *(t = title_from(NULL, mt.og_title)) == '\0') {
        free(t);
        t = NULL;
    }
    if (t == NULL && mt.title_el != NULL) {
        t = title_from(mt.title_el, NULL);
        title_strip(t, &out->site_name);
        if (*t == '\0') {
            free(t);
            t = NULL;
        }
    }
    if (t == NULL && mt.tw_title != NULL && *(t = title_from(NULL, mt.tw_title)) == '\0') {
        free(t);
        t = NULL;
    }
    if (t == NULL && mt.h1 != NULL)
        t = title_from(mt.h1, NULL);
    free(out->title);
    out->title = t != NULL ? t : xstrdup("");
    free(out->author);
    if (mt.author != NULL)
        out->author = meta_value(NULL, mt.author, EXTRACT_META_MAX);
    else if (mt.author_el != NULL)
        out->author = meta_value(mt.author_el, NULL, EXTRACT_META_MAX);
    else
        out->author = xstrdup("");
    /* A byline element says "By Jane Doe"; the name is what is wanted. */
    static const char *const by[] = {"By ", "by ", "Von ", "von ", "Par ", "Por ", NULL};
    for (const char *const *b = by; *b != NULL; b++)
        if (strncmp(out->author, *b, strlen(*b)) == 0) {
            memmove(out->author, out->author + strlen(*b), strlen(out->author + strlen(*b)) + 1);
            break;
        }
    static const char *const cut[] = {" \xC2\xB7 ", " | ", " - ", ", ", NULL};
    for (const char *const *c = cut; *c != NULL; c++) {
        char *p = strstr(out->author, *c);
        if (p != NULL)
            *p = '\0';
    }
    free(out->date);
    out->date = mt.date != NULL ? meta_value(NULL, mt.date, EXTRACT_META_MAX) : xstrdup("");
    free(out->lang);
    const char *lang = mt.lang != NULL && *mt.lang != '\0' ? mt.lang : mt.locale;
    out->lang = lang != NULL ? meta_value(NULL, lang, EXTRACT_META_MAX) : xstrdup("");
}

/* ------------------------------------------------------------------------------------------------------------
 */

/* Below this many bytes of main text, the page is looked at again without the class/id words. */
#define SHORT_TEXT 250

/* Measures, chooses and emits the main text of the tree under root. */
static char *extract_main(xmlNode *root, int use_words, const char *title)
{
    measure_t m = {.first_pass = 1, .use_words = use_words};
    measure(root, &m);
    soft_resolve(root, &m);
    m.first_pass = 0;
    measure(root, &m);
    choice_t c;
    choose(root, &m, &c);
    char *text = text_filter(emit_main(&m, &c), title);
    /* The indexes in _private belong to this pass: a later pass starts from a clean tree. */
    for (size_t i = 0; i < m.count; i++)
        m.info[i].node->_private = NULL;
    free(m.info);
    return text;
}

int extract_html(const char *html, size_t len, const char *content_type, const char *url,
                 extract_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->title = xstrdup("");
    out->text = xstrdup("");
    out->author = xstrdup("");
    out->date = xstrdup("");
    out->site_name = xstrdup("");
    out->lang = xstrdup("");
    snprintf(out->encoding, sizeof(out->encoding), "UTF-8");
    if (html == NULL || len == 0)
        return 0;
    if (len > EXTRACT_INPUT_MAX)
        len = EXTRACT_INPUT_MAX;

    buf_t utf8 = BUF_INIT;
    input_decode(html, len, content_type, &utf8, out->encoding, sizeof(out->encoding));
    if (utf8.len == 0 || utf8.len > INT32_MAX) {
        buf_free(&utf8);
        return 0;
    }

    /* HTML_PARSE_NOBLANKS is left out on purpose: it drops whitespace-only text nodes, which glues words
     * together across inline tags ("<b>a</b> <i>b</i>"). HTML_PARSE_HUGE is left out to keep libxml's
     * nesting-depth limit. HTML_PARSE_IGNORE_ENC because the input was already decoded to UTF-8. */
    int opts = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
               HTML_PARSE_IGNORE_ENC | HTML_PARSE_COMPACT;
    htmlDocPtr doc = htmlReadMemory(utf8.data, (int)utf8.len, url, "UTF-8", opts);
    buf_free(&utf8);
    if (doc == NULL)
        return -1;

    xmlNode *root = xmlDocGetRootElement(doc);
    if (root != NULL) {
        meta_find((xmlNode *)doc, out);

        free(out->text);
        out->text = extract_main(root, 1, out->title);
        /* Readability's lesson: when the class words leave almost nothing, they were wrong about this page
         * (a theme that calls every block a "widget"); look again without them and keep the longer text. */
        if (strlen(out->text) < SHORT_TEXT) {
            char *again = extract_main(root, 0, out->title);
            if (strlen(again) > strlen(out->text)) {
                free(out->text);
                out->text = again;
            } else {
                free(again);
            }
        }
    }
    out->text_len = strlen(out->text);
    xmlFreeDoc(doc);
    return 0;
}

void extract_result_free(extract_result_t *r)
{
    if (r == NULL)
        return;
    free(r->title);
    free(r->text);
    free(r->author);
    free(r->date);
    free(r->site_name);
    free(r->lang);
    memset(r, 0, sizeof(*r));
}
