/* markdown: rendering (GitHub dialect, no raw HTML, safe link targets), word counts, titles. */
#include "pipeline/markdown.h"
#include "tap.h"

#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

static char *html_of(const char *md)
{
    return markdown_to_html(md, strlen(md));
}

static int count(const char *md)
{
    return markdown_word_count(md, strlen(md));
}

/* want with newlines shown as "\n", so a TAP description stays on one line. */
static const char *one_line(const char *s)
{
    static char out[512];
    size_t n = 0;
    for (; *s != '\0' && n + 3 < sizeof(out); s++) {
        if (*s == '\n')
            out[n++] = '\\', out[n++] = 'n';
        else
            out[n++] = *s;
    }
    out[n] = '\0';
    return out;
}

static void has(const char *html, const char *want, const char *what)
{
    TAP_OK(html != NULL && strstr(html, want) != NULL, "%s: has %s", what, one_line(want));
    if (html != NULL && strstr(html, want) == NULL)
        printf("#   html: %s\n", html);
}

static void lacks(const char *html, const char *bad, const char *what)
{
    TAP_OK(html != NULL && strstr(html, bad) == NULL, "%s: lacks %s", what, one_line(bad));
    if (html != NULL && strstr(html, bad) != NULL)
        printf("#   html: %s\n", html);
}

static void test_render(void)
{
    char *h = html_of("# Title\n\n## Section\n\n### Sub\n\nText with **bold**, *em*, ~~gone~~ and `code`.\n\n"
                      "- one\n- two\n\n1. first\n2. second\n\n"
                      "| Name | Qty |\n|------|----:|\n| flour | 500 |\n\n"
                      "[a link](https://example.com/a?b=1&c=2) and https://auto.example.org/x and "
                      "www.example.net\n\n```c\nint x = 1 < 2;\n```\n\n> quoted\n\n- [x] done\n");
    has(h, "<h1>Title</h1>", "render");
    has(h, "<h2>Section</h2>", "render");
    has(h, "<h3>Sub</h3>", "render");
    has(h, "<strong>bold</strong>", "render");
    has(h, "<em>em</em>", "render");
    has(h, "<del>gone</del>", "render");
    has(h, "<code>code</code>", "render");
    has(h, "<ul>\n<li>one</li>\n<li>two</li>\n</ul>", "render");
    has(h, "<ol>\n<li>first</li>", "render");
    has(h, "<table>", "render");
    has(h, "<th>Name</th>", "render");
    has(h, "<td align=\"right\">500</td>", "render");
    has(h, "<a href=\"https://example.com/a?b=1&amp;c=2\">a link</a>", "render");
    has(h, "<a href=\"https://auto.example.org/x\">https://auto.example.org/x</a>", "render autolink");
    has(h, "<a href=\"http://www.example.net\">www.example.net</a>", "render www autolink");
    has(h, "<pre><code class=\"language-c\">int x = 1 &lt; 2;\n</code></pre>", "render code block");
    has(h, "<blockquote>\n<p>quoted</p>\n</blockquote>", "render");
    has(h, "checked", "render task list");
    free(h);

    TAP_IS_STR((h = html_of("")), "", "empty Markdown renders to an empty string");
    free(h);
    h = markdown_to_html(NULL, 0);
    TAP_IS_STR(h, "", "NULL renders to an empty string");
    free(h);
}

static void test_no_raw_html(void)
{
    char *h =
        html_of("<script>alert(1)</script>\n\nHello <img src=x onerror=alert(2)> and <b "
                "onclick=\"x()\">b</b>\n\n<div>\n<iframe src=\"https://evil.example\"></iframe>\n</div>\n");
    lacks(h, "<script", "raw HTML");
    lacks(h, "<img", "raw HTML");
    lacks(h, "<b ", "raw HTML");
    lacks(h, "<iframe", "raw HTML");
    lacks(h, "<div>", "raw HTML");
    has(h, "&lt;script&gt;alert(1)&lt;/script&gt;", "raw HTML is escaped text");
    free(h);

    /* Entities that decode to markup stay text. */
    h = html_of("&#60;script&#62;x&#60;/script&#62; &lt;b&gt;");
    lacks(h, "<script", "numeric entities");
    lacks(h, "<b>", "named entities");
    free(h);

    /* Dangerous link targets, including ones disguised with entities and case. */
    h = html_of("[a](javascript:alert(1)) [b](JavaScript:alert(1)) [c](&#106;avascript:alert(1)) "
                "[d](data:text/html;base64,PHNjcmlwdD4=) [e](vbscript:x) ![i](javascript:alert(3)) "
                "[f](<javascript&#58;alert(1)>) [g](java&#x3A;script:x)");
    lacks(h, "javascript", "unsafe links");
    lacks(h, "avascript", "unsafe links");
    lacks(h, "data:", "unsafe links");
    lacks(h, "vbscript", "unsafe links");
    has(h, "<a href=\"#\">a</a>", "unsafe link neutralised");
    has(h, "<img src=\"#\" alt=\"i\">", "unsafe image neutralised");
    free(h);

    /* Safe targets are kept. */
    h = html_of("[a](https://x.y/) [b](http://x.y/) [c](mailto:a@b.c) [d](#sec) [e](/path) [f](../up) "
                "[g](page.html)");
    has(h, "href=\"https://x.y/\"", "safe links");
    has(h, "href=\"http://x.y/\"", "safe links");
    has(h, "href=\"mailto:a@b.c\"", "safe links");
    has(h, "href=\"#sec\"", "safe links");
    has(h, "href=\"/path\"", "safe links");
    has(h, "href=\"../up\"", "safe links");
    has(h, "href=\"page.html\"", "safe links");
    free(h);

    /* Text that looks like an attribute is escaped by md4c, so the sanitizer leaves it alone. */
    h = html_of("a href=\"javascript:x\" in prose");
    has(h, "a href=&quot;javascript:x&quot; in prose", "attribute-like prose stays escaped text");
    free(h);
}

