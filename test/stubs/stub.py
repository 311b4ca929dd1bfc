#!/usr/bin/env python3
"""inkloop's stub peers: an OpenAI-compatible LLM, SearXNG/Brave search, scrapeable HTML pages and a webhook sink.

One process, Python 3 standard library only, serving on 127.0.0.1:<port>. It prints exactly one line,
`STUB READY http://127.0.0.1:<port>`, on stdout once it is listening. Everything it answers is deterministic
(derived from a hash of the request), except where a fault flag with a random element (--error-rate) is set,
and that is seeded by --seed. See README.md beside this file for every flag and endpoint.

It never prints the request headers or bodies it receives, so keys and webhook secrets stay out of logs.
"""

import argparse
import base64
import collections
import hashlib
import hmac
import json
import os
import random
import re
import select
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

MAX_SINK_RECORDS = 10000         # per sink; older requests are dropped first
MAX_REQUEST_BODY = 32 << 20      # bytes; larger requests get 413
SINK_NAME = r"[A-Za-z0-9_.~-]{1,100}"

# ----------------------------------------------------------------------------------------------------------------
# Runtime configuration (CLI defaults, changeable with POST /_control)
# ----------------------------------------------------------------------------------------------------------------


def _nonneg_int(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or int(v) != v:
        raise ValueError("must be a non-negative integer")
    return int(v)


def _nonneg_float(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError("must be a non-negative number")
    return float(v)


def _rate(v):
    v = _nonneg_float(v)
    if v > 1:
        raise ValueError("must be between 0 and 1")
    return v


def _flag(v):
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _status_or_zero(v):
    v = _nonneg_int(v)
    if v != 0 and not 100 <= v <= 599:
        raise ValueError("must be 0 or an HTTP status")
    return v


def _opt_str(v):
    if v is not None and not isinstance(v, str):
        raise ValueError("must be a string or null")
    return v or None


def _int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("must be an integer")
    return v


# name -> validator. Keys (llm_key, search_key) are write-only: GET /_control reports only whether they are set.
SETTINGS = {
    "latency_ms": _nonneg_int,          # added to every LLM, search and page response
    "error_rate": _rate,                # fraction of LLM calls answered 500
    "rate_limit_every": _nonneg_int,    # every K-th LLM call answered 429 with Retry-After
    "retry_after": _nonneg_int,         # the Retry-After value of those 429s (seconds)
    "hang_every": _nonneg_int,          # every K-th LLM call sleeps hang_seconds before answering
    "hang_seconds": _nonneg_float,
    "invalid_json_every": _nonneg_int,  # every K-th JSON-mode reply carries broken JSON
    "llm_truncate_every": _nonneg_int,  # every K-th (fresh) article reply is cut, finish_reason "length"
    "search_empty": _flag,              # search returns no results
    "search_status": _status_or_zero,   # search answers this HTTP status (0: normal)
    "search_results": _nonneg_int,      # number of search results (at most 20)
    "pages_unusable": _flag,            # pages are tiny or PDF
    "article_title": _opt_str,          # the H1 every article is written with, whatever the prompt says
    "seed": _int,                       # seeds --error-rate's generator
    "llm_key": _opt_str,                # required Bearer key of the LLM (null: any)
    "search_key": _opt_str,             # required X-Subscription-Token of the Brave endpoint (null: any)
}
SECRET_SETTINGS = ("llm_key", "search_key")
# Settings whose "every K-th" counter restarts when they are set, so a test knows which call is hit next.
EVERY_SETTINGS = ("rate_limit_every", "hang_every", "invalid_json_every", "llm_truncate_every")

LLM_KINDS = ("titles", "brief", "article", "continuation")


def new_stats():
    return {
        "llm_calls": {k: 0 for k in LLM_KINDS},     # authorised chat-completion requests, faulted or not
        "llm_replies": {k: 0 for k in LLM_KINDS},   # of those, answered 200 with a completion (the paid ones)
        "llm_faults": {"unauthorized": 0, "rate_limited": 0, "server_error": 0, "hang": 0, "invalid_json": 0,
                       "truncated": 0, "bad_request": 0},
        "tokens": {"prompt": 0, "completion": 0},
        "search_calls": 0,
        "page_fetches": 0,
        "hook_posts": 0,
        "hook_posts_by_sink": {},
    }


class Sink:
    """One webhook sink: its behaviour and the requests it got (bounded). Guarded by State.lock."""

    def __init__(self):
        self.records = collections.deque(maxlen=MAX_SINK_RECORDS)
        self.seq = 0
        self.config = {}
        self.fail_remaining = 0


SINK_CONFIG_KEYS = {
    "fail_times": _nonneg_int,   # answer 503 this many times, then the success status
    "status": _status_or_zero,   # always answer this status (0: off)
    "ok_status": _status_or_zero,  # status of a success (default 200)
    "retry_after": _nonneg_int,  # Retry-After header on failures
    "hang": _nonneg_float,       # seconds to sleep before answering
    "location": _opt_str,        # Location of a 3xx status (default: another sink on this stub)
    "secret": _opt_str,          # verify signatures with this secret
    "keep": _nonneg_int,         # records kept (1..10000), for tests of the bound
}


class State:
    """All mutable state of the stub, behind one lock."""

    def __init__(self, defaults):
        self.lock = threading.Lock()
        self.defaults = dict(defaults)
        self.reset()

    def reset(self):
        with self.lock:
            self.cfg = dict(self.defaults)
            self.rng = random.Random(self.cfg["seed"])
            self.every = {k: 0 for k in EVERY_SETTINGS}
            self.stats = new_stats()
            self.sinks = {}

    def configure(self, updates):
        """Validate and apply settings; raises ValueError naming the bad one. Returns the redacted config."""
        if not isinstance(updates, dict):
            raise ValueError("body must be a JSON object")
        clean = {}
        for k, v in updates.items():
            if k == "reset":
                continue
            if k not in SETTINGS:
                raise ValueError("unknown setting %r" % k)
            try:
                clean[k] = SETTINGS[k](v)
            except ValueError as e:
                raise ValueError("%s %s" % (k, e)) from None
        if updates.get("reset") is True:
            self.reset()
        with self.lock:
            self.cfg.update(clean)
            for k in clean:
                if k in EVERY_SETTINGS:
                    self.every[k] = 0
            if "seed" in clean:
                self.rng = random.Random(clean["seed"])
            return self._redacted()

    def _redacted(self):
        out = {k: v for k, v in self.cfg.items() if k not in SECRET_SETTINGS}
        for k in SECRET_SETTINGS:
            out[k + "_set"] = self.cfg[k] is not None
        return out

    def redacted_config(self):
        with self.lock:
            return self._redacted()

    def config(self):
        with self.lock:
            return dict(self.cfg)

    def _tick(self, name):
        """Advance the counter of an every-K-th setting; true when this call is the K-th."""
        k = self.cfg[name]
        if k <= 0:
            return False
        self.every[name] += 1
        return self.every[name] % k == 0

    def llm_fault(self, kind):
        """Count an authorised LLM call and decide its fault: None, 'rate_limited', 'hang' or 'server_error'."""
        with self.lock:
            self.stats["llm_calls"][kind] += 1
            rate_limited = self._tick("rate_limit_every")
            hang = self._tick("hang_every")
            error = self.cfg["error_rate"] > 0 and self.rng.random() < self.cfg["error_rate"]
            fault = "rate_limited" if rate_limited else "hang" if hang else "server_error" if error else None
            if fault:
                self.stats["llm_faults"][fault] += 1
            return fault

    def llm_tick(self, name, fault_name):
        with self.lock:
            hit = self._tick(name)
            if hit:
                self.stats["llm_faults"][fault_name] += 1
            return hit

    def count(self, path, n=1):
        with self.lock:
            d = self.stats
            for p in path[:-1]:
                d = d[p]
            d[path[-1]] = d.get(path[-1], 0) + n

    def llm_reply(self, kind, prompt_tokens, completion_tokens):
        with self.lock:
            self.stats["llm_replies"][kind] += 1
            self.stats["tokens"]["prompt"] += prompt_tokens
            self.stats["tokens"]["completion"] += completion_tokens

    def stats_snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.stats))

    def reset_stats(self):
        with self.lock:
            self.stats = new_stats()

    # --- webhook sinks -------------------------------------------------------------------------------------

    def _sink(self, name):
        s = self.sinks.get(name)
        if s is None:
            s = self.sinks[name] = Sink()
        return s

    def sink_configure(self, name, updates):
        if not isinstance(updates, dict):
            raise ValueError("body must be a JSON object")
        clean = {}
        for k, v in updates.items():
            if k in ("reset", "reply"):
                continue
            if k not in SINK_CONFIG_KEYS:
                raise ValueError("unknown sink setting %r" % k)
            try:
                clean[k] = SINK_CONFIG_KEYS[k](v)
            except ValueError as e:
                raise ValueError("%s %s" % (k, e)) from None
        if "reply" in updates:
            if updates["reply"] is not None and not isinstance(updates["reply"], (dict, list)):
                raise ValueError("reply must be a JSON object, array or null")
            clean["reply"] = updates["reply"]
        if "keep" in clean and not 1 <= clean["keep"] <= MAX_SINK_RECORDS:
            raise ValueError("keep must be between 1 and %d" % MAX_SINK_RECORDS)
        with self.lock:
            s = self._sink(name)
            if updates.get("reset") is True:
                s.config = {}
                s.fail_remaining = 0
            s.config.update(clean)
            if "fail_times" in clean:
                s.fail_remaining = clean["fail_times"]
            if "keep" in clean:
                s.records = collections.deque(s.records, maxlen=clean["keep"])
            return self._sink_public_config(s)

    @staticmethod
    def _sink_public_config(s):
        out = {k: v for k, v in s.config.items() if k != "secret"}
        out["secret_set"] = bool(s.config.get("secret"))
        out["fail_remaining"] = s.fail_remaining
        return out

    def sink_public_config(self, name):
        with self.lock:
            return self._sink_public_config(self._sink(name))

    def sink_secret(self, name):
        with self.lock:
            return self._sink(name).config.get("secret")

    def sink_record(self, name, record):
        """Store a request; returns its seq and the decided response (status, headers, hang, reply)."""
        with self.lock:
            s = self._sink(name)
            s.seq += 1
            record["seq"] = s.seq
            s.records.append(record)
            self.stats["hook_posts"] += 1
            by = self.stats["hook_posts_by_sink"]
            by[name] = by.get(name, 0) + 1
            c = s.config
            if c.get("status"):
                status = c["status"]
            elif s.fail_remaining > 0:
                s.fail_remaining -= 1
                status = 503
            else:
                status = c.get("ok_status") or 200
            return status, dict(c)

    def sink_client_closed(self, record):
        with self.lock:
            record["client_closed_at"] = time.time()

    def sink_set_response(self, record, status):
        with self.lock:
            record["response_status"] = status

    def sink_records(self, name):
        with self.lock:
            s = self.sinks.get(name)
            return [dict(r) for r in s.records] if s else []

    def sink_clear(self, name):
        with self.lock:
            s = self.sinks.get(name)
            if s:
                s.records.clear()

    def sink_summary(self):
        with self.lock:
            return {n: {"received": len(s.records), "total": s.seq} for n, s in self.sinks.items()}


