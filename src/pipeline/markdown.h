/* markdown: the generated article's Markdown rendered to safe HTML, its word count and its title. Pure and
 * I/O-free; built on md4c with the GitHub dialect (tables, strikethrough, autolinks, task lists). */
#ifndef INKLOOP_PIPELINE_MARKDOWN_H
#define INKLOOP_PIPELINE_MARKDOWN_H

#include <stddef.h>

/**
 * Renders Markdown to an HTML fragment (no <html>/<body>). Raw HTML in the input is never passed through:
 * it comes out as escaped text, so LLM output cannot inject <script> or event handlers. Link and image
 * targets other than http(s), mailto, fragments and relative paths (javascript:, data:, ...) are replaced by
 * "#". Returns a malloc'd string for free(), or NULL if md4c fails.
 */
char *markdown_to_html(const char *md, size_t len);

/**
 * Counts the words a reader sees in the rendered Markdown. Markup is not text: heading #'s, emphasis
 * markers, list bullets, code fences, table pipes, link and image URLs do not count; link text, image alt
 * text, inline code and code blocks do. A word is a maximal run of letters and digits (any non-ASCII
 * character counts as a letter, except Unicode punctuation, symbols, spaces and emoji), where an apostrophe
 * (' or U+2019), a hyphen (- U+2010 U+2011) or an underscore between two such characters, and '.' or ','
 * between two digits, join rather than split: "don't", "well-known", "3.5" and "1,000" are one word each.
 * A bare URL autolink is one word. Scripts written without spaces (Chinese, Japanese) count a run as one
 * word. Returns the count, or -1 if md4c fails.
 */
int markdown_word_count(const char *md, size_t len);

/**
 * The text of the first level-1 heading ("# Title" or a "===" underlined one), markup removed, entities
 * decoded and whitespace collapsed; a malloc'd string for free(), or NULL when there is none or it is empty.
 */
char *markdown_title(const char *md);

/**
 * md with title as its level-1 heading: the first one markdown_title would find is replaced, lines and all
 * (a setext underline too), by "# title"; without one, "# title" and a blank line go first. The title's
 * whitespace runs become single spaces; its ASCII punctuation is backslash-escaped only when the line would
 * not otherwise read back as the title (a trailing " #", emphasis, entities). The rest of md is kept byte for
 * byte. An empty or blank title changes nothing. Returns a malloc'd string for free().
 */
char *markdown_set_title(const char *md, const char *title);

#endif
