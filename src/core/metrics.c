#include "core/metrics.h"

#include "core/alloc.h"
#include "core/timeutil.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One label combination of a family. Values are stored raw and escaped only when rendered. */
typedef struct {
    uint64_t hash;
    char *values;     /* the label values, each NUL-terminated, one after the other */
    double value;     /* counter or gauge value; histogram sum */
    uint64_t count;   /* histogram observations */
    uint64_t *counts; /* histogram: per-bucket counts, not cumulative; [nbuckets] is the +Inf-only bucket */
} series_t;

struct st_metrics_family_t {
    metrics_registry_t *reg;
    metrics_type_t type;
    char *name;
    char *help;
    size_t nlabels;
    char *label_names[METRICS_MAX_LABELS];
    double buckets[METRICS_MAX_BUCKETS];
    size_t nbuckets;
    size_t max_series;
    series_t *series; /* in order of first appearance, so output is stable between scrapes */
    size_t nseries, cap;
    /* Open-addressing index into series (entry + 1; 0 = empty), sized for max_series at under half load, so
     * a lookup on every request stays a couple of probes however many routes there are. */
    uint32_t *index;
    size_t index_mask;
    metrics_family_t *next;
};

struct st_metrics_registry_t {
    pthread_mutex_t lock;
    metrics_family_t *head, *tail;
    uint64_t dropped; /* values refused because their family was at max_series */
};

static const char *const type_names[] = {"counter", "gauge", "histogram"};

metrics_registry_t *metrics_registry_create(void)
{
    metrics_registry_t *reg = xcalloc(1, sizeof(*reg));
    if (pthread_mutex_init(&reg->lock, NULL) != 0)
        abort();
    return reg;
}

void metrics_registry_free(metrics_registry_t *reg)
{
    if (reg == NULL)
        return;
    metrics_family_t *f = reg->head;
    while (f != NULL) {
        metrics_family_t *next = f->next;
        for (size_t i = 0; i < f->nseries; i++) {
            free(f->series[i].values);
            free(f->series[i].counts);
        }
        free(f->series);
        free(f->index);
        for (size_t i = 0; i < f->nlabels; i++)
            free(f->label_names[i]);
        free(f->name);
        free(f->help);
        free(f);
        f = next;
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

metrics_family_t *metrics_family_add(metrics_registry_t *reg, metrics_type_t type, const char *name,
                                     const char *help, size_t nlabels, const char *const *label_names,
                                     const double *buckets, size_t nbuckets, size_t max_series)
{
    assert(nlabels <= METRICS_MAX_LABELS);
    assert(type != METRICS_HISTOGRAM || (nbuckets >= 1 && nbuckets <= METRICS_MAX_BUCKETS));
    assert(name != NULL && name[0] != '\0' && strpbrk(name, " {}\"\n") == NULL);
    metrics_family_t *f = xcalloc(1, sizeof(*f));
    f->reg = reg;
    f->type = type;
    f->name = xstrdup(name);
    f->help = xstrdup(help != NULL ? help : "");
    f->nlabels = nlabels;
    for (size_t i = 0; i < nlabels; i++) {
        /* "le" is the histogram's own label; a family label of that name would make the output ambiguous. */
        assert(strcmp(label_names[i], "le") != 0);
        f->label_names[i] = xstrdup(label_names[i]);
    }
    if (type == METRICS_HISTOGRAM) {
        for (size_t i = 0; i < nbuckets; i++) {
            assert(i == 0 || buckets[i] > buckets[i - 1]);
            f->buckets[i] = buckets[i];
        }
        f->nbuckets = nbuckets;
    }
    f->max_series = nlabels == 0 ? 1 : (max_series == 0 ? 1 : max_series);
    size_t slots = 8;
    while (slots < f->max_series * 2)
        slots *= 2;
    f->index = xcalloc(slots, sizeof(*f->index));
    f->index_mask = slots - 1;

    pthread_mutex_lock(&reg->lock);
    if (reg->tail != NULL)
        reg->tail->next = f;
    else
        reg->head = f;
    reg->tail = f;
    pthread_mutex_unlock(&reg->lock);
    return f;
}

/* FNV-1a over the values, each followed by its NUL, so ("ab","c") and ("a","bc") differ. */
static uint64_t hash_values(size_t n, const char *const *values)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i];; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
            if (*p == '\0')
                break;
        }
    }
    return h;
}

static int same_values(const series_t *s, size_t n, const char *const *values)
{
    const char *p = s->values;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(p, values[i]) != 0)
            return 0;
        p += strlen(p) + 1;
    }
    return 1;
}

