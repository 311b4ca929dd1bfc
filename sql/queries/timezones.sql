-- Timezone names (src/db/timezones.c): the set every process caches to validate the timezone of campaigns and
-- articles.

-- name: timezones_list
-- Sorted by the server in "C" order so bsearch with strcmp agrees with it whatever the database collation.
SELECT name FROM pg_timezone_names ORDER BY name COLLATE "C";
