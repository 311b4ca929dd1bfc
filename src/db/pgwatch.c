#include "db/pgwatch.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <sys/stat.h>

void pg_watch_drop(pg_watch_t *w, uv_close_cb close_cb)
{
    if (w->poll == NULL)
        return;
    uv_poll_stop(w->poll);
    uv_close((uv_handle_t *)w->poll, close_cb);
    w->poll = NULL;
    w->events = 0;
}

int pg_watch(pg_watch_t *w, uv_loop_t *loop, PGconn *pg, int recheck, int events, uv_poll_cb on_event,
             uv_close_cb close_cb, void *owner, int *created)
{
    *created = 0;
    int fd = PQsocket(pg);
    if (fd < 0)
        return UV_EBADF;
    if (recheck || w->poll == NULL) {
        struct stat st;
        if (fstat(fd, &st) != 0)
            return UV_EBADF;
        if (w->poll != NULL && (w->fd != fd || w->dev != st.st_dev || w->ino != st.st_ino))
            pg_watch_drop(w, close_cb);
        if (w->poll == NULL) {
            uv_poll_t *poll = xmalloc(sizeof(*poll));
            int rc = uv_poll_init(loop, poll, fd);
            if (rc != 0) {
                free(poll);
                return rc;
            }
            poll->data = owner;
            *created = 1;
            w->poll = poll;
            w->fd = fd;
            w->dev = st.st_dev;
            w->ino = st.st_ino;
            w->events = 0;
        }
    }
    if (events != w->events) {
        int rc = uv_poll_start(w->poll, events, on_event);
        if (rc != 0)
            return rc;
        w->events = events;
    }
    return 0;
}