# ----------------------------------------------------------------------------------------------------------------
# Deterministic content
# ----------------------------------------------------------------------------------------------------------------


def digest(text):
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def rng_for(*parts):
    """A random.Random seeded from the text: same text, same sequence, in any process."""
    return random.Random(int.from_bytes(digest("\x00".join(parts))[:8], "big"))


def slugify(text, limit=60):
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(s) > limit:
        s = s[:limit].rsplit("-", 1)[0] or s[:limit]
    return s or "topic"


def title_case(text):
    small = {"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to", "vs", "with"}
    words = text.split()
    out = []
    for i, w in enumerate(words):
        lw = w.lower()
        if i and lw in small:
            out.append(lw)
        elif w[:1].islower():
            out.append(w[:1].upper() + w[1:])
        else:
            out.append(w)
    return " ".join(out)


def clean_topic(text, max_words=8):
    text = re.sub(r"[\"“”'`*_#<>\[\]{}()|]", " ", text)
    text = re.sub(r"\s+", " ", text).strip(" .,:;!?-")
    words = text.split()[:max_words]
    return " ".join(words) or "content marketing"


TOPIC_LABEL = re.compile(r"\b(topic|subject|main keyword|focus keyword|primary keyword|keyword|keywords|title)"
                         r"\s*[:=]\s*([^\n]+)", re.I)
TOPIC_PRIORITY = {"topic": 0, "subject": 0, "main keyword": 1, "focus keyword": 1, "primary keyword": 1,
                  "keyword": 2, "title": 3, "keywords": 4}


