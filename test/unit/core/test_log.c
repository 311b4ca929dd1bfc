/* The rate limit of repeated warnings (issue 9 point 4): per call site, a burst per period, then one summary
 * line with the count; other kinds, info lines and other threads are not held back; nothing is lost
 * uncounted. stderr is redirected to a temporary file and read back. */
#include "core/log.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd;
static off_t read_pos;

/* What was logged since the last call (malloc'd, NUL-terminated). */
static char *take_log(void)
{
    off_t end = lseek(log_fd, 0, SEEK_END);
    size_t n = (size_t)(end - read_pos);
    char *out = malloc(n + 1);
    ssize_t got = pread(log_fd, out, n, read_pos);
    out[got > 0 ? (size_t)got : 0] = '\0';
    read_pos = end;
    return out;
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The sum of the counts of the summary lines in text. */
static unsigned long long suppressed_total(const char *text)
{
    unsigned long long total = 0;
    for (const char *p = text; (p = strstr(p, "] ")) != NULL; p += 2) {
        unsigned long long k;
        if (sscanf(p + 2, "%llu more lines like", &k) == 1 &&
            strncmp(strchr(p + 2, ' '), " more lines", 11) == 0)
            total += k;
    }
    return total;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One call site used with several actions (like kit_db_failed's "database unavailable: %s"). */
static void site(const char *action, int i)
{
    log_warn(action, "database unavailable: request %d", i);
}

static void *thread_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        site("in a thread", i);
    return NULL;
}

int main(void)
{
    char path[] = "/tmp/inkloop-test-log-XXXXXX";
    log_fd = mkstemp(path);
    if (log_fd < 0 || dup2(log_fd, STDERR_FILENO) < 0) {
        printf("Bail out! cannot redirect stderr\n");
        return 1;
    }
    unlink(path);
    log_setup(LOG_LEVEL_INFO, 0);
    TAP_IS_INT(LOG_RATE_BURST, 5, "default burst: 5 lines of a kind per period");
    log_set_rate_limit(5, 300);

    for (int i = 0; i < 1000; i++)
        site("serving a request", i);
    for (int i = 0; i < 3; i++)
        log_warn("serving a request", "another warning %d", i);
    for (int i = 0; i < 8; i++)
        site("authenticating", i);
    for (int i = 0; i < 100; i++)
        log_info("serving a request", "info line %d", i);
    char *t = take_log();
    TAP_IS_INT(count(t, "[serving a request] database unavailable"), 5,
               "1000 warnings from one call site: the first 5 are written");
    TAP_IS_INT(count(t, "[serving a request] database unavailable: request 4\n"), 1, "the 5th is there");
    TAP_IS_INT(count(t, "[serving a request] database unavailable: request 5\n"), 0, "the 6th is not");
    TAP_IS_INT(count(t, "another warning"), 3, "another format at the same action is its own kind");
    TAP_IS_INT(count(t, "[authenticating] database unavailable"), 5,
               "the same format with another action too");
    TAP_IS_INT(count(t, "info line"), 100, "info lines are never held back");
    TAP_IS_INT(count(t, "suppressed"), 0, "no summary before the period ends");
    free(t);

    sleep_ms(350);
    log_info("database", "reachable again");
    t = take_log();
    TAP_IS_INT(
        count(t, "[serving a request] 995 more lines like \"database unavailable: request %d\" suppressed"),
        1, "after the period, one summary line counts the 995 suppressed (%s)", t);
    TAP_IS_INT(count(t, "[authenticating] 3 more lines like"), 1, "and one for the other action");
    TAP_IS_INT(count(t, "warn  [serving a request] 995"), 1, "the summary has the kind's level");
    TAP_IS_INT(count(t, "another warning"), 0, "a kind that suppressed nothing gets no summary");
    TAP_IS_INT(count(t, "reachable again"), 1, "the line that triggered the summaries is written after them");
    free(t);

    for (int i = 0; i < 7; i++)
        site("serving a request", i);
    t = take_log();
    TAP_IS_INT(count(t, "database unavailable"), 5, "a new period writes a new burst");
    free(t);
    log_flush_suppressed();
    t = take_log();
    TAP_IS_INT(count(t, "2 more lines like"), 1, "log_flush_suppressed writes a pending summary at once");
    free(t);
    log_flush_suppressed();
    t = take_log();
    TAP_IS_INT((long long)strlen(t), 0, "and only once");
    free(t);

    /* More kinds than the table holds: evicted kinds write their summaries, nothing goes uncounted. */
    static char actions[300][24];
    for (int k = 0; k < 300; k++)
        snprintf(actions[k], sizeof(actions[k]), "kind %d", k);
    for (int k = 0; k < 300; k++)
        for (int i = 0; i < 9; i++)
            site(actions[k], i);
    log_flush_suppressed();
    t = take_log();
    int written = count(t, "] database unavailable: request");
    unsigned long long sup = suppressed_total(t);
    TAP_IS_INT(written, 1500, "300 kinds, 9 lines each: 5 of each written");
    TAP_IS_INT((long long)sup, 1200, "the summaries of the evicted kinds count the other 1200");
    free(t);
    /* Interleaved kinds, fewer than the table holds: each keeps its own count. */
    for (int i = 0; i < 9; i++)
        for (int k = 0; k < 12; k++)
            site(actions[k], i);
    log_flush_suppressed();
    t = take_log();
    written = count(t, "] database unavailable: request");
    sup = suppressed_total(t);
    TAP_OK(written + sup == 108 && written == 60,
           "12 interleaved kinds x 9: %d written + %llu suppressed = 108", written, sup);
    free(t);

    /* Another thread has its own table: the main thread's state does not silence it, nor locks it. */
    sleep_ms(350);
    for (int i = 0; i < 10; i++)
        site("in a thread", i);
    pthread_t th;
    pthread_create(&th, NULL, thread_main, NULL);
    pthread_join(th, NULL);
    t = take_log();
    TAP_IS_INT(count(t, "[in a thread] database unavailable"), 10,
               "5 from the main thread, 5 from the other");
    free(t);

    log_set_rate_limit(0, 0);
    for (int i = 0; i < 50; i++)
        site("unlimited", i);
    t = take_log();
    TAP_IS_INT(count(t, "[unlimited] database unavailable"), 50, "burst 0 turns the limit off");
    free(t);

    log_set_rate_limit(5, 300);
    log_setup(LOG_LEVEL_INFO, 1);
    for (int i = 0; i < 10; i++)
        site("json", i);
    log_flush_suppressed();
    t = take_log();
    TAP_IS_INT(count(t, "\"action\":\"json\",\"msg\":\"5 more lines like \\\"database unavailable: request "
                        "%d\\\" suppressed"),
               1, "in JSON format the summary is one JSON line (%s)", t);
    free(t);
    return tap_done();
}
