"""gen_queries.py (sql/queries/MODULE.sql -> C statement tables): the SQL each statement registers, fragments,
and every refusal that stops the build. TAP."""
import os
import subprocess
import sys
import tempfile

GEN = sys.argv[1]
n = 0
failed = 0


def ok(cond, desc):
    global n, failed
    n += 1
    print('%s %d - %s' % ('ok' if cond else 'not ok', n, desc))
    if not cond:
        failed += 1


def run(files):
    """Writes files {name: text} to a temporary directory and runs the generator on them."""
    d = tempfile.mkdtemp()
    paths = []
    for name, text in files.items():
        p = os.path.join(d, name)
        with open(p, 'w', encoding='utf-8') as f:
            f.write(text)
        paths.append(p)
    c, h = os.path.join(d, 'q.c'), os.path.join(d, 'q.h')
    r = subprocess.run([sys.executable, GEN, c, h] + paths, capture_output=True, text=True)
    out_c = open(c).read() if r.returncode == 0 else ''
    out_h = open(h).read() if r.returncode == 0 else ''
    return r.returncode, out_c, out_h, r.stderr


GOOD = """-- A module's queries.

-- name: thing_get
-- What it does.
SELECT {{cols}}
  FROM things
 WHERE id = $1 AND note = 'a -- b; c';

-- fragment: cols
id, name,
note

-- name: thing_count
SELECT count(*) FROM things;
"""

rc, c, h, err = run({'things.sql': GOOD})
ok(rc == 0, 'a good file compiles (%s)' % err.strip())
ok('{"thing_get", "SELECT id, name, note FROM things WHERE id = $1 AND note = \'a -- b; c\'"},' in c,
   'lines joined by single spaces, indentation, comments and the final ; dropped, fragment expanded')
ok(c.index('thing_get') < c.index('thing_count'), 'statements keep the file order')
ok('const size_t queries_things_count = 2;' in c, 'the count excludes fragments')
ok('extern const db_named_sql_t queries_things[];' in h and 'extern const size_t queries_things_count;' in h,
   'the header declares the table and its count')

rc, c, _, _ = run({'q.sql': '-- name: q\nSELECT \'?\\\\\' AS "x";\n'})
ok(rc == 0 and '"SELECT \'\\077\\\\\\\\\' AS \\"x\\""' in c, 'quotes, backslashes and ? are escaped in C')

BAD = [
    ({'a.sql': 'SELECT 1;\n-- name: a\nSELECT 2;\n'}, 'before the first'),
    ({'a.sql': '-- name: a\nSELECT 1; -- trailing\n'}, 'a line of its own'),
    ({'a.sql': "-- name: a\nSELECT 'multi\nline';\n"}, 'must end on the line'),
    ({'a.sql': '-- name: a\n-- name: b\nSELECT 1;\n'}, 'has no SQL'),
    ({'a.sql': '-- name: a\nSELECT 1; SELECT 2;\n'}, 'more than one statement'),
    ({'a.sql': '-- name: a\nSELECT 1;\n', 'b.sql': '-- name: a\nSELECT 2;\n'}, 'also defined in'),
    ({'a.sql': '-- name: a\nSELECT {{nope}};\n'}, 'no fragment named nope'),
    ({'a.sql': '-- fragment: f\nid\n-- name: a\nSELECT 1;\n'}, 'never used'),
    ({'a.sql': '-- fragment: f\nid\n-- fragment: f\nid\n-- name: a\nSELECT {{f}};\n'}, 'defined twice'),
    ({'a.sql': '-- fragment: f\n{{g}}\n-- fragment: g\nid\n-- name: a\nSELECT {{f}}, {{g}};\n'}, 'uses another'),
    ({'Bad-Name.sql': '-- name: a\nSELECT 1;\n'}, 'not named module.sql'),
]
for files, expect in BAD:
    rc, _, _, err = run(files)
    ok(rc != 0 and expect in err, 'refused: %s (%s)' % (expect, err.strip()))

print('1..%d' % n)
sys.exit(1 if failed else 0)
