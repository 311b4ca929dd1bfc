/* The pure rules of the event hub: which statuses end a stream, and how the trigger's timestamps become the
 * contract's UTC form. */
#include "events/events.h"
#include "tap.h"

#include <string.h>

int main(void)
{
    static const char *final[] = {"completed", "posted", "failed", "delivery_failed", "cancelled"};
    for (size_t i = 0; i < sizeof(final) / sizeof(*final); i++)
        TAP_IS_INT(events_is_final(final[i]), 1, "%s ends the stream", final[i]);
    static const char *open[] = {"pending", "researching", "scraping", "analyzing", "writing",
                                 "",        "Completed"};
    for (size_t i = 0; i < sizeof(open) / sizeof(*open); i++)
        TAP_IS_INT(events_is_final(open[i]), 0, "\"%s\" does not", open[i]);

    static const struct {
        const char *in, *want;
    } ts[] = {
        {"2026-11-25T10:00:00.123456+01:00", "2026-11-25T09:00:00.123456Z"},
        {"2026-11-25T10:00:00+00:00", "2026-11-25T10:00:00.000000Z"},
        {"2026-01-01T00:30:00.5-05:30", "2026-01-01T06:00:00.500000Z"},
        {"2026-11-25T23:59:59.999999Z", "2026-11-25T23:59:59.999999Z"},
        {"2026-03-01T00:00:00+01", "2026-02-28T23:00:00.000000Z"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(ts) / sizeof(*ts); i++) {
        int rc = events_json_ts_to_iso(ts[i].in, out, sizeof(out));
        TAP_OK(rc == 0 && strcmp(out, ts[i].want) == 0, "%s is %s (got %s)", ts[i].in, ts[i].want,
               rc == 0 ? out : "an error");
    }
    static const char *bad[] = {"", "2026-11-25", "2026-11-25 10:00:00", "2026-11-25T10:00:00 junk",
                                "yesterday"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        TAP_IS_INT(events_json_ts_to_iso(bad[i], out, sizeof(out)), -1, "\"%s\" is refused", bad[i]);
    TAP_IS_INT(events_json_ts_to_iso(NULL, out, sizeof(out)), -1, "NULL is refused");
    return tap_done();
}
