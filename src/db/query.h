/* Private to src/db: one batch of statements (db_query_t), the FIFO lists that hold batches, the pairing of
 * pipeline results with the batch they answer. None of this touches a socket or the loop, so test/unit/db
 * exercises it without a server. */
#ifndef INKLOOP_DB_QUERY_H
#define INKLOOP_DB_QUERY_H

#include "db/db.h"

#include <stddef.h>
#include <stdint.h>

struct st_db_conn_t;

/** Where a batch is; each place is one list (or the callback under way). */
#define QUERY_PLACES(X)                                                                                      \
    X(QUERY_NEW, "new")                 /* built, in no list yet */                                          \
    X(QUERY_WAITING, "waiting")         /* in the pool's wait FIFO, for a connection with room */            \
    X(QUERY_IN_FLIGHT, "in flight")     /* sent; in its connection's FIFO until the pipeline sync arrives */ \
    X(QUERY_DOOMED, "doomed")           /* failed; its callback runs on the next loop turn */                \
    X(QUERY_IN_CALLBACK, "in callback") /* its callback is running; freed when it returns */

typedef enum {
#define QUERY_PLACE_ENUM(id, name) id,
    QUERY_PLACES(QUERY_PLACE_ENUM)
#undef QUERY_PLACE_ENUM
} query_place_t;

/** How a statement is sent. */
typedef enum {
    STMT_PREPARED, /* PQsendQueryPrepared of a registered statement */
    STMT_SQL,      /* PQsendQueryParams of SQL text (unnamed statement) */
    STMT_PREPARE   /* PQsendPrepare: registers name as sql on the connection */
} stmt_kind_t;

/** A statement copied out of the caller's db_stmt_t. */
typedef struct st_query_stmt_t {
    stmt_kind_t kind;
    const char *name;
    const char *sql;
    int nparams;
    const char *const *params;
} query_stmt_t;

struct st_db_query_t {
    db_pool_t *pool;
    struct st_db_conn_t *conn; /* the connection it was sent on, while in flight */
    db_query_t *prev, *next;   /* links of the one list it is in */
    query_place_t place;
    int cancelled; /* db_query_cancel ran: its results are read and dropped, cb never runs */
    int internal;  /* the pool's own statement preparation, not a caller's batch */
    db_batch_cb cb;
    void *data;
    uint64_t deadline; /* loop time (ms) after which a waiting batch gives up */
    uint64_t turn;     /* the pool's flush turn in which a doomed batch's callback runs */
    size_t n;
    query_stmt_t *stmts;
    db_result_t *results;
    PGresult **held;  /* error results, kept so results[i].err can point into them until cb returns */
    size_t cursor;    /* the statement whose results arrive next; n once all have, then the sync is due */
    int commit_error; /* 1 once an error arrived after the last statement, 2 once its NULL did */
    char *errtext;    /* owned copy of an error that is not from one PGresult ("connection lost: ...") */
};

/** A FIFO of batches, linked through prev/next, so removing a cancelled batch from the middle is O(1). */
typedef struct st_query_list_t {
    db_query_t *head, *tail;
    size_t count;
} query_list_t;

/** Copies the statements (names, SQL text and parameters, in one allocation). */
db_query_t *query_new(db_pool_t *pool, const db_stmt_t *stmts, size_t n, db_batch_cb cb, void *data);
/** Builds the batch that prepares one registered statement on a connection. */
db_query_t *query_new_prepare(db_pool_t *pool, const char *name, const char *sql, db_batch_cb cb, void *data);
/** Frees the batch and every PGresult it still holds. */
void query_free(db_query_t *q);

/** Appends q at the tail. */
void query_list_push(query_list_t *l, db_query_t *q);
/** Removes and returns the head, NULL when empty. */
db_query_t *query_list_shift(query_list_t *l);
/** Removes q, which must be in l. */
void query_list_remove(query_list_t *l, db_query_t *q);

/** What one pipeline result meant for the batch at the head of a connection's FIFO. */
typedef enum {
    FEED_MORE,  /* stored; the batch waits for more */
    FEED_DONE,  /* the pipeline sync arrived: the batch is complete */
    FEED_DESYNC /* the stream does not match the batch (a bug or a broken server): drop the connection */
} query_feed_t;

/** Pairs one value of PQgetResult (NULL included) with the head of inflight; the result is stored or freed.
 * On FEED_DONE the head is removed from the list and returned in *done. */
query_feed_t query_list_feed(query_list_t *inflight, PGresult *res, db_query_t **done);

/** Marks every statement of q failed with err (copied), dropping results it had received. */
void query_fail(db_query_t *q, const char *err);
/** 1 when the batch failed (its last statement carries an error). */
int query_failed(const db_query_t *q);

#endif
