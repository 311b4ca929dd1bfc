#include "db/db.h"

#include <stdlib.h>

/* A column the query does not return is a bug in the caller's SQL or code, not a data condition, so it reads
 * as NULL here (PQfnumber gives -1) and the caller's NULL handling applies; out-of-range rows likewise. */
static int field(const PGresult *res, int row, const char *column)
{
    if (res == NULL || row < 0 || row >= PQntuples(res))
        return -1;
    return PQfnumber(res, column);
}

const char *db_value(const PGresult *res, int row, const char *column)
{
    int col = field(res, row, column);
    if (col < 0 || PQgetisnull(res, row, col))
        return NULL;
    return PQgetvalue(res, row, col);
}

int64_t db_int(const PGresult *res, int row, const char *column)
{
    const char *v = db_value(res, row, column);
    return v != NULL ? strtoll(v, NULL, 10) : 0;
}

int db_bool(const PGresult *res, int row, const char *column)
{
    const char *v = db_value(res, row, column);
    return v != NULL && v[0] == 't';
}
