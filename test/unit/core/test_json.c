/* The JSON writer's escaping and punctuation, and the guarded parser. */
#include "core/json.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *escaped(const char *s, size_t n)
{
    buf_t b = BUF_INIT;
    json_put_stringn(&b, s, n);
    return buf_release(&b);
}

/* One string through the writer, as a value and as a key: {"<s>":["<s>"]}. Returns the document. */
static char *through_writer(const char *s)
{
    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_object_begin(&w);
    jw_key(&w, s);
    jw_array_begin(&w);
    jw_string(&w, s);
    jw_array_end(&w);
    jw_object_end(&w);
    return buf_release(&b);
}

/* The exact bytes of every answer depend on these: which characters are escaped and how (\u00XX in lowercase,
 * the short forms, no escaped '/', DEL and non-ASCII kept), and invalid UTF-8 (strictly: no overlong forms,
 * surrogates or code points past U+10FFFF) replaced byte by byte with \ufffd. The expectations are what the
 * hand-written writer produced before yajl_gen placed the punctuation; keys and values escape alike. */
static void test_escaping_golden(void)
{
    static const struct {
        const char *in, *want, *what;
    } cases[] = {
        {"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
         "\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f",
         "controls 01-0f"},
        {"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
         "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c"
         "\\u001d\\u001e\\u001f",
         "controls 10-1f, hex digits lowercase"},
        {"a/b</script>", "a/b</script>", "solidus not escaped"},
        {"\"q\" \\ \x7f", "\\\"q\\\" \\\\ \x7f", "quote, backslash, DEL kept"},
        {"caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80",
         "2, 3 and 4 byte UTF-8 kept"},
        {"\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\xef\xbf\xbf\xf4\x8f\xbf\xbf", "U+FFFF and U+10FFFF kept"},
        {"\xc0\x80", "\\ufffd\\ufffd", "overlong NUL"},
        {"\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd", "overlong 3 bytes"},
        {"\xf0\x80\x80\xaf", "\\ufffd\\ufffd\\ufffd\\ufffd", "overlong 4 bytes"},
        {"\xed\xbf\xbf", "\\ufffd\\ufffd\\ufffd", "low surrogate"},
        {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd", "past U+10FFFF"},
        {"a\x80"
         "b\xbf",
         "a\\ufffdb\\ufffd", "lone continuation bytes"},
        {"\xfe\xff\xf8\x88\x80\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd",
         "bytes never in UTF-8"},
        {"x\xe2\x82", "x\\ufffd\\ufffd", "truncated at the end"},
        {"\xe2\x82x", "\\ufffd\\ufffdx", "truncated before ASCII"},
        {"\xc3\xa9\xc3", "\xc3\xa9\\ufffd", "valid then truncated"},
        {"", "", "empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = through_writer(cases[i].in);
        buf_t want = BUF_INIT;
        buf_printf(&want, "{\"%s\":[\"%s\"]}", cases[i].want, cases[i].want);
        TAP_IS_STR(got, buf_cstr(&want), "escaping: %s", cases[i].what);
        buf_free(&want);
        free(got);
    }
    /* With an explicit length, NUL is a character like the others. */
    char *s = escaped("a\0b", 3);
    TAP_IS_STR(s, "\"a\\u0000b\"", "NUL escaped");
    free(s);
}

/* Numbers and the document's shape. A double that is not finite has no JSON form: it is written as null, so
 * the document stays valid (the hand-written writer printed nan). */
static void test_numbers_and_shape(void)
{
    buf_t b = BUF_INIT;
    json_writer_t w;
    jw_init(&w, &b);
    jw_array_begin(&w);
    jw_int(&w, INT64_MIN);
    jw_int(&w, INT64_MAX);
    jw_int(&w, 0);
    jw_double(&w, 0.5);
    jw_double(&w, 0.0 / 0.0);
    jw_double(&w, 1.0 / 0.0);
    jw_double(&w, -1.0 / 0.0);
    jw_bool(&w, 0);
    jw_array_begin(&w);
    jw_array_end(&w);
    jw_raw(&w, "{\"k\":[]}", 8);
    jw_object_begin(&w);
    jw_key(&w, "x");
    jw_raw(&w, "null", 4);
    jw_key(&w, "y");
    jw_object_begin(&w);
    jw_object_end(&w);
    jw_object_end(&w);
    jw_array_end(&w);
    TAP_IS_STR(buf_cstr(&b),
               "[-9223372036854775808,9223372036854775807,0,0.5,null,null,null,false,[],{\"k\":[]},"
               "{\"x\":null,\"y\":{}}]",
               "integers, doubles (non-finite as null), raw values, empty containers");
    char err[64];
    yajl_val v = json_parse(b.data, b.len, err, sizeof(err));
    TAP_OK(v != NULL, "the document parses");
    yajl_tree_free(v);
    buf_free(&b);

    /* The writer appends to what the buffer holds (server-sent events put a prefix first). */
    buf_t sse = BUF_INIT;
    buf_puts(&sse, "data: ");
    jw_init(&w, &sse);
    jw_object_begin(&w);
    jw_key(&w, "a");
    jw_string(&w, "b");
    jw_object_end(&w);
    TAP_IS_STR(buf_cstr(&sse), "data: {\"a\":\"b\"}", "appends after existing content");
    buf_free(&sse);

    /* Nesting to JSON_MAX_DEPTH works. */
    buf_t deep = BUF_INIT;
    jw_init(&w, &deep);
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        jw_array_begin(&w);
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        jw_array_end(&w);
    TAP_IS_INT(deep.len, 2 * JSON_MAX_DEPTH, "nesting %d deep", JSON_MAX_DEPTH);
    buf_free(&deep);
}

int main(void)
{
    test_escaping_golden();
    test_numbers_and_shape();

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
