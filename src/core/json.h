/* JSON at the edges: a writer for responses on yajl_gen (compact, UTF-8 kept as is) and a guarded yajl parse
 * for request bodies. yajl_val never travels past the handler that parses a body into its typed struct. */
#ifndef INKLOOP_CORE_JSON_H
#define INKLOOP_CORE_JSON_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/** Deepest nesting a request body may have (yajl frees its tree recursively, so depth is bounded first). */
#define JSON_MAX_DEPTH 64

/** Decodes the UTF-8 sequence at s (n bytes available) into *cp; returns its length, or 0 when it is not
 * valid UTF-8 (overlong, surrogate, truncated, past U+10FFFF). */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/** Appends s as a JSON string literal (quotes included); invalid UTF-8 becomes U+FFFD. */
void json_put_string(buf_t *b, const char *s);
/** Same for n bytes that may contain NUL. */
void json_put_stringn(buf_t *b, const char *s, size_t n);

/** Room for yajl_gen's own state (about 610 bytes in yajl 2.1), kept inside the writer. */
#define JSON_WRITER_ARENA 1024

/** A streaming writer: yajl_gen places commas and colons and checks the document's shape (a misuse is an
 * assert). It allocates nothing on the heap, so it needs no free and lives on the caller's stack; it must not
 * be copied once initialised. */
typedef struct st_json_writer_t {
    buf_t *out;
    yajl_gen _gen;
    size_t _arena_used;
    _Alignas(max_align_t) unsigned char _arena[JSON_WRITER_ARENA];
} json_writer_t;

/** Starts writing one JSON value into out (appending). */
void jw_init(json_writer_t *w, buf_t *out);
void jw_object_begin(json_writer_t *w);
void jw_object_end(json_writer_t *w);
void jw_array_begin(json_writer_t *w);
void jw_array_end(json_writer_t *w);
/** Writes an object key; the next value call writes its value. */
void jw_key(json_writer_t *w, const char *key);
/** A string value, or null when s is NULL. */
void jw_string(json_writer_t *w, const char *s);
void jw_int(json_writer_t *w, int64_t v);
/** A number; null when v is not finite (JSON has no NaN or infinity). */
void jw_double(json_writer_t *w, double v);
void jw_bool(json_writer_t *w, int v);
void jw_null(json_writer_t *w);
/** Inserts already-serialized JSON as one value. */
void jw_raw(json_writer_t *w, const char *json, size_t len);

/** Parses a request body: NULL with a message in err when it is not one JSON value, is nested deeper than
 * JSON_MAX_DEPTH, or is not valid UTF-8. Free the result with yajl_tree_free. */
yajl_val json_parse(const char *text, size_t len, char *err, size_t errlen);
/** json_parse for what a client sends (request bodies): also refuses a string with a UTF-16 surrogate escape
 * that is not a high one ("\\ud800"-"\\udbff") directly followed by a low one ("\\udc00"-"\\udfff"), which
 * yajl would silently store as '?'. (Peers' replies keep json_parse: one stray escape in an LLM answer must
 * not fail an article.) */
yajl_val json_parse_request(const char *text, size_t len, char *err, size_t errlen);
/** The member of an object, or NULL when v is not an object or has no such key. */
yajl_val json_get(yajl_val obj, const char *key);

#endif
