#!/usr/bin/env python3
"""A minimal, fast webhook receiver for bench/deliver.sh (Python 3 standard library, asyncio, one thread).

Prints `READY <port>` once listening. Every POST is answered 200 at once (keep-alive) and recorded as
(article_id from the body, arrival time in unix seconds); `GET /_received` returns the records as a JSON array
of [article_id, received_at]. It does not verify signatures: it stands in for a receiver that is never the
bottleneck, so the benchmark measures inkloop (the stub sink, test/stubs/stub.py, is a thread per connection
and verifies every request, so it is the slower peer)."""
import asyncio
import json
import re
import sys
import time

ARTICLE_ID = re.compile(rb'"article_id": "([0-9a-f-]{36})"')
records = []


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            now = time.time()
            lines = head.split(b"\r\n")
            method, path = lines[0].split(b" ")[:2]
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            if method == b"GET" and path == b"/_received":
                out = json.dumps(records).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % len(out) + out)
            else:
                m = ARTICLE_ID.search(body)
                records.append([m.group(1).decode() if m else None, now])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print("READY %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
