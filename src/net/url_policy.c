#include "net/url_policy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer URLs are refused: no legitimate webhook or article source needs more, and it bounds what we log. */
#define URL_MAX_LEN 2048

static int fail(char *err, size_t errlen, const char *reason)
{
    if (errlen > 0)
        snprintf(err, errlen, "%s", reason);
    return -1;
}

/* The authority as written (after "scheme://", up to the path, query or fragment), or NULL when the URL does
 * not spell "://". curl's parse decides everything; this only words its refusals as before and catches the
 * two spellings curl tolerates that the policy does not. */
static const char *raw_authority(const char *url, size_t *len)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return NULL;
    *len = strcspn(sep + 3, "/?#");
    return sep + 3;
}

/* Words a refusal of curl_url_set as the policy always has. */
static int refuse_parse(CURLUcode rc, const char *url, char *err, size_t errlen)
{
    size_t alen = 0;
    const char *auth = raw_authority(url, &alen);
    if (auth == NULL)
        auth = "";
    const char *close = memchr(auth, ']', alen);
    switch (rc) {
    case CURLUE_BAD_SCHEME:
    case CURLUE_UNSUPPORTED_SCHEME:
    case CURLUE_BAD_SLASHES:
        return fail(err, errlen, "scheme must be http or https");
    case CURLUE_NO_HOST:
        return fail(err, errlen, "missing host");
    case CURLUE_BAD_IPV6:
        if (alen >= 2 && auth[0] == '[' && auth[1] == ']')
            return fail(err, errlen, "missing host");
        return fail(err, errlen, close == NULL ? "unterminated IPv6 address" : "bad host");
    case CURLUE_BAD_PORT_NUMBER:
        /* curl reads whatever follows "]" as the port; "[::1]x" is a malformed host to us. */
        if (close != NULL && close + 1 < auth + alen && close[1] != ':')
            return fail(err, errlen, "bad host");
        return fail(err, errlen, "bad port");
    case CURLUE_BAD_LOGIN:
    case CURLUE_BAD_USER:
    case CURLUE_BAD_PASSWORD:
        return fail(err, errlen, "user info is not allowed");
    case CURLUE_BAD_HOSTNAME:
        /* A backslash is a path separator to browsers but not to curl; refusing it keeps both readings equal.
         */
        if (memchr(auth, '\\', alen) != NULL)
            return fail(err, errlen, "backslash in host");
        if (memchr(auth, '@', alen) != NULL)
            return fail(err, errlen, "user info is not allowed");
        return fail(err, errlen, "bad host");
    default:
        if (errlen > 0)
            snprintf(err, errlen, "malformed URL (%s)", curl_url_strerror(rc));
        return -1;
    }
}

/* The value of one part, or NULL when the URL has none (curl_url_get says CURLUE_NO_*). Free with curl_free.
 */
static char *part(CURLU *u, CURLUPart what)
{
    char *v = NULL;
    if (curl_url_get(u, what, &v, 0) != CURLUE_OK)
        return NULL;
    return v;
}

/* Applies the policy to what curl parsed. */
static int check_parts(CURLU *u, const char *url, char *err, size_t errlen)
{
    char *scheme = part(u, CURLUPART_SCHEME);
    char *user = part(u, CURLUPART_USER);
    char *password = part(u, CURLUPART_PASSWORD);
    char *options = part(u, CURLUPART_OPTIONS);
    char *host = part(u, CURLUPART_HOST);
    char *port = part(u, CURLUPART_PORT);
    size_t alen = 0;
    const char *auth = raw_authority(url, &alen);
    size_t slen = scheme != NULL ? strlen(scheme) : 0;
    int rc = 0;

    if (scheme == NULL || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        strncmp(url + slen, "://", 3) != 0)
        /* curl also reads "http:/host"; other parsers do not, so only "scheme://" is allowed. */
        rc = fail(err, errlen, "scheme must be http or https");
    else if (user != NULL || password != NULL || options != NULL)
        rc = fail(err, errlen,
                  memchr(auth, '\\', alen) != NULL ? "backslash in host" : "user info is not allowed");
    else if (host == NULL || host[0] == '\0' || alen == 0)
        /* curl reads "http:///path" as host "path". */
        rc = fail(err, errlen, "missing host");
    else if (auth[alen - 1] == ':' || (port != NULL && strcmp(port, "0") == 0))
        /* curl takes an empty port as the default one. */
        rc = fail(err, errlen, "bad port");

    curl_free(scheme);
    curl_free(user);
    curl_free(password);
    curl_free(options);
    curl_free(host);
    curl_free(port);
    return rc;
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

    /* The URL is read by curl's own parser, the one it connects with, so what passes here is what curl will
     * reach. CURLU_NON_SUPPORT_SCHEME lets a scheme this curl does not know parse, to be refused by name. */
    CURLU *u = curl_url();
    if (u == NULL) {
        fprintf(stderr, "inkloop: out of memory\n");
        abort();
    }
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    int ret = rc == CURLUE_OK ? check_parts(u, url, err, errlen) : refuse_parse(rc, url, err, errlen);
    curl_url_cleanup(u);
    return ret;
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
