/* The scrape stage's operation: fetches candidate pages, at most SCRAPE_PARALLEL at once, until enough of
 * them give usable main text (or the candidates run out), and stores that text in the candidates. */
#ifndef INKLOOP_PIPELINE_SCRAPE_H
#define INKLOOP_PIPELINE_SCRAPE_H

#include "pipeline/article.h"
#include "pipeline/ports.h"

#include <stddef.h>

typedef struct st_scrape_t scrape_t;
typedef void (*scrape_cb)(scrape_t *s);

/** One page fetch (private). */
typedef struct st_scrape_fetch_t {
    scrape_t *owner;
    net_op_t *op;
} scrape_fetch_t;

/** Embedded in its owner. Read usable in the callback. */
struct st_scrape_t {
    const fetch_port_t *fetch;
    gen_source_t *cands; /* the owner's; a usable page sets content (and title, from the page) */
    size_t ncands;
    size_t want;   /* enough usable pages */
    size_t usable; /* candidates with content */
    int allow_private;
    const char *id; /* the article, for logs */
    scrape_cb cb;
    void *data;
    scrape_fetch_t *_fetches;
    size_t _next, _fetching;
};

/** Starts fetching. Returns 1 when pages are being fetched (cb runs once they all answered, never
 * synchronously, unless scrape_cancel comes first), 0 when none could start (cb will not run). */
int scrape_start(scrape_t *s, const fetch_port_t *fetch, gen_source_t *cands, size_t n, size_t want,
                 int allow_private, const char *id, scrape_cb cb, void *data);
/** Cancels the fetches still in flight (cb will not run); what is usable stays. Safe on an idle scrape. */
void scrape_cancel(scrape_t *s);

#endif