/* The series for values, created when create is set and the family has room; NULL otherwise. Called with the
 * registry locked. */
static series_t *find_series(metrics_family_t *f, const char *const *values, int create)
{
    size_t n = f->nlabels;
    /* A missing value is a caller bug; dropping the value beats crashing the process over a metric. */
    if (n > 0 && values == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (values[i] == NULL)
            return NULL;
    uint64_t h = hash_values(n, values);
    size_t slot = (size_t)h & f->index_mask;
    for (;; slot = (slot + 1) & f->index_mask) {
        uint32_t e = f->index[slot];
        if (e == 0)
            break;
        series_t *s = &f->series[e - 1];
        if (s->hash == h && same_values(s, n, values))
            return s;
    }
    if (!create)
        return NULL;
    if (f->nseries >= f->max_series) {
        f->reg->dropped++;
        return NULL;
    }
    if (f->nseries == f->cap) {
        f->cap = f->cap == 0 ? 4 : f->cap * 2;
        if (f->cap > f->max_series)
            f->cap = f->max_series;
        f->series = xrealloc(f->series, f->cap * sizeof(*f->series));
    }
    series_t *s = &f->series[f->nseries];
    memset(s, 0, sizeof(*s));
    s->hash = h;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(values[i]) + 1;
    s->values = xmalloc(len + 1);
    char *p = s->values;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(values[i]) + 1;
        memcpy(p, values[i], l);
        p += l;
    }
    *p = '\0';
    if (f->type == METRICS_HISTOGRAM)
        s->counts = xcalloc(f->nbuckets + 1, sizeof(*s->counts));
    f->nseries++;
    f->index[slot] = (uint32_t)f->nseries;
    return s;
}

void metrics_add(metrics_family_t *f, const char *const *values, double v)
{
    if (f == NULL || f->type == METRICS_HISTOGRAM || isnan(v) || (f->type == METRICS_COUNTER && v < 0))
        return;
    pthread_mutex_lock(&f->reg->lock);
    series_t *s = find_series(f, values, 1);
    if (s != NULL)
        s->value += v;
    pthread_mutex_unlock(&f->reg->lock);
}

void metrics_set(metrics_family_t *f, const char *const *values, double v)
{
    if (f == NULL || f->type != METRICS_GAUGE)
        return;
    pthread_mutex_lock(&f->reg->lock);
    series_t *s = find_series(f, values, 1);
    if (s != NULL)
        s->value = v;
    pthread_mutex_unlock(&f->reg->lock);
}

void metrics_observe(metrics_family_t *f, const char *const *values, double v)
{
    /* A NaN would poison the sum for good; it is a caller bug, so it is dropped. */
    if (f == NULL || f->type != METRICS_HISTOGRAM || isnan(v))
        return;
    pthread_mutex_lock(&f->reg->lock);
    series_t *s = find_series(f, values, 1);
    if (s != NULL) {
        size_t i = 0;
        while (i < f->nbuckets && v > f->buckets[i])
            i++;
        s->counts[i]++;
        s->count++;
        s->value += v;
    }
    pthread_mutex_unlock(&f->reg->lock);
}

double metrics_value(metrics_family_t *f, const char *const *values)
{
    if (f == NULL)
        return 0;
    pthread_mutex_lock(&f->reg->lock);
    series_t *s = find_series(f, values, 0);
    double v = s == NULL ? 0 : f->type == METRICS_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&f->reg->lock);
    return v;
}

/* --- text format --------------------------------------------------------------------------------------- */

void metrics_write_number(buf_t *out, double v)
{
    if (isnan(v)) {
        buf_puts(out, "NaN");
    } else if (isinf(v)) {
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        buf_printf(out, "%.0f", v);
    } else {
        /* The shortest form that reads back as the same double, as Prometheus' own clients write it: 0.005
         * stays "0.005" (an le label must match across scrapes and look like what was configured). */
        char tmp[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
        buf_puts(out, tmp);
    }
}

void metrics_write_label_value(buf_t *out, const char *value)
{
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\\')
            buf_puts(out, "\\\\");
        else if (*p == '"')
            buf_puts(out, "\\\"");
        else if (*p == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *p);
    }
}

