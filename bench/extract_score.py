#!/usr/bin/env python3
"""Scores `inkloop extract` on public extraction sets (see bench/extract.sh, which calls this).

trafilatura set (tests/evaldata.py or tests/evaldata.json, pages in tests/cache and tests/eval): for each page,
every "with" chunk found in the text is a true positive, missed a false negative; every "without" chunk found
is a false positive. Precision, recall and F1 over the summed counts, as trafilatura's evaluate.py does; text
and chunks are whitespace-normalised before matching (as its current eval_common.count_item does).

Readability set (test/test-pages/*/source.html + expected.html): the expected HTML is turned into text, and
both sides into lowercased words. Word precision/recall = multiset overlap / words extracted and / words
expected; shingle scores do the same with 4-word shingles. Printed as the mean of per-page scores and as
micro (summed) scores.
"""
import argparse
import ast
import collections
import html.parser
import json
import os
import re
import statistics
import subprocess
import sys


def run(binary, path, repeat):
    p = subprocess.run([binary, "extract", path, "--repeat", str(repeat)], capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"{path}: exit {p.returncode}: {p.stderr.decode(errors='replace')}")
    return json.loads(p.stdout)


def norm(s):
    return re.sub(r"\s+", " ", s).strip()


def load_traf(tests):
    py = os.path.join(tests, "evaldata.py")
    if os.path.isfile(py):
        src = open(py, encoding="utf-8").read()
        tree = ast.parse(src)
        for node in tree.body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EVAL_PAGES":
                return ast.literal_eval(node.value), "evaldata.py"
        raise SystemExit(f"{py}: no EVAL_PAGES")
    js = os.path.join(tests, "evaldata.json")
    return json.load(open(js, encoding="utf-8")), "evaldata.json"


def bench_traf(root, binary, repeat, verbose):
    tests = os.path.join(root, "tests") if os.path.isdir(os.path.join(root, "tests")) else root
    data, src = load_traf(tests)
    tp = fp = fn = tn = 0
    times, cpu, empty, missing = [], [], [], 0
    per_page = []
    for url in sorted(data):
        item = data[url]
        path = None
        for sub in ("cache", "eval"):
            cand = os.path.join(tests, sub, item["file"])
            if os.path.isfile(cand):
                path = cand
                break
        if path is None:
            missing += 1
            continue
        r = run(binary, path, repeat)
        times.append(r["timings_ms"]["extract"])
        cpu.append(r["timings_ms"].get("extract_cpu", r["timings_ms"]["extract"]))
        text = norm(r["text"])
        if not text:
            empty.append(item["file"])
        a = sum(1 for w in item["with"] if norm(w) in text)
        b = sum(1 for w in item["without"] if norm(w) in text)
        tp += a
        fn += len(item["with"]) - a
        fp += b
        tn += len(item["without"]) - b
        per_page.append((item["file"], a, len(item["with"]), b, len(item["without"])))
    if verbose:
        for f, a, na, b, nb in per_page:
            if a < na or b > 0:
                print(f"  traf {f}: with {a}/{na} without-found {b}/{nb}")
    prec = tp / (tp + fp) if tp + fp else 0
    rec = tp / (tp + fn) if tp + fn else 0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0
    acc = (tp + tn) / (tp + tn + fp + fn)
    print(f"trafilatura ({src}): {len(times)} pages ({missing} missing), chunks with={tp + fn} without={fp + tn}")
    print(f"  precision {prec:.3f}  recall {rec:.3f}  accuracy {acc:.3f}  F1 {f1:.3f}")
    print(f"  ms/page median {statistics.median(times):.2f}  mean {statistics.mean(times):.2f}  "
          f"max {max(times):.2f}  empty pages {len(empty)}")
    print(f"  CPU ms/page median {statistics.median(cpu):.2f}  mean {statistics.mean(cpu):.2f}  max {max(cpu):.2f}")
    return f1


class _Text(html.parser.HTMLParser):
    BLOCK = {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "br", "pre", "blockquote",
             "section", "article", "figcaption", "dd", "dt", "table", "ul", "ol"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        if tag in self.BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1
        if tag in self.BLOCK:
            self.parts.append(" ")

    def handle_data(self, d):
        if not self.skip:
            self.parts.append(d)


def html_text(s):
    p = _Text()
    p.feed(s)
    p.close()
    return "".join(p.parts)


def words(s):
    return re.findall(r"\w+", s.lower())


def overlap(got, want):
    g, w = collections.Counter(got), collections.Counter(want)
    common = sum((g & w).values())
    return common, sum(g.values()), sum(w.values())


def prf(common, ng, nw):
    p = common / ng if ng else (1.0 if nw == 0 else 0.0)
    r = common / nw if nw else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def bench_rdb(root, binary, repeat, verbose):
    pages = os.path.join(root, "test", "test-pages") if os.path.isdir(os.path.join(root, "test")) else root
    names = sorted(d for d in os.listdir(pages) if os.path.isfile(os.path.join(pages, d, "expected.html")))
    times, cpu, empty = [], [], []
    wsum, ssum = [0, 0, 0], [0, 0, 0]
    wf, sf, wp, wr = [], [], [], []
    rows = []
    for name in names:
        r = run(binary, os.path.join(pages, name, "source.html"), repeat)
        times.append(r["timings_ms"]["extract"])
        cpu.append(r["timings_ms"].get("extract_cpu", r["timings_ms"]["extract"]))
        with open(os.path.join(pages, name, "expected.html"), encoding="utf-8", errors="replace") as f:
            want = words(html_text(f.read()))
        got = words(r["text"])
        if not got:
            empty.append(name)
        c = overlap(got, want)
        sh = lambda ws: [" ".join(ws[i:i + 4]) for i in range(max(len(ws) - 3, 0))]
        cs = overlap(sh(got), sh(want))
        for i in range(3):
            wsum[i] += c[i]
            ssum[i] += cs[i]
        p, rr, f1 = prf(*c)
        wp.append(p)
        wr.append(rr)
        wf.append(f1)
        sf.append(prf(*cs)[2])
        rows.append((f1, name, p, rr))
    if verbose:
        for f1, name, p, rr in sorted(rows)[:40]:
            print(f"  rdb {name}: F1 {f1:.3f} P {p:.3f} R {rr:.3f}")
    print(f"readability: {len(names)} pages")
    print(f"  words:    mean P {statistics.mean(wp):.3f} R {statistics.mean(wr):.3f} F1 {statistics.mean(wf):.3f}"
          f"   micro F1 {prf(*wsum)[2]:.3f}")
    print(f"  shingles: mean F1 {statistics.mean(sf):.3f}   micro F1 {prf(*ssum)[2]:.3f}")
    print(f"  ms/page median {statistics.median(times):.2f}  mean {statistics.mean(times):.2f}  "
          f"max {max(times):.2f}  empty pages {len(empty)} {' '.join(empty)}")
    print(f"  CPU ms/page median {statistics.median(cpu):.2f}  mean {statistics.mean(cpu):.2f}  max {max(cpu):.2f}")
    return statistics.mean(wf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--trafilatura")
    ap.add_argument("--readability")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    if a.trafilatura:
        bench_traf(a.trafilatura, a.bin, a.repeat, a.v)
    if a.readability:
        bench_rdb(a.readability, a.bin, a.repeat, a.v)


if __name__ == "__main__":
    sys.exit(main())
