#!/usr/bin/env bash
# test_demo.sh — scripts/demo as a user runs it, against the running test
# world (MXSIFT_DEMO_WORLD=$MXSIFT_TEST_DIR: the demo starts no world of its
# own and skips scripts/setup).
#
# Asserts:
#  - scripts/demo exits 0 and says every row has its expected verdict;
#  - each row of the table it printed has the status and reason that
#    examples/addresses.expected gives for that line, every input row is
#    there, and the expected file is itself what the comments of
#    examples/addresses.csv describe (a few rows spelled out below, so a
#    wrong expected file cannot make the demo pass);
#  - Postfix's view it prints: one session per MX domain (5);
#  - with an expected file that differs in one row, the demo exits 1 and
#    names that row (a broken demo says so).
#
# usage: test_demo.sh MXSIFT_BINARY SOURCE_DIR
set -euo pipefail
mxsift=$1 root=$2
if [ -z "${MXSIFT_TEST_DIR:-}" ] || [ ! -r "${MXSIFT_TEST_DIR}/env" ]; then
	echo "SKIP: test services not running (scripts/services up)"; exit 77
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/out" ] && sed 's/^/  demo: /' "$tmp/out" >&2; exit 1; }

build=$(cd "$(dirname "$mxsift")/.." && pwd)
csv=$root/examples/addresses.csv expected=$root/examples/addresses.expected
demo() {
	MXSIFT_BUILD_DIR=$build MXSIFT_DEMO_WORLD=$MXSIFT_TEST_DIR "$root/scripts/demo" "$@"
}

# ---- the demo as shipped ---------------------------------------------------------
rc=0
demo >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$tmp/err" >&2; fail "scripts/demo exited $rc"; }
rows=$(($(grep -c '' "$csv") - 1))
grep -q "^All $rows rows have the expected verdict (addresses.expected)\.$" "$tmp/out" ||
	fail "no 'All $rows rows have the expected verdict' line"

# The printed table, row by row: LINE, then the 40-column INPUT cell, then
# STATUS REASON (the inputs of this list are ASCII, so bytes = columns).
table_verdicts() {
	awk '/^ +[0-9]+  / { print $1 "\t" substr($0, 52) }' "$1" |
		awk -F'\t' '{ split($2, f, " "); print $1, f[1] "/" f[2] }'
}
table_verdicts "$tmp/out" >"$tmp/have"
grep -v '^#' "$expected" >"$tmp/expected.table"
table_verdicts "$tmp/expected.table" >"$tmp/want"
[ "$(grep -c '' "$tmp/have")" -eq "$rows" ] || fail "$(grep -c '' "$tmp/have") table rows for $rows input rows"
seq 2 $((rows + 1)) | diff - <(cut -d' ' -f1 "$tmp/have") >/dev/null || fail "table rows not lines 2..$((rows + 1))"
diff -u "$tmp/want" "$tmp/have" || fail "printed verdicts differ from addresses.expected"
# The expected file says what the list's own comments say.
for want in '2 deliverable/accepted' '4 undeliverable/mailbox_not_found' '5 deliverable/accepted' \
	'6 deliverable/accepted' '10 deliverable/accepted' '11 undeliverable/mailbox_not_found' \
	'12 deliverable/accepted' '13 deliverable/accepted' '14 undeliverable/mailbox_not_found' \
	'15 undeliverable/no_mail_server' '16 undeliverable/no_mail_server' \
	'17 undeliverable/no_mail_server' '18 undeliverable/invalid_syntax' \
	'19 undeliverable/invalid_syntax' '20 deliverable/accepted'; do
	grep -qx "$want" "$tmp/want" || fail "addresses.expected: line ${want%% *} is not ${want#* }"
done
grep -Eq '^ +15 .* null_mx$' "$tmp/out" || fail "no null_mx detail on line 15"
grep -Eq '^ +13 .* mx-live\.failover\.test$' "$tmp/out" || fail "line 13 not answered by the live MX"
# Postfix's view: alpha, beta, hosting (gamma + delta), implicit, failover.
sessions=$(grep -c '^  disconnect from .* quit=1 ' "$tmp/out" || true)
[ "$sessions" -eq 5 ] || fail "the demo showed $sessions Postfix sessions, expected 5"

# ---- a wrong expectation: the demo must say so and fail ----------------------------
sed -E 's/^( +8  zed@beta\.test +)undeliverable  mailbox_not_found   /\1deliverable    accepted            /' \
	"$expected" >"$tmp/broken.expected"
! cmp -s "$expected" "$tmp/broken.expected" || fail "test bug: the broken expectation equals the real one"
rc=0
demo "$csv" "$tmp/broken.expected" >"$tmp/out2" 2>"$tmp/err2" || rc=$?
[ "$rc" -eq 1 ] || fail "a wrong expectation: scripts/demo exited $rc, expected 1"
grep -q '^WRONG VERDICTS: the table differs from' "$tmp/err2" || fail "no WRONG VERDICTS message: $(cat "$tmp/err2")"
grep -Eq '^\+ +8  zed@beta\.test +undeliverable  mailbox_not_found' "$tmp/err2" ||
	fail "the differing row 8 is not shown: $(cat "$tmp/err2")"
grep -q '^All ' "$tmp/out2" && fail "'All rows ...' printed despite a difference"

echo "PASS: scripts/demo printed $rows rows, each with its expected verdict; a wrong expectation fails it"
