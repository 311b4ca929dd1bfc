/* The route table: every path the service answers, who may call it, and its handler. */
#include "http/auth.h"
#include "http/campaigns.h"
#include "http/credits.h"
#include "http/handlers.h"
#include "http/articles.h"
#include "http/events.h"
#include "http/idempotency.h"
#include "http/integrations.h"
#include "http/ops.h"
#include "http/router.h"
#include "http/timezones.h"
#include "http/titles.h"

const http_route_t http_routes[] = {
    {"GET", "/health", health_get, ROUTE_PUBLIC},
    {"GET", "/metrics", ops_metrics, ROUTE_PUBLIC},
    {"GET", "/openapi.json", ops_openapi, ROUTE_PUBLIC},
    {"GET", "/docs", ops_docs, ROUTE_PUBLIC},
    {"GET", "/queue/stats", ops_queue_stats, ROUTE_USER},

    {"POST", "/auth/signup", auth_signup, ROUTE_PUBLIC},
    {"POST", "/auth/login", auth_login, ROUTE_PUBLIC},
    {"POST", "/auth/refresh", auth_refresh, ROUTE_PUBLIC},
    {"POST", "/auth/logout", auth_logout, ROUTE_PUBLIC},
    {"POST", "/auth/google", auth_google, ROUTE_PUBLIC},
    {"GET", "/auth/me", auth_me, ROUTE_USER},

    {"POST", "/api-keys", apikeys_create, ROUTE_USER},
    {"GET", "/api-keys", apikeys_list, ROUTE_USER},
    {"DELETE", "/api-keys/{key_id}", apikeys_delete, ROUTE_USER},

    {"GET", "/credits", credits_get, ROUTE_USER},
    {"GET", "/credits/transactions", credits_transactions, ROUTE_USER},
    {"POST", "/credits/purchase", credits_purchase, ROUTE_USER},
    {"POST", "/admin/credits", credits_admin_grant, ROUTE_ADMIN},
    {"POST", "/admin/scheduler/tick", schedtick_post, ROUTE_ADMIN},

    {"POST", "/generate/titles", titlegen_post, ROUTE_USER},

    {"POST", "/integrations", integrations_create, ROUTE_USER},
    {"POST", "/integrations/test", webhooks_test_url, ROUTE_USER},
    {"POST", "/integrations/{integration_id}/test", webhooks_test_integration, ROUTE_USER},
    {"POST", "/admin/deliveries/sweep", webhooks_admin_sweep, ROUTE_ADMIN},
    {"GET", "/integrations", integrations_list, ROUTE_USER},
    {"GET", "/integrations/{integration_id}", integrations_get, ROUTE_USER},
    {"GET", "/integrations/{integration_id}/secret", integrations_secret, ROUTE_USER},
    {"PATCH", "/integrations/{integration_id}", integrations_update, ROUTE_USER},
    {"DELETE", "/integrations/{integration_id}", integrations_delete, ROUTE_USER},

    {"POST", "/campaigns", campaigns_create, ROUTE_USER},
    {"GET", "/campaigns", campaigns_list, ROUTE_USER},
    {"GET", "/campaigns/{campaign_id}", campaigns_get, ROUTE_USER},
    {"PATCH", "/campaigns/{campaign_id}", campaigns_update, ROUTE_USER},
    {"POST", "/campaigns/{campaign_id}/pause", campaigns_pause, ROUTE_USER},
    {"POST", "/campaigns/{campaign_id}/resume", campaigns_resume, ROUTE_USER},
    {"DELETE", "/campaigns/{campaign_id}", campaigns_delete, ROUTE_USER},

    {"POST", "/articles", articles_create, ROUTE_USER},
    {"POST", "/generate", articles_create, ROUTE_USER},
    {"GET", "/articles", articles_list, ROUTE_USER},
    {"GET", "/articles/stats", articles_stats, ROUTE_USER},
    {"GET", "/articles/{article_id}", articles_get, ROUTE_USER},
    {"PATCH", "/articles/{article_id}", articles_patch, ROUTE_USER},
    {"DELETE", "/articles/{article_id}", articles_delete, ROUTE_USER},
    {"POST", "/articles/{article_id}/retry", articles_retry, ROUTE_USER},
    {"POST", "/articles/{article_id}/deliver", articles_deliver, ROUTE_USER},
    {"GET", "/articles/{article_id}/deliveries", articles_deliveries, ROUTE_USER},
    {"GET", "/articles/{article_id}/events", events_get, ROUTE_USER},
    {"GET", "/campaigns/{campaign_id}/articles", articles_of_campaign, ROUTE_USER},
    {"POST", "/internal/article-complete", articles_internal_complete, ROUTE_INTERNAL},

    {"PATCH", "/titles/{title_id}/verify", titles_verify, ROUTE_USER},
    {"POST", "/generate/batch", titles_batch, ROUTE_USER},
};

const size_t http_route_count = sizeof(http_routes) / sizeof(http_routes[0]);

int http_prepare_statements(db_pool_t *pool)
{
    if (auth_prepare(pool) != 0 || credits_prepare(pool) != 0 || ops_prepare(pool) != 0)
        return -1;
    if (integrations_prepare(pool) != 0 || campaigns_prepare(pool) != 0 || idem_prepare(pool) != 0 ||
        articles_prepare(pool) != 0 || titles_prepare(pool) != 0 || events_prepare(pool) != 0)
        return -1;
    return 0;
}
