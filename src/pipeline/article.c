#include "pipeline/article.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "db/db.h"

#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static const char *str_member(yajl_val o, const char *key)
{
    yajl_val v = json_get(o, key);
    return v != NULL && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

static yajl_val parse_column(const PGresult *res, const char *column)
{
    const char *text = db_value(res, 0, column);
    char err[128];
    return text != NULL ? json_parse(text, strlen(text), err, sizeof(err)) : NULL;
}

/* research_results: candidates without a URL are skipped. */
static void read_research(yajl_val arr, gen_article_t *a)
{
    a->research = xcalloc(arr->u.array.len + 1, sizeof(gen_source_t));
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val o = arr->u.array.values[i];
        const char *url = str_member(o, "url"), *title = str_member(o, "title"),
                   *snip = str_member(o, "snippet");
        if (url == NULL)
            continue;
        gen_source_t *c = &a->research[a->nresearch++];
        c->url = xstrdup(url);
        c->title = xstrdup(title ? title : "");
        c->snippet = xstrdup(snip ? snip : "");
    }
}

/* The stored sources: every element keeps its number in the prompts, even an unreadable one. */
static void read_sources(yajl_val arr, gen_article_t *a)
{
    a->sources = xcalloc(arr->u.array.len + 1, sizeof(gen_source_t));
    a->nsources = arr->u.array.len;
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val o = arr->u.array.values[i];
        a->sources[i].url = dup_or_null(str_member(o, "url"));
        a->sources[i].title = dup_or_null(str_member(o, "title"));
        a->sources[i].content = dup_or_null(str_member(o, "content"));
    }
}

static void read_sections(yajl_val arr, int level, size_t max, gen_section_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (arr == NULL || !YAJL_IS_ARRAY(arr))
        return;
    *out = xcalloc(arr->u.array.len + 1, sizeof(gen_section_t));
    for (size_t i = 0; i < arr->u.array.len && *nout < max; i++) {
        yajl_val s = arr->u.array.values[i];
        const char *heading = str_member(s, "heading");
        if (heading == NULL || heading[0] == '\0')
            continue;
        gen_section_t *sec = &(*out)[(*nout)++];
        sec->heading = xstrdup(heading);
        sec->level = level;
        yajl_val points = json_get(s, "points"), cites = json_get(s, "citations");
        if (points != NULL && YAJL_IS_ARRAY(points)) {
            sec->points = xcalloc(points->u.array.len + 1, sizeof(char *));
            for (size_t k = 0; k < points->u.array.len; k++)
                if (YAJL_IS_STRING(points->u.array.values[k]))
                    sec->points[sec->npoints++] = xstrdup(points->u.array.values[k]->u.string);
        }
        if (cites != NULL && YAJL_IS_ARRAY(cites)) {
            sec->citations = xcalloc(cites->u.array.len + 1, sizeof(int64_t));
            for (size_t k = 0; k < cites->u.array.len; k++)
                if (YAJL_IS_INTEGER(cites->u.array.values[k]))
                    sec->citations[sec->ncitations++] = YAJL_GET_INTEGER(cites->u.array.values[k]);
        }
        if (level < 4)
            read_sections(json_get(s, "subsections"), level + 1, 10, &sec->subs, &sec->nsubs);
    }
}

void gen_brief_from_json(yajl_val v, size_t max_keywords, gen_brief_t *b)
{
    memset(b, 0, sizeof(*b));
    yajl_val kw = json_get(v, "keywords");
    if (kw != NULL && YAJL_IS_ARRAY(kw)) {
        b->keywords = xcalloc(kw->u.array.len + 1, sizeof(char *));
        for (size_t i = 0; i < kw->u.array.len && b->nkeywords < max_keywords; i++) {
            yajl_val k = kw->u.array.values[i];
            if (YAJL_IS_STRING(k) && k->u.string[0] != '\0')
                b->keywords[b->nkeywords++] = xstrdup(k->u.string);
        }
    }
    read_sections(json_get(v, "outline"), 2, 8, &b->outline, &b->noutline);
    const char *strategy = str_member(v, "strategy");
    b->strategy = xstrdup(strategy ? strategy : "");
}

