/* /campaigns: recurring article generation at posting times (API.md sections 4 and 8). This file owns the
 * resource and its rules; the scheduler that turns slots into articles reuses the SQL slot functions of
 * sql/0003_campaigns.sql (campaign_slots_between, campaign_next_slot). */
#ifndef INKLOOP_HTTP_CAMPAIGNS_H
#define INKLOOP_HTTP_CAMPAIGNS_H

#include "db/db.h"
#include "http/kit.h"
#include "http/server.h"

#include <stddef.h>
#include <stdint.h>

/** At most this many posting times (contract: 1-24 distinct "HH:MM"). */
#define CAMPAIGN_MAX_TIMES 24

/** A POST or PATCH /campaigns body after validation. Strings point into the validator's parse tree; absent
 * optional members are NULL (strings), "" (dates, ids) or have their has_ flag 0. */
typedef struct st_campaign_body_t {
    const char *name;
    const char *description;
    const char *topic;          /* create only */
    const char *category;       /* create only; "General" when absent */
    const char *timezone;       /* "UTC" when absent on create; NULL when absent on PATCH */
    const char *webhook_url;    /* create only */
    const char *webhook_secret; /* create only; NULL when absent, null or "" */
    const char *status;         /* PATCH only: "active", "paused" or NULL */
    int64_t articles_per_day;
    int64_t total_articles; /* create only */
    int64_t target_length;  /* create only; 1500 when absent */
    int64_t source_count;   /* create only; 5 when absent */
    int has_articles_per_day;
    int has_total_articles;
    size_t ntimes;                              /* 0 when posting_times is absent (PATCH) */
    char times[CAMPAIGN_MAX_TIMES][6];          /* "HH:MM", in the order given (slot i uses i mod len) */
    char times_sql[CAMPAIGN_MAX_TIMES * 6 + 3]; /* the same as a PostgreSQL array literal "{09:00,13:30}" */
    char start_date[11];                        /* "YYYY-MM-DD"; create only */
    char end_date[11];                          /* "" when absent */
    char webhook_integration_id[37];            /* "" when absent */
} campaign_body_t;

/** Decides whether a timezone name is acceptable (1) or not (0). */
typedef int (*campaign_tz_valid_cb)(const char *name);

/** Validates v's body (already parsed with v_parse_body or by hand) into out, recording every problem in v:
 * create (patch = 0) or PATCH (patch = 1) rules. tz_valid judges the timezone (NULL: any name passes).
 * Returns the number of problems recorded. Pure: no I/O. */
int campaign_body_parse(validator_t *v, int patch, campaign_tz_valid_cb tz_valid, campaign_body_t *out);
/** 1 when s is exactly "HH:MM" with HH 00-23 and MM 00-59. */
int campaign_time_valid(const char *s);

/** Registers the statements of this file. */
int campaigns_prepare(db_pool_t *pool);

void campaigns_create(http_req_t *req);
void campaigns_list(http_req_t *req);
void campaigns_get(http_req_t *req);
void campaigns_update(http_req_t *req);
void campaigns_pause(http_req_t *req);
void campaigns_resume(http_req_t *req);
void campaigns_delete(http_req_t *req);

#endif
