/* Validation of POST/PATCH /campaigns and /integrations bodies (campaign_body_parse, integration_body_parse):
 * typed results for good input, the right 422 locations for bad input, and no crash (under ASan) on
 * malformed, truncated, huge, deeply nested or mistyped input. */
#include "core/json.h"
#include "http/campaigns.h"
#include "http/integrations.h"
#include "tap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fake_tz(const char *name)
{
    return strcmp(name, "UTC") == 0 || strcmp(name, "America/New_York") == 0;
}

/* Parses json and validates it; returns the number of problems, or -1 when json is not JSON at all. The
 * validator has no request: nothing replies, the collected detail is inspected instead. */
static int check(const char *json, int patch, campaign_body_t *b, validator_t *v)
{
    memset(v, 0, sizeof(*v));
    v->where = "body";
    char err[128];
    v->root = json_parse(json, strlen(json), err, sizeof(err));
    if (v->root == NULL)
        return -1;
    return campaign_body_parse(v, patch, fake_tz, b);
}

/* True when the collected 422 detail has a problem at loc ["body", field]. */
static int has_loc(validator_t *v, const char *field)
{
    char needle[96];
    snprintf(needle, sizeof(needle), "\"loc\":[\"body\",\"%s\"]", field);
    return strstr(buf_cstr(&v->_detail), needle) != NULL;
}

/* Expects exactly one problem, at field. */
static void bad(const char *json, int patch, const char *field, const char *desc)
{
    validator_t v;
    campaign_body_t b;
    int n = check(json, patch, &b, &v);
    TAP_OK(n == 1 && has_loc(&v, field), "%s: one problem at body.%s", desc, field);
    if (!(n == 1 && has_loc(&v, field)))
        printf("#   %d problems: %s\n", n, buf_cstr(&v._detail));
    v_free(&v);
}

#define GOOD "\"name\":\"N\",\"topic\":\"T\",\"articles_per_day\":2,\"start_date\":\"2026-03-07\""