void gen_article_read(const PGresult *res, gen_article_t *a)
{
    memset(a, 0, sizeof(*a));
    a->status = dup_or_null(db_value(res, 0, "status"));
    a->raw_query = dup_or_null(db_value(res, 0, "raw_query"));
    a->topic = dup_or_null(db_value(res, 0, "topic"));
    a->title = dup_or_null(db_value(res, 0, "title"));
    a->category = dup_or_null(db_value(res, 0, "category"));
    a->language = dup_or_null(db_value(res, 0, "language"));
    a->last_stage_done = dup_or_null(db_value(res, 0, "last_stage_done"));
    a->write_draft = dup_or_null(db_value(res, 0, "write_draft"));
    a->target_length = (int)db_int(res, 0, "target_length");
    a->source_count = (int)db_int(res, 0, "source_count");
    a->write_calls = (int)db_int(res, 0, "write_calls");
    yajl_val v = parse_column(res, "research");
    if (v != NULL && YAJL_IS_ARRAY(v)) {
        a->has_research = 1;
        read_research(v, a);
    }
    yajl_tree_free(v);
    v = parse_column(res, "sources");
    if (v != NULL && YAJL_IS_ARRAY(v))
        read_sources(v, a);
    yajl_tree_free(v);
    v = parse_column(res, "brief");
    if (v != NULL) {
        a->has_brief = 1;
        gen_brief_from_json(v, SIZE_MAX, &a->brief);
    }
    yajl_tree_free(v);
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_sections(gen_section_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].heading);
        free_strings(s[i].points, s[i].npoints);
        free(s[i].citations);
        free_sections(s[i].subs, s[i].nsubs);
    }
    free(s);
}

void gen_brief_free(gen_brief_t *b)
{
    free_strings(b->keywords, b->nkeywords);
    free_sections(b->outline, b->noutline);
    free(b->strategy);
    free(b->meta);
    free(b->slug);
    memset(b, 0, sizeof(*b));
}

void gen_sources_free(gen_source_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].url);
        free(s[i].title);
        free(s[i].snippet);
        free(s[i].content);
    }
    free(s);
}

void gen_article_free(gen_article_t *a)
{
    free(a->status);
    free(a->raw_query);
    free(a->topic);
    free(a->title);
    free(a->category);
    free(a->language);
    free(a->last_stage_done);
    free(a->write_draft);
    gen_sources_free(a->research, a->nresearch);
    gen_sources_free(a->sources, a->nsources);
    gen_brief_free(&a->brief);
    memset(a, 0, sizeof(*a));
}

void gen_outline_write(json_writer_t *w, const gen_section_t *s, size_t n)
{
    jw_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        jw_object_begin(w);
        jw_key(w, "heading");
        jw_string(w, s[i].heading);
        jw_key(w, "level");
        jw_int(w, s[i].level);
        jw_key(w, "points");
        jw_array_begin(w);
        for (size_t k = 0; k < s[i].npoints; k++)
            jw_string(w, s[i].points[k]);
        jw_array_end(w);
        jw_key(w, "citations");
        jw_array_begin(w);
        for (size_t k = 0; k < s[i].ncitations; k++)
            jw_int(w, s[i].citations[k]);
        jw_array_end(w);
        jw_key(w, "subsections");
        gen_outline_write(w, s[i].subs, s[i].nsubs);
        jw_object_end(w);
    }
    jw_array_end(w);
}

char *gen_brief_json(const gen_brief_t *b)
{
    buf_t out = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &out);
    jw_object_begin(&w);
    jw_key(&w, "keywords");
    jw_array_begin(&w);
    for (size_t i = 0; i < b->nkeywords; i++)
        jw_string(&w, b->keywords[i]);
    jw_array_end(&w);
    jw_key(&w, "outline");
    gen_outline_write(&w, b->outline, b->noutline);
    jw_key(&w, "strategy");
    jw_string(&w, b->strategy ? b->strategy : "");
    jw_object_end(&w);
    return buf_release(&out);
}

char *gen_sources_json(const gen_source_t *s, size_t n, int with_content, size_t max)
{
    buf_t out = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &out);
    jw_array_begin(&w);
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < max; i++) {
        if (with_content && s[i].content == NULL)
            continue;
        kept++;
        jw_object_begin(&w);
        jw_key(&w, "url");
        jw_string(&w, s[i].url);
        jw_key(&w, "title");
        jw_string(&w, s[i].title ? s[i].title : "");
        jw_key(&w, "snippet");
        jw_string(&w, s[i].snippet ? s[i].snippet : "");
        if (with_content) {
            jw_key(&w, "content");
            jw_string(&w, s[i].content);
        }
        jw_object_end(&w);
    }
    jw_array_end(&w);
    return buf_release(&out);
}
