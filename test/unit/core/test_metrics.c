/* The metrics registry: text exposition format, label escaping, histogram math, series bounds, and the
 * default registry's instruments. */
#include "core/metrics.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int contains(const buf_t *b, const char *s)
{
    return strstr(buf_cstr(b), s) != NULL;
}

/* The value on the line that starts with prefix (prefix ends just before the space), NAN when absent. */
static double sample(const buf_t *b, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (const char *line = buf_cstr(b); *line != '\0';) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, prefix, plen) == 0 && line[plen] == ' ')
            return strtod(line + plen + 1, NULL);
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    return NAN;
}

static void test_counter_and_gauge(void)
{
    metrics_registry_t *reg = metrics_registry_create();
    static const char *const labels[] = {"route", "status"};
    metrics_family_t *c =
        metrics_family_add(reg, METRICS_COUNTER, "t_requests_total", "Requests.", 2, labels, NULL, 0, 16);
    metrics_family_t *g = metrics_family_add(reg, METRICS_GAUGE, "t_temp", "A gauge.", 0, NULL, NULL, 0, 0);
    metrics_add(c, (const char *const[]){"/a", "200"}, 1);
    metrics_add(c, (const char *const[]){"/a", "200"}, 2);
    metrics_add(c, (const char *const[]){"/b", "404"}, 1);
    metrics_add(c, (const char *const[]){"/b", "404"}, -5); /* counters never go down */
    metrics_set(g, NULL, -2.5);
    metrics_add(g, NULL, 0.25);
    TAP_IS_INT(metrics_value(c, (const char *const[]){"/a", "200"}), 3, "counter adds");
    TAP_IS_INT(metrics_value(c, (const char *const[]){"/b", "404"}), 1,
               "a negative add to a counter is ignored");
    TAP_IS_INT(metrics_value(c, (const char *const[]){"/c", "200"}), 0, "an unknown series reads 0");
    TAP_OK(metrics_value(g, NULL) == -2.25, "gauge set then add");

    buf_t out = BUF_INIT;
    metrics_render(reg, &out);
    TAP_OK(contains(&out, "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"
                          "t_requests_total{route=\"/a\",status=\"200\"} 3\n"
                          "t_requests_total{route=\"/b\",status=\"404\"} 1\n"),
           "counter family: HELP, TYPE, series in order of appearance");
    TAP_OK(contains(&out, "# TYPE t_temp gauge\nt_temp -2.25\n"), "gauge without labels has no braces");
    TAP_OK(contains(&out, "inkloop_metrics_series_dropped_total 0\n"), "dropped counter is exported");
    TAP_OK(out.len > 0 && out.data[out.len - 1] == '\n', "output ends with a newline");
    buf_free(&out);
    metrics_registry_free(reg);
}

static void test_escaping(void)
{
    metrics_registry_t *reg = metrics_registry_create();
    static const char *const labels[] = {"v"};
    metrics_family_t *c = metrics_family_add(reg, METRICS_COUNTER, "t_esc_total",
                                             "Back\\slash and\nnewline \"q\".", 1, labels, NULL, 0, 4);
    metrics_add(c, (const char *const[]){"a\"b\\c\nd"}, 1);
    buf_t out = BUF_INIT;
    metrics_render(reg, &out);
    TAP_OK(contains(&out, "t_esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"),
           "label value: quote, backslash, newline escaped");
    TAP_OK(contains(&out, "# HELP t_esc_total Back\\\\slash and\\nnewline \"q\".\n"),
           "HELP escapes backslash and newline, keeps quotes");
    buf_free(&out);

    metrics_write_sample(&out, "x", 2, (const char *const[]){"a", "b"}, (const char *const[]){"1", "\""}, 7);
    TAP_IS_STR(buf_cstr(&out), "x{a=\"1\",b=\"\\\"\"} 7\n", "metrics_write_sample escapes too");
    buf_free(&out);
    metrics_registry_free(reg);
}

