/* Parsing and validation of the POST /articles body (article_input_parse) and the canonical JSON behind
 * Idempotency-Key hashes: defaults, aliases, nulls, wrong types, ranges, and hostile input (malformed,
 * truncated, huge, deeply nested). No server or database: the validator is driven directly. */
#include "core/alloc.h"
#include "http/articles.h"
#include "http/idempotency.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* Parses text as a body and validates it; returns the error count (-1 when the JSON itself is refused) and
 * the collected detail in detail (caller frees). */
static int parse(const char *text, size_t len, article_input_t *in, char **detail)
{
    validator_t v;
    memset(&v, 0, sizeof(v));
    v.where = "body";
    char err[128];
    *detail = NULL;
    memset(in, 0, sizeof(*in));
    v.root = json_parse(text, len, err, sizeof(err));
    if (v.root == NULL || !YAJL_IS_OBJECT(v.root)) {
        v_free(&v);
        return -1;
    }
    article_input_parse(&v, in);
    int n = v.errors;
    *detail = xstrdup(buf_cstr(&v._detail));
    v_free(&v);
    return n;
}

static int check(const char *text, article_input_t *in, char **detail)
{
    return parse(text, strlen(text), in, detail);
}

/* One error expected, at loc field with type. */
static void bad(const char *text, const char *field, const char *type)
{
    article_input_t in;
    char *detail;
    int n = check(text, &in, &detail);
    char loc[96], ty[64];
    snprintf(loc, sizeof(loc), "\"loc\":[\"body\",\"%s\"]", field);
    snprintf(ty, sizeof(ty), "\"type\":\"%s\"", type);
    TAP_OK(n == 1 && strstr(detail, loc) != NULL && strstr(detail, ty) != NULL, "%.60s%s -> %s %s", text,
           strlen(text) > 60 ? "..." : "", field, type);
    if (n != 1 || detail == NULL || strstr(detail, loc) == NULL)
        printf("#   %d error(s): %s\n", n, detail ? detail : "(none)");
    free(detail);
    article_input_free(&in);
}

static void refused_json(const char *text, size_t len, const char *what)
{
    article_input_t in;
    char *detail;
    TAP_IS_INT(parse(text, len, &in, &detail), -1, "refused before validation: %s", what);
    free(detail);
    article_input_free(&in);
}

