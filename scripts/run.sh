#!/usr/bin/env bash
# The run command: installs what is missing, builds, starts the embedded PostgreSQL when DATABASE_URL is not
# set, then serves (serve applies pending migrations itself). It takes no arguments.
#
#   scripts/run.sh
#
# Environment (besides the service's own, see README.md):
#   DATABASE_URL       when set, used as is and no embedded PostgreSQL is started
#   INKLOOP_PG_PORT    port of the embedded PostgreSQL (default 54329); its data lives in .data/pg
#   JWT_SECRET         when unset (and INKLOOP_DEV is unset), a random secret is generated once into
#                      .data/jwt_secret (mode 600) and reused by later runs
# The embedded PostgreSQL keeps running after the service exits; stop it with: scripts/pg.sh stop .data/pg
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

say() { echo "run.sh: $*" >&2; }

if [ "$#" -ne 0 ]; then
	say "usage: scripts/run.sh (configuration comes from the environment; see README.md)"
	exit 2
fi

"$ROOT/deps/install.sh"

if [ ! -f "$ROOT/build/build.ninja" ]; then
	say "configuring build/"
	meson setup "$ROOT/build" >&2
fi
say "building"
ninja -C "$ROOT/build" >&2

# .data must stay traversable by the `postgres` user whatever the umask is (see scripts/pg.sh).
mkdir -p "$ROOT/.data"
chmod 755 "$ROOT/.data"

if [ -z "${DATABASE_URL:-}" ]; then
	port=${INKLOOP_PG_PORT:-54329}
	DATABASE_URL=$("$ROOT/scripts/pg.sh" start "$ROOT/.data/pg" "$port")
	export DATABASE_URL
	say "embedded PostgreSQL on 127.0.0.1:$port (stop it with: scripts/pg.sh stop .data/pg)"
fi

if [ -z "${JWT_SECRET:-}" ] && [ -z "${INKLOOP_DEV:-}" ]; then
	secret_file="$ROOT/.data/jwt_secret"
	if [ ! -s "$secret_file" ]; then
		(
			umask 077
			head -c 48 /dev/urandom | base64 -w0 >"$secret_file.tmp"
			mv "$secret_file.tmp" "$secret_file"
		)
		say "generated a random JWT secret into .data/jwt_secret"
	fi
	chmod 600 "$secret_file"
	JWT_SECRET=$(cat "$secret_file")
	export JWT_SECRET
fi

# Without an LLM the service cannot generate anything. So that a new user still sees an article go from
# request to webhook, the stub peers (test/stubs/stub.py: an OpenAI-compatible LLM, a SearXNG search over its
# own pages, a webhook sink) stand in for the real providers. Set LLM_BASE_URL (and SEARCH_PROVIDER) to use
# real ones; INKLOOP_NO_STUB=1 runs without either.
stub_pid=""
if [ -z "${LLM_BASE_URL:-}" ] && [ -z "${INKLOOP_NO_STUB:-}" ]; then
	stub_out="$ROOT/.data/stub.out"
	: >"$stub_out"
	python3 "$ROOT/test/stubs/stub.py" --port "${INKLOOP_STUB_PORT:-0}" >"$stub_out" 2>"$ROOT/.data/stub.log" &
	stub_pid=$!
	stub_url=""
	for _ in $(seq 1 100); do
		stub_url=$(awk '/^STUB READY/ {print $3; exit}' "$stub_out")
		[ -n "$stub_url" ] && break
		sleep 0.1
	done
	if [ -z "$stub_url" ]; then
		say "the stub peers did not start (see .data/stub.log)"
		kill "$stub_pid" 2>/dev/null || true
		exit 1
	fi
	export LLM_BASE_URL="$stub_url/v1" LLM_API_KEY=stub LLM_MODEL=stub
	if [ -z "${SEARCH_PROVIDER:-}" ]; then
		export SEARCH_PROVIDER=searxng SEARCH_URL="$stub_url"
	fi
	# The stub's pages and webhook sink are on loopback, which the target policy refuses by default.
	export ALLOW_PRIVATE_URLS=1
	say "=================================================================================================="
	say "NO LLM CONFIGURED: using the STUB peers at $stub_url (fake LLM, search, pages and webhook sink)."
	say "Articles are generated from canned text. Set LLM_BASE_URL and SEARCH_PROVIDER for real providers."
	say "Demo webhook receiver: $stub_url/hooks/demo (what it got: GET $stub_url/hooks/demo/received)"
	say "ALLOW_PRIVATE_URLS=1 for this demo run only."
	say "=================================================================================================="
fi

say "starting inkloop serve"
if [ -z "$stub_pid" ]; then
	exec "$ROOT/build/inkloop" serve
fi
# With the stub running, stay around to stop it when the service exits (also on Ctrl-C).
trap 'kill -TERM "$server_pid" 2>/dev/null || true' INT TERM
"$ROOT/build/inkloop" serve &
server_pid=$!
rc=0
wait "$server_pid" || rc=$?
wait "$server_pid" 2>/dev/null || true
kill -TERM "$stub_pid" 2>/dev/null || true
exit "$rc"
