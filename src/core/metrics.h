/* A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text exposition
 * format 0.0.4. Memory is bounded: every family caps its number of label combinations (series), and a value
 * past the cap is counted in inkloop_metrics_series_dropped_total instead of growing the table.
 *
 * The process's own instruments live in one default registry behind the metrics_* helpers at the end of this
 * header, so any module (http, pipeline, webhook) records without a pointer being passed around. Every call
 * takes the registry's mutex, so recording from a libuv worker thread is safe too. */
#ifndef INKLOOP_CORE_METRICS_H
#define INKLOOP_CORE_METRICS_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct st_metrics_registry_t metrics_registry_t;
typedef struct st_metrics_family_t metrics_family_t;

typedef enum { METRICS_COUNTER = 0, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_type_t;

/** Most labels a family may have. */
#define METRICS_MAX_LABELS 4
/** Most histogram buckets (the implicit +Inf bucket not counted). */
#define METRICS_MAX_BUCKETS 16

/** Creates an empty registry. */
metrics_registry_t *metrics_registry_create(void);
/** Frees the registry and every family in it. */
void metrics_registry_free(metrics_registry_t *reg);

/** Adds a family. name and help are copied; label_names (nlabels of them, at most METRICS_MAX_LABELS) too.
 * For histograms, buckets holds the upper bounds in increasing order (at most METRICS_MAX_BUCKETS; +Inf is
 * implicit); NULL otherwise. max_series caps the label combinations kept (a family without labels has one).
 * Names are assumed valid Prometheus names (they come from code, not input): asserted, not reported. */
metrics_family_t *metrics_family_add(metrics_registry_t *reg, metrics_type_t type, const char *name,
                                     const char *help, size_t nlabels, const char *const *label_names,
                                     const double *buckets, size_t nbuckets, size_t max_series);

/** Counter: adds v (>= 0; a negative v is ignored, counters only go up). Gauge: adds v (may be negative).
 * values holds one value per label, in the family's label order (NULL when it has none). */
void metrics_add(metrics_family_t *fam, const char *const *values, double v);
/** Gauge: sets the value. */
void metrics_set(metrics_family_t *fam, const char *const *values, double v);
/** Histogram: records one observation. */
void metrics_observe(metrics_family_t *fam, const char *const *values, double v);
/** The current value of a counter or gauge series, or a histogram's count; 0 when the series does not exist.
 * For tests and for code that exposes the same number elsewhere. */
double metrics_value(metrics_family_t *fam, const char *const *values);

/** Appends every family of reg in the text format, families in the order they were added, series in the order
 * they first appeared. Families without any series yet print only their HELP and TYPE lines. */
void metrics_render(metrics_registry_t *reg, buf_t *out);

/* Writing values computed at scrape time (a query's result), which belong in no registry. */
/** Appends the "# HELP" and "# TYPE" lines of a family (type: "counter", "gauge", "histogram"). */
void metrics_write_header(buf_t *out, const char *name, const char *type, const char *help);
/** Appends one sample line: name{names[i]="values[i]",...} v, with label values escaped. */
void metrics_write_sample(buf_t *out, const char *name, size_t nlabels, const char *const *names,
                          const char *const *values, double v);
/** Appends a number as the text format spells it: integers without a fraction, +Inf, -Inf, NaN. */
void metrics_write_number(buf_t *out, double v);
/** Appends a label value escaped for the text format (backslash, double quote and newline). */
void metrics_write_label_value(buf_t *out, const char *value);

/* --- the process's instruments (default registry) ------------------------------------------------------ */

/** Upper bounds (seconds) of the latency histograms. */
#define METRICS_LATENCY_BUCKETS 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10

/** One HTTP response: inkloop_http_requests_total{route,method,status} and
 * inkloop_http_request_duration_seconds{route,method}. route is the matched pattern (NULL: "unmatched");
 * methods other than the standard ones are counted as "other", so a client cannot add series at will. */
void metrics_http_request(const char *route, const char *method, int status, double seconds);
/** One finished pipeline stage ("research", "scrape", "analyze", "write", "complete"):
 * inkloop_pipeline_stage_duration_seconds{stage}. Stage names must come from code (bounded). */
void metrics_pipeline_stage(const char *stage, double seconds);
/** Tokens an LLM call reported as used: inkloop_llm_tokens_total{kind="prompt"|"completion"}. */
void metrics_llm_tokens(int64_t prompt_tokens, int64_t completion_tokens);
/** One webhook delivery attempt: inkloop_webhook_deliveries_total{outcome="success"|"failure"}. */
void metrics_webhook_delivery(int success);

/** Records the process start time (the first call wins). Call it once at start-up; the default registry
 * would otherwise record its own creation time, which may be later. */
void metrics_process_started(void);
/** Appends the default registry plus inkloop_build_info{version} and process_start_time_seconds. */
void metrics_render_default(buf_t *out);
/** The default registry's instrument, for tests: "http_requests", "http_duration", "pipeline_stage",
 * "llm_tokens", "webhook_deliveries"; NULL for another name. */
metrics_family_t *metrics_default_family(const char *which);

#endif
