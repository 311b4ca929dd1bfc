/* The generated tables of migrations: fixture files given to the generator out of order come out sorted and
 * byte-exact, and the real table from sql/ is sorted with names that match their versions. */
#include "db/migrate.h"
#include "tap.h"

#include <stdlib.h>

extern const migration_t test_migrations[];
extern const size_t test_migrations_count;

static void check_sorted(const migration_t *list, size_t n, const char *what)
{
    int sorted = 1, named = 1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && list[i].version <= list[i - 1].version)
            sorted = 0;
        if (atoi(list[i].name) != list[i].version || list[i].sql == NULL)
            named = 0;
    }
    TAP_OK(sorted, "%s: strictly increasing versions", what);
    TAP_OK(named, "%s: each name starts with its version", what);
}

int main(void)
{
    TAP_IS_INT(test_migrations_count, 3, "fixtures: three files");
    check_sorted(test_migrations, test_migrations_count, "fixtures");
    TAP_IS_STR(test_migrations[0].name, "0001_a.sql", "fixtures: 0001 first");
    TAP_IS_STR(test_migrations[1].name, "0002_b.sql", "fixtures: 0002 second");
    TAP_IS_STR(test_migrations[2].name, "0010_c.sql", "fixtures: 0010 last");
    TAP_IS_STR(test_migrations[0].sql,
               "-- first: quotes \" and \\ backslash, trigraph ?\?( and caf\xc3\xa9\n"
               "CREATE TABLE a (x text DEFAULT 'it''s');\n",
               "fixtures: text embedded byte for byte");
    TAP_IS_STR(test_migrations[1].sql, "CREATE TABLE b (x int);", "fixtures: file without a final newline");
    TAP_OK(migration_count >= 1, "sql/: at least one migration compiled in");
    check_sorted(migrations, migration_count, "sql/");
    return tap_done();
}
