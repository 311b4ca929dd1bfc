/* Titles (API.md section 4): PATCH /titles/{id}/verify and POST /generate/batch (POST /generate/titles is
 * titlegen.c). */
#ifndef INKLOOP_HTTP_TITLES_H
#define INKLOOP_HTTP_TITLES_H

#include "db/db.h"
#include "http/server.h"

/** Most titles one batch may turn into articles. */
#define TITLES_BATCH_MAX 100

/** Registers sql/queries/titles.sql: the statements of this file and of titlegen.c. */
int titles_prepare(db_pool_t *pool);

void titles_verify(http_req_t *req); /* PATCH /titles/{title_id}/verify */
void titles_batch(http_req_t *req);  /* POST /generate/batch */

#endif
