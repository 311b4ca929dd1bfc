#!/usr/bin/env bash
# Installs the Debian packages inkloop's build, tests and (with --bench) benchmarks need.
# Idempotent and silent when everything is already present; otherwise runs apt-get update + install.
# Works as root (CI) and, when not root, through sudo if it is available.
set -euo pipefail

usage() {
	echo "usage: deps/install.sh [--bench] [--check]" >&2
	echo "  --bench  also install the benchmark tools (wrk)" >&2
	echo "  --check  only report missing packages (exit 1 if any), install nothing" >&2
}

# What each package is for: see deps/README.md.
BUILD_PKGS=(
	build-essential pkg-config meson ninja-build
	libuv1-dev libh2o-dev libpq-dev libcurl4-openssl-dev libyajl-dev libssl-dev
	libxml2-dev libmd4c-dev libmd4c-html0-dev libargon2-dev libcrypt-dev
	clang
)
RUN_PKGS=(postgresql-15 postgresql-client-15 python3 curl procps util-linux ca-certificates)
BENCH_PKGS=(wrk)

want_bench=0
check_only=0
for arg in "$@"; do
	case "$arg" in
	--bench) want_bench=1 ;;
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

pkgs=("${BUILD_PKGS[@]}" "${RUN_PKGS[@]}")
if [ "$want_bench" = 1 ]; then
	pkgs+=("${BENCH_PKGS[@]}")
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
