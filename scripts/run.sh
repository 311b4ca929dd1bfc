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

say "starting inkloop serve"
exec "$ROOT/build/inkloop" serve