static void good_bodies(void)
{
    validator_t v;
    campaign_body_t b;
    int n = check(
        "{" GOOD ",\"posting_times\":[\"09:00\",\"17:30\"],\"timezone\":\"America/New_York\","
        "\"end_date\":\"2026-04-01\",\"total_articles\":40,\"target_length\":\"2500\",\"source_count\":3,"
        "\"category\":\"Tech\",\"description\":\"d\",\"webhook_url\":\"https://x.example.com/h\","
        "\"webhook_secret\":\"s\",\"webhook_integration_id\":\"3F1C2A4E-9B8D-4C7A-8E6F-0A1B2C3D4E5F\","
        "\"status\":\"ignored on create\",\"unknown\":{\"deep\":[1,2,3]}}",
        0, &b, &v);
    TAP_IS_INT(n, 0, "a full create body is valid");
    TAP_IS_STR(b.name, "N", "name");
    TAP_IS_STR(b.topic, "T", "topic");
    TAP_IS_STR(b.category, "Tech", "category");
    TAP_IS_STR(b.description, "d", "description");
    TAP_IS_STR(b.timezone, "America/New_York", "timezone");
    TAP_IS_INT(b.articles_per_day, 2, "articles_per_day");
    TAP_IS_INT(b.ntimes, 2, "two posting times");
    TAP_IS_STR(b.times[1], "17:30", "order kept");
    TAP_IS_STR(b.times_sql, "{09:00,17:30}", "array literal for PostgreSQL");
    TAP_IS_STR(b.start_date, "2026-03-07", "start_date");
    TAP_IS_STR(b.end_date, "2026-04-01", "end_date");
    TAP_OK(b.has_total_articles && b.total_articles == 40, "total_articles");
    TAP_IS_INT(b.target_length, 2500, "a numeric string is an integer, as pydantic allows");
    TAP_IS_INT(b.source_count, 3, "source_count");
    TAP_IS_STR(b.webhook_url, "https://x.example.com/h", "webhook_url");
    TAP_IS_STR(b.webhook_secret, "s", "webhook_secret");
    TAP_IS_STR(b.webhook_integration_id, "3f1c2a4e-9b8d-4c7a-8e6f-0a1b2c3d4e5f", "integration id lowercased");
    TAP_OK(b.status == NULL, "status is not read on create");
    v_free(&v);

    n = check("{" GOOD ",\"posting_times\":[\"00:00\"],\"timezone\":null,\"category\":\"\",\"end_date\":null,"
              "\"webhook_secret\":\"\",\"webhook_integration_id\":\"\",\"total_articles\":null}",
              0, &b, &v);
    TAP_IS_INT(n, 0, "a minimal create body with nulls and empty optionals is valid");
    TAP_IS_STR(b.timezone, "UTC", "timezone defaults to UTC");
    TAP_IS_STR(b.category, "General", "category defaults to General");
    TAP_IS_INT(b.target_length, 1500, "target_length defaults to 1500");
    TAP_IS_INT(b.source_count, 5, "source_count defaults to 5");
    TAP_OK(!b.has_total_articles, "total_articles absent");
    TAP_OK(b.end_date[0] == '\0' && b.webhook_integration_id[0] == '\0' && b.webhook_secret == NULL &&
               b.webhook_url == NULL && b.description == NULL,
           "absent optionals are empty");
    v_free(&v);

    /* 24 distinct times, the maximum. */
    char json[1024];
    int off = snprintf(json, sizeof(json), "{" GOOD ",\"posting_times\":[");
    for (int h = 0; h < 24; h++)
        off += snprintf(json + off, sizeof(json) - (size_t)off, "%s\"%02d:59\"", h ? "," : "", h);
    snprintf(json + off, sizeof(json) - (size_t)off, "]}");
    n = check(json, 0, &b, &v);
    TAP_OK(n == 0 && b.ntimes == 24 && strlen(b.times_sql) == 24 * 6 + 1, "24 posting times fit (%s)",
           b.times_sql);
    v_free(&v);

    n = check("{}", 1, &b, &v);
    TAP_IS_INT(n, 0, "an empty PATCH is valid");
    TAP_OK(b.name == NULL && b.timezone == NULL && b.status == NULL && b.ntimes == 0 &&
               !b.has_articles_per_day && b.end_date[0] == '\0',
           "and changes nothing");
    v_free(&v);

    n = check(
        "{\"status\":\"paused\",\"timezone\":\"UTC\",\"posting_times\":[\"23:59\"],\"articles_per_day\":10,"
        "\"start_date\":\"garbage is ignored on PATCH\",\"topic\":5}",
        1, &b, &v);
    TAP_OK(n == 0 && strcmp(b.status, "paused") == 0 && b.has_articles_per_day && b.articles_per_day == 10 &&
               strcmp(b.times_sql, "{23:59}") == 0,
           "a PATCH body: status, times, articles_per_day; fields PATCH does not take are ignored");
    v_free(&v);
}

