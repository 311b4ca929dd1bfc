#include "pipeline/scrape.h"
#include "core/alloc.h"
#include "core/log.h"
#include "pipeline/extract.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A page must give at least this much main text to count as a source (API.md section 7). */
#define SOURCE_MIN_CHARS 200
/* Pages fetched at once for one article: enough to finish quickly, few enough that one article cannot hold
 * dozens of 2 MiB bodies. */
#define SCRAPE_PARALLEL 5
#define SCRAPE_MAX_BYTES (2 * 1024 * 1024)
#define SCRAPE_TIMEOUT_MS 15000

static int is_html(const char *content_type, const buf_t *body)
{
    if (content_type != NULL) {
        return strncasecmp(content_type, "text/html", 9) == 0 ||
               strncasecmp(content_type, "application/xhtml+xml", 21) == 0;
    }
    /* No Content-Type: take it for HTML when it starts like markup. */
    for (size_t i = 0; i < body->len; i++) {
        if (!isspace((unsigned char)body->data[i]))
            return body->data[i] == '<';
    }
    return 0;
}

/* Reads one fetched page into its candidate (content, and the page's own title). */
static void read_page(scrape_t *s, gen_source_t *c, net_op_t *op)
{
    if (op->err != NULL) {
        log_debug("scraping sources", "article %s: %s: %s", s->id, c->url, op->err);
    } else if (op->status != 200) {
        log_debug("scraping sources", "article %s: %s: HTTP %ld", s->id, c->url, op->status);
    } else if (!is_html(op->content_type, &op->body)) {
        log_debug("scraping sources", "article %s: %s: not HTML (%s)", s->id, c->url,
                  op->content_type ? op->content_type : "no content type");
    } else {
        extract_result_t ex;
        extract_html(op->body.data ? op->body.data : "", op->body.len, op->content_type, c->url, &ex);
        if (ex.text != NULL && ex.text_len >= SOURCE_MIN_CHARS) {
            c->content = xstrdup(ex.text);
            if (ex.title && ex.title[0]) {
                free(c->title);
                c->title = xstrdup(ex.title);
            }
            s->usable++;
        } else {
            log_debug("scraping sources", "article %s: %s: only %zu characters of text", s->id, c->url,
                      ex.text_len);
        }
        extract_result_free(&ex);
    }
}

static void on_page(net_op_t *op);

/* Keeps up to SCRAPE_PARALLEL fetches going until enough sources are usable or the candidates run out. */
static void fill(scrape_t *s)
{
    while (s->_fetching < SCRAPE_PARALLEL && s->_next < s->ncands && s->usable < s->want) {
        size_t i = s->_next++;
        const char *headers[] = {"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.5", NULL};
        net_request_t req = {.method = "GET",
                             .url = s->cands[i].url,
                             .headers = headers,
                             .connect_timeout_ms = 5000,
                             .timeout_ms = SCRAPE_TIMEOUT_MS,
                             .max_response_bytes = SCRAPE_MAX_BYTES,
                             .max_redirects = 5,
                             .allow_private = s->allow_private};
        s->_fetches[i].owner = s;
        s->_fetches[i].op = s->fetch->start(s->fetch->ctx, &req, on_page, &s->_fetches[i]);
        if (s->_fetches[i].op != NULL)
            s->_fetching++;
        else
            log_warn("scraping sources", "article %s: %s: the request could not be started", s->id,
                     s->cands[i].url);
    }
}

static void on_page(net_op_t *op)
{
    scrape_fetch_t *f = op->data;
    scrape_t *s = f->owner;
    f->op = NULL;
    s->_fetching--;
    read_page(s, &s->cands[f - s->_fetches], op);
    if (s->usable >= s->want)
        scrape_cancel(s); /* enough sources: the slower pages are not waited for */
    else
        fill(s);
    if (s->_fetching == 0) {
        free(s->_fetches);
        s->_fetches = NULL;
        s->cb(s);
    }
}

int scrape_start(scrape_t *s, const fetch_port_t *fetch, gen_source_t *cands, size_t n, size_t want,
                 int allow_private, const char *id, scrape_cb cb, void *data)
{
    *s = (scrape_t){.fetch = fetch,
                    .cands = cands,
                    .ncands = n,
                    .want = want,
                    .allow_private = allow_private,
                    .id = id,
                    .cb = cb,
                    .data = data,
                    ._fetches = xcalloc(n + 1, sizeof(scrape_fetch_t))};
    fill(s);
    if (s->_fetching == 0) {
        free(s->_fetches);
        s->_fetches = NULL;
        return 0;
    }
    return 1;
}

void scrape_cancel(scrape_t *s)
{
    for (size_t i = 0; s->_fetches != NULL && i < s->ncands; i++) {
        if (s->_fetches[i].op != NULL) {
            s->fetch->cancel(s->_fetches[i].op);
            s->_fetches[i].op = NULL;
        }
    }
    s->_fetching = 0;
    s->_next = s->ncands;
    free(s->_fetches);
    s->_fetches = NULL;
}
