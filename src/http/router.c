#include "http/router.h"

#include "core/alloc.h"
#include "http/url.h"

#include <stdint.h>
#include <string.h>

/* A pattern with more segments than this never matches: the specificity score below keeps one bit per
 * segment. Real routes have at most five or six. */
#define MAX_SEGMENTS 63

/* One '/'-separated piece of a path or pattern. */
typedef struct {
    const char *p;
    size_t len;
} seg_t;

/* Moves *pos past the next segment of s[0..len) and stores it in out; 0 when there is none left. The string
 * starts with '/', so every segment is preceded by exactly one separator. */
static int next_segment(const char *s, size_t len, size_t *pos, seg_t *out)
{
    if (*pos >= len)
        return 0;
    size_t start = *pos + 1; /* skip the separator */
    size_t end = start;
    while (end < len && s[end] != '/')
        end++;
    out->p = s + start;
    out->len = end - start;
    *pos = end;
    return 1;
}

/* Compares a raw path segment, percent-decoding it on the fly, with a literal pattern segment, so that
 * "/art%69cles" reaches "/articles" like it would through a decoding router. */
static int literal_equals(seg_t raw, seg_t lit)
{
    size_t i = 0, j = 0;
    while (i < raw.len) {
        char c = raw.p[i];
        if (c == '%') {
            int byte = url_escape_at(raw.p, raw.len, i);
            if (byte < 0)
                return 0;
            c = (char)byte;
            i += 3;
        } else {
            i++;
        }
        if (j >= lit.len || lit.p[j] != c)
            return 0;
        j++;
    }
    return j == lit.len;
}

static int is_param(seg_t s)
{
    return s.len >= 2 && s.p[0] == '{' && s.p[s.len - 1] == '}';
}

/* Whether the pattern matches the path; *score ranks matches so that a literal segment beats a parameter at
 * the first position where two matching patterns differ (earlier segments weigh more). */
static int pattern_matches(const char *pattern, const char *path, size_t path_len, uint64_t *score)
{
    size_t plen = strlen(pattern);
    if (plen == 0 || pattern[0] != '/')
        return 0;
    if (plen > 1 && pattern[plen - 1] == '/')
        plen--; /* "/x/" in a table means "/x" */
    size_t ppos = 0, xpos = 0, n = 0, nparams = 0;
    uint64_t s = 0;
    seg_t ps = {NULL, 0}, xs = {NULL, 0};
    /* The root pattern "/" has no segments; neither has the path "/". */
    if (plen == 1)
        ppos = 1;
    if (path_len == 1)
        xpos = 1;
    for (;;) {
        int has_p = next_segment(pattern, plen, &ppos, &ps);
        int has_x = next_segment(path, path_len, &xpos, &xs);
        if (!has_p && !has_x) {
            *score = s;
            return 1;
        }
        if (has_p != has_x || n >= MAX_SEGMENTS)
            return 0; /* different segment counts */
        if (xs.len == 0)
            return 0; /* "//": an empty segment matches neither a literal nor a parameter */
        if (is_param(ps)) {
            if (++nparams > HTTP_MAX_PARAMS)
                return 0;
        } else {
            if (!literal_equals(xs, ps))
                return 0;
            s |= (uint64_t)1 << (MAX_SEGMENTS - n);
        }
        n++;
    }
}

static int method_matches(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0)
        return 1;
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Copies the path and cuts it into NUL-terminated segments in place, pointing params at the {name} ones. */
static void extract_params(const char *pattern, const char *path, size_t path_len, char **storage,
                           char *params[HTTP_MAX_PARAMS], size_t *nparams)
{
    size_t plen = strlen(pattern);
    if (plen > 1 && pattern[plen - 1] == '/')
        plen--;
    char *copy = xstrndup(path, path_len);
    size_t ppos = plen == 1 ? 1 : 0, xpos = path_len == 1 ? 1 : 0, n = 0;
    seg_t ps = {NULL, 0}, xs = {NULL, 0};
    while (next_segment(pattern, plen, &ppos, &ps) && next_segment(path, path_len, &xpos, &xs)) {
        if (is_param(ps)) {
            char *start = copy + (xs.p - path);
            start[xs.len] = '\0'; /* overwrites the next '/' or the terminator */
            params[n++] = start;
        }
    }
    *nparams = n;
    if (n == 0) {
        free(copy);
        copy = NULL;
    }
    *storage = copy;
}

router_result_t router_match(const http_route_t *routes, size_t nroutes, const char *method, const char *path,
                             size_t path_len, const http_route_t **route, char **params_storage,
                             char *params[HTTP_MAX_PARAMS], size_t *nparams)
{
    *route = NULL;
    *params_storage = NULL;
    *nparams = 0;
    if (path == NULL || path_len == 0 || path[0] != '/')
        return ROUTER_NOT_FOUND;
    /* One trailing slash is ignored ("/articles/" is "/articles"); "//" at the end is an empty segment. */
    if (path_len > 1 && path[path_len - 1] == '/' && path[path_len - 2] != '/')
        path_len--;

    const http_route_t *best = NULL;
    uint64_t best_score = 0;
    int path_known = 0;
    for (size_t i = 0; i < nroutes; i++) {
        uint64_t score;
        if (routes[i].pattern == NULL || !pattern_matches(routes[i].pattern, path, path_len, &score))
            continue;
        path_known = 1;
        if (routes[i].method == NULL || !method_matches(routes[i].method, method))
            continue;
        /* Strictly greater: among equally specific routes the first in the table wins. */
        if (best == NULL || score > best_score) {
            best = &routes[i];
            best_score = score;
        }
    }
    if (best == NULL)
        return path_known ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
    extract_params(best->pattern, path, path_len, params_storage, params, nparams);
    *route = best;
    return ROUTER_FOUND;
}
