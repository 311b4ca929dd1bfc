/* The pure rules of the accounts module: how the login/signup throttle derives a client address, and how
 * often one process writes an API key's last_used_at. */
#include "accounts/accounts.h"
#include "tap.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static void addresses(void)
{
    /* Client addresses for the login throttle. */
    static const struct {
        const char *xff, *want;
    } fwd[] = {
        {"203.0.113.7", "203.0.113.7"},
        {"198.51.100.1, 203.0.113.7", "203.0.113.7"},
        {"198.51.100.1,203.0.113.7 ", "203.0.113.7"},
        {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
        {"10.0.0.1, 2001:DB8:1:2::ffff", "2001:db8:1:2::/64"},
        {"::ffff:192.0.2.9", "192.0.2.9"},
    };
    char addr[64];
    for (size_t i = 0; i < sizeof(fwd) / sizeof(*fwd); i++) {
        int rc = accounts_forwarded_addr(fwd[i].xff, strlen(fwd[i].xff), addr, sizeof(addr));
        TAP_OK(rc == 0 && strcmp(addr, fwd[i].want) == 0, "X-Forwarded-For \"%s\" counts as %s (got %s)",
               fwd[i].xff, fwd[i].want, rc == 0 ? addr : "an error");
    }
    static const char *bad_fwd[] = {"",
                                    " ",
                                    "203.0.113.7, ",
                                    "203.0.113.7, unknown",
                                    "example.com",
                                    "203.0.113.7:8080",
                                    "[2001:db8::1]",
                                    "999.1.1.1"};
    for (size_t i = 0; i < sizeof(bad_fwd) / sizeof(*bad_fwd); i++)
        TAP_IS_INT(accounts_forwarded_addr(bad_fwd[i], strlen(bad_fwd[i]), addr, sizeof(addr)), -1,
                   "X-Forwarded-For \"%s\" is not an address", bad_fwd[i]);
    TAP_IS_INT(accounts_forwarded_addr("203.0.113.7", 11, addr, 8), -1,
               "an address longer than out is refused");
    struct sockaddr_in6 six;
    memset(&six, 0, sizeof(six));
    six.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8:aa:bb:1:2:3:4", &six.sin6_addr);
    TAP_IS_INT(accounts_addr_text((const struct sockaddr *)&six, addr, sizeof(addr)), 0, "an IPv6 peer");
    TAP_IS_STR(addr, "2001:db8:aa:bb::/64", "counts by its /64");
    struct sockaddr unix_sa = {.sa_family = AF_UNIX};
    TAP_IS_INT(accounts_addr_text(&unix_sa, addr, sizeof(addr)), -1, "another family is refused");
    struct sockaddr_in four;
    memset(&four, 0, sizeof(four));
    four.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.33", &four.sin_addr);
    TAP_IS_INT(accounts_addr_text((const struct sockaddr *)&four, addr, sizeof(addr)), 0, "an IPv4 peer");
    TAP_IS_STR(addr, "192.0.2.33", "counts as itself");
    inet_pton(AF_INET6, "::ffff:198.51.100.4", &six.sin6_addr);
    TAP_IS_INT(accounts_addr_text((const struct sockaddr *)&six, addr, sizeof(addr)), 0, "a v4-mapped peer");
    TAP_IS_STR(addr, "198.51.100.4", "counts as its IPv4 address");
    inet_pton(AF_INET6, "2001:db8:aa:bb:ffff::1", &six.sin6_addr);
    TAP_IS_INT(accounts_addr_text((const struct sockaddr *)&six, addr, sizeof(addr)), 0,
               "another host of the /64");
    TAP_IS_STR(addr, "2001:db8:aa:bb::/64", "shares its count");
    TAP_IS_INT(accounts_addr_text((const struct sockaddr *)&six, addr, 19), -1,
               "a /64 longer than out is refused");
}

static void touches(void)
{
    static accounts_touch_table_t t;
    const char *a = "0b0e6f8a-3d2c-4d4e-9a51-6c7f1d2e3f40";
    TAP_IS_INT(accounts_touch_due(&t, a, 1000000), 1, "a key not seen yet is written");
    TAP_IS_INT(accounts_touch_due(&t, a, 1000001), 0, "the same key a millisecond later is not");
    TAP_IS_INT(accounts_touch_due(&t, a, 1000000 + ACCOUNTS_KEY_TOUCH_MS - 1), 0, "nor just before a minute");
    TAP_IS_INT(accounts_touch_due(&t, a, 1000000 + ACCOUNTS_KEY_TOUCH_MS), 1, "a minute later it is again");
    TAP_IS_INT(accounts_touch_due(&t, a, 1000000 + ACCOUNTS_KEY_TOUCH_MS + 1), 0,
               "and the minute counts from that write");
    /* Keys sharing a slot evict each other: each is written again (a lost suppression, never a lost write).
     */
    char ids[ACCOUNTS_TOUCH_SLOTS + 1][37];
    int due = 0;
    for (int i = 0; i <= ACCOUNTS_TOUCH_SLOTS; i++) {
        snprintf(ids[i], sizeof(ids[i]), "00000000-0000-4000-8000-%012d", i);
        due += accounts_touch_due(&t, ids[i], 5000000);
    }
    TAP_IS_INT(due, ACCOUNTS_TOUCH_SLOTS + 1, "every new key is written once");
    int again = 0;
    for (int i = 0; i <= ACCOUNTS_TOUCH_SLOTS; i++)
        again += accounts_touch_due(&t, ids[i], 5000001);
    TAP_OK(again >= 1 && again <= ACCOUNTS_TOUCH_SLOTS,
           "%d of %d written again: only those whose slot was taken", again, ACCOUNTS_TOUCH_SLOTS + 1);
}

int main(void)
{
    addresses();
    touches();
    return tap_done();
}
