/* router_match against a table shaped like the real one: literal vs parameter priority, trailing slashes,
 * HEAD, 404 vs 405, parameter extraction and malformed paths. */
#include "http/router.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static void h_list(http_req_t *req)
{
    (void)req;
}
static void h_create(http_req_t *req)
{
    (void)req;
}
static void h_stats(http_req_t *req)
{
    (void)req;
}
static void h_get(http_req_t *req)
{
    (void)req;
}
static void h_retry(http_req_t *req)
{
    (void)req;
}
static void h_root(http_req_t *req)
{
    (void)req;
}
static void h_deep(http_req_t *req)
{
    (void)req;
}
static void h_too_many(http_req_t *req)
{
    (void)req;
}

static const http_route_t routes[] = {
    {"GET", "/articles", h_list, ROUTE_USER},
    {"POST", "/articles", h_create, ROUTE_USER},
    {"GET", "/articles/{id}", h_get, ROUTE_USER},
    {"GET", "/articles/stats", h_stats, ROUTE_USER}, /* after {id}: still wins for "stats" */
    {"POST", "/articles/{id}/retry", h_retry, ROUTE_USER},
    {"GET", "/", h_root, ROUTE_PUBLIC},
    {"GET", "/a/{x}/b/{y}", h_deep, ROUTE_PUBLIC},
    {"GET", "/z/{a}/{b}/{c}/{d}/{e}", h_too_many,
     ROUTE_PUBLIC}, /* more than HTTP_MAX_PARAMS: never matches */
};
static const size_t nroutes = sizeof(routes) / sizeof(routes[0]);

typedef struct {
    router_result_t r;
    const http_route_t *route;
    char *storage;
    char *params[HTTP_MAX_PARAMS];
    size_t nparams;
} match_t;

static match_t m(const char *method, const char *path)
{
    match_t x;
    memset(&x, 0, sizeof(x));
    x.r =
        router_match(routes, nroutes, method, path, strlen(path), &x.route, &x.storage, x.params, &x.nparams);
    return x;
}

static void check(const char *method, const char *path, router_result_t want, http_handler_cb handler)
{
    match_t x = m(method, path);
    TAP_IS_INT(x.r, want, "%s %s -> %d", method, path, (int)want);
    if (want == ROUTER_FOUND)
        TAP_OK(x.route != NULL && x.route->handler == handler, "%s %s picks the expected route", method,
               path);
    else
        TAP_OK(x.route == NULL && x.storage == NULL && x.nparams == 0, "%s %s sets no route", method, path);
    free(x.storage);
}

int main(void)
{
    check("GET", "/articles", ROUTER_FOUND, h_list);
    check("POST", "/articles", ROUTER_FOUND, h_create);
    check("GET", "/articles/", ROUTER_FOUND, h_list);
    check("GET", "/articles/stats", ROUTER_FOUND, h_stats);
    check("GET", "/articles/stats/", ROUTER_FOUND, h_stats);
    check("GET", "/articles/123", ROUTER_FOUND, h_get);
    check("HEAD", "/articles/123", ROUTER_FOUND, h_get);
    check("HEAD", "/articles", ROUTER_FOUND, h_list);
    check("POST", "/articles/123/retry", ROUTER_FOUND, h_retry);
    check("GET", "/", ROUTER_FOUND, h_root);
    check("GET", "/art%69cles", ROUTER_FOUND, h_list);

    check("DELETE", "/articles", ROUTER_METHOD_NOT_ALLOWED, NULL);
    check("GET", "/articles/123/retry", ROUTER_METHOD_NOT_ALLOWED, NULL);
    check("HEAD", "/articles/1/retry", ROUTER_METHOD_NOT_ALLOWED, NULL);
    check("POST", "/", ROUTER_METHOD_NOT_ALLOWED, NULL);
    check("", "/articles", ROUTER_METHOD_NOT_ALLOWED, NULL);

    check("GET", "/nope", ROUTER_NOT_FOUND, NULL);
    check("GET", "", ROUTER_NOT_FOUND, NULL);
    check("GET", "articles", ROUTER_NOT_FOUND, NULL);
    check("GET", "*", ROUTER_NOT_FOUND, NULL);
    check("GET", "//", ROUTER_NOT_FOUND, NULL);
    check("GET", "//articles", ROUTER_NOT_FOUND, NULL);
    check("GET", "/articles//", ROUTER_NOT_FOUND, NULL);
    check("GET", "/articles//retry", ROUTER_NOT_FOUND, NULL);
    check("POST", "/articles//retry", ROUTER_NOT_FOUND, NULL);
    check("GET", "/articles/1/2/3/4/5/6/7/8", ROUTER_NOT_FOUND, NULL);
    check("GET", "/articlesx", ROUTER_NOT_FOUND, NULL);
    check("GET", "/art%6", ROUTER_NOT_FOUND, NULL);
    check("GET", "/art%zzcles", ROUTER_NOT_FOUND, NULL);
    check("GET", "/z/1/2/3/4/5", ROUTER_NOT_FOUND, NULL);

    /* Parameter extraction: raw (not decoded) values, in pattern order, pointing into the storage. */
    match_t x = m("GET", "/a/one/b/t%20wo/");
    TAP_IS_INT(x.r, ROUTER_FOUND, "two-parameter route found");
    TAP_IS_INT(x.nparams, 2, "two parameters");
    TAP_IS_STR(x.params[0], "one", "first parameter");
    TAP_IS_STR(x.params[1], "t%20wo", "second parameter kept raw, trailing slash dropped");
    TAP_OK(x.storage != NULL && x.params[0] >= x.storage && x.params[1] > x.params[0],
           "parameters point into the storage");
    free(x.storage);

    x = m("GET", "/articles/abc-123");
    TAP_IS_INT(x.nparams, 1, "one parameter");
    TAP_IS_STR(x.params[0], "abc-123", "id extracted");
    free(x.storage);

    x = m("GET", "/articles");
    TAP_OK(x.r == ROUTER_FOUND && x.nparams == 0 && x.storage == NULL, "no parameters, no storage");
    free(x.storage);

    x = m("GET", "/articles/%2F");
    TAP_IS_STR(x.nparams == 1 ? x.params[0] : NULL, "%2F", "an encoded slash stays inside its segment");
    free(x.storage);

    /* path_len is honoured: the query string is not part of the path. */
    const char *with_query = "/articles/7?x=1";
    const http_route_t *route;
    char *storage;
    char *params[HTTP_MAX_PARAMS];
    size_t nparams;
    router_result_t r = router_match(routes, nroutes, "GET", with_query, strlen("/articles/7"), &route,
                                     &storage, params, &nparams);
    TAP_OK(r == ROUTER_FOUND && nparams == 1 && strcmp(params[0], "7") == 0,
           "path_len stops before the query");
    free(storage);

    r = router_match(NULL, 0, "GET", "/", 1, &route, &storage, params, &nparams);
    TAP_IS_INT(r, ROUTER_NOT_FOUND, "empty table: not found");
    return tap_done();
}
