/* The set of timezone names, loaded lazily on the first request that needs it. Requests arriving while the
 * query runs wait in a list and are all called from its completion, so a burst after start-up costs one
 * query. */
#include "http/timezones.h"
#include "core/alloc.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

typedef struct st_tz_waiter_t {
    timezones_ready_cb cb;
    void *data;
    struct st_tz_waiter_t *next;
} tz_waiter_t;

static struct {
    char **names; /* sorted (strcmp), for bsearch */
    size_t count;
    int ready;
    int loading;
    tz_waiter_t *waiters; /* in arrival order: head is the oldest */
    tz_waiter_t **tail;
} tz = {.tail = &tz.waiters};

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int timezones_loaded(void)
{
    return tz.ready;
}

int timezones_valid(const char *name)
{
    if (!tz.ready || name == NULL)
        return 0;
    return bsearch(&name, tz.names, tz.count, sizeof(*tz.names), cmp_name) != NULL;
}

/* Hands the outcome to every waiter. The list is detached first: a callback may call timezones_when_ready. */
static void wake_waiters(const db_result_t *failure)
{
    tz_waiter_t *w = tz.waiters;
    tz.waiters = NULL;
    tz.tail = &tz.waiters;
    while (w != NULL) {
        tz_waiter_t *next = w->next;
        w->cb(w->data, failure);
        free(w);
        w = next;
    }
}

static void on_loaded(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    (void)data;
    tz.loading = 0;
    if (r[0].err != NULL) {
        log_warn("loading timezone names", "%s", r[0].err);
        wake_waiters(&r[0]);
        return;
    }
    int rows = PQntuples(r[0].res);
    tz.names = xcalloc(rows > 0 ? (size_t)rows : 1, sizeof(*tz.names));
    for (int i = 0; i < rows; i++)
        tz.names[i] = xstrdup(PQgetvalue(r[0].res, i, 0));
    tz.count = (size_t)rows;
    /* Sorting again costs nothing and keeps bsearch right even if the server's order ever differs. */
    qsort(tz.names, tz.count, sizeof(*tz.names), cmp_name);
    tz.ready = 1;
    log_debug("loading timezone names", "%zu names", tz.count);
    wake_waiters(NULL);
}

void timezones_when_ready(app_t *app, timezones_ready_cb cb, void *data)
{
    if (tz.ready) {
        cb(data, NULL);
        return;
    }
    tz_waiter_t *w = xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->data = data;
    *tz.tail = w;
    tz.tail = &w->next;
    if (tz.loading)
        return;
    tz.loading = 1;
    if (db_query(app->db, "timezones_list", 0, NULL, on_loaded, NULL) == NULL) {
        /* The pool refused (wait queue full or closing): an error without SQLSTATE, which kit_db_failed
         * answers with 503 like any unavailable database. */
        static const db_result_t busy = {NULL, "database busy", ""};
        tz.loading = 0;
        wake_waiters(&busy);
    }
}