def extract_topic(prompt):
    """The subject of a prompt: a `Topic:` (or Subject/Keyword/Title) label, else the first quoted phrase, else
    what follows "about", else the first words of the prompt's last paragraph (the user message)."""
    found = [(TOPIC_PRIORITY[m.group(1).lower()], m.start(), m.group(2)) for m in TOPIC_LABEL.finditer(prompt)]
    found = [f for f in found if f[2].strip(" \t\"'{[")]
    if found:
        value = min(found)[2]
        return clean_topic(re.split(r"[,;]", value)[0])
    m = re.search(r"[\"“]([^\"”\n]{3,100})[\"”]", prompt)
    if m:
        return clean_topic(m.group(1))
    m = re.search(r"\babout\s+([^.\n?!]{3,100})", prompt, re.I)
    if m:
        return clean_topic(m.group(1), 6)
    paragraphs = [p for p in prompt.split("\n\n") if p.strip()]
    return clean_topic(paragraphs[-1] if paragraphs else prompt, 5)


def extract_title(prompt):
    m = re.search(r"^\s*title\s*[:=]\s*(.+?)\s*$", prompt, re.I | re.M) or re.search(r"^#\s+(.+?)\s*$", prompt,
                                                                                       re.M)
    return clean_topic(m.group(1), 16) if m else None


def extract_words(prompt, default=1500):
    m = re.search(r"(\d[\d,]{1,6})\s*(?:-|to)?\s*(?:\d[\d,]*\s*)?-?\s*words?\b", prompt, re.I)
    if not m:
        return default
    n = int(m.group(1).replace(",", ""))
    return max(100, min(20000, n))


def extract_count(prompt, noun, default):
    m = re.search(r"(\d{1,3})\s+(?:[\w-]+\s+){0,3}%s\b" % noun, prompt, re.I)
    if not m:
        return default
    return max(1, min(50, int(m.group(1))))


URL_RE = re.compile(r"https?://[^\s\"'<>\)\]]+")


def extract_sources(prompt):
    """[(url, title)] for each distinct URL in the prompt, titled by the rest of its line or its path."""
    out, seen = [], set()
    for line in prompt.splitlines():
        for m in URL_RE.finditer(line):
            url = m.group(0).rstrip(".,;:")
            if url in seen:
                continue
            seen.add(url)
            rest = URL_RE.sub(" ", line)
            rest = re.sub(r"^\s*(\[\d+\]|\d+[.)]|[-*])\s*", "", rest)
            rest = re.sub(r"\b(url|title|source)\s*[:=]", " ", rest, flags=re.I)
            rest = clean_topic(rest, 14)
            if rest == "content marketing" or len(rest) < 4:
                path = urlsplit(url).path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                rest = title_case(re.sub(r"[-_]+", " ", path).strip()) or urlsplit(url).hostname or url
            out.append((url, rest))
    return out


def extract_outline(prompt):
    """[(level, heading)] from a JSON `"outline": [...]` in the prompt, else from `##`/`###` lines."""
    i = prompt.find('"outline"')
    if i >= 0:
        j = prompt.find("[", i)
        if j >= 0:
            try:
                arr, _ = json.JSONDecoder().raw_decode(prompt, j)
            except ValueError:
                arr = None
            out = []

            def walk(sections, default_level):
                for s in sections if isinstance(sections, list) else []:
                    if isinstance(s, dict) and isinstance(s.get("heading"), str) and s["heading"].strip():
                        lvl = s.get("level") if s.get("level") in (2, 3) else default_level
                        out.append((lvl, s["heading"].strip()))
                        walk(s.get("subsections"), 3)
                    elif isinstance(s, str) and s.strip():
                        out.append((default_level, s.strip()))
            walk(arr, 2)
            if out:
                return out
    out = []
    for m in re.finditer(r"^\s*(#{2,3})\s+(.+?)\s*#*\s*$", prompt, re.M):
        out.append((len(m.group(1)), m.group(2)))
    return out


OPENERS = ["In practice,", "For most teams,", "According to recent surveys,", "In our experience,", "Put simply,",
           "Over the last few years,", "As a rule of thumb,", "Perhaps surprisingly,", "", "", "", ""]
TAILS = ["", "", "", " in the long run", " for small and large teams alike", " even on a tight budget",
         " when the stakes are high", " from the very first week"]
SENTENCES = [
    "{o} {t} rewards a patient, step-by-step approach rather than quick fixes{e}",
    "{o} the biggest gains in {t} come from getting the fundamentals right{e}",
    "{o} people who plan their {t} work in advance report fewer costly surprises{e}",
    "{o} a clear goal makes it much easier to judge whether {t} is paying off{e}",
    "{o} measuring progress every week keeps {t} projects honest and on track{e}",
    "{o} small, consistent improvements to {t} add up to large results over a year{e}",
    "{o} the right tools can cut the time spent on {t} roughly in half{e}",
    "{o} beginners often underestimate how much {t} depends on good preparation{e}",
    "{o} experts recommend reviewing your {t} setup at least once a quarter{e}",
    "{o} budget matters, but the quality of execution matters more for {t}{e}",
    "{o} documenting what works turns {t} from guesswork into a repeatable process{e}",
    "{o} the most common mistake with {t} is trying to change everything at once{e}",
    "{o} feedback from real users is the fastest way to improve {t}{e}",
    "{o} a simple checklist prevents most of the errors people make with {t}{e}",
    "{o} {t} works best when it fits naturally into your existing routine{e}",
    "{o} comparing a few options side by side makes {t} decisions far easier{e}",
    "{o} the data shows that {t} pays off most for those who stay consistent{e}",
    "{o} clear communication keeps everyone aligned when {t} involves a team{e}",
    "{o} testing one change at a time shows exactly what improved your {t} results{e}",
    "{o} good {t} habits are easier to build than bad ones are to break{e}",
    "{o} a realistic timeline is the most underrated part of any {t} plan{e}",
    "{o} the quality of your sources shapes every {t} decision that follows{e}",
]


def sentence(rnd, topic):
    s = rnd.choice(SENTENCES).format(o=rnd.choice(OPENERS), t=topic, e=rnd.choice(TAILS)).strip()
    return s[0].upper() + s[1:] + "."


# --- titles ---------------------------------------------------------------------------------------------------