void metrics_write_header(buf_t *out, const char *name, const char *type, const char *help)
{
    /* HELP text escapes only backslash and newline (a quote is literal there). */
    buf_printf(out, "# HELP %s ", name);
    for (const char *p = help; *p != '\0'; p++) {
        if (*p == '\\')
            buf_puts(out, "\\\\");
        else if (*p == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *p);
    }
    buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

/* name{a="x",b="y"[,le="bound"]} v, values given as one packed string. */
static void write_series_line(buf_t *out, const char *name, const char *suffix, const metrics_family_t *f,
                              const char *packed, const char *le, double v)
{
    buf_puts(out, name);
    buf_puts(out, suffix);
    if (f->nlabels > 0 || le != NULL) {
        buf_putc(out, '{');
        const char *p = packed;
        for (size_t i = 0; i < f->nlabels; i++) {
            buf_printf(out, "%s%s=\"", i > 0 ? "," : "", f->label_names[i]);
            metrics_write_label_value(out, p);
            buf_putc(out, '"');
            p += strlen(p) + 1;
        }
        if (le != NULL)
            buf_printf(out, "%sle=\"%s\"", f->nlabels > 0 ? "," : "", le);
        buf_putc(out, '}');
    }
    buf_putc(out, ' ');
    metrics_write_number(out, v);
    buf_putc(out, '\n');
}

void metrics_write_sample(buf_t *out, const char *name, size_t nlabels, const char *const *names,
                          const char *const *values, double v)
{
    buf_puts(out, name);
    if (nlabels > 0) {
        buf_putc(out, '{');
        for (size_t i = 0; i < nlabels; i++) {
            buf_printf(out, "%s%s=\"", i > 0 ? "," : "", names[i]);
            metrics_write_label_value(out, values[i]);
            buf_putc(out, '"');
        }
        buf_putc(out, '}');
    }
    buf_putc(out, ' ');
    metrics_write_number(out, v);
    buf_putc(out, '\n');
}

static void render_family(buf_t *out, const metrics_family_t *f)
{
    metrics_write_header(out, f->name, type_names[f->type], f->help);
    for (size_t i = 0; i < f->nseries; i++) {
        const series_t *s = &f->series[i];
        if (f->type != METRICS_HISTOGRAM) {
            write_series_line(out, f->name, "", f, s->values, NULL, s->value);
            continue;
        }
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= f->nbuckets; b++) {
            cumulative += s->counts[b];
            buf_t le = BUF_INIT;
            if (b < f->nbuckets)
                metrics_write_number(&le, f->buckets[b]);
            else
                buf_puts(&le, "+Inf");
            write_series_line(out, f->name, "_bucket", f, s->values, buf_cstr(&le), (double)cumulative);
            buf_free(&le);
        }
        write_series_line(out, f->name, "_sum", f, s->values, NULL, s->value);
        write_series_line(out, f->name, "_count", f, s->values, NULL, (double)s->count);
    }
}

void metrics_render(metrics_registry_t *reg, buf_t *out)
{
    pthread_mutex_lock(&reg->lock);
    for (const metrics_family_t *f = reg->head; f != NULL; f = f->next)
        render_family(out, f);
    metrics_write_header(
        out, "inkloop_metrics_series_dropped_total", "counter",
        "Values not recorded because their metric had reached its limit of label combinations.");
    metrics_write_sample(out, "inkloop_metrics_series_dropped_total", 0, NULL, NULL, (double)reg->dropped);
    pthread_mutex_unlock(&reg->lock);
}

/* --- the default registry ------------------------------------------------------------------------------ */

/* Bounds on the label combinations of each instrument. Routes come from the route table (about 60), methods
 * from a fixed list of 8 and statuses from what the server sends (a dozen), so real use stays far below
 * these; they only stop a bug from growing memory without end. */
#define HTTP_REQUESTS_MAX_SERIES 2048
#define HTTP_DURATION_MAX_SERIES 512
#define STAGE_MAX_SERIES 16

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static metrics_registry_t *default_reg;
static metrics_family_t *http_requests, *http_duration, *pipeline_stage, *llm_tokens, *webhook_deliveries;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static double start_time_s;

void metrics_process_started(void)
{
    pthread_mutex_lock(&start_lock);
    if (start_time_s == 0)
        start_time_s = (double)time_now_us() / 1e6;
    pthread_mutex_unlock(&start_lock);
}