static void bad_bodies(void)
{
    bad("{" GOOD ",\"posting_times\":[\"9:00\"]}", 0, "posting_times", "9:00");
    bad("{" GOOD ",\"posting_times\":[\"24:00\"]}", 0, "posting_times", "24:00");
    bad("{" GOOD ",\"posting_times\":[\"12:60\"]}", 0, "posting_times", "12:60");
    bad("{" GOOD ",\"posting_times\":[\"09:00\",\"09:00\"]}", 0, "posting_times", "duplicates");
    bad("{" GOOD ",\"posting_times\":[]}", 0, "posting_times", "empty list");
    bad("{" GOOD ",\"posting_times\":\"09:00\"}", 0, "posting_times", "a string, not a list");
    bad("{" GOOD ",\"posting_times\":{\"a\":\"09:00\"}}", 0, "posting_times", "an object");
    bad("{" GOOD ",\"posting_times\":[9]}", 0, "posting_times", "a number item");
    bad("{" GOOD ",\"posting_times\":[null]}", 0, "posting_times", "a null item");
    bad("{" GOOD ",\"posting_times\":[[\"09:00\"]]}", 0, "posting_times", "a nested list item");
    bad("{" GOOD "}", 0, "posting_times", "posting_times missing");
    bad("{" GOOD ",\"posting_times\":null}", 0, "posting_times", "posting_times null counts as missing");

    char json[1024];
    int off = snprintf(json, sizeof(json), "{" GOOD ",\"posting_times\":[");
    for (int i = 0; i < 25; i++)
        off +=
            snprintf(json + off, sizeof(json) - (size_t)off, "%s\"%02d:%02d\"", i ? "," : "", i % 24, i / 24);
    snprintf(json + off, sizeof(json) - (size_t)off, "]}");
    bad(json, 0, "posting_times", "25 times");

#define T ",\"posting_times\":[\"09:00\"]"
    bad("{\"name\":\"N\",\"topic\":\"T\",\"articles_per_day\":0,\"start_date\":\"2026-03-07\"" T "}", 0,
        "articles_per_day", "articles_per_day 0");
    bad("{\"name\":\"N\",\"topic\":\"T\",\"articles_per_day\":11,\"start_date\":\"2026-03-07\"" T "}", 0,
        "articles_per_day", "articles_per_day 11");
    bad("{\"name\":\"N\",\"topic\":\"T\",\"articles_per_day\":2.5,\"start_date\":\"2026-03-07\"" T "}", 0,
        "articles_per_day", "articles_per_day 2.5");
    bad("{\"name\":\"N\",\"topic\":\"T\",\"articles_per_day\":true,\"start_date\":\"2026-03-07\"" T "}", 0,
        "articles_per_day", "articles_per_day true");
    bad("{\"name\":\"N\",\"topic\":\"T\",\"articles_per_day\":1e400,\"start_date\":\"2026-03-07\"" T "}", 0,
        "articles_per_day", "articles_per_day 1e400");
    bad("{\"name\":\"N\",\"topic\":\"T\",\"articles_per_day\":99999999999999999999999,\"start_date\":\"2026-"
        "03-07\"" T "}",
        0, "articles_per_day", "articles_per_day beyond 64 bits");
    bad("{" GOOD T ",\"end_date\":\"2026-03-06\"}", 0, "end_date", "end_date before start_date");
    bad("{" GOOD T ",\"end_date\":\"2026-13-01\"}", 0, "end_date", "end_date month 13");
    bad("{" GOOD T ",\"end_date\":20260401}", 0, "end_date", "end_date a number");
    bad("{\"name\":\"N\",\"topic\":\"T\",\"articles_per_day\":1,\"start_date\":\"2026-02-29\"" T "}", 0,
        "start_date", "2026-02-29 does not exist");
    bad("{\"name\":\"N\",\"topic\":\"T\",\"articles_per_day\":1,\"start_date\":\"\"" T "}", 0, "start_date",
        "start_date empty");
    bad("{" GOOD T ",\"timezone\":\"Mars/Olympus\"}", 0, "timezone", "an unknown timezone");
    bad("{" GOOD T ",\"timezone\":42}", 0, "timezone", "a numeric timezone");
    bad("{" GOOD T ",\"webhook_url\":\"ftp://x\"}", 0, "webhook_url", "ftp://x");
    bad("{" GOOD T ",\"webhook_url\":\"http://\"}", 0, "webhook_url", "http://");
    bad("{" GOOD T ",\"webhook_url\":\"http://a b.example.com/\"}", 0, "webhook_url", "a space in the host");
    bad("{" GOOD T ",\"webhook_integration_id\":\"123\"}", 0, "webhook_integration_id", "a short id");
    bad("{" GOOD T ",\"target_length\":299}", 0, "target_length", "target_length 299");
    bad("{" GOOD T ",\"source_count\":0}", 0, "source_count", "source_count 0");
    bad("{" GOOD T ",\"total_articles\":-1}", 0, "total_articles", "total_articles -1");
#define REST "\"articles_per_day\":2,\"start_date\":\"2026-03-07\"" T
    bad("{\"name\":\"\",\"topic\":\"T\"," REST "}", 0, "name", "an empty name");
    bad("{\"name\":[\"N\"],\"topic\":\"T\"," REST "}", 0, "name", "a list as name");
    bad("{\"name\":\"N\",\"topic\":{}," REST "}", 0, "topic", "an object as topic");
    bad("{\"name\":\"N\",\"topic\":\"\"," REST "}", 0, "topic", "an empty topic");
#undef REST
    bad("{" GOOD T ",\"description\":false}", 0, "description", "a boolean description");
    bad("{\"status\":\"completed\"}", 1, "status", "PATCH status completed");
    bad("{\"status\":\"cancelled\"}", 1, "status", "PATCH status cancelled");
    bad("{\"status\":1}", 1, "status", "PATCH numeric status");
    bad("{\"posting_times\":[]}", 1, "posting_times", "PATCH empty posting_times");
    bad("{\"timezone\":\"Nowhere\"}", 1, "timezone", "PATCH unknown timezone");
    bad("{\"articles_per_day\":\"11\"}", 1, "articles_per_day", "PATCH articles_per_day '11'");
    bad("{\"end_date\":\"01/04/2026\"}", 1, "end_date", "PATCH end_date in another format");
#undef T

    validator_t v;
    campaign_body_t b;
    int n = check("{}", 0, &b, &v);
    TAP_OK(n == 5 && has_loc(&v, "name") && has_loc(&v, "topic") && has_loc(&v, "articles_per_day") &&
               has_loc(&v, "posting_times") && has_loc(&v, "start_date"),
           "an empty create body reports the five required fields at once (%d)", n);
    v_free(&v);
    n = check(
        "{\"name\":null,\"topic\":null,\"articles_per_day\":null,\"posting_times\":null,\"start_date\":null}",
        0, &b, &v);
    TAP_IS_INT(n, 5, "null required fields count as missing");
    v_free(&v);

    /* A name of 1 MB: refused by length, not copied anywhere. */
    static const char prefix[] = "{\"topic\":\"T\",\"articles_per_day\":1,\"start_date\":\"2026-03-07\","
                                 "\"posting_times\":[\"09:00\"],\"name\":\"";
    size_t big = 1 << 20;
    char *huge = malloc(sizeof(prefix) + big + 3);
    memcpy(huge, prefix, sizeof(prefix) - 1);
    memset(huge + sizeof(prefix) - 1, 'x', big);
    memcpy(huge + sizeof(prefix) - 1 + big, "\"}", 3);
    bad(huge, 0, "name", "a 1 MB name");
    free(huge);

    /* 20000 posting times (yajl grows arrays one element at a time, which ASan's realloc makes quadratic;
     * 20000 keeps the sanitizer run short and is still far past the limit). */
    size_t cap = 20000 * 8 + 200;
    char *many = malloc(cap);
    off = snprintf(many, cap, "{" GOOD ",\"posting_times\":[");
    for (int i = 0; i < 20000; i++)
        off += snprintf(many + off, cap - (size_t)off, "%s\"09:00\"", i ? "," : "");
    snprintf(many + off, cap - (size_t)off, "]}");
    bad(many, 0, "posting_times", "20000 posting times");
    free(many);
}