TITLE_TEMPLATES = [
    "{T}: The Complete Guide for {Y}",
    "How to Master {T} Without Wasting Time or Money",
    "{n} Proven {T} Strategies That Actually Work",
    "Why {T} Matters More Than Ever, and What to Do About It",
    "The Beginner's Guide to {T}: Everything You Need to Know",
    "{T} Explained: Key Concepts, Tools and Best Practices",
    "Common {T} Mistakes and How to Avoid Them",
    "{T} in {Y}: Trends, Data and Expert Predictions",
    "A Step-by-Step {T} Checklist for Busy Teams",
    "What Nobody Tells You About {T} Before You Start",
    "{T} vs. the Alternatives: An Honest Comparison",
    "The Science Behind {T}: What the Research Really Says",
    "{T} on a Budget: Smart Ways to Get Real Results",
    "From Zero to Expert: Your Practical {T} Roadmap",
    "{n} Questions to Ask Before You Invest in {T}",
    "The Future of {T}: What Changes Next and Why",
    "{T} Made Simple: A Practical Playbook for Beginners",
    "Inside {T}: Lessons Learned From {n} Real Projects",
]
TITLE_PADS = [" for Beginners and Pros", ": Tips and Examples", " in Plain English", ", Step by Step",
              " That Save You Hours", " With Real Examples"]


def fit_title(title, rnd):
    pads = list(TITLE_PADS)
    rnd.shuffle(pads)
    while len(title) < 50 and pads:
        title += pads.pop()
    if len(title) > 80:
        title = title[:80].rsplit(" ", 1)[0].rstrip(" :,-")
    while len(title) < 50:
        title += " Today"
    return title


