/* /credits, /credits/transactions, /credits/purchase and POST /admin/credits, plus the 402 helpers every
 * charging handler uses. */
#ifndef INKLOOP_HTTP_CREDITS_H
#define INKLOOP_HTTP_CREDITS_H

#include "db/db.h"
#include "http/server.h"

/** Registers the statements of this file. */
int credits_prepare(db_pool_t *pool);
/** True when a statement failed because the balance was short (SQLSTATE IL402 from credits_charge/require).
 */
int credits_is_insufficient(const db_result_t *r);
/** Replies 402 with the contract's "Insufficient credits. Need N, have M" taken from r. */
void credits_reply_insufficient(http_req_t *req, const db_result_t *r);

void credits_get(http_req_t *req);
void credits_transactions(http_req_t *req);
void credits_purchase(http_req_t *req);
void credits_admin_grant(http_req_t *req);

#endif
