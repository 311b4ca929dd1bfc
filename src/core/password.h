/* Password hashing with bcrypt (libxcrypt) on the libuv thread pool: a hash takes tens to hundreds of
 * milliseconds by design, which must never stall the loop. */
#ifndef INKLOOP_CORE_PASSWORD_H
#define INKLOOP_CORE_PASSWORD_H

#include <uv.h>

/** Completion: for a hash, hash is the new "$2b$..." string (NULL on failure); for a verify, ok is 1 when the
 * password matches. Runs on the loop thread. */
typedef void (*password_cb)(void *data, const char *hash, int ok);

/** Hashes password with a fresh salt at bcrypt cost (log2 rounds, 4..31). Returns 0 or a negative uv error.
 */
int password_hash_start(uv_loop_t *loop, const char *password, int cost, password_cb cb, void *data);
/** Checks password against hash; a NULL hash verifies against a dummy so unknown users take as long as known
 * ones. Returns 0 or a negative uv error. */
int password_verify_start(uv_loop_t *loop, const char *password, const char *hash, password_cb cb,
                          void *data);

#endif