def gen_titles(prompt, n):
    rnd = rng_for("titles", prompt)
    topic = title_case(extract_topic(prompt))
    if len(topic) > 36:
        topic = topic[:36].rsplit(" ", 1)[0]
    templates = list(TITLE_TEMPLATES)
    rnd.shuffle(templates)
    titles, seen, i = [], set(), 0
    while len(titles) < n:
        tpl = templates[i % len(templates)]
        title = tpl.format(T=topic, Y=rnd.choice(["2025", "2026"]), n=rnd.choice([5, 7, 9, 10, 12, 15]))
        if i >= len(templates):
            title = "%s (Part %d)" % (title[:70], i // len(templates) + 1)
        title = fit_title(title, rnd)
        i += 1
        if title.lower() not in seen:
            seen.add(title.lower())
            titles.append(title)
    return titles


# --- brief ----------------------------------------------------------------------------------------------------

KEYWORD_FORMS = ["{t}", "{t} guide", "best {t}", "{t} tips", "how to start {t}", "{t} examples", "{t} checklist",
                 "{t} for beginners", "{t} tools", "{t} cost", "{t} benefits", "{t} mistakes", "{t} strategy",
                 "what is {t}", "{t} vs alternatives", "{t} best practices", "{t} software", "{t} tutorial",
                 "advanced {t}", "{t} faq", "{t} statistics", "{t} trends", "{t} templates", "free {t} resources"]
SECTION_HEADINGS = ["Why {T} Matters", "Key Benefits of {T}", "How {T} Works", "Getting Started With {T}",
                    "Best Practices for {T}", "Common {T} Mistakes to Avoid", "Tools and Resources for {T}",
                    "Measuring {T} Results", "Real-World {T} Examples", "Costs and Budgeting for {T}",
                    "Advanced {T} Strategies"]
SUB_HEADINGS = ["Step One: Set a Clear Goal", "Step Two: Choose Your Tools", "What the Data Shows",
                "A Quick Checklist", "Questions to Ask First", "Pitfalls to Watch For", "A Worked Example",
                "Expert Tips"]
POINTS = ["define what success looks like for {t}", "compare the main options for {t}",
          "start small and measure {t} results weekly", "avoid the most common {t} mistakes",
          "budget realistically for {t}", "use data from credible sources on {t}",
          "build a repeatable {t} process", "review and adjust your {t} plan quarterly"]


def gen_brief(prompt):
    rnd = rng_for("brief", prompt)
    topic = extract_topic(prompt).lower()
    t_title = title_case(topic)
    n_sources = max(1, min(10, len(extract_sources(prompt)) or 3))

    forms = list(KEYWORD_FORMS)
    rnd.shuffle(forms)
    keywords = [topic] + [f.format(t=topic) for f in forms if f != "{t}"][:rnd.randint(14, 19)]

    def cites():
        k = rnd.randint(1, min(2, n_sources))
        return sorted(rnd.sample(range(1, n_sources + 1), k))

    def points():
        return [p.format(t=topic) for p in rnd.sample(POINTS, rnd.randint(2, 4))]

    middle = list(SECTION_HEADINGS)
    rnd.shuffle(middle)
    headings = ["What Is %s?" % t_title] + [h.format(T=t_title) for h in middle[:rnd.randint(3, 6)]]
    headings.append("Conclusion")
    outline = []
    for h in headings:
        subs = []
        for sh in rnd.sample(SUB_HEADINGS, rnd.choice([0, 1, 2])):
            subs.append({"heading": sh, "level": 3, "points": points(), "citations": cites(), "subsections": []})
        outline.append({"heading": h, "level": 2, "points": points(), "citations": cites(), "subsections": subs})

    meta = ("Learn %s: what it is, why it matters, the best practices, tools and common mistakes, with practical "
            "examples and sources." % topic)
    if len(meta) > 160:
        meta = meta[:157].rsplit(" ", 1)[0] + "..."
    return {
        "keywords": keywords,
        "outline": outline,
        "strategy": ("Target readers researching %s with an informational, practical guide: answer the core "
                     "question early, cover benefits, steps and mistakes, cite the sources for every claim, and "
                     "use the keywords naturally in headings and the first paragraph." % topic),
        "meta_description": meta,
        "slug": slugify(topic),
    }


# --- article --------------------------------------------------------------------------------------------------

def gen_article(prompt, title=None):
    """The Markdown article for a prompt: `# Title`, the prompt's headings (or generated ones), about the
    requested number of words, citations [n] for the sources named in the prompt, and a References list.
    title, when given, is the H1 instead of the one the prompt asks for (a model that ignores it)."""
    rnd = rng_for("article", prompt)
    topic = extract_topic(prompt).lower()
    title = title or extract_title(prompt) or title_case("The Complete Guide to %s" % topic)
    words = extract_words(prompt)
    sources = extract_sources(prompt)
    if not sources:
        slug = slugify(topic)
        sources = [("https://example.com/%s-%d" % (slug, i), "%s, part %d" % (title_case(topic), i))
                   for i in range(1, 4)]
    outline = [(lvl, h) for lvl, h in extract_outline(prompt) if h.strip().lower() not in ("references", "sources")]
    if not outline:
        outline = [(s["level"], s["heading"]) for s in gen_brief(prompt)["outline"]]

    cite_next = [0]

    def cite():
        cite_next[0] += 1
        return " [%d]" % ((cite_next[0] - 1) % len(sources) + 1)

    refs = "\n".join("%d. [%s](%s)" % (i, t, u) for i, (u, t) in enumerate(sources, 1))
    overhead = (len(title.split()) + 1 + sum(len(h.split()) + 1 for _, h in outline) + 2 + len(refs.split()))
    budget = max(50, words - overhead)
    # The body is written sentence by sentence against a running total, block k ending once the total reaches
    # k/(blocks) of the budget, so the article lands within a sentence of the target.
    blocks = ["# " + title]
    sections = [None] + outline  # None: the introduction
    total = 0
    for k, sec in enumerate(sections, 1):
        if sec is not None:
            blocks.append("#" * sec[0] + " " + sec[1])
        goal = budget * k // len(sections)
        para, para_words, para_max = [], 0, rnd.randint(60, 110)
        while total < goal or not para:
            s = sentence(rnd, topic)
            if rnd.random() < 0.3 or cite_next[0] < len(sources):
                s = s[:-1] + cite() + "."
            para.append(s)
            n = len(s.split())
            total += n
            para_words += n
            if para_words >= para_max and total < goal:
                blocks.append(" ".join(para))
                para, para_words, para_max = [], 0, rnd.randint(60, 110)
        blocks.append(" ".join(para))
    blocks.append("## References")
    blocks.append(refs)
    return "\n\n".join(blocks) + "\n"


def broken_json(text):
    """A JSON-mode reply that does not parse: cut in the middle of the object."""
    return text[: max(1, len(text) // 2)]


def cut_point(text):
    """Where a truncated reply ends: about half way, at a space."""
    i = text.find(" ", len(text) // 2)
    return i if i > 0 else len(text) // 2


# --- HTML pages -------------------------------------------------------------------------------------------------

def page_topic(name):
    base = re.sub(r"-\d+$", "", name)
    return clean_topic(re.sub(r"[-_]+", " ", base), 8).lower() or "content marketing"


def page_index(name):
    m = re.search(r"-(\d+)$", name)
    return int(m.group(1)) if m else digest(name)[0]


def page_title(name):
    """The headline of page <name>: the same in search results and on the page, different for -1, -2, ..."""
    stem = re.sub(r"-\d+$", "", name)
    tpl = TITLE_TEMPLATES[(digest(stem)[0] + page_index(name)) % len(TITLE_TEMPLATES)]
    return fit_title(tpl.format(T=title_case(page_topic(name)), Y="2025", n=7), rng_for("page-title", name))


def gen_page(name):
    rnd = rng_for("page", name)
    topic = page_topic(name)
    t_title = title_case(topic)
    sites = ["The Daily Brief", "Practical Notes", "Field Guide Weekly", "Maison Café Media", "Northwind Journal"]
    site = rnd.choice(sites)
    h1 = page_title(name)
    paras = []
    n_paras = rnd.randint(5, 10)
    while len(paras) < n_paras or sum(len(p) for p in paras) < 1600:
        paras.append(" ".join(sentence(rnd, topic) for _ in range(rnd.randint(4, 7))))
    body = []
    for i, p in enumerate(paras):
        body.append("      <p>%s</p>" % esc(p))
        if i == 1:
            body.append('      <div class="ad-slot" data-ad="inline-1"><span>Advertisement</span>'
                        '<a href="https://ads.example/click?id=%d">Save 20%% on premium plans today!</a></div>'
                        % rnd.randint(1000, 9999))
        if i == 3:
            body.append("      <h2>%s</h2>" % esc(rnd.choice(SECTION_HEADINGS).format(T=t_title)))
    related = "\n".join('        <li><a href="/pages/%s-%d.html">%s</a></li>'
                        % (slugify(topic), rnd.randint(20, 99), esc(fit_title(t.format(T=t_title, Y="2024", n=5),
                                                                              rnd)))
                        for t in rnd.sample(TITLE_TEMPLATES, 3))
    return """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{h1} | {site}</title>
  <meta name="description" content="Everything about {topic}.">
  <link rel="stylesheet" href="/static/site.css">
  <style>.cookie-banner{{position:fixed;bottom:0}} .ad-slot{{min-height:250px}}</style>
  <script type="application/ld+json">{{"@context":"https://schema.org","@type":"Article","headline":"{h1}"}}</script>
  <script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>
</head>
<body>
  <div class="cookie-banner" id="cookie-consent">
    <p>We use cookies to improve your experience and to show personalised ads.</p>
    <button class="accept">Accept all cookies</button> <button class="reject">Reject</button>
    <a href="/privacy">Cookie settings</a>
  </div>
  <header class="site-header">
    <a class="logo" href="/">{site}</a>
    <nav class="main-menu">
      <ul>
        <li><a href="/">Home</a></li>
        <li><a href="/news">News</a></li>
        <li><a href="/guides">Guides</a></li>
        <li><a href="/reviews">Reviews</a></li>
        <li><a href="/about">About us</a></li>
        <li><a href="/contact">Contact</a></li>
      </ul>
    </nav>
  </header>
  <div class="ad-slot" data-ad="leaderboard"><span>Advertisement</span></div>
  <main>
    <article class="post">
      <h1>{h1}</h1>
      <p class="byline">By {author} · {minutes} min read</p>
{body}
      <div class="share-buttons">
        <span>Share this:</span>
        <a class="share" href="https://twitter.example/share">Tweet</a>
        <a class="share" href="https://facebook.example/share">Share</a>
        <a class="share" href="mailto:?subject=Read%20this">Email</a>
      </div>
    </article>
    <aside class="sidebar">
      <h3>Related posts</h3>
      <ul>
{related}
      </ul>
      <div class="ad-slot" data-ad="sidebar"><span>Advertisement</span></div>
      <div class="newsletter">Subscribe to our newsletter for weekly tips.</div>
    </aside>
    <section class="comments" id="comments">
      <h3>3 comments</h3>
      <div class="comment"><b>Jamie</b><p>Great article, thanks for sharing!</p></div>
      <div class="comment"><b>Zoë</b><p>Very helpful — bookmarked.</p></div>
      <div class="comment"><b>Sam</b><p>Does this also work for small teams?</p></div>
      <form class="comment-form"><textarea name="comment"></textarea><button>Post comment</button></form>
    </section>
  </main>
  <footer class="site-footer">
    <p>&copy; 2025 {site}. All rights reserved.</p>
    <a href="/privacy">Privacy policy</a> · <a href="/terms">Terms</a> · <a href="/sitemap.xml">Sitemap</a>
  </footer>
  <script src="/static/analytics.js"></script>
  <noscript>Please enable JavaScript.</noscript>
</body>
</html>
""".format(h1=esc(h1), site=esc(site), topic=esc(topic), author=rnd.choice(["Alex Morgan", "Chloé Dubois",
                                                                            "Priya Shah", "Tom Becker"]),
           minutes=rnd.randint(3, 12), body="\n".join(body), related=related)


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


TINY_PAGE = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Subscribe</title></head>"
             "<body><p>Subscribe to continue reading.</p></body></html>\n")
PDF_BYTES = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
             b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


# ----------------------------------------------------------------------------------------------------------------
# Webhook verification
# ----------------------------------------------------------------------------------------------------------------

def standard_webhooks_key(secret):
    """The HMAC key of the Standard Webhooks signature: the base64 after `whsec_`, else the raw bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except ValueError:
            pass
    return secret.encode("utf-8")


def canonical_body(body):
    """The body as Python's json.dumps(json.loads(body), sort_keys=True), or None if it is not JSON."""
    try:
        return json.dumps(json.loads(body.decode("utf-8")), sort_keys=True).encode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None


def verify(secret, headers, body):
    raw_key = secret.encode("utf-8")
    got_hex = headers.get("x-webhook-signature", "")
    hex_raw = hmac.new(raw_key, body, hashlib.sha256).hexdigest()
    canon = canonical_body(body)
    res = {
        "sig_hex_raw": bool(got_hex) and hmac.compare_digest(got_hex, hex_raw),
        "sig_hex_canonical": (canon is not None and bool(got_hex)
                              and hmac.compare_digest(got_hex, hmac.new(raw_key, canon, hashlib.sha256).hexdigest())),
        "sig_standard": False,
    }
    wid, ts, sigs = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
    if wid and ts and sigs:
        mac = hmac.new(standard_webhooks_key(secret), ("%s.%s." % (wid, ts)).encode("utf-8") + body, hashlib.sha256)
        want = base64.b64encode(mac.digest()).decode("ascii")
        for part in sigs.split():
            version, _, sig = part.partition(",")
            if version == "v1" and hmac.compare_digest(sig, want):
                res["sig_standard"] = True
    return res


# ----------------------------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------------------------

class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, state, verbose, public_url=None):
        super().__init__(addr, Handler)
        self.state = state
        self.verbose = verbose
        host, port = self.server_address[:2]
        # The address the links it hands out (search results, redirects) point at: its own listening address,
        # unless it is reached under another name (e.g. a container's service name).
        self.base_url = public_url.rstrip("/") if public_url else "http://%s:%d" % (host, port)

    def handle_error(self, request, client_address):
        # a client going away mid-reply is normal here (timeouts in tests); say nothing unless asked
        if self.verbose:
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "inkloop-stub/1"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections are closed after this many seconds

    # --- plumbing ----------------------------------------------------------------------------------------------

    def log_request(self, code="-", size="-"):
        if self.server.verbose:  # method, path without query, status: never headers, bodies or queries
            sys.stderr.write("stub: %s %s %s\n" % (self.command, urlsplit(self.path).path, code))

    def log_error(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("stub: " + (fmt % args) + "\n")

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_REQUEST_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_REQUEST_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def send(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            self.send_response(status)
            if ctype and body:
                self.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(body)) if status not in (204, 304) else "0")
            self.end_headers()
            if body and self.command != "HEAD" and status not in (204, 304):
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True

    def hang_until_closed(self, seconds):
        return _hang_until_closed(self, seconds)

    def send_json(self, status, obj, headers=None):
        self.send(status, json.dumps(obj, ensure_ascii=False), "application/json", headers)

    def error(self, status, message, kind="invalid_request_error", headers=None):
        self.send_json(status, {"error": {"message": message, "type": kind}}, headers)

    def latency(self, cfg):
        if cfg["latency_ms"]:
            time.sleep(cfg["latency_ms"] / 1000.0)

    # --- routing -----------------------------------------------------------------------------------------------

    def dispatch(self):
        st = self.server.state
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query)
        method = self.command
        try:
            body = self.read_body()
        except ValueError:
            self.close_connection = True
            return self.error(413, "request body too large or malformed")
        try:
            if path in ("/v1/chat/completions", "/chat/completions"):
                return self.chat(body) if method == "POST" else self.error(405, "use POST")
            if path == "/search":
                return self.search_searxng(query) if method == "GET" else self.error(405, "use GET")
            if path == "/res/v1/web/search":
                return self.search_brave(query) if method == "GET" else self.error(405, "use GET")
            if path.startswith("/pages/") and method == "GET":
                return self.page(path[len("/pages/"):], query)
            m = re.fullmatch(r"/redirect/(\d{1,2})", path)
            if m and method == "GET":
                return self.redirect(int(m.group(1)), query)
            m = re.fullmatch(r"/hooks/(%s)(/received|/config)?" % SINK_NAME, path)
            if m:
                return self.hook(m.group(1), m.group(2), method, body)
            if path == "/hooks" and method == "GET":
                return self.send_json(200, st.sink_summary())
            if path == "/_control":
                if method == "GET":
                    return self.send_json(200, st.redacted_config())
                if method == "POST":
                    return self.send_json(200, st.configure(self.json_body(body)))
                return self.error(405, "use GET or POST")
            if path == "/_stats":
                if method == "GET":
                    return self.send_json(200, st.stats_snapshot())
                if method == "DELETE":
                    st.reset_stats()
                    return self.send(204)
                return self.error(405, "use GET or DELETE")
            if path in ("/", "/health") and method == "GET":
                return self.send_json(200, {"ok": True, "stub": "inkloop"})
            return self.error(404, "no such endpoint: %s %s" % (method, path), "not_found")
        except ValueError as e:
            return self.error(400, str(e))

    @staticmethod
    def json_body(body):
        try:
            return json.loads(body.decode("utf-8") or "{}")
        except (ValueError, UnicodeDecodeError):
            raise ValueError("body is not valid JSON") from None

    # --- LLM ---------------------------------------------------------------------------------------------------

    def chat(self, body):
        st = self.server.state
        cfg = st.config()
        if cfg["llm_key"] is not None:
            auth = self.headers.get("Authorization", "")
            if not hmac.compare_digest(auth.encode(), ("Bearer " + cfg["llm_key"]).encode()):
                st.count(("llm_faults", "unauthorized"))
                return self.send_json(401, {"error": {"message": "Incorrect API key provided.",
                                                      "type": "invalid_request_error", "code": "invalid_api_key"}})
        try:
            req = json.loads(body.decode("utf-8"))
            messages = req["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError
            for msg in messages:
                if not isinstance(msg, dict) or not isinstance(msg.get("content", ""), (str, type(None))):
                    raise ValueError
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            st.count(("llm_faults", "bad_request"))
            return self.error(400, "expected a JSON body with a non-empty messages array of {role, content}")

        rf = req.get("response_format")
        json_mode = isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema")
        # The prompt is every message before the first assistant one; later messages continue a reply.
        first_asst = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), len(messages))
        prompt = "\n\n".join(m.get("content") or "" for m in messages[:first_asst])
        prior = "".join(m.get("content") or "" for m in messages[first_asst:] if m.get("role") == "assistant")
        all_text = "\n\n".join(m.get("content") or "" for m in messages)
        if json_mode:
            low = prompt.lower()
            kind = "brief" if "outline" in low else "titles" if "titles" in low else "brief"
        else:
            kind = "continuation" if first_asst < len(messages) else "article"

        fault = st.llm_fault(kind)
        self.latency(cfg)
        if fault == "rate_limited":
            return self.send_json(429, {"error": {"message": "Rate limit reached for requests.",
                                                  "type": "requests", "code": "rate_limit_exceeded"}},
                                  {"Retry-After": cfg["retry_after"]})
        if fault == "hang":
            time.sleep(cfg["hang_seconds"])
        if fault == "server_error":
            return self.error(500, "The server had an error while processing your request.", "server_error")

        finish = "stop"
        if kind == "titles":
            content = json.dumps({"titles": gen_titles(prompt, extract_count(prompt, "titles", 5))})
        elif kind == "brief":
            content = json.dumps(gen_brief(prompt))
        else:
            full = gen_article(prompt, cfg["article_title"])
            if kind == "continuation":
                content = continuation(full, prior)
            else:
                content = full
                if st.llm_tick("llm_truncate_every", "truncated"):
                    content, finish = full[:cut_point(full)], "length"
        if json_mode and st.llm_tick("invalid_json_every", "invalid_json"):
            content = broken_json(content)
        max_tokens = req.get("max_completion_tokens") or req.get("max_tokens")
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 0 < max_tokens < len(content) // 4:
            content, finish = content[: max_tokens * 4], "length"

        p_tok, c_tok = max(1, len(all_text) // 4), max(1, len(content) // 4)
        st.llm_reply(kind, p_tok, c_tok)
        model = req.get("model") if isinstance(req.get("model"), str) else "stub-model"
        cid = "chatcmpl-" + hashlib.sha256((all_text + content).encode("utf-8", "surrogatepass")).hexdigest()[:24]
        created = int(time.time())
        usage = {"prompt_tokens": p_tok, "completion_tokens": c_tok, "total_tokens": p_tok + c_tok}
        if req.get("stream") is True:
            return self.stream(cid, created, model, content, finish, usage)
        self.send_json(200, {
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish}],
            "usage": usage,
        })

    def stream(self, cid, created, model, content, finish, usage):
        """Server-sent events as OpenAI streams them, in HTTP/1.1 chunks; the last chunk carries usage."""
        def event(delta, finish_reason, with_usage=False):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            if with_usage:
                obj["usage"] = usage
            return "data: " + json.dumps(obj, ensure_ascii=False) + "\n\n"

        events = [event({"role": "assistant", "content": ""}, None)]
        for i in range(0, len(content), 200):
            events.append(event({"content": content[i:i + 200]}, None))
        events.append(event({}, finish, True))
        events.append("data: [DONE]\n\n")
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for e in events:
                data = e.encode("utf-8")
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True

    # --- search ------------------------------------------------------------------------------------------------

    def search_results(self, q, cfg):
        if cfg["search_empty"]:
            return []
        n = min(20, cfg["search_results"])
        slug = slugify(q)
        out = []
        for i in range(1, n + 1):
            name = "%s-%d" % (slug, i)
            rnd = rng_for("search", q, str(i))
            out.append({
                "url": "%s/pages/%s.html" % (self.server.base_url, name),
                "title": page_title(name),
                "content": " ".join(sentence(rnd, page_topic(name)) for _ in range(2)),
            })
        return out

    def search_common(self, query):
        st = self.server.state
        cfg = st.config()
        st.count(("search_calls",))
        self.latency(cfg)
        q = (query.get("q") or [""])[0].strip()
        if cfg["search_status"]:
            self.error(cfg["search_status"], "search is failing (stub search_status)", "server_error",
                       {"Retry-After": cfg["retry_after"]} if cfg["search_status"] in (429, 503) else None)
            return None, None
        if not q:
            self.error(400, "missing q")
            return None, None
        return q, cfg

    def search_searxng(self, query):
        q, cfg = self.search_common(query)
        if q is None:
            return
        results = self.search_results(q, cfg)
        for r in results:
            r["engine"] = "stub"
        self.send_json(200, {"query": q, "number_of_results": len(results), "results": results,
                             "answers": [], "suggestions": [], "unresponsive_engines": []})

    def search_brave(self, query):
        cfg = self.server.state.config()
        if cfg["search_key"] is not None:
            token = self.headers.get("X-Subscription-Token", "")
            if not hmac.compare_digest(token.encode(), cfg["search_key"].encode()):
                self.server.state.count(("search_calls",))
                return self.send_json(401, {"type": "ErrorResponse", "error": {
                    "code": "SUBSCRIPTION_TOKEN_INVALID", "detail": "The provided subscription token is invalid.",
                    "status": 401}})
        q, cfg = self.search_common(query)
        if q is None:
            return
        results = [{"url": r["url"], "title": r["title"], "description": r["content"]}
                   for r in self.search_results(q, cfg)]
        count = (query.get("count") or [""])[0]
        if count.isdigit():
            results = results[: int(count)]
        self.send_json(200, {"type": "search", "query": {"original": q},
                             "web": {"type": "search", "results": results}})

    # --- pages -------------------------------------------------------------------------------------------------

    def page(self, name, query):
        st = self.server.state
        cfg = st.config()
        st.count(("page_fetches",))
        self.latency(cfg)
        if re.fullmatch(r"[A-Za-z0-9_.~-]{1,200}\.bin", name):
            data = b"".join(hashlib.sha256(b"%s:%d" % (name.encode(), i)).digest() for i in range(128))
            return self.send(200, data, "application/octet-stream")
        m = re.fullmatch(r"([A-Za-z0-9_.~-]{1,200})\.html?", name)
        if not m:
            return self.error(404, "no such page", "not_found")
        stem = m.group(1)
        if cfg["pages_unusable"]:
            if page_index(stem) % 2 == 0:
                return self.send(200, TINY_PAGE, "text/html; charset=utf-8")
            return self.send(200, PDF_BYTES, "application/pdf")
        html = gen_page(stem)
        pad = (query.get("pad") or [""])[0]
        if pad.isdigit():  # ?pad=N appends an N-byte HTML comment (size caps)
            html += "<!--" + "x" * min(int(pad), 64 << 20) + "-->\n"
        self.send(200, html, "text/html; charset=utf-8")

    def redirect(self, n, query):
        to = (query.get("to") or ["/pages/redirected-1.html"])[0]
        if not to.startswith("/"):
            return self.error(400, "to must be a path on this stub")
        loc = to if n <= 1 else "/redirect/%d?to=%s" % (n - 1, quote(to, safe="/"))
        self.send(302, b"", None, {"Location": self.server.base_url + loc})

    # --- webhook sink ------------------------------------------------------------------------------------------

    def hook(self, name, sub, method, body):
        st = self.server.state
        if sub == "/received":
            if method == "GET":
                return self.send_json(200, [public_record(r) for r in st.sink_records(name)])
            if method == "DELETE":
                st.sink_clear(name)
                return self.send(204)
            return self.error(405, "use GET or DELETE")
        if sub == "/config":
            if method == "GET":
                return self.send_json(200, st.sink_public_config(name))
            if method == "POST":
                return self.send_json(200, st.sink_configure(name, self.json_body(body)))
            return self.error(405, "use GET or POST")
        if method not in ("POST", "PUT", "PATCH"):
            return self.error(405, "use POST to deliver; GET %s/received to read" % self.path)

        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        record = {"method": method, "path": self.path, "headers": headers, "body_bytes": body,
                  "received_at": time.time(), "response_status": None}
        secret = st.sink_secret(name)
        canon = canonical_body(body)
        record["body_canonical"] = None if canon is None else canon == body
        if secret:
            record.update(verify(secret, headers, body))
        else:
            record.update({"sig_hex_raw": None, "sig_hex_canonical": None, "sig_standard": None})
        record["client_closed_at"] = None
        status, cfg = st.sink_record(name, record)
        if cfg.get("hang"):
            if self.hang_until_closed(cfg["hang"]):
                st.sink_client_closed(record)
                self.close_connection = True
                return
        extra = {}
        if status >= 300 and cfg.get("retry_after") is not None:
            extra["Retry-After"] = cfg["retry_after"]
        if 300 <= status < 400:
            extra["Location"] = cfg.get("location") or "%s/hooks/%s-moved" % (self.server.base_url, name)
        st.sink_set_response(record, status)
        if 200 <= status < 300:
            reply = cfg.get("reply")
            return self.send(status, b"" if reply is None or status == 204 else json.dumps(reply),
                             "application/json", extra)
        self.send_json(status, {"error": "stub sink answers %d" % status}, extra)


