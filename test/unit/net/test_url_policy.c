/* url_policy: which URLs and which connected addresses are allowed as outbound targets. */
#include "net/url_policy.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* Builds a sockaddr for text (IPv4 or IPv6) and runs the address check. */
static int check(const char *text, int allow_private, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(80);
    } else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(80);
    } else {
        return -2;
    }
    err[0] = '\0';
    return url_policy_check_addr((const struct sockaddr *)&ss, allow_private, err, errlen);
}

static void test_refused_addresses(void)
{
    static const struct {
        const char *addr;
        const char *msg;
    } cases[] = {
        {"0.0.0.0", "0.0.0.0 is an unspecified address"},
        {"0.1.2.3", "0.1.2.3 is an unspecified address"},
        {"10.0.0.1", "10.0.0.1 is a private address"},
        {"10.255.255.255", "10.255.255.255 is a private address"},
        {"100.64.0.1", "100.64.0.1 is a carrier-grade NAT address"},
        {"100.127.255.254", "100.127.255.254 is a carrier-grade NAT address"},
        {"127.0.0.1", "127.0.0.1 is a loopback address"},
        {"127.1.2.3", "127.1.2.3 is a loopback address"},
        {"169.254.169.254", "169.254.169.254 is a link-local address"},
        {"172.16.0.1", "172.16.0.1 is a private address"},
        {"172.31.255.255", "172.31.255.255 is a private address"},
        {"192.0.0.8", "192.0.0.8 is a reserved address"},
        {"192.168.1.1", "192.168.1.1 is a private address"},
        {"198.18.0.1", "198.18.0.1 is a reserved address"},
        {"198.19.255.255", "198.19.255.255 is a reserved address"},
        {"224.0.0.1", "224.0.0.1 is a multicast address"},
        {"239.255.255.250", "239.255.255.250 is a multicast address"},
        {"240.0.0.1", "240.0.0.1 is a reserved address"},
        {"255.255.255.255", "255.255.255.255 is a broadcast address"},
        {"::", ":: is an unspecified address"},
        {"::1", "::1 is a loopback address"},
        {"fc00::1", "fc00::1 is a private address"},
        {"fd12:3456::1", "fd12:3456::1 is a private address"},
        {"fe80::1", "fe80::1 is a link-local address"},
        {"febf::1", "febf::1 is a link-local address"},
        {"ff02::1", "ff02::1 is a multicast address"},
        {"::ffff:127.0.0.1", "::ffff:127.0.0.1 is a loopback address"},
        {"::ffff:10.1.2.3", "::ffff:10.1.2.3 is a private address"},
        {"::ffff:169.254.169.254", "::ffff:169.254.169.254 is a link-local address"},
        {"64:ff9b::7f00:1", "64:ff9b::7f00:1 is a loopback address"},
        {"64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe is a link-local address"},
    };
    char err[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TAP_IS_INT(check(cases[i].addr, 0, err, sizeof(err)), -1, "%s refused", cases[i].addr);
        TAP_IS_STR(err, cases[i].msg, "%s: reason", cases[i].addr);
        TAP_IS_INT(check(cases[i].addr, 1, err, sizeof(err)), 0, "%s allowed with allow_private",
                   cases[i].addr);
    }
}

static void test_allowed_addresses(void)
{
    static const char *const cases[] = {
        "1.1.1.1",        "8.8.8.8",         "9.255.255.255",        "11.0.0.1",
        "100.63.255.255", "100.128.0.1",     "126.255.255.255",      "128.0.0.1",
        "169.253.1.1",    "169.255.0.1",     "172.15.255.255",       "172.32.0.1",
        "192.0.1.1",      "192.167.1.1",     "192.169.0.1",          "198.17.255.255",
        "198.20.0.1",     "223.255.255.255", "93.184.216.34",        "2606:4700::1111",
        "2001:db8::1",    "::ffff:8.8.8.8",  "64:ff9b::808:808",     "fbff::1",
        "fec0::1",        "fe7f::1",         "2a00:1450:4001::200e",
    };
    char err[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = check(cases[i], 0, err, sizeof(err));
        TAP_IS_INT(rc, 0, "%s allowed", cases[i]);
        if (rc != 0)
            printf("#   reason: %s\n", err);
    }
}

static void test_non_ip_family(void)
{
    struct sockaddr sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_family = AF_UNIX;
    char err[64];
    TAP_IS_INT(url_policy_check_addr(&sa, 0, err, sizeof(err)), -1, "AF_UNIX refused");
    TAP_IS_STR(err, "not an IP address", "AF_UNIX reason");
}

