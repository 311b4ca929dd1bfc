#include "pipeline/prompts.h"
#include "core/alloc.h"
#include "core/buf.h"

#include <stdio.h>
#include <string.h>

/* How much of each source goes into the prompts (characters): the brief sees more than the writer. */
#define ANALYZE_SOURCE_CHARS 3000
#define WRITE_SOURCE_CHARS 1200

static const char *or_empty(const char *s)
{
    return s != NULL ? s : "";
}

/* Appends at most max characters of s (cut at a UTF-8 boundary). */
static void put_clipped(buf_t *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    buf_append(b, s, n);
    if (n < strlen(s))
        buf_puts(b, " ...");
}

/* "[n] title (url)\n<excerpt>" for every stored source. */
static void put_sources(buf_t *b, const gen_article_t *a, size_t excerpt)
{
    for (size_t i = 0; i < a->nsources; i++) {
        const gen_source_t *s = &a->sources[i];
        buf_printf(b, "[%zu] %s (%s)\n", i + 1, or_empty(s->title), or_empty(s->url));
        if (excerpt > 0 && s->content != NULL) {
            put_clipped(b, s->content, excerpt);
            buf_puts(b, "\n\n");
        }
    }
}

char *prompt_brief(const gen_article_t *a)
{
    buf_t b = BUF_INIT;
    buf_printf(&b, "Topic: %s\nCategory: %s\nLanguage: %s\nTarget length: %d words\n\nSources:\n",
               or_empty(a->raw_query), or_empty(a->category), or_empty(a->language), a->target_length);
    put_sources(&b, a, ANALYZE_SOURCE_CHARS);
    buf_puts(
        &b,
        "Plan an SEO article on the topic from these sources. Reply with a JSON object with exactly these "
        "members:\n"
        "\"keywords\": 15 to 20 search keywords (strings);\n"
        "\"outline\": 5 to 8 sections, each {\"heading\": text, \"level\": 2, \"points\": [text], "
        "\"citations\": [source numbers], \"subsections\": [the same shape with level 3]};\n"
        "\"strategy\": one paragraph on angle, audience and search intent;\n"
        "\"meta_description\": at most 160 characters;\n"
        "\"slug\": lowercase words joined by hyphens.");
    return buf_release(&b);
}

char *prompt_brief_repair(const char *why)
{
    return xasprintf("That reply could not be used: %s. Reply again with only the corrected JSON object "
                     "with keywords, outline, strategy, meta_description and slug.",
                     why);
}

char *prompt_article(const gen_article_t *a)
{
    buf_t b = BUF_INIT;
    buf_printf(&b, "Topic: %s\n", or_empty(a->raw_query));
    if (a->title != NULL)
        buf_printf(&b, "Title: %s\n", a->title);
    buf_printf(&b, "Write an SEO article of about %d words in the language \"%s\" for the category \"%s\".\n",
               a->target_length, or_empty(a->language), or_empty(a->category));
    /* An approved (or campaign) title is the article's title: the model is told to use it word for word. */
    if (a->title != NULL)
        buf_puts(&b, "Start with the title line \"# \" followed by exactly the Title above, unchanged.");
    else
        buf_puts(&b, "Start with one \"# \" title line.");
    buf_puts(&b, " Use \"## \" for each section of the outline and \"### \" for its subsections, in this "
                 "order:\n");
    if (a->has_brief) {
        /* The outline travels as JSON: unambiguous for the model, and the headings are exact. */
        const gen_brief_t *br = &a->brief;
        json_writer_t w;
        jw_init(&w, &b);
        jw_object_begin(&w);
        jw_key(&w, "outline");
        gen_outline_write(&w, br->outline, br->noutline < 8 ? br->noutline : 8);
        jw_object_end(&w);
        if (br->nkeywords > 0) {
            buf_puts(&b, "\nUse these keywords naturally: ");
            for (size_t i = 0; i < br->nkeywords; i++)
                buf_printf(&b, "%s%s", i ? ", " : "", br->keywords[i]);
            buf_putc(&b, '.');
        }
        if (br->strategy != NULL && br->strategy[0])
            buf_printf(&b, "\nStrategy: %s", br->strategy);
    }
    buf_puts(&b, "\n\nCite the sources as [n] with these numbers:\n");
    put_sources(&b, a, WRITE_SOURCE_CHARS);
    buf_puts(&b, "End with a \"## References\" section listing every cited source as \"[n] title - URL\".");
    return buf_release(&b);
}
