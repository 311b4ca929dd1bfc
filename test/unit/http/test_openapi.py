"""src/http/openapi.json against the route table of src/http/routes.c, without a server or a database: every
route documented with its method and security. test_ops (integ) checks the same on the served document."""
import json
import os
import sys

from routes_table import SOURCE_ROOT, problems, route_table


def main():
    with open(os.path.join(SOURCE_ROOT, "src", "http", "openapi.json"), encoding="utf-8") as f:
        doc = json.load(f)
    routes = route_table()
    found = problems(doc, routes)
    n = 0
    for msg in found:
        n += 1
        print("not ok %d - %s" % (n, msg))
    n += 1
    print("%s %d - %d routes of routes.c read, %d documented as they should be" %
          ("ok" if routes and not found else "not ok", n, len(routes), len(routes) - len(found)))
    print("1..%d" % n)
    return 1 if found or not routes else 0


if __name__ == "__main__":
    sys.exit(main())
