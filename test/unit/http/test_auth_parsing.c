/* The pure helpers of http/auth.c: credential classification, the Cookie header parser, email and username
 * validation. */
#include "http/auth.h"
#include "tap.h"

#include <string.h>

static const char *cred_name(auth_cred_t c)
{
    switch (c) {
    case AUTH_CRED_NONE:
        return "none";
    case AUTH_CRED_BAD:
        return "bad";
    case AUTH_CRED_JWT:
        return "jwt";
    case AUTH_CRED_KEY:
        return "key";
    }
    return "?";
}

/* Classifies (authorization, x-api-key) and checks the kind and the credential it points at. */
static void cred_is(const char *authz, const char *key, auth_cred_t want, const char *want_cred)
{
    const char *c = (const char *)1;
    size_t n = 99;
    auth_cred_t got = auth_credential(authz, authz ? strlen(authz) : 0, key, key ? strlen(key) : 0, &c, &n);
    char buf[128] = "";
    if (c != NULL && c != (const char *)1 && n < sizeof(buf))
        memcpy(buf, c, n), buf[n] = '\0';
    int same =
        got == want && (want_cred == NULL ? c == NULL && n == 0 : (c != NULL && strcmp(buf, want_cred) == 0));
    TAP_OK(same, "Authorization %s%s%s, X-API-Key %s%s%s -> %s \"%s\"", authz ? "\"" : "",
           authz ? authz : "(none)", authz ? "\"" : "", key ? "\"" : "", key ? key : "(none)",
           key ? "\"" : "", cred_name(want), want_cred ? want_cred : "");
    if (!same)
        printf("#   got %s \"%s\"\n", cred_name(got), c ? buf : "(null)");
}

static void cookie_is(const char *header, const char *name, const char *want)
{
    const char *v = NULL;
    size_t n = 0;
    int found = auth_cookie_value(header, strlen(header), name, &v, &n);
    char buf[256] = "";
    if (found && n < sizeof(buf))
        memcpy(buf, v, n), buf[n] = '\0';
    int same = want == NULL ? !found : (found && strcmp(buf, want) == 0);
    TAP_OK(same, "cookie %s in \"%s\" -> %s", name, header, want ? want : "(absent)");
    if (!same)
        printf("#   got %s \"%s\"\n", found ? "found" : "absent", buf);
}

