/* Plain (blocking) libpq helpers for the C tests that need a real PostgreSQL (INKLOOP_TEST_DATABASE_URL):
 * setting up scratch databases and checking rows, beside the asynchronous code under test. */
#ifndef INKLOOP_TEST_PGTEST_H
#define INKLOOP_TEST_PGTEST_H

#include "core/alloc.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** A key=value conninfo from the URL base, with dbname and application_name replaced when not NULL. */
static inline char *pgtest_conninfo(const char *base, const char *dbname, const char *appname)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &errmsg);
    if (opts == NULL) {
        printf("Bail out! cannot parse INKLOOP_TEST_DATABASE_URL: %s\n", errmsg);
        exit(1);
    }
    char *out = xstrdup("");
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *v = o->val;
        if (dbname != NULL && strcmp(o->keyword, "dbname") == 0)
            v = dbname;
        if (appname != NULL && strcmp(o->keyword, "application_name") == 0)
            v = appname;
        if (v == NULL || v[0] == '\0')
            continue;
        /* Values are quoted, with quotes and backslashes escaped, as libpq's key=value syntax wants. */
        char *quoted = xmalloc(strlen(v) * 2 + 3), *p = quoted;
        *p++ = '\'';
        for (const char *s = v; *s; s++) {
            if (*s == '\'' || *s == '\\')
                *p++ = '\\';
            *p++ = *s;
        }
        *p++ = '\'';
        *p = '\0';
        char *next = xasprintf("%s%s%s=%s", out, out[0] ? " " : "", o->keyword, quoted);
        free(out);
        free(quoted);
        out = next;
    }
    PQconninfoFree(opts);
    return out;
}

/** Connects or bails out of the test. */
static inline PGconn *pgtest_connect(const char *conninfo)
{
    PGconn *pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        printf("Bail out! cannot connect: %s\n", PQerrorMessage(pg));
        exit(1);
    }
    return pg;
}

/** Runs sql or bails out of the test. */
static inline void pgtest_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        printf("Bail out! %s: %s\n", sql, PQerrorMessage(pg));
        exit(1);
    }
    PQclear(r);
}

#endif