static void test_word_count(void)
{
    /* Hello world This is bold text with a link: the URL is not text. */
    TAP_IS_INT(count("# Hello world\n\nThis is **bold** text with a [link](http://x.y/z)."), 9,
               "heading, emphasis and link: 9 words");
    TAP_IS_INT(count(""), 0, "empty: 0");
    TAP_IS_INT(markdown_word_count(NULL, 0), 0, "NULL: 0");
    TAP_IS_INT(count("   \n\n---\n\n***\n"), 0, "rules and blank lines: 0");
    TAP_IS_INT(count("## ###\n\n- \n- *\n"), 0, "markup only: 0");
    TAP_IS_INT(count("don't stop, it's well-known rock’n’roll"), 5, "apostrophes and hyphens join");
    TAP_IS_INT(count("Prices rose 3.5% to 1,000 euros, i.e. a lot"), 10, "decimals join, 'i.e.' splits");
    TAP_IS_INT(count("one -- two - three — four"), 4, "free-standing dashes are not words");
    TAP_IS_INT(count("word-"), 1, "trailing hyphen");
    TAP_IS_INT(count("**bold**text and *a*b"), 3, "adjacent spans form one word");
    TAP_IS_INT(count("Crème brûlée für Müller"), 4, "accented letters");
    TAP_IS_INT(count("Привет мир, γειά σου κόσμε"), 5, "Cyrillic and Greek");
    TAP_IS_INT(count("emoji 😀 between 🎉🎉 words"), 3, "emoji are not words");
    TAP_IS_INT(count("- one\n- two\n- three\n\n1. four\n2. five"), 5, "list markers are not words");
    TAP_IS_INT(count("| a | b |\n|---|---|\n| c d | e |"), 5, "table cells, not pipes");
    TAP_IS_INT(count("```python\nprint('hi there')\n```"), 3,
               "code block text counts, fence and info do not");
    TAP_IS_INT(count("Use `make all` now"), 4, "inline code counts");
    TAP_IS_INT(count("![alt text here](http://x/y.png)"), 3, "image alt text counts, URL does not");
    TAP_IS_INT(count("see https://example.com/a/b-c?d=e and www.example.org now"), 5,
               "bare autolinks are one word each");
    TAP_IS_INT(count("line one\nline two  \nline three"), 6, "soft and hard breaks separate");
    TAP_IS_INT(count("caf&eacute; &amp; bar&nbsp;none"), 3, "entities: letters join, & and nbsp separate");
    TAP_IS_INT(count("<b>bold</b> text"), 4, "raw HTML is shown as text, so its words count");
    TAP_IS_INT(count("Hello\n=====\n\nWorld"), 2, "setext heading underline is not a word");
    /* No footnotes in md4c: "[^1]: note" is a link reference definition (not shown), "[^1]" a link to it. */
    TAP_IS_INT(count("[^1]: note\n\nref[^1]"), 2, "footnote syntax: definitions are not text");

    /* A long generated article: 3,000 words of lorem-style text. */
    buf_t b = BUF_INIT;
    buf_puts(&b, "# A long article\n\n");
    for (int i = 0; i < 300; i++)
        buf_puts(&b, "Nine words in each sentence of this paragraph here. ");
    TAP_IS_INT(markdown_word_count(b.data, b.len), 3 + 2700, "long article");
    buf_free(&b);

    /* Invalid UTF-8 does not break counting. */
    TAP_IS_INT(count("ab\xFF"
                     "cd ef"),
               3, "an invalid byte separates words");
}