int main(void)
{
    /* Credentials. */
    cred_is(NULL, NULL, AUTH_CRED_NONE, NULL);
    cred_is("", NULL, AUTH_CRED_NONE, NULL);
    cred_is("Bearer", NULL, AUTH_CRED_NONE, NULL);
    cred_is("Bearer ", NULL, AUTH_CRED_NONE, NULL);
    cred_is("Bearer    ", NULL, AUTH_CRED_NONE, NULL);
    cred_is("Bearer eyJ.a.b", NULL, AUTH_CRED_JWT, "eyJ.a.b");
    cred_is("bearer eyJ.a.b", NULL, AUTH_CRED_JWT, "eyJ.a.b");
    cred_is("BEARER  eyJ.a.b  ", NULL, AUTH_CRED_JWT, "eyJ.a.b");
    cred_is("Bearer\teyJ.a.b", NULL, AUTH_CRED_JWT, "eyJ.a.b");
    cred_is("Bearereyj.a.b", NULL, AUTH_CRED_BAD, NULL);
    cred_is("Basic dXNlcjpwYXNz", NULL, AUTH_CRED_BAD, NULL);
    cred_is("Token abc", NULL, AUTH_CRED_BAD, NULL);
    cred_is("Bearer sk_abc", NULL, AUTH_CRED_KEY, "sk_abc");
    cred_is("Bearer sk_", NULL, AUTH_CRED_JWT, "sk_");
    cred_is(NULL, "sk_abc", AUTH_CRED_KEY, "sk_abc");
    cred_is(NULL, " sk_abc ", AUTH_CRED_KEY, "sk_abc");
    cred_is(NULL, "", AUTH_CRED_NONE, NULL);
    cred_is(NULL, "eyJ.a.b", AUTH_CRED_BAD, NULL);
    cred_is(NULL, "SK_abc", AUTH_CRED_BAD, NULL);
    cred_is("Bearer eyJ.a.b", "sk_abc", AUTH_CRED_JWT, "eyJ.a.b");
    cred_is("Basic x", "sk_abc", AUTH_CRED_BAD, NULL);

    /* Cookies. */
    cookie_is("refresh_token=abc", "refresh_token", "abc");
    cookie_is("a=1; refresh_token=abc; b=2", "refresh_token", "abc");
    cookie_is("a=1;refresh_token=abc;b=2", "refresh_token", "abc");
    cookie_is("refresh_token=\"abc\"", "refresh_token", "abc");
    cookie_is("refresh_token=\"\"", "refresh_token", "");
    cookie_is("refresh_token=", "refresh_token", "");
    cookie_is("refresh_token = abc ", "refresh_token", "abc");
    cookie_is("xrefresh_token=abc", "refresh_token", NULL);
    cookie_is("refresh_token_old=abc", "refresh_token", NULL);
    cookie_is("refresh_tokenabc", "refresh_token", NULL);
    cookie_is("a=refresh_token=abc", "refresh_token", NULL);
    cookie_is("", "refresh_token", NULL);
    cookie_is(";;; ;", "refresh_token", NULL);
    cookie_is("refresh_token=a=b", "refresh_token", "a=b");
    cookie_is("refresh_token=first; refresh_token=second", "refresh_token", "first");
    cookie_is("\"", "refresh_token", NULL);
    cookie_is("refresh_token=\"", "refresh_token", "\"");
    /* Not NUL-terminated: the parser must stay within len. */
    {
        const char hdr[] = "refresh_token=abcdef";
        const char *v = NULL;
        size_t n = 0;
        int found = auth_cookie_value(hdr, 17, "refresh_token", &v, &n);
        TAP_OK(found && n == 3 && memcmp(v, "abc", 3) == 0, "the parser stops at len (value cut to \"abc\")");
    }

    /* Emails. */
    static const char *good_emails[] = {"a@b.co",
                                        "first.last+tag@example.com",
                                        "x@sub.domain.example.org",
                                        "Alice@Example.COM",
                                        "\xc3\xa9l\xc3\xa8ve@\xc3\xa9"
                                        "cole.fr",
                                        "a_b-c@x-y.io"};
    for (size_t i = 0; i < sizeof(good_emails) / sizeof(*good_emails); i++)
        TAP_IS_INT(auth_email_ok(good_emails[i]), 1, "email accepted: %s", good_emails[i]);
    static const char *bad_emails[] = {"",
                                       "plain",
                                       "@example.com",
                                       "a@",
                                       "a@b",
                                       "a@.com",
                                       "a@example.",
                                       "a@@example.com",
                                       "a@b@example.com",
                                       "a b@example.com",
                                       "a@exa mple.com",
                                       "a\t@example.com",
                                       "a\x7f@example.com",
                                       "a\x01@example.com",
                                       "<a@example.com>",
                                       "a@example.com;b",
                                       "a,b@example.com",
                                       "(a)@example.com",
                                       "a\xc2\xa0"
                                       "b@example.com",
                                       "a\xe2\x80\x8b"
                                       "b@example.com",
                                       "a\xe3\x80\x80"
                                       "b@example.com",
                                       "\xef\xbb\xbf"
                                       "a@example.com",
                                       "a@example.com\xe2\x80\xa8",
                                       "a\xc2\x85"
                                       "b@example.com"};
    for (size_t i = 0; i < sizeof(bad_emails) / sizeof(*bad_emails); i++)
        TAP_IS_INT(auth_email_ok(bad_emails[i]), 0, "email refused (#%zu)", i);
    char longmail[400];
    memset(longmail, 'a', sizeof(longmail));
    memcpy(longmail + 300, "@example.com", 13);
    TAP_IS_INT(auth_email_ok(longmail), 1, "email of 312 bytes accepted");
    memset(longmail, 'a', sizeof(longmail));
    memcpy(longmail + 310, "@example.com", 13);
    TAP_IS_INT(auth_email_ok(longmail), 0, "email of 322 bytes refused");
    /* A truncated UTF-8 sequence at the end must not be read past. */
    TAP_IS_INT(auth_email_ok("a@example.com\xe2"), 0,
               "a lone lead byte at the end is refused (and not read past)");

    /* Usernames (length is the validator's job). */
    static const char *good_users[] = {"abc", "A.b-c_9", "___", "...", "a"};
    for (size_t i = 0; i < sizeof(good_users) / sizeof(*good_users); i++)
        TAP_IS_INT(auth_username_ok(good_users[i]), 1, "username accepted: %s", good_users[i]);
    static const char *bad_users[] = {"a b", "a!", "a@b", "caf\xc3\xa9", "a/b", "a\tb", "a+b", "a'b"};
    for (size_t i = 0; i < sizeof(bad_users) / sizeof(*bad_users); i++)
        TAP_IS_INT(auth_username_ok(bad_users[i]), 0, "username refused: %s", bad_users[i]);

    return tap_done();
}
