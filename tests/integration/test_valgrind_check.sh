#!/usr/bin/env bash
# test_valgrind_check.sh — a full `mxsift check` of the world list (DNS,
# Postfix, every verdict class the world has: accepted, unknown users,
# implicit MX, failover, null MX, NXDOMAIN, invalid rows) under valgrind's
# memcheck: any invalid read/write, use of uninitialised memory, bad free or
# leak (definite, indirect or possible) fails the test.  Also once with
# --max-wait, so the retry path (nothing is temporary in the world: no
# retry is made, but the bookkeeping is allocated and freed) is covered.
#
# Memory still reachable at exit (library caches: OpenSSL, c-ares, libidn2)
# is not a leak and is not counted.
#
# usage: test_valgrind_check.sh MXSIFT FIXTURE_CSV
set -euo pipefail
mxsift=$1 fixture=$2
if [ -z "${MXSIFT_TEST_DNS:-}" ]; then
	echo "SKIP: test services not running (scripts/services up)"; exit 77
fi
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
if grep -q libasan <<<"$(ldd "$mxsift")"; then
	echo "SKIP: $mxsift is built with AddressSanitizer (valgrind needs a plain build)"; exit 77
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

rows=$(($(wc -l <"$fixture") - 1))
run() {
	local name=$1
	shift
	valgrind --quiet --error-exitcode=99 --leak-check=full \
		--show-leak-kinds=definite,indirect,possible \
		--errors-for-leak-kinds=definite,indirect,possible \
		--track-origins=yes --num-callers=30 --log-file="$tmp/$name.vg" \
		"$mxsift" check "$fixture" --format jsonl -o "$tmp/$name.jsonl" \
		--dns "$MXSIFT_TEST_DNS" --helo probe.mxsift.test --mail-from verify@mxsift.test \
		--smtp-port "${MXSIFT_TEST_SMTP_PORT:-25}" --quiet "$@" 2>"$tmp/$name.err" || {
		rc=$?
		cat "$tmp/$name.vg" "$tmp/$name.err" >&2
		fail "$name: mxsift check under valgrind exited $rc (99: memcheck errors or leaks)"
	}
	[ ! -s "$tmp/$name.vg" ] || { cat "$tmp/$name.vg" >&2; fail "$name: valgrind reported"; }
	[ "$(wc -l <"$tmp/$name.jsonl")" -eq "$rows" ] || fail "$name: not one row per input row"
	tail -n +2 "$fixture" | cut -d, -f1 >"$tmp/want"
	jq -r '.status + "/" + .reason' "$tmp/$name.jsonl" >"$tmp/have"
	diff -u "$tmp/want" "$tmp/have" || fail "$name: verdicts differ from the fixture"
}
run plain
run maxwait --max-wait 30s --retry-schedule 1s
echo "PASS: mxsift check under valgrind: $rows rows, no memory errors, no leaks"
