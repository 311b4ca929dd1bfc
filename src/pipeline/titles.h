/* Article titles from the LLM: the prompt, and the reply checked into distinct titles of 50-80 characters.
 * Used by POST /generate/titles and by the campaign scheduler (titles that differ from earlier ones). */
#ifndef INKLOOP_PIPELINE_TITLES_H
#define INKLOOP_PIPELINE_TITLES_H

#include <stddef.h>

#define TITLE_MIN_CHARS 50
#define TITLE_MAX_CHARS 80

/** The user prompt asking for titles about description; avoid lists earlier titles that must not repeat.
 * Asks for a few more than count so that filtering still leaves enough. Returns a malloc'd string. */
char *titles_prompt(const char *description, size_t count, const char *const *avoid, size_t navoid);
/** Reads {"titles": [...]} from an LLM reply: keeps distinct titles (case-insensitive, also distinct from
 * avoid) of 50-80 characters after trimming whitespace and surrounding quotes, at most count, in order.
 * Returns how many were kept (0..count) into out (malloc'd strings), or -1 with a reason in err when the
 * reply is not such an object. */
int titles_parse(const char *reply, size_t len, size_t count, const char *const *avoid, size_t navoid,
                 char **out, char *err, size_t errlen);

#endif
