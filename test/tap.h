/* A minimal TAP producer for the C tests (meson runs them with protocol 'tap'). Each check prints one
 * "ok N - ..." or "not ok N - ..." line; tap_done prints the plan and returns the exit status. */
#ifndef INKLOOP_TEST_TAP_H
#define INKLOOP_TEST_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed;

#define TAP_OK(cond, ...)                                                                                    \
    do {                                                                                                     \
        int tap_c_ = (cond) ? 1 : 0;                                                                         \
        tap_count++;                                                                                         \
        if (!tap_c_)                                                                                         \
            tap_failed++;                                                                                    \
        printf("%sok %d - ", tap_c_ ? "" : "not ", tap_count);                                               \
        printf(__VA_ARGS__);                                                                                 \
        printf("\n");                                                                                        \
        if (!tap_c_)                                                                                         \
            printf("# failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                                    \
        fflush(stdout);                                                                                      \
    } while (0)

#define TAP_IS_INT(got, want, ...)                                                                           \
    do {                                                                                                     \
        long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);                                     \
        TAP_OK(tap_g_ == tap_w_, __VA_ARGS__);                                                               \
        if (tap_g_ != tap_w_)                                                                                \
            printf("#   got %lld, want %lld\n", tap_g_, tap_w_);                                             \
    } while (0)

#define TAP_IS_STR(got, want, ...)                                                                           \
    do {                                                                                                     \
        const char *tap_g_ = (got), *tap_w_ = (want);                                                        \
        int tap_eq_ = (tap_g_ == NULL && tap_w_ == NULL) ||                                                  \
                      (tap_g_ != NULL && tap_w_ != NULL && strcmp(tap_g_, tap_w_) == 0);                     \
        TAP_OK(tap_eq_, __VA_ARGS__);                                                                        \
        if (!tap_eq_)                                                                                        \
            printf("#   got \"%s\", want \"%s\"\n", tap_g_ ? tap_g_ : "(null)", tap_w_ ? tap_w_ : "(null)"); \
    } while (0)

/** Prints the plan; returns the process exit status (0 only when something ran and nothing failed). */
static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return (tap_failed == 0 && tap_count > 0) ? 0 : 1;
}

#endif
