"""The route table of src/http/routes.c, read from the source, and its check against an OpenAPI document.

Reading the C source (rather than a list kept in the test) makes the check follow the code: a route added to
the table without its entry in src/http/openapi.json fails test_ops (integ) and http_openapi (unit).
"""
import os
import re

SOURCE_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ROUTE_RE = re.compile(r'\{\s*"(GET|POST|PUT|PATCH|DELETE)"\s*,\s*"(/[^"]*)"\s*,\s*(\w+)\s*,\s*(ROUTE_\w+)\s*\}')
PARAM_RE = re.compile(r"\{[^}/]*\}")

# The security schemes an operation must offer for each access kind of the table.
ACCESS_SCHEMES = {
    "ROUTE_USER": {"bearerAuth", "apiKeyHeader"},
    "ROUTE_ADMIN": {"adminToken"},
    "ROUTE_INTERNAL": {"internalSecret"},
}


def route_table(path=None):
    """[(method, pattern, access)] of the table in routes.c."""
    with open(path or os.path.join(SOURCE_ROOT, "src", "http", "routes.c"), encoding="utf-8") as f:
        text = f.read()
    return [(m.group(1), m.group(2), m.group(4)) for m in ROUTE_RE.finditer(text)]


def normalize(pattern):
    """/articles/{id} and /articles/{article_id} are the same route: parameter names may differ."""
    return PARAM_RE.sub("{}", pattern)


def problems(doc, routes):
    """What is wrong with doc for routes: a list of messages, empty when every route is documented with the
    security its access kind needs."""
    paths = {}
    for p, item in (doc.get("paths") or {}).items():
        paths[normalize(p)] = item
    out = []
    for method, pattern, access in routes:
        op = (paths.get(normalize(pattern)) or {}).get(method.lower())
        if op is None:
            out.append("%s %s is in routes.c but not in the OpenAPI document" % (method, pattern))
            continue
        if "security" not in op:
            out.append("%s %s has no security requirement (use [] for public routes)" % (method, pattern))
            continue
        offered = {name for req in op["security"] for name in req}
        want = ACCESS_SCHEMES.get(access)
        if want is not None and not want <= offered:
            out.append("%s %s is %s but its security offers %s" % (method, pattern, access, sorted(offered)))
        if want is None and offered & ACCESS_SCHEMES["ROUTE_USER"]:
            out.append("%s %s is public but documented as needing a user's credentials" % (method, pattern))
        if not op.get("responses"):
            out.append("%s %s has no responses" % (method, pattern))
    return out
