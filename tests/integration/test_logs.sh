#!/usr/bin/env bash
# test_logs.sh — what the logs say, against the test world (dnsmasq,
# Postfix, the Kafka mock, Redis).
#
# Asserts:
#  - `mxsift check --log-level debug`: every stderr line is logfmt
#    (ts= level= msg="..."); the SMTP session logs each state transition
#    "A -> B" as one chain: greeting, EHLO, the first MAIL/RCPT, RSET MAIL
#    RCPT for the catch-all probe and for the second address (3 RCPT and 2
#    RSET states), QUIT, CLOSED, then its "smtp session end" line;
#  - `--log-level info` and the default: no debug line, and no address in
#    any line (privacy by default; the invalid-row report names the row's
#    text and is not a log line);
#  - mxsift-worker --log-addresses: one info-level "verdict" line per
#    address with job, address, status and reason equal to the job's export
#    (the opposite, no address at info level without the flag, is asserted
#    by integration.metrics).
#
# usage: test_logs.sh MXSIFT MXSIFT_WORKER
set -euo pipefail
mxsift=$1 worker=$2
. "$(dirname "${BASH_SOURCE[0]}")/test_fleet_lib.sh"
fleet_need MXSIFT_TEST_BROKERS MXSIFT_TEST_REDIS MXSIFT_TEST_DNS
fleet_init
trap 'echo "FAIL: test_logs.sh:$LINENO: a command failed (exit $?)" >&2' ERR

run=$(date +%s)-$$-$RANDOM
group=logs-$run topic=logs.$run retry_topic=logs.$run.retry dead_topic=logs.$run.dead
brokers=$MXSIFT_TEST_BROKERS redis=$MXSIFT_TEST_REDIS dns=$MXSIFT_TEST_DNS
smtp_port=${MXSIFT_TEST_SMTP_PORT:-25}
unset MXSIFT_LOG_LEVEL MXSIFT_LOG_ADDRESSES MXSIFT_CONFIG

check() {   # check NAME ARGS...: mxsift check of list.csv, stderr in NAME.err
	local name=$1
	shift
	"$mxsift" check "$tmp/list.csv" --dns "$dns" --smtp-port "$smtp_port" \
		--helo probe.mxsift.test --mail-from verify@mxsift.test --quiet \
		-o "$tmp/$name.csv" "$@" 2>"$tmp/$name.err" ||
		fail "mxsift check $* failed: $(cat "$tmp/$name.err")"
}
printf 'email\nalice@alpha.test\nnobody@alpha.test\n' >"$tmp/list.csv"

# ---- debug: the session's state transitions -----------------------------------------
check debug --log-level debug
bad=$(grep -Ev '^ts=[0-9T:.-]+Z level=(debug|info|warn|error) msg="[^"]+"( |$)' "$tmp/debug.err" || true)
[ -z "$bad" ] || fail "not logfmt: $(head -n 3 <<<"$bad")"
sed -n 's/.*msg="smtp state" session=1 host=mx1\.alpha\.test peer=[^ ]* transition="\([A-Z]*\) -> \([A-Z]*\)".*/\1 -> \2/p' \
	"$tmp/debug.err" >"$tmp/transitions"
# A chain (each from = the previous to), with the fixed opening and close;
# between them the order depends on pipelining (RCPT -> RSET when the next
# group was already written, RCPT -> READY -> RSET when not), the counts not:
# 3 RCPTs (alice, the catch-all probe, nobody), 2 RSETs.
awk '{ if (NR > 1 && $1 != prev) { print "line " NR ": " $0 " after ... -> " prev; bad = 1 }
	prev = $3 } END { exit bad }' "$tmp/transitions" >"$tmp/chain" ||
	fail "the transitions are not a chain: $(cat "$tmp/chain"): $(cat "$tmp/transitions")"
printf '%s\n' 'NEW -> CONNECTING' 'CONNECTING -> GREETING' 'GREETING -> EHLO' 'EHLO -> READY' \
	'READY -> MAIL' 'MAIL -> RCPT' >"$tmp/want"
head -n 6 "$tmp/transitions" | diff -u "$tmp/want" - || fail "the session's opening transitions"
printf '%s\n' 'READY -> QUIT' 'QUIT -> CLOSED' >"$tmp/want"
tail -n 2 "$tmp/transitions" | diff -u "$tmp/want" - || fail "the session's closing transitions"
[ "$(grep -c ' -> RCPT$' "$tmp/transitions")" -eq 3 ] || fail "not 3 RCPT states: $(cat "$tmp/transitions")"
[ "$(grep -c ' -> RSET$' "$tmp/transitions")" -eq 2 ] || fail "not 2 RSET states: $(cat "$tmp/transitions")"
ntrans=$(grep -c '' "$tmp/transitions")
[ "$(grep -c 'msg="smtp state"' "$tmp/debug.err")" -eq "$ntrans" ] || fail "smtp state lines of another session?"
# the transition to CLOSED comes before the session's end line
awk '/transition="QUIT -> CLOSED"/ { c = NR } /msg="smtp session end"/ { e = NR }
	END { exit !(c && e && c < e) }' "$tmp/debug.err" || fail "no session end line after CLOSED"
grep -q 'level=debug msg="smtp send" session=1 .* line="RCPT TO:<alice@alpha.test>"' "$tmp/debug.err" ||
	fail "no debug line of the RCPT sent"

# ---- info and the default: no debug lines, no addresses ------------------------------------
check info --log-level info
check default
for lvl in info default; do
	grep -q 'level=debug' "$tmp/$lvl.err" && fail "--log-level $lvl: a debug line"
	grep '^ts=' "$tmp/$lvl.err" | grep '@' >/dev/null && fail "--log-level $lvl: an address in a log line"
	cmp -s "$tmp/debug.csv" "$tmp/$lvl.csv" || fail "--log-level $lvl changed the verdicts"
done
grep -q 'level=info msg="smtp session end" .*mx_domain=alpha\.test .*rcpts=3 ' "$tmp/info.err" ||
	fail "--log-level info: no session end line: $(cat "$tmp/info.err")"
grep -q 'level=info' "$tmp/default.err" && fail "default level (warn) printed info lines"

# ---- worker --log-addresses: addresses in info lines ------------------------------------------
fleet_worker 1 --log-addresses
fleet_wait_group 1
job=logs-$run
printf 'email\nalice@alpha.test\nbob@alpha.test\nnobody@alpha.test\ndave@beta.test\nzed@beta.test\n' \
	>"$tmp/list2.csv"
"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" --topic "$topic" \
	"$tmp/list2.csv" >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
fleet_wait_done 30
"$mxsift" export --job "$job" --redis "$redis" --format jsonl -o "$tmp/export.jsonl" ||
	fail "mxsift export failed"
fleet_stop_workers
jq -r '"job=" + "'"$job"'" + " address=\"" + .address + "\" status=" + .status + " reason=" + .reason + " attempt=0"' \
	"$tmp/export.jsonl" | sort >"$tmp/want2"
[ "$(grep -c '' "$tmp/want2")" -eq 5 ] || fail "export: $(cat "$tmp/export.jsonl")"
sed -n 's/.* level=info msg="verdict" \(job=.*\)$/\1/p' "$tmp/w1.log" | sort >"$tmp/have2"
diff -u "$tmp/want2" "$tmp/have2" || fail "--log-addresses: the info-level verdict lines differ from the export"

echo "PASS: debug shows the session's $ntrans state transitions as one chain; info/default show no addresses; --log-addresses logs 5 verdicts with their addresses at info"
