/* Transition shim: the timezone names moved to the db module (db/timezones.h). Only articles.c still uses
 * these names (it is being edited on another branch); once it calls db_timezones_* itself, this file goes. */
#ifndef INKLOOP_HTTP_TIMEZONES_H
#define INKLOOP_HTTP_TIMEZONES_H

#include "app.h"
#include "db/timezones.h"

/** db_timezones_when_ready on the process's pool. */
static inline void timezones_when_ready(app_t *app, db_timezones_ready_cb cb, void *data)
{
    db_timezones_when_ready(app->db, cb, data);
}
/** db_timezones_loaded. */
static inline int timezones_loaded(void)
{
    return db_timezones_loaded();
}
/** db_timezones_valid. */
static inline int timezones_valid(const char *name)
{
    return db_timezones_valid(name);
}

#endif