static void test_numbers(void)
{
    struct {
        double v;
        const char *want;
    } cases[] = {{0, "0"},          {3, "3"},           {-7, "-7"},
                 {0.005, "0.005"},  {2.5, "2.5"},       {0.1 + 0.2, "0.30000000000000004"},
                 {1e300, "1e+300"}, {INFINITY, "+Inf"}, {-INFINITY, "-Inf"},
                 {NAN, "NaN"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_t b = BUF_INIT;
        metrics_write_number(&b, cases[i].v);
        TAP_IS_STR(buf_cstr(&b), cases[i].want, "number %s", cases[i].want);
        buf_free(&b);
    }
}

static void test_histogram(void)
{
    metrics_registry_t *reg = metrics_registry_create();
    static const char *const labels[] = {"op"};
    static const double bounds[] = {0.1, 1, 10};
    metrics_family_t *h =
        metrics_family_add(reg, METRICS_HISTOGRAM, "t_seconds", "Durations.", 1, labels, bounds, 3, 4);
    const double obs[] = {0.05, 0.1, 0.5, 1, 3, 100, 0};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        metrics_observe(h, (const char *const[]){"x"}, obs[i]);
    metrics_observe(h, (const char *const[]){"x"}, NAN); /* ignored: it would poison the sum */
    TAP_IS_INT(metrics_value(h, (const char *const[]){"x"}), 7, "histogram value is its count");

    buf_t out = BUF_INIT;
    metrics_render(reg, &out);
    TAP_OK(contains(&out, "# TYPE t_seconds histogram\n"), "histogram TYPE line");
    /* Upper bounds are inclusive (le): 0.1 falls in the 0.1 bucket, 1 in the 1 bucket. */
    TAP_IS_INT(sample(&out, "t_seconds_bucket{op=\"x\",le=\"0.1\"}"), 3, "le=0.1 counts 0, 0.05 and 0.1");
    TAP_IS_INT(sample(&out, "t_seconds_bucket{op=\"x\",le=\"1\"}"), 5, "le=1 is cumulative");
    TAP_IS_INT(sample(&out, "t_seconds_bucket{op=\"x\",le=\"10\"}"), 6, "le=10 is cumulative");
    TAP_IS_INT(sample(&out, "t_seconds_bucket{op=\"x\",le=\"+Inf\"}"), 7, "+Inf bucket holds everything");
    TAP_IS_INT(sample(&out, "t_seconds_count{op=\"x\"}"), 7, "_count equals the +Inf bucket");
    TAP_OK(fabs(sample(&out, "t_seconds_sum{op=\"x\"}") - 104.65) < 1e-9, "_sum is the sum of observations");
    const char *first = strstr(buf_cstr(&out), "t_seconds_bucket");
    const char *sum = strstr(buf_cstr(&out), "t_seconds_sum");
    const char *count = strstr(buf_cstr(&out), "t_seconds_count");
    TAP_OK(first != NULL && sum != NULL && count != NULL && first < sum && sum < count,
           "buckets, then _sum, then _count");
    buf_free(&out);
    metrics_registry_free(reg);
}

static void test_bounds(void)
{
    metrics_registry_t *reg = metrics_registry_create();
    static const char *const labels[] = {"k"};
    metrics_family_t *c =
        metrics_family_add(reg, METRICS_COUNTER, "t_bounded_total", "Bounded.", 1, labels, NULL, 0, 3);
    char v[16];
    for (int i = 0; i < 10; i++) {
        snprintf(v, sizeof(v), "v%d", i);
        metrics_add(c, (const char *const[]){v}, 1);
    }
    metrics_add(c, (const char *const[]){"v1"}, 1); /* an existing series still counts at the cap */
    metrics_add(c, (const char *const[]){NULL}, 1); /* a caller bug is dropped, not a crash */
    buf_t out = BUF_INIT;
    metrics_render(reg, &out);
    TAP_IS_INT(sample(&out, "t_bounded_total{k=\"v0\"}"), 1, "first series kept");
    TAP_IS_INT(sample(&out, "t_bounded_total{k=\"v1\"}"), 2, "existing series grows at the cap");
    TAP_OK(isnan(sample(&out, "t_bounded_total{k=\"v3\"}")), "series past the cap are not created");
    TAP_IS_INT(sample(&out, "inkloop_metrics_series_dropped_total"), 7, "dropped values are counted");
    buf_free(&out);

    /* Many series: the index keeps finding each one (collisions, growth of the series array). */
    metrics_family_t *many =
        metrics_family_add(reg, METRICS_GAUGE, "t_many", "Many.", 1, labels, NULL, 0, 500);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 500; i++) {
            snprintf(v, sizeof(v), "s%d", i);
            metrics_add(many, (const char *const[]){v}, i);
        }
    int ok = 1;
    for (int i = 0; i < 500; i++) {
        snprintf(v, sizeof(v), "s%d", i);
        ok &= metrics_value(many, (const char *const[]){v}) == 2.0 * i;
    }
    TAP_OK(ok, "500 series each found again");
    metrics_registry_free(reg);
}

