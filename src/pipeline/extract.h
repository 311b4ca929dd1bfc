/* extract: the title, metadata and main text of a scraped HTML page, without navigation, footers, scripts,
 * cookie banners and other boilerplate. Pure and I/O-free: bytes in, UTF-8 text out. */
#ifndef INKLOOP_PIPELINE_EXTRACT_H
#define INKLOOP_PIPELINE_EXTRACT_H

#include <stddef.h>

/** Longest main text returned, in bytes (cut at a UTF-8 character boundary). */
#define EXTRACT_TEXT_MAX (100 * 1024)
/** Longest input looked at, in bytes; the rest is ignored (the fetcher caps bodies at 2 MiB anyway). */
#define EXTRACT_INPUT_MAX (4 * 1024 * 1024)
/** Longest title returned, in bytes. */
#define EXTRACT_TITLE_MAX 512
/** Longest author, site name, date or language returned, in bytes. */
#define EXTRACT_META_MAX 256

/** What extract_html found. Every string is valid UTF-8, never NULL after extract_html, "" when absent. */
typedef struct st_extract_result_t {
    char *title; /* og:title, else <title> without the site name, else the first <h1>; whitespace collapsed */
    /* Main text: blocks separated by "\n\n", whitespace collapsed inside blocks. Light markup keeps the
     * structure: headings start with "# " to "###### ", list items with "- ", table rows are one line with
     * cells separated by " | ", code blocks keep their lines. */
    char *text;
    size_t text_len;   /* strlen(text) */
    char *author;      /* meta author / article:author / JSON-LD author / rel=author / byline */
    char *date;        /* published date as given: article:published_time, JSON-LD, <time datetime> */
    char *site_name;   /* og:site_name, JSON-LD publisher, or the part of <title> that names the site */
    char *lang;        /* <html lang>, else content-language / og:locale */
    char encoding[32]; /* the character encoding the input was decoded from, e.g. "UTF-8", "windows-1252" */
} extract_result_t;

/**
 * Extracts the title, metadata and main text of an HTML document. content_type is the response's
 * Content-Type header (may be NULL); its charset wins over <meta charset>, and without either the input is
 * read as UTF-8 when it is valid UTF-8 and as windows-1252 otherwise. url (may be NULL) is only recorded as
 * the document's base. Never fails on malformed input: broken markup yields what could be recovered.
 * Returns 0, or -1 when the input could not be parsed at all (out then holds empty strings). Either way out
 * must be freed with extract_result_free.
 */
int extract_html(const char *html, size_t len, const char *content_type, const char *url,
                 extract_result_t *out);

/** Frees what extract_html stored in r; r is zeroed and may be freed again. */
void extract_result_free(extract_result_t *r);

/**
 * `inkloop extract [FILE|-] [--content-type V] [--url U]`: extracts one page (a file, or standard input)
 * and prints one JSON object: title, text, author, date, site_name, lang, encoding, bytes, and timings in
 * milliseconds (read, extract). argv[0] is "extract". Returns the process exit code: 0, 1 when the input
 * cannot be read, 2 on bad usage.
 */
int extract_cli(int argc, char **argv);

#endif