static void test_urls(void)
{
    static const char *const good[] = {
        "http://example.com",        "https://example.com/",       "HTTPS://Example.COM/path?q=1#frag",
        "http://example.com:8080/x", "https://[2606:4700::1111]/", "https://[2606:4700::1111]:8443/a",
        "http://127.0.0.1:9/",       "https://example.com?x=a@b",  "https://example.com/a@b",
        "https://example.com#@evil",
    };
    char err[128];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int rc = url_policy_check_url(good[i], err, sizeof(err));
        TAP_IS_INT(rc, 0, "allowed: %s", good[i]);
        if (rc != 0)
            printf("#   reason: %s\n", err);
    }

    static const struct {
        const char *url;
        const char *msg;
    } bad[] = {
        {"", "missing URL"},
        {"ftp://example.com/", "scheme must be http or https"},
        {"file:///etc/passwd", "scheme must be http or https"},
        {"gopher://example.com", "scheme must be http or https"},
        {"httpx://example.com", "scheme must be http or https"},
        {"example.com/path", "scheme must be http or https"},
        {"//example.com/", "scheme must be http or https"},
        {"http:/example.com", "scheme must be http or https"},
        {"http://", "missing host"},
        {"http:///path", "missing host"},
        {"http://:80/", "missing host"},
        {"http://[]/", "missing host"},
        {"http://user@example.com/", "user info is not allowed"},
        {"http://user:pw@example.com/", "user info is not allowed"},
        {"http://example.com@127.0.0.1/", "user info is not allowed"},
        {"http://evil.com\\@127.0.0.1/", "backslash in host"},
        {"http://exa mple.com/", "contains whitespace or control characters"},
        {"http://example.com/a b", "contains whitespace or control characters"},
        {"http://example.com/\r\nX: y", "contains whitespace or control characters"},
        {"http://example.com/\t", "contains whitespace or control characters"},
        {" http://example.com/", "contains whitespace or control characters"},
        {"http://example.com:abc/", "bad port"},
        {"http://example.com:/", "bad port"},
        {"http://example.com:0/", "bad port"},
        {"http://example.com:65536/", "bad port"},
        {"http://[::1/", "unterminated IPv6 address"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        TAP_IS_INT(url_policy_check_url(bad[i].url, err, sizeof(err)), -1, "refused: case %zu", i);
        TAP_IS_STR(err, bad[i].msg, "reason: case %zu", i);
    }

    TAP_IS_INT(url_policy_check_url(NULL, err, sizeof(err)), -1, "NULL refused");

    char longurl[2100];
    memcpy(longurl, "http://example.com/", 19);
    memset(longurl + 19, 'a', sizeof(longurl) - 20);
    longurl[sizeof(longurl) - 1] = '\0';
    TAP_IS_INT(url_policy_check_url(longurl, err, sizeof(err)), -1, "URL over 2048 characters refused");
    TAP_IS_STR(err, "longer than 2048 characters", "long URL reason");
    longurl[2048] = '\0';
    TAP_IS_INT(url_policy_check_url(longurl, err, sizeof(err)), 0, "URL of exactly 2048 characters allowed");

    /* A tiny error buffer truncates, never overflows. */
    char tiny[4];
    TAP_IS_INT(url_policy_check_url("ftp://x", tiny, sizeof(tiny)), -1, "tiny buffer still refuses");
    TAP_IS_STR(tiny, "sch", "tiny buffer truncated");
}

/* Forms the policy allows or refuses the same way whichever parser reads them: user info in every spelling,
 * IPv6 literals, percent-encoded hosts (the address check at connect time still judges what they name),
 * scheme case, missing hosts and trailing dots. */
static void test_url_forms(void)
{
    static const char *const good[] = {
        "HTTP://EXAMPLE.COM/",
        "HtTpS://example.com",
        "http://example.com./",
        "http://example.com../",
        "http://ex%61mple.com/",
        "http://%31%32%37.0.0.1/",
        "http://[::1]",
        "http://[::1]:65535/",
        "http://[::ffff:127.0.0.1]:8080/",
        "http://[fe80::1%25eth0]/",
        "http://example.com:65535/",
        "http://example.com:080/",
        "http://example.com/a\\b",
    };
    char err[128];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int rc = url_policy_check_url(good[i], err, sizeof(err));
        TAP_IS_INT(rc, 0, "allowed: %s", good[i]);
        if (rc != 0)
            printf("#   reason: %s\n", err);
    }
    static const struct {
        const char *url;
        const char *msg;
    } bad[] = {
        {"http://@example.com/", "user info is not allowed"},
        {"http://:@example.com/", "user info is not allowed"},
        {"http://user:@example.com", "user info is not allowed"},
        {"http://a%40b@example.com/", "user info is not allowed"},
        {"http://a@b@example.com/", "user info is not allowed"},
        {"https://u:p@[::1]:8443/", "user info is not allowed"},
        {"http://a\\b.com/", "backslash in host"},
        {"http://?x", "missing host"},
        {"http://#x", "missing host"},
        {"http://:/", "missing host"},
        {"http:///", "missing host"},
        {"HTTP:///example.com/", "missing host"},
        {"HTTP:/example.com", "scheme must be http or https"},
        {"http:example.com", "scheme must be http or https"},
        {"FTP://example.com/", "scheme must be http or https"},
        {"http://[::1]x/", "bad host"},
        {"http://[::1]:/", "bad port"},
        {"http://[::1]:0/", "bad port"},
        {"http://example.com:99999999999999999999/", "bad port"},
        {"http://example.com:-1/", "bad port"},
        {"http://example.com:8080x/", "bad port"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        TAP_IS_INT(url_policy_check_url(bad[i].url, err, sizeof(err)), -1, "refused: %s", bad[i].url);
        TAP_IS_STR(err, bad[i].msg, "reason: %s", bad[i].url);
    }
}

/* Hosts curl cannot connect to are refused when the URL is checked, not later at connect time: the check
 * uses curl's own parser, so what it allows is what curl will read. */
static void test_url_curl_rejects(void)
{
    static const struct {
        const char *url;
        const char *msg;
    } bad[] = {
        {"http://[zz]/", "bad host"},           {"http://[1.2.3.4]/", "bad host"},
        {"http://exa%20mple.com/", "bad host"}, {"http://%2F/", "bad host"},
        {"http://a.b;x/", "bad host"},
    };
    char err[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        TAP_IS_INT(url_policy_check_url(bad[i].url, err, sizeof(err)), -1, "refused: %s", bad[i].url);
        TAP_IS_STR(err, bad[i].msg, "reason: %s", bad[i].url);
    }
}

int main(void)
{
    test_refused_addresses();
    test_allowed_addresses();
    test_non_ip_family();
    test_urls();
    test_url_forms();
    test_url_curl_rejects();
    return tap_done();
}
