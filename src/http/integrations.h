/* /integrations: the user's receiving sites (webhook URL, signing secret, the site's own API key). The secret
 * and api_key leave the service only in the 201 of POST /integrations (a generated secret, once) and in
 * GET /integrations/{id}/secret; every other response omits them. */
#ifndef INKLOOP_HTTP_INTEGRATIONS_H
#define INKLOOP_HTTP_INTEGRATIONS_H

#include "core/json.h"
#include "db/db.h"
#include "http/kit.h"
#include "http/server.h"

/** Room for a generated secret: "whsec_" + base64 of 32 random bytes (44 characters) + NUL. */
#define INTEGRATIONS_SECRET_SIZE 52

/** A POST or PATCH /integrations body after validation. Strings point into the validator's parse tree. */
typedef struct st_integration_body_t {
    const char *name;           /* NULL when absent */
    const char *webhook_url;    /* NULL when absent; otherwise passed url_policy_check_url */
    const char *webhook_secret; /* NULL when absent, null or "" */
    const char *platform_type;  /* NULL when absent ("custom" is applied by the caller on create) */
    const char *api_key;        /* NULL when absent, null or "" */
    int is_active;              /* PATCH only; meaningful when has_is_active */
    int has_is_active;
} integration_body_t;

/** Validates v's body (already parsed) into out: on create, name and webhook_url are required; on PATCH,
 * everything is optional and is_active is accepted. Returns the number of problems recorded in v. */
int integration_body_parse(validator_t *v, int patch, integration_body_t *out);
/** Validates an optional webhook URL member (http or https with a host): the string or NULL when absent;
 * records a 422 problem on field when it is not such a URL. */
const char *integrations_v_webhook_url(validator_t *v, const char *field, int required);
/** A new Standard Webhooks secret, "whsec_" + base64 of 32 random bytes, into out. */
void integrations_new_secret(char out[INTEGRATIONS_SECRET_SIZE]);

/** Registers the statements of this file. */
int integrations_prepare(db_pool_t *pool);

void integrations_create(http_req_t *req);
void integrations_list(http_req_t *req);
void integrations_get(http_req_t *req);
void integrations_secret(http_req_t *req);
void integrations_update(http_req_t *req);
void integrations_delete(http_req_t *req);

#endif
