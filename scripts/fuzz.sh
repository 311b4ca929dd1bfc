#!/usr/bin/env bash
# Builds the libFuzzer target for extract_html (test/fuzz/fuzz_extract.c) with clang, AddressSanitizer and
# UBSan, and runs it from a seed corpus made of test/data/html. Any crash, leak, sanitizer report or broken
# invariant stops the run with a non-zero exit and leaves the input as crash-*/leak-* in the work directory.
#
#   scripts/fuzz.sh [-t SECONDS | -n RUNS] [-j JOBS] [-w WORKDIR]
#
# Default: a 30-second run (what scripts/test.sh does). -n runs exactly RUNS inputs (e.g. -n 10000000).
# WORKDIR (default build-fuzz) holds the binary, the growing corpus and the log; it is never committed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

secs=30 runs="" work="$ROOT/build-fuzz" jobs=1 maxlen=4096
while getopts "t:n:w:j:" opt; do
	case $opt in
	t) secs=$OPTARG ;;
	n) runs=$OPTARG ;;
	w) work=$OPTARG ;;
	j) jobs=$OPTARG ;;
	*)
		sed -n '2,9p' "$0" >&2
		exit 2
		;;
	esac
done

CC=${FUZZ_CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "scripts/fuzz.sh: $CC not found (deps/install.sh installs clang)" >&2
	exit 1
fi
mkdir -p "$work/corpus"
# Rebuilt every time: a few seconds, and never a stale binary.
# shellcheck disable=SC2046
"$CC" -std=c11 -D_GNU_SOURCE -g -O2 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Isrc test/fuzz/fuzz_extract.c src/pipeline/extract.c src/core/buf.c src/core/alloc.c \
	$(pkg-config --cflags --libs libxml-2.0) -o "$work/fuzz_extract"

# Seeds: the unit corpus, each page prefixed with a byte that picks a Content-Type.
i=0
for f in test/data/html/*.html; do
	{ printf "\001"; head -c "$maxlen" "$f"; } >"$work/corpus/seed-$i"
	i=$((i + 1))
done

limit=(-max_total_time="$secs")
[ -n "$runs" ] && limit=(-runs="$runs")
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$work"
if [ "$jobs" -gt 1 ]; then
	./fuzz_extract -max_len="$maxlen" -rss_limit_mb=2048 -timeout=10 "${limit[@]}" -jobs="$jobs" -workers="$jobs" \
		corpus
else
	./fuzz_extract -max_len="$maxlen" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "${limit[@]}" corpus
fi
