#!/usr/bin/env bash
# The test command: installs what is missing, starts a throwaway PostgreSQL, builds and runs every test suite
# (`meson test`) in build-test, then again under AddressSanitizer + UBSan in build-asan, then once the
# containerized deployment (test/container/test_deploy.py: builds the image, runs compose.yaml with podman). The
# cluster is removed on exit, also after a failure or Ctrl-C. Ends with one line "N passed, M failed" (each
# container check counts as one test); exits non-zero on failure.
#
#   scripts/test.sh [meson test arguments, e.g. --suite integ or a test name]
#
# With meson test arguments only those tests run (no container test), unless the arguments are just
# `container`: then only the container test runs.
#
# Environment:
#   INKLOOP_TEST_SKIP_ASAN=1       skip the sanitizer pass (quicker local runs; CI never sets it)
#   INKLOOP_TEST_SKIP_CONTAINER=1  skip the container test (quicker local runs; CI never sets it)
#   MESON_TEST_JOBS=N              parallel tests per build (default: meson's, the number of CPUs)
set -euo pipefail
exec </dev/null

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
PG_SH="$ROOT/scripts/pg.sh"

say() { echo "test.sh: $*" >&2; }

"$ROOT/deps/install.sh"

# A directory the `postgres` user can traverse (mktemp makes it 0700).
TMP=$(mktemp -d /tmp/inkloop-test.XXXXXX)
chmod 755 "$TMP"
PGDATA_DIR="$TMP/pg"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	"$PG_SH" destroy "$PGDATA_DIR" >/dev/null 2>&1 || say "could not remove the test cluster in $PGDATA_DIR"
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The port is free when picked but could be taken before PostgreSQL binds it; try a few.
started=0
for _ in 1 2 3; do
	PG_PORT=$(free_port)
	if "$PG_SH" start "$PGDATA_DIR" "$PG_PORT" --fast >/dev/null; then
		started=1
		break
	fi
	"$PG_SH" stop "$PGDATA_DIR" >/dev/null 2>&1 || true
done
if [ "$started" != 1 ]; then
	say "could not start the throwaway PostgreSQL"
	echo "0 passed, 1 failed"
	exit 1
fi
export INKLOOP_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
export INKLOOP_TEST_PG_DATADIR="$PGDATA_DIR"
export INKLOOP_TEST_PG_PORT="$PG_PORT"
export INKLOOP_PG_SH="$PG_SH"
say "throwaway PostgreSQL on 127.0.0.1:$PG_PORT"

total_pass=0
total_fail=0
total_skip=0
failed_builds=()

# Counts a testlog.json: prints "passed failed skipped" (one entry per test program).
count_results() {
	python3 - "$1" <<'EOF'
import json, re, sys
ok = bad = skip = 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = line.strip()
    if not line:
        continue
    try:
        r = json.loads(line).get("result", "")
    except ValueError:
        # A test's captured output can make its line unreadable as JSON; its result is still on the line.
        m = re.search(r'"result": "([A-Z]+)"', line)
        r = m.group(1) if m else "UNREADABLE"
    if r in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r == "SKIP":
        skip += 1
    else:
        bad += 1
print(ok, bad, skip)
EOF
}

# run_build NAME DIR [meson setup options...] -- [extra meson test options...]
run_build() {
	local name=$1 dir=$2
	shift 2
	local setup=() testopts=()
	while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
		setup+=("$1")
		shift
	done
	[ "$#" -gt 0 ] && shift
	testopts=("$@")

	say "== $name: building in $dir"
	if [ -d "$dir" ] && [ ! -f "$dir/meson-private/coredata.dat" ]; then
		rm -rf "$dir"
	fi
	if [ ! -f "$dir/build.ninja" ]; then
		if ! meson setup "$dir" "${setup[@]}" >&2; then
			say "$name: meson setup failed"
			total_fail=$((total_fail + 1))
			failed_builds+=("$name (setup)")
			return
		fi
	fi
	if ! ninja -C "$dir" >&2; then
		say "$name: build failed"
		total_fail=$((total_fail + 1))
		failed_builds+=("$name (build)")
		return
	fi

	local log="$dir/meson-logs/testlog.json"
	rm -f "$log"
	local jobs=()
	if [ -n "${MESON_TEST_JOBS:-}" ]; then jobs=(--num-processes "$MESON_TEST_JOBS"); fi
	say "== $name: meson test"
	local rc=0
	meson test -C "$dir" --no-rebuild --print-errorlogs "${jobs[@]}" "${testopts[@]}" "${EXTRA_TEST_ARGS[@]}" >&2 ||
		rc=$?
	if [ ! -f "$log" ]; then
		say "$name: meson test wrote no results (exit $rc)"
		total_fail=$((total_fail + 1))
		failed_builds+=("$name (meson test)")
		return
	fi
	local p f s counts
	counts=$(count_results "$log") || counts="0 1 0"
	read -r p f s <<<"$counts"
	say "$name: $p passed, $f failed, $s skipped"
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	total_skip=$((total_skip + s))
	if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
		failed_builds+=("$name")
		if [ "$f" -eq 0 ]; then total_fail=$((total_fail + 1)); fi
	fi
}

