#!/usr/bin/env bash
# Installs the Debian packages inkloop's build, tests and (with --bench) benchmarks need; --container adds what
# the container test needs, --build-only installs just the build set (the Containerfile's build stage).
# Idempotent and silent when everything is already present; otherwise runs apt-get update + install.
# Works as root (CI) and, when not root, through sudo if it is available.
set -euo pipefail

usage() {
	echo "usage: deps/install.sh [--bench] [--container] [--build-only] [--check]" >&2
	echo "  --bench       also install the benchmark tools (wrk, jq, the seed stack's python packages, node)" >&2
	echo "  --container   also install the container test's tools (podman, podman-compose, debootstrap, ...)" >&2
	echo "  --build-only  only the build packages (no PostgreSQL, no test tools): the Containerfile's build stage" >&2
	echo "  --check       only report missing packages (exit 1 if any), install nothing" >&2
}

# What each package is for: see deps/README.md.
BUILD_PKGS=(
	build-essential pkg-config meson ninja-build
	libuv1-dev libh2o-dev libpq-dev libcurl4-openssl-dev libyajl-dev libssl-dev
	libxml2-dev libmd4c-dev libmd4c-html0-dev libcrypt-dev
	clang
)
RUN_PKGS=(postgresql-15 postgresql-client-15 python3 curl procps util-linux ca-certificates)
# bench/compare.sh runs the seed stack (FastAPI, uvicorn with uvloop + httptools, asyncpg) from Debian packages;
# bench/queue.sh runs graphile-worker on node (its npm packages come from the npm registry, see deps/README.md).
BENCH_PKGS=(wrk jq python3-fastapi python3-uvicorn python3-asyncpg python3-uvloop python3-httptools nodejs)
CONTAINER_PKGS=(podman runc netavark aardvark-dns iptables podman-compose debootstrap debian-archive-keyring)

want_bench=0
want_container=0
build_only=0
check_only=0
for arg in "$@"; do
	case "$arg" in
	--bench) want_bench=1 ;;
	--container) want_container=1 ;;
	--build-only) build_only=1 ;;
	--check) check_only=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "deps/install.sh: unknown argument: $arg" >&2
		usage
		exit 2
		;;
	esac
done

if [ "$build_only" = 1 ]; then
	pkgs=("${BUILD_PKGS[@]}")
else
	pkgs=("${BUILD_PKGS[@]}" "${RUN_PKGS[@]}")
fi
if [ "$want_bench" = 1 ]; then
	pkgs+=("${BENCH_PKGS[@]}")
fi
if [ "$want_container" = 1 ]; then
	pkgs+=("${CONTAINER_PKGS[@]}")
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps/install.sh: dpkg-query not found; this script supports Debian 12 (bookworm) only" >&2
	exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [ "$status" != "installed" ]; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

echo "deps/install.sh: missing packages: ${missing[*]}" >&2
if [ "$check_only" = 1 ]; then
	exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
	as_root=(env)
elif command -v sudo >/dev/null 2>&1; then
	# -n: never prompt (CI has no stdin); fails clearly if a password would be needed.
	as_root=(sudo -n env)
else
	echo "deps/install.sh: not root and sudo is not available; install as root: apt-get install ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps/install.sh: apt-get update" >&2
"${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
echo "deps/install.sh: apt-get install ${missing[*]}" >&2
"${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
echo "deps/install.sh: done" >&2
