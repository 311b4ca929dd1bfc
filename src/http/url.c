#include "http/url.h"

#include <h2o.h>

int url_escape_at(const char *s, size_t len, size_t i)
{
    unsigned char byte;
    if (i + 2 >= len || h2o_hex_decode(&byte, s + i + 1, 2) != 0)
        return -1;
    return byte;
}

long url_percent_decode(const char *s, size_t len, char *out, int strict, int plus)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int byte = url_escape_at(s, len, i);
            if (byte > 0) {
                out[j++] = (char)byte;
                i += 2;
                continue;
            }
            if (strict)
                return -1;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        out[j++] = c;
    }
    return (long)j;
}
