#include "core/password.h"
#include "core/alloc.h"
#include "core/crypto.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

/* A valid bcrypt hash of a random password nobody knows, used when the user does not exist. */
static const char dummy_hash[] = "$2b$12$tuJM5fGWxcPR4ybeJeUw7ufhFOgiRwhaY0gC69UGiiN4SYSqFWMHa";

typedef struct st_password_work_t {
    uv_work_t req;
    char *password;
    char *hash; /* in: hash to verify against; out: new hash */
    int cost;
    int verify;
    int ok;
    password_cb cb;
    void *data;
} password_work_t;

/* Runs on a pool thread: only crypt_rn with its own crypt_data, nothing shared. */
static void on_work(uv_work_t *req)
{
    password_work_t *w = req->data;
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));
    if (w->verify) {
        const char *h = w->hash ? w->hash : dummy_hash;
        char *r = crypt_rn(w->password, h, cd, sizeof(*cd));
        size_t hl = strlen(h);
        w->ok = r != NULL && r[0] != '*' && strlen(r) == hl && crypto_equal(r, hl, h, hl) && w->hash != NULL;
    } else {
        char salt[CRYPT_GENSALT_OUTPUT_SIZE];
        uint8_t rnd[16];
        crypto_random(rnd, sizeof(rnd));
        if (crypt_gensalt_rn("$2b$", (unsigned long)w->cost, (const char *)rnd, sizeof(rnd), salt,
                             sizeof(salt)) != NULL) {
            char *r = crypt_rn(w->password, salt, cd, sizeof(*cd));
            if (r != NULL && r[0] != '*')
                w->hash = xstrdup(r);
        }
    }
    free(cd);
}

static void on_after_work(uv_work_t *req, int status)
{
    password_work_t *w = req->data;
    if (status != 0)
        w->ok = 0;
    w->cb(w->data, w->verify ? NULL : w->hash, w->ok);
    /* Passwords do not linger in freed memory. */
    explicit_bzero(w->password, strlen(w->password));
    free(w->password);
    free(w->hash);
    free(w);
}

static int start(uv_loop_t *loop, const char *password, const char *hash, int cost, int verify,
                 password_cb cb, void *data)
{
    password_work_t *w = xcalloc(1, sizeof(*w));
    w->password = xstrdup(password);
    w->hash = xstrdup(hash);
    w->cost = cost;
    w->verify = verify;
    w->cb = cb;
    w->data = data;
    w->req.data = w;
    int r = uv_queue_work(loop, &w->req, on_work, on_after_work);
    if (r != 0) {
        free(w->password);
        free(w->hash);
        free(w);
    }
    return r;
}

int password_hash_start(uv_loop_t *loop, const char *password, int cost, password_cb cb, void *data)
{
    return start(loop, password, NULL, cost, 0, cb, data);
}

int password_verify_start(uv_loop_t *loop, const char *password, const char *hash, password_cb cb, void *data)
{
    return start(loop, password, hash, 0, 1, cb, data);
}
