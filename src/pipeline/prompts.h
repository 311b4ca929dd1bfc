/* The prompts of the generation machine (API.md section 7), built from the typed article. */
#ifndef INKLOOP_PIPELINE_PROMPTS_H
#define INKLOOP_PIPELINE_PROMPTS_H

#include "pipeline/article.h"

/** The system message of the analysis (brief) calls. */
#define PROMPT_BRIEF_SYSTEM "You are an SEO strategist. You reply with one JSON object only."
/** The system message of the writing calls. */
#define PROMPT_WRITER_SYSTEM "You are an expert SEO writer. You write in Markdown."
/** The user turn that asks for the continuation of a cut-off article. */
#define PROMPT_CONTINUE                                                                                      \
    "Continue the article exactly where it stopped, without repeating anything, and finish it with the "     \
    "References section."

/** The analysis prompt: topic, settings and source excerpts, and the brief's JSON shape. malloc'd. */
char *prompt_brief(const gen_article_t *a);
/** The repair turn after an unusable brief reply; why says what was wrong. malloc'd. */
char *prompt_brief_repair(const char *why);
/** The writer's prompt: settings, title, the brief's outline, keywords and strategy, the sources. malloc'd.
 */
char *prompt_article(const gen_article_t *a);

#endif
