/* The JSON writer's escaping and punctuation, and the guarded parser. */
#include "core/json.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static char *escaped(const char *s, size_t n)
{
    buf_t b = BUF_INIT;
    json_put_stringn(&b, s, n);
    return buf_release(&b);
}

int main(void)
{
    char *s = escaped("a\"b\\c\n\t\x01", 8);
    TAP_IS_STR(s, "\"a\\\"b\\\\c\\n\\t\\u0001\"", "control characters and quotes escaped");
    free(s);
    s = escaped("caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    TAP_IS_STR(s, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "valid UTF-8 kept as is");
    free(s);
    s = escaped("a\xff"
                "b\xc3",
                4);
    TAP_IS_STR(s, "\"a\\ufffdb\\ufffd\"", "invalid and truncated UTF-8 replaced");
    free(s);
    s = escaped("\xed\xa0\x80", 3);
    TAP_IS_STR(s, "\"\\ufffd\\ufffd\\ufffd\"", "encoded surrogate refused");
    free(s);

    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_object_begin(&w);
    jw_key(&w, "a");
    jw_int(&w, -3);
    jw_key(&w, "list");
    jw_array_begin(&w);
    jw_string(&w, "x");
    jw_null(&w);
    jw_bool(&w, 1);
    jw_object_begin(&w);
    jw_object_end(&w);
    jw_array_end(&w);
    jw_key(&w, "s");
    jw_string(&w, NULL);
    jw_key(&w, "raw");
    jw_raw(&w, "[1,2]", 5);
    jw_object_end(&w);
    TAP_IS_STR(buf_cstr(&b), "{\"a\":-3,\"list\":[\"x\",null,true,{}],\"s\":null,\"raw\":[1,2]}",
               "writer places commas and colons");
    buf_free(&b);

    char err[128];
    const char *doc = "{\"q\": \"hi\", \"n\": 5, \"nested\": {\"k\": [1, 2]}}";
    yajl_val v = json_parse(doc, strlen(doc), err, sizeof(err));
    TAP_OK(v != NULL, "object parses");
    yajl_val q = json_get(v, "q");
    TAP_IS_STR(YAJL_IS_STRING(q) ? q->u.string : NULL, "hi", "json_get finds a string member");
    TAP_OK(json_get(v, "missing") == NULL, "missing key is NULL");
    TAP_OK(json_get(json_get(v, "n"), "x") == NULL, "json_get on a non-object is NULL");
    yajl_tree_free(v);

    v = json_parse("{\"a\":", 5, err, sizeof(err));
    TAP_OK(v == NULL && strncmp(err, "invalid JSON", 12) == 0, "truncated body refused: %s", err);
    v = json_parse("{\"a\":1} x", 9, err, sizeof(err));
    TAP_OK(v == NULL, "trailing garbage refused");
    v = json_parse("\"\xff\"", 3, err, sizeof(err));
    TAP_OK(v == NULL && strstr(err, "UTF-8") != NULL, "invalid UTF-8 refused: %s", err);
    v = json_parse("{\"a\":\"x\0y\"}", 11, err, sizeof(err));
    TAP_OK(v == NULL, "embedded NUL refused");
    v = json_parse("{\"a\":\"09:00\\u0000x\"}", strlen("{\"a\":\"09:00\\u0000x\"}"), err, sizeof(err));
    TAP_OK(v == NULL && strstr(err, "NUL") != NULL, "escaped NUL refused rather than truncating: %s", err);
    v = json_parse("{\"a\":\"\\\\u0000\"}", 15, err, sizeof(err));
    TAP_OK(v != NULL, "an escaped backslash followed by u0000 is plain text");
    yajl_tree_free(v);

    /* 100,000 nested arrays would overflow yajl's recursive free; the depth check stops them first. */
    size_t deep = 100000;
    char *nest = malloc(deep * 2);
    memset(nest, '[', deep);
    memset(nest + deep, ']', deep);
    v = json_parse(nest, deep * 2, err, sizeof(err));
    TAP_OK(v == NULL && strstr(err, "nested") != NULL, "deep nesting refused: %s", err);
    memset(nest, '[', JSON_MAX_DEPTH);
    memset(nest + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
    v = json_parse(nest, JSON_MAX_DEPTH * 2, err, sizeof(err));
    TAP_OK(v != NULL, "nesting at the limit accepted");
    yajl_tree_free(v);
    const char *brackets_in_string =
        "{\"s\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}";
    v = json_parse(brackets_in_string, strlen(brackets_in_string), err, sizeof(err));
    TAP_OK(v != NULL, "brackets inside strings do not count as nesting");
    yajl_tree_free(v);
    free(nest);

    /* UTF-16 surrogate escapes in request bodies: only a high one followed by a low one is a character. */
    static const struct {
        const char *doc;
        const char *what;
    } lone[] = {
        {"{\"a\":\"\\ud800\"}", "a lone high surrogate"},
        {"{\"a\":\"\\uDBFF\"}", "a lone high surrogate in upper case"},
        {"{\"a\":\"\\udc00\"}", "a lone low surrogate"},
        {"{\"a\":\"x\\ude00\\ud83d\"}", "a low surrogate before a high one"},
        {"{\"a\":\"\\ud83dx\"}", "a high surrogate followed by a letter"},
        {"{\"a\":\"\\ud83d\\u0041\"}", "a high surrogate followed by another escape"},
        {"{\"a\":\"\\ud83d\\ud83d\"}", "two high surrogates"},
        {"{\"a\":\"\\ud83d\\n\"}", "a high surrogate followed by \\n"},
        {"{\"\\ud800\":1}", "a lone surrogate in a key"},
        {"[\"ok\",\"\\ud800\"]", "a lone surrogate in an array"},
    };
    for (size_t i = 0; i < sizeof(lone) / sizeof(lone[0]); i++) {
        v = json_parse_request(lone[i].doc, strlen(lone[i].doc), err, sizeof(err));
        TAP_OK(v == NULL && strstr(err, "surrogate") != NULL, "request JSON with %s refused: %s",
               lone[i].what, v == NULL ? err : "accepted");
        if (v != NULL)
            yajl_tree_free(v);
    }
    const char *pair = "{\"a\":\"x\\ud83d\\ude00y\",\"b\":\"\\u00e9\\\\ud800\"}";
    v = json_parse_request(pair, strlen(pair), err, sizeof(err));
    TAP_OK(v != NULL, "a surrogate pair and an escaped backslash before ud800 are accepted");
    TAP_IS_STR(v ? json_get(v, "a")->u.string : "", "x\xf0\x9f\x98\x80y", "the pair decodes to U+1F600");
    TAP_IS_STR(v ? json_get(v, "b")->u.string : "", "\xc3\xa9\\ud800", "the escaped backslash stays text");
    if (v != NULL)
        yajl_tree_free(v);
    v = json_parse(lone[0].doc, strlen(lone[0].doc), err, sizeof(err));
    TAP_OK(v != NULL, "json_parse (peers' replies) still tolerates a lone surrogate");
    if (v != NULL)
        yajl_tree_free(v);
    return tap_done();
}
