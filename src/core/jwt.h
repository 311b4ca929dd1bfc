/* HS256 JSON Web Tokens for access tokens: sub = user id, exp, iat. Nothing but HS256 is accepted. */
#ifndef INKLOOP_CORE_JWT_H
#define INKLOOP_CORE_JWT_H

#include <stddef.h>
#include <stdint.h>

/** Signs an access token for sub valid from now_s for ttl_s seconds; returns a malloc'd string. */
char *jwt_sign(const char *secret, const char *sub, int64_t now_s, int64_t ttl_s);
/** Clocks of processes signing and verifying may differ by this much: the bounds on exp and iat that depend
 * on now allow it. */
#define JWT_CLOCK_SKEW_S 60

/** Verifies token: three base64url parts, header alg exactly "HS256", a valid signature, exp after now_s,
 * and a string sub of at most subcap-1 bytes copied into sub. The lifetime is bounded by max_ttl_s even when
 * the signature is valid (a leaked secret or a signing bug must not mint a token that lasts for years): exp
 * is at most max_ttl_s past iat when iat is present, and at most max_ttl_s (plus JWT_CLOCK_SKEW_S) past
 * now_s; an iat must be a number not in the future. Returns 0, or -1 with a reason in err. */
int jwt_verify(const char *secret, const char *token, size_t len, int64_t now_s, int64_t max_ttl_s, char *sub,
               size_t subcap, char *err, size_t errlen);

#endif
