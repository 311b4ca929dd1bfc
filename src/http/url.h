/* Percent-decoding of URL paths and query strings, shared by the router and the server. libh2o 2.2.5 has no
 * URL decoder of its own (only h2o_hex_decode, which this builds on). */
#ifndef INKLOOP_HTTP_URL_H
#define INKLOOP_HTTP_URL_H

#include <stddef.h>

/** The byte the escape at s[i] (a '%') stands for: s[i + 1] and s[i + 2] are two hex digits within s[0..len).
 * Returns 0-255, or -1 when the escape is broken (cut short or not hex). */
int url_escape_at(const char *s, size_t len, size_t i);

/** Percent-decodes s[0..len) into out (which may be s itself: the output never outgrows the input) and
 * returns the decoded length. strict: a broken escape or %00 (which would cut a C string short) fails with
 * -1; otherwise such bytes are kept as they are, as Python's unquote does. plus: '+' means a space (query).
 */
long url_percent_decode(const char *s, size_t len, char *out, int strict, int plus);

#endif