def _hang_until_closed(handler, seconds):
    """Sleeps up to seconds, watching the connection: true (at once) when the client closed it meanwhile."""
    sock = handler.connection
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([sock], [], [], min(left, 0.5))
        if r:
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except OSError:
                return True
            # Pipelined bytes (a next request): keep sleeping without spinning on them.
            time.sleep(min(max(end - time.monotonic(), 0), 0.05))


def public_record(r):
    out = {k: v for k, v in r.items() if k != "body_bytes"}
    body = r["body_bytes"]
    out["body_base64"] = base64.b64encode(body).decode("ascii")
    out["body_size"] = len(body)
    try:
        out["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        out["body"] = None
    return out


def continuation(full, prior):
    """The rest of `full` after what the client already has (`prior`, the assistant messages so far)."""
    if full.startswith(prior):
        return full[len(prior):]
    stripped = prior.rstrip()
    if stripped and full.startswith(stripped):
        return full[len(stripped):]
    tail = prior[-200:]
    i = full.find(tail) if tail else -1
    return full[i + len(tail):] if i >= 0 else full


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description="inkloop stub peers (LLM, search, pages, webhook sink)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed in the READY line)")
    p.add_argument("--public-url", default=None,
                   help="base URL of the links it returns, when clients reach it under another name (containers)")
    p.add_argument("--llm-key", default=None, help="require Authorization: Bearer <key> on the LLM")
    p.add_argument("--search-key", default=None, help="require X-Subscription-Token on the Brave endpoint")
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--rate-limit-every", type=int, default=0)
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--hang-every", type=int, default=0)
    p.add_argument("--hang-seconds", type=float, default=120.0)
    p.add_argument("--invalid-json-every", type=int, default=0)
    p.add_argument("--llm-truncate-every", type=int, default=0)
    p.add_argument("--search-empty", action="store_true")
    p.add_argument("--search-status", type=int, default=0)
    p.add_argument("--search-results", type=int, default=10)
    p.add_argument("--pages-unusable", action="store_true")
    p.add_argument("--article-title", default=None, help="write every article with this H1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="log method, path and status of each request to stderr")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    defaults = {k: getattr(args, k) for k in SETTINGS}
    try:
        for k, v in defaults.items():
            defaults[k] = SETTINGS[k](v)
    except ValueError as e:
        sys.stderr.write("stub: bad flag value: %s\n" % e)
        return 2
    state = State(defaults)
    try:
        server = StubServer((args.host, args.port), state, args.verbose, args.public_url)
    except OSError as e:
        sys.stderr.write("stub: cannot listen on %s:%d: %s\n" % (args.host, args.port, e.strerror))
        return 1

    def on_signal(signum, frame):
        # shutdown() waits for serve_forever() to return, so it must not run on the thread that serves
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.write("STUB READY %s\n" % server.base_url)
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        # Handler threads may still sleep in a hang or wait on idle keep-alive connections: leave at once.
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
