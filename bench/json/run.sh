#!/usr/bin/env bash
# JSON writer micro-benchmark (see json_bench.c): builds a release build of the core library and prints ns per
# GET /articles/{id} body for the reference hand-written writer, yajl_gen alone, and src/core/json.c.
#   bench/json/run.sh [BODIES_PER_ROUND]
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -d build-bench ]; then
  meson setup build-bench --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C build-bench bench/json/json_bench >/dev/null
build-bench/bench/json/json_bench "${1:-2000}"
