#!/usr/bin/env python3
"""Writes standard_webhooks_fixture.json: webhook bodies and the headers inkloop must send for them.

An independent implementation of API.md section 6 (Python's json, hmac, hashlib and base64), so the C side and
the stub's sink are both checked against something neither of them computed. Deterministic: running it again
gives the same file. Usage: python3 test/data/webhook/make_fixture.py > test/data/webhook/standard_webhooks_fixture.json
"""
import base64
import hashlib
import hmac
import json

PAYLOAD = {
    "event": "article.published",
    "id": "4f6c1e2a-9b3d-4c1e-8f2a-7d5e6b4c3a21",
    "article_id": "4f6c1e2a-9b3d-4c1e-8f2a-7d5e6b4c3a21",
    "campaign_id": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
    "title": "Crème brûlée at home: the “no-torch” method 🍮🔥",
    # The body's title is the article's title: its Markdown H1 (API.md section 6).
    "content": ("# Crème brûlée at home: the “no-torch” method 🍮🔥\n\n"
                "Café-style desserts — without a torch 🚀. Größe, naïve, "
                "日本語, emoji 😀 and a flag 🇫🇷.\n\n"
                "Quotes \"double\" and 'single', a backslash \\ and a tab\tand a control \u0001 char, "
                "</script> and a line separator \u2028 too [1].\n\n"
                "## References\n\n1. [Source](https://example.com/a)\n"),
    "content_html": ("<h1>Crème brûlée at home: the “no-torch” method 🍮🔥</h1>\n"
                     "<p>Café-style desserts — without a torch 🚀.</p>\n"),
    "category": "Recipes & Food",
    "keywords": ["crème brûlée", "dessert", "no-torch 🔥"],
    "meta_description": "How to make crème brûlée without a torch — step by step.",
    "slug": "creme-brulee-at-home",
    "sources": [{"url": "https://example.com/a", "title": "Source A — ünïcode"},
                {"url": "https://example.com/b?x=1&y=2", "title": "Source B"}],
    "word_count": 1234,
    "scheduled_at": None,
    "created_at": "2025-01-02T03:04:05Z",
}

WHSEC = "whsec_" + base64.b64encode(hashlib.sha256(b"inkloop webhook fixture key").digest()).decode()
RAW_SECRET = "plain-secret-0123456789"


def std_key(secret):
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode("utf-8")


def case(name, note, secret, webhook_id, timestamp, body_bytes):
    hex_sig = hmac.new(secret.encode("utf-8"), body_bytes, hashlib.sha256).hexdigest()
    signed = b"%s.%d." % (webhook_id.encode(), timestamp) + body_bytes
    std_sig = "v1," + base64.b64encode(hmac.new(std_key(secret), signed, hashlib.sha256).digest()).decode()
    canonical = json.dumps(json.loads(body_bytes.decode("utf-8")), sort_keys=True).encode("ascii")
    return {
        "name": name,
        "note": note,
        "secret": secret,
        "standard_key_hex": std_key(secret).hex(),
        "webhook_id": webhook_id,
        "timestamp": timestamp,
        "payload": json.loads(body_bytes.decode("utf-8")),
        "body": body_bytes.decode("utf-8"),
        "body_base64": base64.b64encode(body_bytes).decode(),
        "body_sha256": hashlib.sha256(body_bytes).hexdigest(),
        "body_is_canonical": canonical == body_bytes,
        "expected_headers": {
            "content-type": "application/json",
            "x-webhook-signature": hex_sig,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": std_sig,
        },
        "expected_hex_over_canonical": hmac.new(secret.encode("utf-8"), canonical, hashlib.sha256).hexdigest(),
    }


def main():
    app_body = json.dumps(PAYLOAD, sort_keys=True).encode("ascii")
    utf8_body = json.dumps(PAYLOAD, sort_keys=True, ensure_ascii=False).encode("utf-8")
    doc = {
        "description": ("Webhook bodies and headers per API.md section 6, computed with Python's json/hmac/base64 "
                        "by make_fixture.py. body_base64 is the exact byte string; body is the same text."),
        "cases": [
            case("whsec_secret", "the app's body (json.dumps sort_keys, ASCII escapes) with a whsec_ secret: "
                 "X-Webhook-Signature keys HMAC with the whole secret string, webhook-signature with the "
                 "base64-decoded part after whsec_", WHSEC, "msg_2mLcQ7sJ3nQ9zVx4", 1735787045, app_body),
            case("raw_secret", "the app's body with a plain secret: both signatures key HMAC with its bytes",
                 RAW_SECRET, "4f6c1e2a-9b3d-4c1e-8f2a-7d5e6b4c3a21", 1735787045, app_body),
            case("utf8_body", "NOT the app's form: the same payload as raw UTF-8 (ensure_ascii=False); the raw "
                 "body signature differs from the canonical one", WHSEC, "msg_utf8_body", 1700000000, utf8_body),
        ],
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
