#include "net/url_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Longer URLs are refused: no legitimate webhook or article source needs more, and it bounds what we log. */
#define URL_MAX_LEN 2048

static int fail(char *err, size_t errlen, const char *reason)
{
    if (errlen > 0)
        snprintf(err, errlen, "%s", reason);
    return -1;
}

int url_policy_check_url(const char *url, char *err, size_t errlen)
{
    if (url == NULL || *url == '\0')
        return fail(err, errlen, "missing URL");
    size_t len = strlen(url);
    if (len > URL_MAX_LEN)
        return fail(err, errlen, "longer than 2048 characters");
    /* Whitespace and control characters are refused outright: parsers disagree on how to treat them, and that
     * disagreement is how a URL that looks external ends up addressing something else. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f)
            return fail(err, errlen, "contains whitespace or control characters");
    }

    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return fail(err, errlen, "scheme must be http or https");
    size_t scheme_len = (size_t)(sep - url);
    if (!((scheme_len == 4 && strncasecmp(url, "http", 4) == 0) ||
          (scheme_len == 5 && strncasecmp(url, "https", 5) == 0)))
        return fail(err, errlen, "scheme must be http or https");

    const char *auth = sep + 3;
    size_t auth_len = strcspn(auth, "/?#");
    /* A backslash is a path separator to browsers but not to curl; refusing it keeps both readings equal. */
    if (memchr(auth, '\\', auth_len) != NULL)
        return fail(err, errlen, "backslash in host");
    if (memchr(auth, '@', auth_len) != NULL)
        return fail(err, errlen, "user info is not allowed");

    const char *host = auth;
    const char *host_end;
    const char *port = NULL;
    if (auth_len > 0 && host[0] == '[') {
        const char *close = memchr(auth, ']', auth_len);
        if (close == NULL)
            return fail(err, errlen, "unterminated IPv6 address");
        if (close == host + 1)
            return fail(err, errlen, "missing host");
        host_end = close + 1;
        if (host_end < auth + auth_len) {
            if (*host_end != ':')
                return fail(err, errlen, "bad host");
            port = host_end + 1;
        }
    } else {
        const char *colon = memchr(auth, ':', auth_len);
        host_end = colon != NULL ? colon : auth + auth_len;
        if (colon != NULL)
            port = colon + 1;
    }
    if (host_end == host)
        return fail(err, errlen, "missing host");

    if (port != NULL) {
        const char *port_end = auth + auth_len;
        long value = 0;
        if (port == port_end)
            return fail(err, errlen, "bad port");
        for (const char *p = port; p < port_end; p++) {
            if (*p < '0' || *p > '9')
                return fail(err, errlen, "bad port");
            value = value * 10 + (*p - '0');
            if (value > 65535)
                return fail(err, errlen, "bad port");
        }
        if (value == 0)
            return fail(err, errlen, "bad port");
    }
    return 0;
}

/* Returns the kind of a forbidden IPv4 address ("loopback", ...) or NULL when the address is public. */
static const char *ipv4_kind(uint32_t a)
{
    if ((a >> 24) == 0)
        return "an unspecified";
    if ((a >> 24) == 10)
        return "a private";
    if ((a & 0xffc00000u) == 0x64400000u) /* 100.64.0.0/10 */
        return "a carrier-grade NAT";
    if ((a >> 24) == 127)
        return "a loopback";
    if ((a & 0xffff0000u) == 0xa9fe0000u) /* 169.254.0.0/16 */
        return "a link-local";
    if ((a & 0xfff00000u) == 0xac100000u) /* 172.16.0.0/12 */
        return "a private";
    if ((a & 0xffffff00u) == 0xc0000000u) /* 192.0.0.0/24 */
        return "a reserved";
    if ((a & 0xffff0000u) == 0xc0a80000u) /* 192.168.0.0/16 */
        return "a private";
    if ((a & 0xfffe0000u) == 0xc6120000u) /* 198.18.0.0/15 */
        return "a reserved";
    if (a == 0xffffffffu)
        return "a broadcast";
    if ((a & 0xf0000000u) == 0xe0000000u) /* 224.0.0.0/4 */
        return "a multicast";
    if ((a & 0xf0000000u) == 0xf0000000u) /* 240.0.0.0/4 */
        return "a reserved";
    return NULL;
}

static uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static const char *ipv6_kind(const uint8_t *b)
{
    static const uint8_t zero[16];
    static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64_prefix[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (memcmp(b, zero, 16) == 0)
        return "an unspecified";
    if (memcmp(b, zero, 15) == 0 && b[15] == 1)
        return "a loopback";
    /* IPv4-mapped and NAT64 (64:ff9b::/96) addresses reach the embedded IPv4 address, so that one decides. */
    if (memcmp(b, mapped_prefix, 12) == 0 || memcmp(b, nat64_prefix, 12) == 0)
        return ipv4_kind(load_be32(b + 12));
    if ((b[0] & 0xfe) == 0xfc) /* fc00::/7 */
        return "a private";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) /* fe80::/10 */
        return "a link-local";
    if (b[0] == 0xff) /* ff00::/8 */
        return "a multicast";
    return NULL;
}

int url_policy_check_addr(const struct sockaddr *sa, int allow_private, char *err, size_t errlen)
{
    char text[INET6_ADDRSTRLEN];
    const char *kind;

    if (sa == NULL)
        return fail(err, errlen, "missing address");
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        kind = ipv4_kind(ntohl(sin.sin_addr.s_addr));
        if (inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text)) == NULL)
            snprintf(text, sizeof(text), "IPv4 address");
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        kind = ipv6_kind(sin6.sin6_addr.s6_addr);
        if (inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text)) == NULL)
            snprintf(text, sizeof(text), "IPv6 address");
    } else {
        /* Only IP targets are reachable over http(s); anything else (a UNIX socket) is never an outbound
         * peer. */
        return fail(err, errlen, "not an IP address");
    }
    if (kind == NULL || allow_private)
        return 0;
    if (errlen > 0)
        snprintf(err, errlen, "%s is %s address", text, kind);
    return -1;
}
