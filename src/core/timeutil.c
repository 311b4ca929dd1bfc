#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

size_t time_format_iso(int64_t us, char *out, size_t outlen)
{
    time_t secs = (time_t)(us / 1000000);
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    return n < 0 ? 0 : (size_t)n;
}

int time_pg_to_iso(const char *pg, char *out, size_t outlen)
{
    /* "YYYY-MM-DD HH:MM:SS[.ffffff]+00" */
    size_t len = strlen(pg);
    if (len < 19 || pg[4] != '-' || pg[7] != '-' || pg[10] != ' ' || pg[13] != ':' || pg[16] != ':')
        return -1;
    char frac[7] = "000000";
    size_t i = 19;
    if (pg[i] == '.') {
        i++;
        size_t k = 0;
        while (pg[i] >= '0' && pg[i] <= '9') {
            if (k < 6)
                frac[k++] = pg[i];
            i++;
        }
    }
    if (strcmp(pg + i, "+00") != 0 && strcmp(pg + i, "+00:00") != 0 && pg[i] != '\0')
        return -1;
    int n = snprintf(out, outlen, "%.10sT%.8s.%sZ", pg, pg + 11, frac);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}
