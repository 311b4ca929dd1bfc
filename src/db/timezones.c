/* The set of timezone names (see timezones.h), loaded lazily on the first request that needs it. Requests
 * arriving while the query runs wait in a list and are all called from its completion, so a burst after
 * start-up costs one query. */
#include "db/timezones.h"
#include "core/alloc.h"
#include "core/log.h"
#include "queries.h"

#include <h2o/linklist.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_tz_waiter_t {
    db_timezones_ready_cb cb;
    void *data;
    h2o_linklist_t link; /* in tz.waiters */
} tz_waiter_t;

static struct {
    char **names; /* sorted (strcmp), for bsearch */
    size_t count;
    int ready;
    int loading;
    h2o_linklist_t waiters; /* in arrival order: next is the oldest */
} tz = {.waiters = {&tz.waiters, &tz.waiters}};

int db_timezones_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_timezones, queries_timezones_count);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int db_timezones_loaded(void)
{
    return tz.ready;
}

int db_timezones_valid(const char *name)
{
    if (!tz.ready || name == NULL)
        return 0;
    return bsearch(&name, tz.names, tz.count, sizeof(*tz.names), cmp_name) != NULL;
}

/* Hands the outcome to every waiter. The list is detached first: a callback may call
 * db_timezones_when_ready (which then finds the names ready, or starts a new load with a new list). */
static void wake_waiters(const db_result_t *failure)
{
    h2o_linklist_t woken;
    h2o_linklist_init_anchor(&woken);
    h2o_linklist_insert_list(&woken, &tz.waiters);
    while (!h2o_linklist_is_empty(&woken)) {
        tz_waiter_t *w = (tz_waiter_t *)((char *)woken.next - offsetof(tz_waiter_t, link));
        h2o_linklist_unlink(&w->link);
        w->cb(w->data, failure);
        free(w);
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

void db_timezones_when_ready(db_pool_t *db, db_timezones_ready_cb cb, void *data)
{
    if (tz.ready) {
        cb(data, NULL);
        return;
    }
    tz_waiter_t *w = xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->data = data;
    h2o_linklist_insert(&tz.waiters, &w->link); /* before the anchor: at the tail */
    if (tz.loading)
        return;
    tz.loading = 1;
    if (db_query(db, "timezones_list", 0, NULL, on_loaded, NULL) == NULL) {
        /* The pool refused (wait queue full or closing): an error without SQLSTATE, which callers answer
         * like any unavailable database. */
        static const db_result_t busy = {NULL, "database busy", ""};
        tz.loading = 0;
        wake_waiters(&busy);
    }
}
