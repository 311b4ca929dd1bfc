/* Request-parsing helpers: timestamps, dates, UUIDs and the collected 422 detail. */
#include "http/kit.h"
#include "tap.h"

#include <string.h>

static void ts_ok(const char *in, const char *want, int offset)
{
    kit_ts_t t;
    int r = kit_parse_timestamp(in, &t);
    TAP_OK(r == 0 && strcmp(t.text, want) == 0 && t.has_offset == offset, "%s -> %s (%s)", in, want,
           r == 0 ? t.text : "refused");
}

static void ts_bad(const char *in)
{
    kit_ts_t t;
    TAP_IS_INT(kit_parse_timestamp(in, &t), -1, "refused: %s", in);
}

int main(void)
{
    ts_ok("2026-11-25T09:00", "2026-11-25 09:00:00.000000", 0);
    ts_ok("2026-11-25T09:00:30", "2026-11-25 09:00:30.000000", 0);
    ts_ok("2026-11-25 09:00:30.5", "2026-11-25 09:00:30.500000", 0);
    ts_ok("2026-11-25T09:00:00.123456789Z", "2026-11-25 09:00:00.123456+00:00", 1);
    ts_ok("2026-11-25T09:00:00+05:30", "2026-11-25 09:00:00.000000+05:30", 1);
    ts_ok("2026-11-25T09:00:00-0800", "2026-11-25 09:00:00.000000-08:00", 1);
    ts_ok("2026-11-25T09:00-03", "2026-11-25 09:00:00.000000-03:00", 1);
    ts_ok("2024-02-29T00:00", "2024-02-29 00:00:00.000000", 0);
    ts_bad("2026-02-29T00:00");
    ts_bad("2026-13-01T00:00");
    ts_bad("2026-11-25");
    ts_bad("2026-11-25T24:00");
    ts_bad("2026-11-25T09:60");
    ts_bad("2026-11-25T09:00:00+");
    ts_bad("2026-11-25T09:00:00 junk");
    ts_bad("tomorrow at nine");
    ts_bad("2026-11-25T09:00:00.Z");
    ts_bad("");
    TAP_IS_INT(kit_parse_date("2026-11-25"), 0, "date ok");
    TAP_IS_INT(kit_parse_date("2026-11-31"), -1, "November has 30 days");
    TAP_IS_INT(kit_parse_date("2026-11-25T00:00"), -1, "a timestamp is not a date");
    TAP_IS_INT(kit_parse_date("26-11-25"), -1, "two-digit year refused");

    char id[37];
    TAP_IS_INT(kit_uuid("3F1C2A4E-9B8D-4C7A-8E6F-0A1B2C3D4E5F", id), 0, "uppercase uuid accepted");
    TAP_IS_STR(id, "3f1c2a4e-9b8d-4c7a-8e6f-0a1b2c3d4e5f", "and lowercased");
    TAP_IS_INT(kit_uuid("3f1c2a4e9b8d4c7a8e6f0a1b2c3d4e5f", id), -1, "unhyphenated refused");
    TAP_IS_INT(kit_uuid("3f1c2a4e-9b8d-4c7a-8e6f-0a1b2c3d4e5g", id), -1, "non-hex refused");
    TAP_IS_INT((long long)kit_utf8_len("caf\xc3\xa9"), 4, "code points, not bytes");
    return tap_done();
}
