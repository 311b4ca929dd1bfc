#include "pipeline/titles.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *titles_prompt(const char *description, size_t count, const char *const *avoid, size_t navoid)
{
    buf_t b = BUF_INIT;
    buf_printf(
        &b,
        "Generate %zu titles for SEO articles about the following subject.\n"
        "Subject: %s\n"
        "Rules: each title is between %d and %d characters long, specific and compelling, and all titles "
        "are distinct from each other.\n",
        count + 2, description, TITLE_MIN_CHARS, TITLE_MAX_CHARS);
    if (navoid > 0) {
        buf_puts(&b, "Do not repeat or closely paraphrase any of these earlier titles:\n");
        for (size_t i = 0; i < navoid; i++)
            buf_printf(&b, "- %s\n", avoid[i]);
    }
    buf_puts(&b, "Reply with a JSON object of the form {\"titles\": [\"...\", \"...\"]} and nothing else.");
    return buf_release(&b);
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            c++;
    return c;
}

/* Trims whitespace and one pair of surrounding quotes; returns a malloc'd copy. */
static char *clean_title(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '\'' && s[n - 1] == '\''))) {
        s++;
        n -= 2;
    }
    char *t = xstrndup(s, n);
    for (char *p = t; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    return t;
}

static int seen(const char *t, char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(t, list[i]) == 0)
            return 1;
    return 0;
}

int titles_parse(const char *reply, size_t len, size_t count, const char *const *avoid, size_t navoid,
                 char **out, char *err, size_t errlen)
{
    char perr[128];
    yajl_val root = json_parse(reply, len, perr, sizeof(perr));
    if (root == NULL) {
        snprintf(err, errlen, "the LLM's titles reply is not JSON (%s)", perr);
        return -1;
    }
    yajl_val list = json_get(root, "titles");
    if (list == NULL || !YAJL_IS_ARRAY(list)) {
        snprintf(err, errlen, "the LLM's titles reply has no \"titles\" list");
        yajl_tree_free(root);
        return -1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < list->u.array.len && kept < count; i++) {
        yajl_val v = list->u.array.values[i];
        if (!YAJL_IS_STRING(v))
            continue;
        char *t = clean_title(v->u.string);
        size_t chars = utf8_chars(t, strlen(t));
        if (chars < TITLE_MIN_CHARS || chars > TITLE_MAX_CHARS || seen(t, out, kept) ||
            seen(t, (char *const *)avoid, navoid)) {
            free(t);
            continue;
        }
        out[kept++] = t;
    }
    yajl_tree_free(root);
    return (int)kept;
}
