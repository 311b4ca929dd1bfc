/* The timezone cache (see timezones.h). The set only changes when PostgreSQL's tzdata is upgraded, which
 * needs a server restart that also restarts our connections' view; a process restart picks it up. */
#include "http/timezones.h"
#include "core/alloc.h"
#include "core/log.h"
#include "db/db.h"

#include <stdlib.h>
#include <string.h>

typedef struct st_tz_waiter_t {
    tz_ready_cb cb;
    void *data;
    struct st_tz_waiter_t *next;
} tz_waiter_t;

/* Process-wide state; everything runs on the loop's thread. names stays reachable until exit. */
static char **names;
static size_t nnames;
static int loading;
static tz_waiter_t *waiters;

int tz_prepare(db_pool_t *pool)
{
    return db_pool_prepare(pool, "tz_names",
                           "SELECT name FROM pg_timezone_names ORDER BY name COLLATE \"C\"");
}

static int name_cmp(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(char *const *)elem);
}

int tz_known(const char *name)
{
    if (strcmp(name, "UTC") == 0)
        return 1;
    if (names == NULL)
        return -1;
    return bsearch(name, names, nnames, sizeof(*names), name_cmp) != NULL;
}

static void on_names(const db_result_t *r, size_t n, void *data)
{
    (void)n;
    app_t *app = data;
    (void)app;
    int ok = 0;
    if (r[0].err != NULL) {
        log_warn("loading timezone names", "%s; relying on the database's check", r[0].err);
    } else if (names == NULL) {
        int rows = PQntuples(r[0].res);
        char **list = xmalloc((size_t)(rows > 0 ? rows : 1) * sizeof(*list));
        for (int i = 0; i < rows; i++)
            list[i] = xstrdup(PQgetvalue(r[0].res, i, 0));
        nnames = (size_t)rows;
        names = list;
        ok = 1;
        log_debug("loading timezone names", "%d names", rows);
    } else {
        ok = 1;
    }
    loading = 0;
    /* Detach the list first: a callback may call tz_ensure again. */
    tz_waiter_t *w = waiters;
    waiters = NULL;
    while (w != NULL) {
        tz_waiter_t *next = w->next;
        w->cb(w->data, ok);
        free(w);
        w = next;
    }
}

void tz_ensure(app_t *app, tz_ready_cb cb, void *data)
{
    if (names != NULL) {
        cb(data, 1);
        return;
    }
    tz_waiter_t *w = xmalloc(sizeof(*w));
    w->cb = cb;
    w->data = data;
    w->next = waiters;
    waiters = w;
    if (loading)
        return;
    loading = 1;
    if (db_query(app->db, "tz_names", 0, NULL, on_names, app) == NULL) {
        /* Pool refused (full): answer the waiters without the set rather than leave them hanging. */
        db_result_t fail = {NULL, "database busy", ""};
        on_names(&fail, 1, app);
    }
}