static void default_init(void)
{
    static const double latency[] = {METRICS_LATENCY_BUCKETS};
    static const size_t nlatency = sizeof(latency) / sizeof(latency[0]);
    static const char *const http_labels[] = {"route", "method", "status"};
    static const char *const stage_labels[] = {"stage"};
    static const char *const kind_labels[] = {"kind"};
    static const char *const outcome_labels[] = {"outcome"};

    metrics_process_started();
    default_reg = metrics_registry_create();
    http_requests =
        metrics_family_add(default_reg, METRICS_COUNTER, "inkloop_http_requests_total",
                           "HTTP responses sent, by route pattern (\"unmatched\" when none matched), "
                           "method and status.",
                           3, http_labels, NULL, 0, HTTP_REQUESTS_MAX_SERIES);
    http_duration =
        metrics_family_add(default_reg, METRICS_HISTOGRAM, "inkloop_http_request_duration_seconds",
                           "Time from a request's arrival to its response, by route pattern and method.", 2,
                           http_labels, latency, nlatency, HTTP_DURATION_MAX_SERIES);
    pipeline_stage = metrics_family_add(
        default_reg, METRICS_HISTOGRAM, "inkloop_pipeline_stage_duration_seconds",
        "Duration of completed generation pipeline stages.", 1, stage_labels,
        (const double[]){0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}, 11, STAGE_MAX_SERIES);
    llm_tokens =
        metrics_family_add(default_reg, METRICS_COUNTER, "inkloop_llm_tokens_total",
                           "Tokens the LLM provider reported as used, by kind.", 1, kind_labels, NULL, 0, 2);
    webhook_deliveries = metrics_family_add(default_reg, METRICS_COUNTER, "inkloop_webhook_deliveries_total",
                                            "Webhook delivery attempts by this process, by outcome.", 1,
                                            outcome_labels, NULL, 0, 2);
    /* Series that exist from the start read 0 instead of being absent, so rate() and alerts work before the
     * first token is used or the first delivery is made. */
    metrics_add(llm_tokens, (const char *const[]){"prompt"}, 0);
    metrics_add(llm_tokens, (const char *const[]){"completion"}, 0);
    metrics_add(webhook_deliveries, (const char *const[]){"success"}, 0);
    metrics_add(webhook_deliveries, (const char *const[]){"failure"}, 0);
}

static metrics_registry_t *default_registry(void)
{
    pthread_once(&default_once, default_init);
    return default_reg;
}

metrics_family_t *metrics_default_family(const char *which)
{
    default_registry();
    if (strcmp(which, "http_requests") == 0)
        return http_requests;
    if (strcmp(which, "http_duration") == 0)
        return http_duration;
    if (strcmp(which, "pipeline_stage") == 0)
        return pipeline_stage;
    if (strcmp(which, "llm_tokens") == 0)
        return llm_tokens;
    if (strcmp(which, "webhook_deliveries") == 0)
        return webhook_deliveries;
    return NULL;
}

static const char *bounded_method(const char *method)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; method != NULL && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "other";
}

void metrics_http_request(const char *route, const char *method, int status, double seconds)
{
    default_registry();
    char code[12];
    snprintf(code, sizeof(code), "%d", status >= 100 && status <= 999 ? status : 0);
    const char *r = route != NULL ? route : "unmatched";
    const char *m = bounded_method(method);
    metrics_add(http_requests, (const char *const[]){r, m, code}, 1);
    metrics_observe(http_duration, (const char *const[]){r, m}, seconds < 0 ? 0 : seconds);
}

void metrics_pipeline_stage(const char *stage, double seconds)
{
    default_registry();
    metrics_observe(pipeline_stage, (const char *const[]){stage}, seconds < 0 ? 0 : seconds);
}

void metrics_llm_tokens(int64_t prompt_tokens, int64_t completion_tokens)
{
    default_registry();
    if (prompt_tokens > 0)
        metrics_add(llm_tokens, (const char *const[]){"prompt"}, (double)prompt_tokens);
    if (completion_tokens > 0)
        metrics_add(llm_tokens, (const char *const[]){"completion"}, (double)completion_tokens);
}

void metrics_webhook_delivery(int success)
{
    default_registry();
    metrics_add(webhook_deliveries, (const char *const[]){success ? "success" : "failure"}, 1);
}

void metrics_render_default(buf_t *out)
{
    metrics_registry_t *reg = default_registry();
    metrics_render(reg, out);
    metrics_write_header(out, "inkloop_build_info", "gauge",
                         "Always 1; the version label says which build runs.");
    metrics_write_sample(out, "inkloop_build_info", 1, (const char *const[]){"version"},
                         (const char *const[]){INKLOOP_VERSION}, 1);
    pthread_mutex_lock(&start_lock);
    double start = start_time_s;
    pthread_mutex_unlock(&start_lock);
    metrics_write_header(out, "process_start_time_seconds", "gauge",
                         "Start time of the process since the Unix epoch in seconds.");
    metrics_write_sample(out, "process_start_time_seconds", 0, NULL, NULL, start);
}
