/* Allocation helpers: out of memory is not a recoverable condition for this service, so these abort. */
#ifndef INKLOOP_CORE_ALLOC_H
#define INKLOOP_CORE_ALLOC_H

#include <stddef.h>

/** malloc that aborts the process when memory is exhausted. */
void *xmalloc(size_t n);
/** calloc that aborts the process when memory is exhausted. */
void *xcalloc(size_t count, size_t size);
/** realloc that aborts the process when memory is exhausted. */
void *xrealloc(void *p, size_t n);
/** strdup that aborts; NULL in gives NULL out. */
char *xstrdup(const char *s);
/** Copies n bytes and NUL-terminates the copy. */
char *xstrndup(const char *s, size_t n);
/** asprintf that aborts on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