# The container test: once, after the meson builds (it builds its own release image). Its TAP lines are
# counted like meson's tests (failures and diagnostics also go to stderr as they happen); the TAP log stays in
# build-test/container-test.log.
run_container_test() {
	local log="$ROOT/build-test/container-test.log" rc=0 p f s
	mkdir -p "$ROOT/build-test"
	say "== container test: test/container/test_deploy.py (log: $log)"
	python3 "$ROOT/test/container/test_deploy.py" >"$log" || rc=$?
	p=$(grep -c '^ok ' "$log" || true)
	f=$(grep -c '^not ok ' "$log" || true)
	s=0
	if grep -q '^1\.\.0 # SKIP' "$log"; then s=1; fi
	say "container test: $p passed, $f failed, $s skipped (exit $rc)"
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	total_skip=$((total_skip + s))
	if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
		failed_builds+=("container test")
		if [ "$f" -eq 0 ]; then total_fail=$((total_fail + 1)); fi
	fi
}

if [ "$#" -eq 1 ] && [ "$1" = container ]; then
	run_container_test
	if [ "${#failed_builds[@]}" -gt 0 ]; then say "failures in: ${failed_builds[*]}"; fi
	echo "$total_pass passed, $total_fail failed"
	[ "$total_fail" -eq 0 ]
	exit
fi

EXTRA_TEST_ARGS=("$@")

run_build "plain build" "$ROOT/build-test" --

if [ "${INKLOOP_TEST_SKIP_ASAN:-}" = 1 ]; then
	say "INKLOOP_TEST_SKIP_ASAN=1: skipping the sanitizer build"
else
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	run_build "ASan+UBSan build" "$ROOT/build-asan" -Db_sanitize=address,undefined -Db_lundef=false \
		-- --timeout-multiplier 3
	unset ASAN_OPTIONS UBSAN_OPTIONS
fi

# A short libFuzzer run of the extractor (clang, ASan + UBSan, no network): a crash, leak or broken invariant
# fails it. Skipped when a subset of tests was asked for. INKLOOP_TEST_FUZZ_SECS sets its length (default 30).
if [ "${#EXTRA_TEST_ARGS[@]}" -eq 0 ]; then
	say "== fuzz: extract_html for ${INKLOOP_TEST_FUZZ_SECS:-30} s (scripts/fuzz.sh)"
	if "$ROOT/scripts/fuzz.sh" -t "${INKLOOP_TEST_FUZZ_SECS:-30}" -w "$ROOT/build-fuzz" >"$TMP/fuzz.log" 2>&1; then
		say "fuzz: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$TMP/fuzz.log" | tail -1), no crash, no leak"
		total_pass=$((total_pass + 1))
	else
		tail -n 40 "$TMP/fuzz.log" >&2
		say "fuzz: failed (inputs that broke it are in build-fuzz/crash-* or leak-*)"
		total_fail=$((total_fail + 1))
		failed_builds+=("fuzz")
	fi
fi

if [ "${#EXTRA_TEST_ARGS[@]}" -gt 0 ]; then
	say "meson test arguments given: skipping the container test (scripts/test.sh container runs it alone)"
elif [ "${INKLOOP_TEST_SKIP_CONTAINER:-}" = 1 ]; then
	say "INKLOOP_TEST_SKIP_CONTAINER=1: skipping the container test"
else
	run_container_test
fi

if [ "$total_skip" -gt 0 ]; then say "$total_skip test(s) skipped"; fi
if [ "${#failed_builds[@]}" -gt 0 ]; then say "failures in: ${failed_builds[*]}"; fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
