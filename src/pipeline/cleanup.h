/* Cleanup of what the LLM writes: the brief reply (JSON wrapped in prose or fences, too many or too few
 * keywords and sections, a long meta description, a slug in any form) becomes a checked gen_brief_t. */
#ifndef INKLOOP_PIPELINE_CLEANUP_H
#define INKLOOP_PIPELINE_CLEANUP_H

#include "pipeline/article.h"

#include <stddef.h>

/** Reads the analysis reply: at least 5 keywords (20 kept) and 3 outline sections (8 kept), the meta
 * description cut to 160 characters at a word boundary, the slug normalized (from topic when the reply has
 * none). Returns 0, or -1 with the reason in err (b is then empty). */
int cleanup_brief(const char *reply, const char *topic, gen_brief_t *b, char *err, size_t errlen);
/** "lowercase-words-with-hyphens" (ASCII letters and digits only), at most 80 bytes. malloc'd. */
char *cleanup_slugify(const char *s);
/** s cut to at most max characters, at a word boundary when it has to be cut. malloc'd. */
char *cleanup_clip_words(const char *s, size_t max);

#endif
