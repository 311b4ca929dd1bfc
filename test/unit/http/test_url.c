/* url_percent_decode and url_escape_at: the one percent decoder the router and the server share. */
#include "http/url.h"
#include "tap.h"

#include <string.h>

/* Decodes in into a copy and checks the result (want NULL: the decode must fail). */
static void check(const char *in, int strict, int plus, const char *want, const char *what)
{
    char out[64];
    long n = url_percent_decode(in, strlen(in), out, strict, plus);
    if (want == NULL) {
        TAP_IS_INT(n, -1, "%s", what);
        return;
    }
    if (n >= 0)
        out[n] = '\0';
    TAP_IS_STR(n >= 0 ? out : "(failed)", want, "%s", what);
}

int main(void)
{
    check("/articles/a%20b", 1, 0, "/articles/a b", "an escape decodes");
    check("%41%6a%6A", 1, 0, "Ajj", "upper- and lowercase hex digits");
    check("a+b", 1, 0, "a+b", "'+' stays in a path");
    check("a+b%2B", 0, 1, "a b+", "'+' is a space in a query, %2B a plus");
    check("%zz", 1, 0, NULL, "strict: a non-hex escape fails");
    check("ab%4", 1, 0, NULL, "strict: an escape cut short fails");
    check("ab%", 1, 0, NULL, "strict: a lone '%' at the end fails");
    check("a%00b", 1, 0, NULL, "strict: %00 fails");
    check("%zz%4", 0, 0, "%zz%4", "lenient: broken escapes are kept as they are");
    check("a%00b", 0, 0, "a%00b", "lenient: %00 is kept as it is");
    check("", 1, 0, "", "the empty string");

    char in_place[] = "x%2Fy";
    long n = url_percent_decode(in_place, strlen(in_place), in_place, 1, 0);
    in_place[n < 0 ? 0 : n] = '\0';
    TAP_IS_STR(in_place, "x/y", "decodes in place");

    TAP_IS_INT(url_escape_at("%7e", 3, 0), 0x7e, "escape_at: the byte");
    TAP_IS_INT(url_escape_at("%7e", 2, 0), -1, "escape_at: the digits must lie within len");
    TAP_IS_INT(url_escape_at("a%ff", 4, 1), 0xff, "escape_at: a byte over 0x7f");
    TAP_IS_INT(url_escape_at("%g1", 3, 0), -1, "escape_at: not hex");
    return tap_done();
}