static void times(void)
{
    TAP_OK(campaign_time_valid("00:00") && campaign_time_valid("23:59") && campaign_time_valid("12:30"),
           "valid times");
    static const char *const refused[] = {"",      "9:00",     "09:0",  "24:00",  "23:60", "0900",
                                          "09-00", "09:00:00", " 9:00", "09:00 ", "+9:00", "-1:00",
                                          "1a:00", "09:5x",    "::::",  "99:99"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        TAP_OK(!campaign_time_valid(refused[i]), "refused time '%s'", refused[i]);
    TAP_OK(!campaign_time_valid(NULL), "NULL refused");
}

/* Every prefix of a valid body, and random single-byte changes: whatever json_parse accepts must validate
 * without crashing (ASan/UBSan watch the memory). */
static void robustness(void)
{
    const char *full =
        "{" GOOD ",\"posting_times\":[\"09:00\",\"17:30\"],\"timezone\":\"America/New_York\","
        "\"end_date\":\"2026-04-01\",\"webhook_url\":\"https://x.example.com/h\",\"status\":\"paused\"}";
    size_t len = strlen(full);
    char *buf = malloc(len + 1);
    int parsed = 0, survived = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        memcpy(buf, full, cut);
        buf[cut] = '\0';
        for (int patch = 0; patch < 2; patch++) {
            validator_t v;
            campaign_body_t b;
            if (check(buf, patch, &b, &v) >= 0)
                parsed++;
            v_free(&v);
            survived++;
        }
    }
    TAP_OK(survived == (int)(len + 1) * 2 && parsed == 2, "every truncation of a body is handled (%d parsed)",
           parsed);

    uint32_t seed = 12345;
    static const char alphabet[] = "{}[]\":,0123456789.-+eEtrufalsn \\u\xc3\xa9\x00x";
    int runs = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(buf, full, len + 1);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            buf[pos] = alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
        }
        validator_t v;
        campaign_body_t b;
        check(buf, (int)(seed & 1), &b, &v);
        v_free(&v);
        runs++;
    }
    TAP_IS_INT(runs, 20000, "20000 mutated bodies validated without a crash");
    free(buf);

    /* Nesting deeper than the parser allows is refused before validation sees it. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 32);
    size_t o = 0;
    deep[o++] = '{';
    memcpy(deep + o, "\"posting_times\":", 16);
    o += 16;
    for (size_t i = 0; i < depth; i++)
        deep[o++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[o++] = ']';
    deep[o++] = '}';
    deep[o] = '\0';
    validator_t v;
    campaign_body_t b;
    TAP_IS_INT(check(deep, 0, &b, &v), -1, "100000 levels of nesting are refused by the parser");
    v_free(&v);
    free(deep);
}

static void integration_bodies(void)
{
    validator_t v;
    integration_body_t b;
    char err[128];
    const char *cases[][3] = {
        /* json, patch, expected problem field ("" = valid) */
        {"{\"name\":\"N\",\"webhook_url\":\"https://x.example.com\"}", "0", ""},
        {"{\"name\":\"N\",\"webhook_url\":\"https://"
         "x.example.com\",\"webhook_secret\":\"\",\"api_key\":null}",
         "0", ""},
        {"{\"name\":\"N\",\"webhook_url\":\"ftp://x\"}", "0", "webhook_url"},
        {"{\"name\":\"N\",\"webhook_url\":\"http://\"}", "0", "webhook_url"},
        {"{\"name\":\"N\",\"webhook_url\":7}", "0", "webhook_url"},
        {"{\"webhook_url\":\"https://x.example.com\"}", "0", "name"},
        {"{\"name\":\"N\",\"webhook_url\":\"https://x.example.com\",\"platform_type\":\"\"}", "0",
         "platform_type"},
        {"{}", "1", ""},
        {"{\"is_active\":false}", "1", ""},
        {"{\"is_active\":\"no\"}", "1", "is_active"},
        {"{\"webhook_url\":\"javascript:alert(1)\"}", "1", "webhook_url"},
        {"{\"name\":\"\"}", "1", "name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&v, 0, sizeof(v));
        v.where = "body";
        v.root = json_parse(cases[i][0], strlen(cases[i][0]), err, sizeof(err));
        int n = integration_body_parse(&v, cases[i][1][0] == '1', &b);
        if (cases[i][2][0] == '\0')
            TAP_IS_INT(n, 0, "integration body valid: %s", cases[i][0]);
        else
            TAP_OK(n == 1 && has_loc(&v, cases[i][2]), "integration body %s: problem at %s", cases[i][0],
                   cases[i][2]);
        v_free(&v);
    }
    memset(&v, 0, sizeof(v));
    v.where = "body";
    const char *j = "{\"name\":\"N\",\"webhook_url\":\"https://x.example.com\",\"webhook_secret\":\"\","
                    "\"is_active\":true}";
    v.root = json_parse(j, strlen(j), err, sizeof(err));
    integration_body_parse(&v, 0, &b);
    TAP_OK(b.webhook_secret == NULL && !b.has_is_active && b.platform_type == NULL,
           "create: empty secret is absent, is_active not read");
    v_free(&v);

    char s1[INTEGRATIONS_SECRET_SIZE], s2[INTEGRATIONS_SECRET_SIZE];
    integrations_new_secret(s1);
    integrations_new_secret(s2);
    TAP_OK(strncmp(s1, "whsec_", 6) == 0 && strlen(s1) == 6 + 44 && strcmp(s1, s2) != 0,
           "generated secrets: whsec_ + 44 base64 characters, different each time (%s)", s1);
}

int main(void)
{
    good_bodies();
    bad_bodies();
    times();
    robustness();
    integration_bodies();
    return tap_done();
}