static void test_default_registry(void)
{
    metrics_process_started();
    metrics_http_request("/articles/{id}", "GET", 200, 0.003);
    metrics_http_request("/articles/{id}", "GET", 200, 0.2);
    metrics_http_request(NULL, "BREW", 404, 0.001);
    metrics_llm_tokens(120, 30);
    metrics_llm_tokens(-1, 0);
    metrics_webhook_delivery(1);
    metrics_webhook_delivery(0);
    metrics_webhook_delivery(0);
    metrics_pipeline_stage("write", 42);

    buf_t out = BUF_INIT;
    metrics_render_default(&out);
    TAP_IS_INT(
        sample(&out, "inkloop_http_requests_total{route=\"/articles/{id}\",method=\"GET\",status=\"200\"}"),
        2, "http requests counted by route pattern");
    TAP_IS_INT(
        sample(&out, "inkloop_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"}"), 1,
        "no route is \"unmatched\"; an unknown method is \"other\"");
    TAP_IS_INT(sample(&out,
                      "inkloop_http_request_duration_seconds_bucket{route=\"/articles/{id}\",method=\"GET\","
                      "le=\"0.005\"}"),
               1, "latency histogram bucket");
    TAP_IS_INT(
        sample(&out, "inkloop_http_request_duration_seconds_count{route=\"/articles/{id}\",method=\"GET\"}"),
        2, "latency histogram count");
    TAP_IS_INT(sample(&out, "inkloop_llm_tokens_total{kind=\"prompt\"}"), 120, "prompt tokens");
    TAP_IS_INT(sample(&out, "inkloop_llm_tokens_total{kind=\"completion\"}"), 30, "completion tokens");
    TAP_IS_INT(sample(&out, "inkloop_webhook_deliveries_total{outcome=\"success\"}"), 1,
               "deliveries: success");
    TAP_IS_INT(sample(&out, "inkloop_webhook_deliveries_total{outcome=\"failure\"}"), 2,
               "deliveries: failure");
    TAP_IS_INT(sample(&out, "inkloop_pipeline_stage_duration_seconds_count{stage=\"write\"}"), 1,
               "stage duration");
    TAP_IS_INT(sample(&out, "inkloop_build_info{version=\"" INKLOOP_VERSION "\"}"), 1, "build info");
    TAP_OK(sample(&out, "process_start_time_seconds") > 1.6e9, "process start time is a recent epoch time");
    TAP_OK(metrics_default_family("http_requests") != NULL && metrics_default_family("nope") == NULL,
           "default families by name");
    buf_free(&out);
}

int main(void)
{
    test_counter_and_gauge();
    test_escaping();
    test_numbers();
    test_histogram();
    test_bounds();
    test_default_registry();
    return tap_done();
}