static void test_title(void)
{
    char *t;
    TAP_IS_STR((t = markdown_title("# Hello **world**\n\nBody")), "Hello world", "ATX title, markup removed");
    free(t);
    TAP_IS_STR((t = markdown_title("Intro text\n\n## Not this\n\n#   Spaced   out  title  #\n")),
               "Spaced out title", "first level-1 heading, closing #'s and spacing dropped");
    free(t);
    TAP_IS_STR((t = markdown_title("Setext Title\n============\n")), "Setext Title",
               "setext level-1 heading");
    free(t);
    TAP_IS_STR((t = markdown_title("# Fish &amp; Chips: [a guide](http://x.y) to `code`\n")),
               "Fish & Chips: a guide to code", "entities decoded, link text kept, URL dropped");
    free(t);
    TAP_OK((t = markdown_title("## Only level two\n\nText")) == NULL, "no level-1 heading: NULL");
    free(t);
    TAP_OK((t = markdown_title("#\n\n# \n\n# Real\n")) != NULL && strcmp(t, "Real") == 0,
           "empty headings are skipped");
    free(t);
    TAP_OK((t = markdown_title("#NoSpace")) == NULL, "'#' without a space is not a heading");
    free(t);
    TAP_OK(markdown_title("") == NULL && markdown_title(NULL) == NULL, "empty and NULL: NULL");
    TAP_IS_STR((t = markdown_title("# <script>x</script> Title")), "<script>x</script> Title",
               "raw HTML in a title is plain text (escaping is the renderer's job)");
    free(t);
}

/* markdown_set_title(md, title), checked against want; the result's title must read back as title too. */
static void set_title_is(const char *md, const char *title, const char *want, const char *reads,
                         const char *desc)
{
    char *got = markdown_set_title(md, title);
    TAP_IS_STR(got, want, "%s", desc);
    char *t = markdown_title(got);
    TAP_IS_STR(t, reads, "%s: reads back as the title", desc);
    free(t);
    free(got);
}

static void test_set_title(void)
{
    set_title_is("# The model's own: title\n\nBody [1].\n\n## Part\n", "Approved Title, 2026",
                 "# Approved Title, 2026\n\nBody [1].\n\n## Part\n", "Approved Title, 2026",
                 "the ATX heading's line is replaced, the rest kept byte for byte");
    set_title_is("Sure, here it is:\n\n#   Other  title ##\r\nText\n", "Mine",
                 "Sure, here it is:\n\n# Mine\r\nText\n", "Mine",
                 "a heading after a preamble is replaced in place, closing #'s and CRLF handled");
    set_title_is("Setext one\nover two lines\n=====  \n\nText\n", "Mine", "# Mine\n\nText\n", "Mine",
                 "a setext heading is replaced with its underline");
    set_title_is("## Intro\n\nText\n", "Mine", "# Mine\n\n## Intro\n\nText\n", "Mine",
                 "no level-1 heading: the title goes first");
    set_title_is("", "Mine", "# Mine\n\n", "Mine", "empty Markdown: just the title");
    set_title_is("#\n\n# Real one\n\nText", "Mine", "#\n\n# Mine\n\nText", "Mine",
                 "the heading replaced is the one markdown_title reads (empty ones skipped)");
    set_title_is("# Old\n", "  Spaced\n out\ttitle ", "# Spaced out title\n", "Spaced out title",
                 "whitespace in the title collapses");
    set_title_is("# Old\n", "C# or F#: 10 tips & more", "# C# or F#: 10 tips & more\n",
                 "C# or F#: 10 tips & more", "punctuation is left alone where the line reads the same");
    set_title_is("# Old\n\nx", "Why *this* works #", "# Why \\*this\\* works \\#\n\nx", "Why *this* works #",
                 "emphasis and a trailing # are escaped so the title reads exactly");
    set_title_is("# Old\n", "Fish &amp; chips", "# Fish \\&amp\\; chips\n", "Fish &amp; chips",
                 "an entity in a title stays literal");
    set_title_is("# Old\n", "   ", "# Old\n", "Old", "a blank title changes nothing");
    set_title_is("> # Quoted\n> more\n", "Mine", "# Mine\n> more\n", "Mine",
                 "a heading inside a quote: its line becomes the title");
    set_title_is("Two\r\n===\r\n\r\nText", "Mine", "# Mine\r\n\r\nText", "Mine",
                 "a setext heading with CRLF line ends");
}

int main(void)
{
    test_render();
    test_no_raw_html();
    test_word_count();
    test_title();
    test_set_title();
    return tap_done();
}
