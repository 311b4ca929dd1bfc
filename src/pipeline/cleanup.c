#include "pipeline/cleanup.h"
#include "core/alloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strips anything before the first '{' and after the last '}' (models sometimes wrap JSON in prose or
 * fences). */
static yajl_val parse_object(const char *reply, char *err, size_t errlen)
{
    const char *open = strchr(reply, '{');
    const char *close = strrchr(reply, '}');
    if (open == NULL || close == NULL || close < open) {
        snprintf(err, errlen, "no JSON object in the reply");
        return NULL;
    }
    yajl_val v = json_parse(open, (size_t)(close - open + 1), err, errlen);
    if (v != NULL && !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        snprintf(err, errlen, "the reply is not a JSON object");
        return NULL;
    }
    return v;
}

char *cleanup_slugify(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n + 1 > 81 ? 81 : n + 1);
    size_t o = 0;
    int dash = 0;
    for (size_t i = 0; i < n && o < 80; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) && c < 0x80) {
            if (dash && o > 0)
                out[o++] = '-';
            if (o < 80)
                out[o++] = (char)tolower(c);
            dash = 0;
        } else {
            dash = 1;
        }
    }
    while (o > 0 && out[o - 1] == '-')
        o--;
    out[o] = '\0';
    return out;
}

char *cleanup_clip_words(const char *s, size_t max)
{
    size_t chars = 0, i = 0, last_space = 0;
    size_t n = strlen(s);
    while (i < n) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (chars == max)
                break;
            chars++;
        }
        if (s[i] == ' ')
            last_space = i;
        i++;
    }
    if (i < n && last_space > 0)
        i = last_space;
    while (i > 0 && s[i - 1] == ' ')
        i--;
    return xstrndup(s, i);
}

int cleanup_brief(const char *reply, const char *topic, gen_brief_t *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof(*b));
    yajl_val v = parse_object(reply != NULL ? reply : "", err, errlen);
    if (v == NULL)
        return -1;
    /* The minimums count every usable entry; the maximums (20 keywords, 8 sections) are applied when the
     * brief is read, so more is trimmed rather than refused. */
    size_t nk = 0, ns = 0;
    yajl_val keywords = json_get(v, "keywords"), outline = json_get(v, "outline");
    for (size_t i = 0; keywords && YAJL_IS_ARRAY(keywords) && i < keywords->u.array.len; i++)
        nk += YAJL_IS_STRING(keywords->u.array.values[i]) && keywords->u.array.values[i]->u.string[0] != '\0';
    for (size_t i = 0; outline && YAJL_IS_ARRAY(outline) && i < outline->u.array.len; i++) {
        yajl_val h = json_get(outline->u.array.values[i], "heading");
        ns += h != NULL && YAJL_IS_STRING(h) && h->u.string[0] != '\0';
    }
    if (nk < 5 || ns < 3) {
        snprintf(err, errlen, "the brief has %zu keywords and %zu outline sections", nk, ns);
        yajl_tree_free(v);
        return -1;
    }
    gen_brief_from_json(v, 20, b);
    yajl_val meta = json_get(v, "meta_description"), slug = json_get(v, "slug");
    b->meta =
        (meta && YAJL_IS_STRING(meta) && meta->u.string[0]) ? cleanup_clip_words(meta->u.string, 160) : NULL;
    b->slug = cleanup_slugify((slug && YAJL_IS_STRING(slug) && slug->u.string[0]) ? slug->u.string
                                                                                  : (topic ? topic : ""));
    yajl_tree_free(v);
    return 0;
}
