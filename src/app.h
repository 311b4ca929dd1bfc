/* The process-wide context: everything a handler or job reaches through one pointer. */
#ifndef INKLOOP_APP_H
#define INKLOOP_APP_H

#include "core/config.h"

#include <uv.h>

typedef struct st_db_pool_t db_pool_t;
typedef struct st_net_t net_t;
typedef struct st_http_server_t http_server_t;
typedef struct st_llm_t llm_t;
typedef struct st_search_t search_t;
typedef struct st_jobs_runner_t jobs_runner_t;
typedef struct st_events_t events_t;
typedef struct st_sched_t sched_t;

struct st_app_t {
    uv_loop_t *loop;
    config_t *cfg;
    db_pool_t *db;
    net_t *net;
    http_server_t *http;
    llm_t *llm;          /* NULL when LLM_BASE_URL is not set */
    search_t *search;    /* NULL when SEARCH_PROVIDER is not set */
    jobs_runner_t *jobs; /* the job runner; NULL unless this process has the worker role */
    events_t *events;    /* the article event hub and its LISTEN connection (events/events.h) */
    sched_t *sched;      /* the campaign scheduler (ticks on a timer only with the scheduler role); NULL once
                            stopping */
    int stopping;        /* set once SIGTERM/SIGINT arrived */
};
typedef struct st_app_t app_t;

#endif
