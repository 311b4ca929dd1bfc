/* Private to the db module: the one uv_poll_t on a libpq connection's socket. libpq opens a new socket for
 * each host and SSL mode it tries while connecting, possibly under the same descriptor number, so PQsocket is
 * read again on every call and the socket told apart by its inode: a new socket gets a new handle, and there
 * are never two handles on one descriptor (the old one is stopped and closed first). */
#ifndef INKLOOP_DB_PGWATCH_H
#define INKLOOP_DB_PGWATCH_H

#include <libpq-fe.h>
#include <sys/types.h>
#include <uv.h>

typedef struct st_pg_watch_t {
    uv_poll_t *poll; /* NULL when not watching; the handle is freed by the owner's close callback */
    int fd;
    dev_t dev; /* with ino, tells a new socket from a closed one whose descriptor number was reused */
    ino_t ino;
    int events; /* the events the handle was last started with, 0 when stopped */
} pg_watch_t;

/** Watches pg's socket for events (UV_READABLE, UV_WRITABLE). With recheck (while connecting), a socket that
 * is not the watched one gets a new handle (data = owner) after the old one is dropped with close_cb;
 * *created is set to 1 when a handle was made, so the owner counts it. Returns 0 or a uv error. */
int pg_watch(pg_watch_t *w, uv_loop_t *loop, PGconn *pg, int recheck, int events, uv_poll_cb on_event,
             uv_close_cb close_cb, void *owner, int *created);
/** Stops and closes the handle (close_cb frees it); the watch is empty afterwards. */
void pg_watch_drop(pg_watch_t *w, uv_close_cb close_cb);

#endif
