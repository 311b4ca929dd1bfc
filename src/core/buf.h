/* A growable byte buffer, always NUL-terminated so text can be used as a C string. */
#ifndef INKLOOP_CORE_BUF_H
#define INKLOOP_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct st_buf_t {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
} buf_t;

/** A buffer with no storage yet. */
#define BUF_INIT ((buf_t){NULL, 0, 0})

/** Makes room for at least n more bytes (plus the terminator). */
void buf_reserve(buf_t *b, size_t n);
/** Appends n bytes. */
void buf_append(buf_t *b, const void *p, size_t n);
/** Appends a C string. */
void buf_puts(buf_t *b, const char *s);
/** Appends one byte. */
void buf_putc(buf_t *b, char c);
/** Appends printf-formatted text. */
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends vprintf-formatted text. */
void buf_vprintf(buf_t *b, const char *fmt, va_list ap);
/** Empties the buffer, keeping its storage. */
void buf_reset(buf_t *b);
/** Frees the storage; the buffer is BUF_INIT again. */
void buf_free(buf_t *b);
/** Gives the storage to the caller (never NULL; "" when empty) and resets the buffer. */
char *buf_release(buf_t *b);
/** Returns the text, "" when nothing was appended. */
const char *buf_cstr(const buf_t *b);

#endif
