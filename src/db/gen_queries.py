#!/usr/bin/env python3
"""Compiles the named queries of sql/queries/MODULE.sql into C statement tables (db_named_sql_t, db/db.h).

usage: gen_queries.py OUTPUT.c OUTPUT.h FILE.sql [FILE.sql ...]

A file holds one block per statement:

    -- name: article_get
    -- What it does, in sentences (any number of comment lines, kept out of the SQL).
    SELECT ...
      FROM articles a
     WHERE a.id = $1 AND a.user_id = $2;

A `-- fragment: NAME` block holds SQL text that is not a statement: a statement of the same file writes
`{{NAME}}` where the text goes (for example a column list that several statements return). A fragment may
not use another, and every fragment must be used.

Each file MODULE.sql becomes the table `queries_MODULE` with its length in `queries_MODULE_count`, declared in
OUTPUT.h, in the file's order. The SQL of a statement is its lines with the indentation and the trailing `;`
removed, joined by single spaces, so `inkloop sql NAME` prints it on one line and the registered text does not
depend on how the file is indented. A comment is a whole line starting with `--`; a `--` after code, a string
literal spanning lines, a name used twice (in any file), an empty statement or text before the first name stop
the build with the file and line.
"""
import os
import re
import sys

NAME_RE = re.compile(r'^--\s*(name|fragment):\s*([a-z][a-z0-9_]*)\s*$')
USE_RE = re.compile(r'\{\{([a-z][a-z0-9_]*)\}\}')
FILE_RE = re.compile(r'^([a-z][a-z0-9_]*)\.sql$')


def fail(path, lineno, msg):
    sys.exit('gen_queries: %s:%d: %s' % (path, lineno, msg))


def check_line(path, lineno, line):
    """Refuses an unterminated string literal or a trailing comment on one line of SQL."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == quote:
                quote = None
        elif c in ("'", '"'):
            quote = c
        elif line.startswith('--', i):
            fail(path, lineno, 'a comment must be a line of its own')
        i += 1
    if quote:
        fail(path, lineno, 'a quoted literal must end on the line it starts')


def parse(path):
    blocks = []  # (kind, name, lineno, [sql lines])
    with open(path, 'r', encoding='utf-8') as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            m = NAME_RE.match(line)
            if m:
                blocks.append((m.group(1), m.group(2), lineno, []))
                continue
            if not line or line.startswith('--'):
                continue
            if not blocks:
                fail(path, lineno, 'SQL before the first "-- name:" line')
            check_line(path, lineno, line)
            blocks[-1][3].append(line)
    fragments = {}
    for kind, name, lineno, lines in blocks:
        if kind == 'fragment':
            if name in fragments:
                fail(path, lineno, 'fragment %s is defined twice' % name)
            text = ' '.join(lines).strip()
            if not text or USE_RE.search(text):
                fail(path, lineno, 'fragment %s is empty or uses another fragment' % name)
            fragments[name] = [text, lineno, 0]

    def expand(m, lineno):
        f = fragments.get(m.group(1))
        if f is None:
            fail(path, lineno, 'no fragment named %s in this file' % m.group(1))
        f[2] += 1
        return f[0]

    out = []
    for kind, name, lineno, lines in blocks:
        if kind == 'fragment':
            continue
        sql = USE_RE.sub(lambda m: expand(m, lineno), ' '.join(lines)).rstrip()
        while sql.endswith(';'):
            sql = sql[:-1].rstrip()
        if not sql:
            fail(path, lineno, 'statement %s has no SQL' % name)
        if ';' in re.sub(r"'(?:[^']|'')*'", "''", sql):
            fail(path, lineno, 'statement %s holds more than one statement' % name)
        out.append((name, lineno, sql))
    for name, (_, lineno, uses) in fragments.items():
        if uses == 0:
            fail(path, lineno, 'fragment %s is never used' % name)
    return out


def c_string(text):
    data = text.encode('utf-8')
    out = []
    for b in data:
        if b == 0x5c:
            out.append('\\\\')
        elif b == 0x22:
            out.append('\\"')
        elif 0x20 <= b < 0x7f and b != 0x3f:  # '?' is escaped to avoid trigraphs
            out.append(chr(b))
        else:
            out.append('\\%03o' % b)
    return '"%s"' % ''.join(out)


def main(argv):
    if len(argv) < 2:
        sys.exit('usage: gen_queries.py OUTPUT.c OUTPUT.h [FILE.sql ...]')
    out_c, out_h, inputs = argv[0], argv[1], argv[2:]
    seen = {}
    tables = []
    for path in sorted(inputs, key=os.path.basename):
        m = FILE_RE.match(os.path.basename(path))
        if not m:
            sys.exit('gen_queries: %s: not named module.sql (lower case, digits, _)' % path)
        stmts = parse(path)
        for name, lineno, _ in stmts:
            if name in seen:
                fail(path, lineno, 'statement %s is also defined in %s' % (name, seen[name]))
            seen[name] = path
        tables.append((m.group(1), stmts))

    c = ['/* Generated by src/db/gen_queries.py from sql/queries/; do not edit. */', '#include "queries.h"', '']
    h = ['/* Generated by src/db/gen_queries.py from sql/queries/; do not edit. */',
         '#ifndef INKLOOP_DB_QUERIES_H', '#define INKLOOP_DB_QUERIES_H', '', '#include "db/db.h"', '']
    for module, stmts in tables:
        sym = 'queries_' + module
        h.append('/** The statements of sql/queries/%s.sql, in file order. */' % module)
        h.append('extern const db_named_sql_t %s[];' % sym)
        h.append('extern const size_t %s_count;' % sym)
        c.append('const db_named_sql_t %s[] = {' % sym)
        for name, _, sql in stmts:
            c.append('    {"%s", %s},' % (name, c_string(sql)))
        if not stmts:
            c.append('    {"", ""},')  # C has no empty arrays; never read since the count is 0
        c.append('};')
        c.append('const size_t %s_count = %d;' % (sym, len(stmts)))
        c.append('')
    h += ['', '#endif']
    for path, lines in ((out_c, c), (out_h, h)):
        tmp = path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
        os.replace(tmp, path)


if __name__ == '__main__':
    main(sys.argv[1:])
