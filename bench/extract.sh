#!/usr/bin/env bash
# Main-text extraction benchmark: F1 and ms/page of `inkloop extract` on two public sets with ground truth,
# trafilatura's evaluation set and Mozilla Readability's test pages. Nothing fetched is ever committed: the
# sets are read where they are, or cloned into a temporary directory that is removed at exit.
#
#   bench/extract.sh [-v] [-r REPEAT] [-t TRAFILATURA] [-m READABILITY]
#
# TRAFILATURA: a checkout of adbar/trafilatura (or its tests/ directory) holding tests/evaldata.py or
#   tests/evaldata.json with the pages in tests/cache and tests/eval; or a git URL to clone (then
#   TRAFILATURA_REV, default 56bd698c^, the last commit with evaldata.py, is checked out).
# READABILITY: a checkout of mozilla/readability (or its test/test-pages directory), or a git URL to clone.
# -r: extractions per page, the fastest one timed (default 3). -v: list the pages that lose points.
# Prints precision, recall, F1 and ms/page (median, mean, max) per set; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

traf="" rdb="" repeat=3 verbose=()
while getopts "t:m:r:v" opt; do
  case $opt in
    t) traf=$OPTARG ;;
    m) rdb=$OPTARG ;;
    r) repeat=$OPTARG ;;
    v) verbose=(-v) ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
  esac
done
if [[ -z $traf && -z $rdb ]]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A URL is cloned (outside the repository); a path is used as it is.
resolve() { # NAME SOURCE REV
  local name=$1 src=$2 rev=$3
  if [[ $src == *://* || $src == git@* ]]; then
    echo "cloning $src" >&2
    git clone --quiet --filter=blob:none --no-checkout "$src" "$tmp/$name" >&2
    git -C "$tmp/$name" checkout --quiet "$rev" >&2
    echo "$tmp/$name"
  elif [[ -d $src ]]; then
    echo "$src"
  else
    echo "bench/extract.sh: $src is neither a directory nor a git URL" >&2
    exit 2
  fi
}

args=()
[[ -n $traf ]] && args+=(--trafilatura "$(resolve trafilatura "$traf" "${TRAFILATURA_REV:-56bd698c^}")")
[[ -n $rdb ]] && args+=(--readability "$(resolve readability "$rdb" "${READABILITY_REV:-HEAD}")")

# A release build of its own, so timings do not depend on what the last debug build was.
if [[ ! -d build-bench ]]; then
  meson setup build-bench --buildtype=release >/dev/null
fi
ninja -C build-bench inkloop >/dev/null

python3 "$root/bench/extract_score.py" --bin "$root/build-bench/inkloop" --repeat "$repeat" "${verbose[@]}" "${args[@]}"
