/* What the generation machine knows of one article, as typed structs: the row gen_load returns, with its JSON
 * columns (research_results, brief, the sources) parsed once here, at the edge, so no JSON tree travels into
 * the machine or the prompts. Also the JSON the machine stores back (candidates, sources, the brief). */
#ifndef INKLOOP_PIPELINE_ARTICLE_H
#define INKLOOP_PIPELINE_ARTICLE_H

#include "core/json.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/** A search candidate (research_results) or a stored source (article_sources). NULL: absent. */
typedef struct st_gen_source_t {
    char *url, *title, *snippet, *content;
} gen_source_t;

/** One outline section; level 2 at the top, 3 and 4 below (deeper subsections are dropped). */
typedef struct st_gen_section_t {
    char *heading;
    int level;
    char **points;
    size_t npoints;
    int64_t *citations;
    size_t ncitations;
    struct st_gen_section_t *subs;
    size_t nsubs;
} gen_section_t;

/** The analysis stage's plan. meta and slug travel in their own columns; the rest is the brief column. */
typedef struct st_gen_brief_t {
    char **keywords;
    size_t nkeywords;
    gen_section_t *outline;
    size_t noutline;
    char *strategy; /* never NULL once read */
    char *meta;     /* NULL: none */
    char *slug;
} gen_brief_t;

/** The article row (gen_load). Text fields are NULL when SQL NULL. */
typedef struct st_gen_article_t {
    char *status, *raw_query, *topic, *title, *category, *language, *last_stage_done, *write_draft;
    int target_length, source_count, write_calls;
    int has_research; /* research_results is a JSON array */
    gen_source_t *research;
    size_t nresearch;
    gen_source_t *sources;
    size_t nsources;
    int has_brief; /* the brief column held JSON */
    gen_brief_t brief;
} gen_article_t;

/** Reads row 0 of a gen_load result into a (zeroed first). */
void gen_article_read(const PGresult *res, gen_article_t *a);
/** Frees what a holds and zeroes it. */
void gen_article_free(gen_article_t *a);
/** Frees what b holds and zeroes it. */
void gen_brief_free(gen_brief_t *b);
/** Fills b from a JSON object {keywords, outline, strategy}: at most max_keywords non-empty keywords, at most
 * 8 sections with a non-empty heading (10 per subsection level). */
void gen_brief_from_json(yajl_val v, size_t max_keywords, gen_brief_t *b);
/** {keywords, outline, strategy}, as stored in the brief column. malloc'd. */
char *gen_brief_json(const gen_brief_t *b);
/** Writes the outline array (the form the writer's prompt and the brief column share). */
void gen_outline_write(json_writer_t *w, const gen_section_t *s, size_t n);
/** A JSON array of sources: url, title, snippet, and content when with_content. At most max entries, and
 * only those with content when with_content. malloc'd. */
char *gen_sources_json(const gen_source_t *s, size_t n, int with_content, size_t max);
/** Frees an array of n sources. */
void gen_sources_free(gen_source_t *s, size_t n);

#endif
