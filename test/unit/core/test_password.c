/* Password hashing runs on the thread pool and the loop keeps turning meanwhile. */
#include "core/password.h"
#include "tap.h"

#include <string.h>
#include <stdlib.h>

static char *hash;
static int verify_calls, verify_ok[3], ticks;

static void on_verified(void *data, const char *h, int ok)
{
    (void)h;
    verify_ok[(intptr_t)data] = ok;
    verify_calls++;
}

static void on_hashed(void *data, const char *h, int ok)
{
    (void)ok;
    uv_loop_t *loop = data;
    hash = h ? strdup(h) : NULL;
    if (hash == NULL)
        return;
    password_verify_start(loop, "correct horse", hash, on_verified, (void *)0);
    password_verify_start(loop, "wrong horse", hash, on_verified, (void *)1);
    password_verify_start(loop, "correct horse", NULL, on_verified, (void *)2);
}

static void on_tick(uv_timer_t *t)
{
    ticks++;
    if (verify_calls == 3)
        uv_timer_stop(t);
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    uv_timer_start(&timer, on_tick, 1, 1);
    TAP_IS_INT(password_hash_start(&loop, "correct horse", 10, on_hashed, &loop), 0, "hash queued");
    uv_run(&loop, UV_RUN_DEFAULT);
    TAP_OK(hash != NULL && strncmp(hash, "$2b$10$", 7) == 0 && strlen(hash) == 60, "bcrypt hash %s", hash);
    TAP_IS_INT(verify_calls, 3, "three verifications completed");
    TAP_IS_INT(verify_ok[0], 1, "right password verifies");
    TAP_IS_INT(verify_ok[1], 0, "wrong password refused");
    TAP_IS_INT(verify_ok[2], 0, "unknown user (dummy hash) refused");
    TAP_OK(ticks > 5, "the loop kept running while hashing (%d ticks)", ticks);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    TAP_IS_INT(uv_loop_close(&loop), 0, "every handle closed");
    free(hash);
    return tap_done();
}
