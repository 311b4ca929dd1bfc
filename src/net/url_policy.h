/* Which outbound targets are allowed (API.md section 6): http and https only, with a host, and never a
 * loopback, private, link-local, multicast or unspecified address unless private targets are allowed. The
 * address check runs on the address curl is about to connect to, so DNS cannot switch after the check. */
#ifndef INKLOOP_NET_URL_POLICY_H
#define INKLOOP_NET_URL_POLICY_H

#include <stddef.h>
#include <sys/socket.h>

/** Checks the form of a URL, as curl's own parser (curl_url) reads it: http or https scheme spelled
 * "scheme://", a host curl can parse, no user info, a port in 1..65535 when given, no control characters or
 * spaces. Returns 0, or -1 with the reason in err. Does not resolve anything. */
int url_policy_check_url(const char *url, char *err, size_t errlen);
/** Checks one address (IPv4 or IPv6, IPv4-mapped IPv6 judged as IPv4). Returns 0 when allowed, or -1 with a
 * reason such as "127.0.0.1 is a loopback address" in err. */
int url_policy_check_addr(const struct sockaddr *sa, int allow_private, char *err, size_t errlen);

#endif
