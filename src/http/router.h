/* Route matching: method and path against patterns like "/articles/{id}/retry". Pure logic, no I/O. */
#ifndef INKLOOP_HTTP_ROUTER_H
#define INKLOOP_HTTP_ROUTER_H

#include "http/server.h"

#include <stddef.h>

/** Who may call a route. */
typedef enum {
    ROUTE_PUBLIC = 0, /* no credentials (health, metrics, docs, auth endpoints) */
    ROUTE_USER,       /* a user's access token or API key */
    ROUTE_INTERNAL,   /* X-Internal-Secret */
    ROUTE_ADMIN,      /* Authorization: Bearer ADMIN_TOKEN */
} route_access_t;

typedef struct st_http_route_t {
    const char *method;  /* "GET", "POST", "PATCH", "PUT", "DELETE" */
    const char *pattern; /* literal segments and {name} segments */
    http_handler_cb handler;
    route_access_t access;
} http_route_t;

typedef enum { ROUTER_FOUND = 0, ROUTER_NOT_FOUND, ROUTER_METHOD_NOT_ALLOWED } router_result_t;

/** Finds the route for method and path (no query string; a trailing slash is ignored; HEAD matches GET).
 * On ROUTER_FOUND, *route is set and the {name} segments are stored, not decoded, as pointers into a copy
 * held by params_storage (malloc'd, caller frees) in params[0..*nparams-1]. Literal segments win over
 * parameters. */
router_result_t router_match(const http_route_t *routes, size_t nroutes, const char *method, const char *path,
                             size_t path_len, const http_route_t **route, char **params_storage,
                             char *params[HTTP_MAX_PARAMS], size_t *nparams);

/** The application's routes (src/http/routes.c). */
extern const http_route_t http_routes[];
extern const size_t http_route_count;

#endif