int main(void)
{
    article_input_t in;
    char *detail;

    /* defaults */
    TAP_IS_INT(check("{\"query\": \"How to brew tea\"}", &in, &detail), 0, "minimal body is valid");
    TAP_IS_STR(in.query, "How to brew tea", "query");
    TAP_IS_STR(in.opt.category, "General", "category defaults to General");
    TAP_IS_INT(in.opt.target_length, 1500, "target_length defaults to 1500");
    TAP_IS_INT(in.opt.source_count, 5, "source_count defaults to 5");
    TAP_IS_STR(in.opt.timezone, "UTC", "timezone defaults to UTC");
    TAP_IS_STR(in.opt.language, "en", "language defaults to en");
    TAP_IS_INT(in.opt.has_scheduled_at, 0, "no schedule");
    TAP_IS_STR(in.opt.integration_id, "", "no integration");
    free(detail);
    article_input_free(&in);

    /* everything, alias, numeric strings as pydantic accepts them */
    TAP_IS_INT(
        check("{\"query_explanation\": \"Alias field\", \"category\": \"Food\", \"target_length\": \"300\","
              " \"source_count\": 10, \"scheduled_at\": \"2030-01-01T09:00\", \"timezone\": \"Europe/Paris\","
              " \"webhook_integration_id\": \"3F1C2A4E-9B8D-4C7A-8E6F-0A1B2C3D4E5F\", \"language\": \"fr\"}",
              &in, &detail),
        0, "full body with the query_explanation alias is valid");
    TAP_IS_STR(in.query, "Alias field", "alias read as query");
    TAP_IS_INT(in.opt.target_length, 300, "numeric string accepted");
    TAP_IS_STR(in.opt.scheduled_at.text, "2030-01-01 09:00:00.000000", "local scheduled_at normalized");
    TAP_IS_INT(in.opt.scheduled_at.has_offset, 0, "without offset");
    TAP_IS_STR(in.opt.integration_id, "3f1c2a4e-9b8d-4c7a-8e6f-0a1b2c3d4e5f", "integration id lowercased");
    free(detail);
    article_input_free(&in);

    TAP_IS_INT(check("{\"query\": \"Query wins\", \"query_explanation\": \"Alias loses\"}", &in, &detail), 0,
               "both names: valid");
    TAP_IS_STR(in.query, "Query wins", "query wins over the alias");
    free(detail);
    article_input_free(&in);

    /* nulls and empty strings mean absent */
    TAP_IS_INT(
        check("{\"query\": \"abc\", \"category\": null, \"target_length\": null, \"scheduled_at\": null,"
              " \"timezone\": \"\", \"webhook_integration_id\": \"\", \"language\": null}",
              &in, &detail),
        0, "nulls and empty optional strings are valid");
    TAP_IS_STR(in.opt.category, "General", "null category -> default");
    TAP_IS_STR(in.opt.timezone, "UTC", "empty timezone -> default");
    TAP_IS_STR(in.opt.integration_id, "", "empty integration -> none");
    free(detail);
    article_input_free(&in);

    /* errors, one at a time */
    bad("{}", "query", "missing");
    bad("{\"query\": null}", "query", "missing");
    bad("{\"query_explanation\": null}", "query", "missing");
    bad("{\"query\": \"ab\"}", "query", "string_too_short");
    bad("{\"query_explanation\": \"ab\"}", "query_explanation", "string_too_short");
    bad("{\"query\": 12345}", "query", "string_type");
    bad("{\"query\": [\"abc\"]}", "query", "string_type");
    bad("{\"query\": {\"a\": 1}}", "query", "string_type");
    bad("{\"query\": \"abc\", \"target_length\": 299}", "target_length", "greater_than_equal");
    bad("{\"query\": \"abc\", \"target_length\": 5001}", "target_length", "less_than_equal");
    bad("{\"query\": \"abc\", \"target_length\": 1500.5}", "target_length", "int_from_float");
    bad("{\"query\": \"abc\", \"target_length\": \"many\"}", "target_length", "int_parsing");
    bad("{\"query\": \"abc\", \"target_length\": true}", "target_length", "int_type");
    bad("{\"query\": \"abc\", \"target_length\": 9999999999999}", "target_length", "less_than_equal");
    bad("{\"query\": \"abc\", \"target_length\": -9999999999999}", "target_length", "greater_than_equal");
    bad("{\"query\": \"abc\", \"target_length\": 99999999999999999999999}", "target_length",
        "less_than_equal");
    bad("{\"query\": \"abc\", \"source_count\": -1e300}", "source_count", "greater_than_equal");
    bad("{\"query\": \"abc\", \"source_count\": 0}", "source_count", "greater_than_equal");
    bad("{\"query\": \"abc\", \"source_count\": 11}", "source_count", "less_than_equal");
    bad("{\"query\": \"abc\", \"scheduled_at\": \"2030-02-30T09:00\"}", "scheduled_at", "datetime_parsing");
    bad("{\"query\": \"abc\", \"scheduled_at\": 1893456000}", "scheduled_at", "datetime_parsing");
    bad("{\"query\": \"abc\", \"webhook_integration_id\": \"not-a-uuid\"}", "webhook_integration_id",
        "uuid_parsing");
    bad("{\"query\": \"abc\", \"webhook_integration_id\": 5}", "webhook_integration_id", "uuid_parsing");
    bad("{\"query\": \"abc\", \"category\": \"\"}", "category", "string_too_short");
    bad("{\"query\": \"abc\", \"language\": \"e\"}", "language", "string_too_short");
    bad("{\"query\": \"abc\", \"timezone\": 7}", "timezone", "string_type");

    /* several at once */
    TAP_IS_INT(
        check("{\"query\": \"a\", \"target_length\": 1, \"source_count\": 99, \"scheduled_at\": \"x\"}", &in,
              &detail),
        4, "four problems reported together");
    free(detail);
    article_input_free(&in);

    /* length in characters, not bytes */
    {
        size_t n = 2000;
        char *big = xmalloc(n * 2 + 32);
        strcpy(big, "{\"query\": \"");
        char *p = big + strlen(big);
        for (size_t i = 0; i < n; i++) {
            *p++ = '\xc3';
            *p++ = '\xa9';
        }
        strcpy(p, "\"}");
        TAP_IS_INT(check(big, &in, &detail), 0, "2000 two-byte characters are within 3-2000");
        free(detail);
        article_input_free(&in);
        free(big);
    }

    /* huge: a 512 KiB query is refused by length, not by running out of anything */
    {
        size_t n = 512 * 1024;
        char *big = xmalloc(n + 32);
        strcpy(big, "{\"query\": \"");
        memset(big + 11, 'q', n);
        strcpy(big + 11 + n, "\"}");
        bad(big, "query", "string_too_long");
        free(big);
    }

    /* hostile JSON */
    refused_json("{\"query\": \"abc\"", strlen("{\"query\": \"abc\""), "truncated object");
    refused_json("{\"query\": \"ab", strlen("{\"query\": \"ab"), "truncated string");
    refused_json("{query: 'abc'}", strlen("{query: 'abc'}"), "not JSON");
    refused_json("[1,2,3]", 7, "an array body");

    refused_json("\"just a string\"", 15, "a string body");
    refused_json("{\"query\": \"\xff\xfe\"}", 15, "invalid UTF-8");
    refused_json("{\"query\": \"abc\"}\0junk", 21, "NUL and trailing junk");
    {
        size_t depth = 100000;
        char *deep = xmalloc(depth * 2 + 16);
        size_t k = 0;
        k += (size_t)sprintf(deep, "{\"query\":");
        for (size_t i = 0; i < depth; i++)
            deep[k++] = '[';
        for (size_t i = 0; i < depth; i++)
            deep[k++] = ']';
        deep[k++] = '}';
        refused_json(deep, k, "100000 levels of nesting");
        free(deep);
    }
    {
        /* Nesting within the limit is parsed; the wrong type is then a plain 422. */
        char deep[256];
        size_t k = (size_t)sprintf(deep, "{\"query\":");
        for (int i = 0; i < 30; i++)
            deep[k++] = '[';
        for (int i = 0; i < 30; i++)
            deep[k++] = ']';
        deep[k++] = '}';
        deep[k] = '\0';
        bad(deep, "query", "string_type");
    }

    /* canonical JSON for Idempotency-Key hashes */
    {
        char err[64];
        const char *tx = "{\"b\": [1, 2.50, {\"d\": null, \"c\": true}], \"a\": \"\\u00e9\"}";
        const char *ty = "{\"a\":\"\xc3\xa9\",\"b\":[1,2.50,{\"c\":true,\"d\":null}]}";
        yajl_val x = json_parse(tx, strlen(tx), err, sizeof(err));
        yajl_val y = json_parse(ty, strlen(ty), err, sizeof(err));
        buf_t bx = BUF_INIT, by = BUF_INIT;
        idem_canonical_json(&bx, x);
        idem_canonical_json(&by, y);
        TAP_IS_STR(buf_cstr(&bx), "{\"a\":\"\xc3\xa9\",\"b\":[1,2.50,{\"c\":true,\"d\":null}]}",
                   "canonical form sorts keys and drops whitespace");
        TAP_IS_STR(buf_cstr(&bx), buf_cstr(&by), "two spellings of one object have one canonical form");
        buf_free(&bx);
        buf_free(&by);
        yajl_tree_free(x);
        yajl_tree_free(y);
    }
    return tap_done();
}
