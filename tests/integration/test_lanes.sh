#!/usr/bin/env bash
# test_lanes.sh — lane politeness seen from the receiving side: the engine
# (through mxsift-probe) against mxsift-smtpd-script in serve mode, judged
# by the server's own timestamps (its event log), not by the client's word.
#
# 1. Rates: one lane (three domains on one MX domain share it) with
#    rate=20 burst=3 conn_rate=4 conn_burst=2 conns=2 rcpt_per_session=8.
#    For every stretch of the server's RCPT log, RCPTs <= burst + rate x time
#    (the token bucket's promise); the same for connections; two sessions
#    open at once, never three; every address answered, no 503; and the
#    pace is near the limit, not far below it.
# 2. A 421 storm: for its first 1.2 s the server greets every connection
#    with "421 4.7.0 Too many connections, try again later".  The lane backs
#    off (halving its rate, exponential pauses with jitter from 200 ms), each
#    pause at least half its nominal length, asks again, and recovers: every
#    address is deliverable and the lane's rate is back at its rule's.
#
# usage: test_lanes.sh PROBE SMTPD_SCRIPT
set -euo pipefail
probe=$1 smtpd=$2
command -v awk >/dev/null || { echo "SKIP: awk missing"; exit 77; }

tmp=$(mktemp -d)
spid=
cleanup() {
	if [ -n "$spid" ]; then kill -TERM "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# serve SCRIPT-FILE: start the scripted server (events in $tmp/events); sets $port
serve() {
	local i
	"$smtpd" -T 60 -t "$tmp/transcript" -e "$tmp/events" "$1" >"$tmp/port" 2>"$tmp/smtpd.err" &
	spid=$!
	port=
	for i in $(seq 1 100); do
		port=$(awk '$1 == "port" { print $2 }' "$tmp/port" 2>/dev/null) || true
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	cat "$tmp/smtpd.err" >&2
	fail "the scripted server did not start"
}

stop() {
	local rc=0
	kill -TERM "$spid"
	wait "$spid" || rc=$?
	spid=
	if grep -q ' ! ' "$tmp/transcript"; then
		grep ' ! ' "$tmp/transcript" >&2
		fail "the scripted server recorded failures"
	fi
	[ "$rc" -eq 0 ] || fail "the scripted server exited $rc"
	[ -s "$tmp/smtpd.err" ] && { cat "$tmp/smtpd.err" >&2; fail "scripted server stderr"; }
	return 0
}

# bucket_ok EVENT RATE BURST: the token bucket's promise over the whole log
. "$(dirname "$0")/test_lanes_lib.sh"
bucket_ok() { lanes_bucket_ok "$tmp/events" "$@"; }

# ---- 1. rates --------------------------------------------------------------------
addrs=()
for d in a b c; do
	for i in $(seq 1 16); do addrs+=("user$i@$d.test"); done
done
printf '%s\n' "${addrs[@]}" >"$tmp/users"
cat >"$tmp/lanes.conf" <<EOF
* rate=1000
shared.test rate=20 burst=3 conn_rate=4 conn_burst=2 conns=2 rcpt_per_session=8
EOF
cat >"$tmp/rates.scn" <<EOF
pipelining on
users $tmp/users
conn *
serve
EOF
serve "$tmp/rates.scn"
"$probe" --host 127.0.0.1 --port "$port" --lanes "$tmp/lanes.conf" --lane shared.test \
	--timeout-ms 5000 --lane-stats "${addrs[@]}" >"$tmp/out" 2>"$tmp/probe.err" ||
	{ cat "$tmp/probe.err" >&2; fail "mxsift-probe exited $?"; }
stop
[ "$(grep -c ' deliverable accepted 250 ' "$tmp/out")" -eq 48 ] ||
	{ cat "$tmp/out"; fail "not every address was accepted"; }
grep -q '^stats connections=[0-9]* rcpts=51 replies_503=0$' "$tmp/out" ||
	fail "want 51 RCPT (48 + 3 catch-all probes) and no 503: $(grep ^stats "$tmp/out")"
rcpts=$(awk '$4 == "RCPT"' "$tmp/events" | wc -l)
conns=$(awk '$4 == "connect"' "$tmp/events" | wc -l)
[ "$rcpts" -eq 51 ] || fail "the server saw $rcpts RCPT, want 51"
[ "$conns" -ge 7 ] || fail "$conns connections for 51 RCPT at 8 per session"
bucket_ok RCPT 20 3 || fail "RCPT rate above rate=20 burst=3"
bucket_ok connect 4 2 || fail "connection rate above conn_rate=4 conn_burst=2"
# A session is over for the client at its QUIT (it closes on the 221; the
# server may log the close after the next connect).
maxopen=$(awk '$4 == "connect" { o++; if (o > m) m = o }
	($4 == "QUIT" || $4 == "close") && !gone[$3]++ { o-- } END { print m + 0 }' "$tmp/events")
[ "$maxopen" -eq 2 ] || fail "$maxopen connections open at once, want 2 (conns=2)"
# near the limit: 51 RCPT at 20/s after a burst of 3 take about 2.4 s.
# Far slower would mean lost time.
span=$(awk '$4 == "RCPT" { if (!s) s = $1; e = $1 } END { print e - s }' "$tmp/events")
[ "$span" -ge 2300 ] && [ "$span" -le 6000 ] || fail "51 RCPT took $span ms (want 2.3..6 s)"
echo "ok   rates: $rcpts RCPT in $span ms, $conns connections, at most $maxopen open"

# ---- 2. a 421 storm ---------------------------------------------------------------
: >"$tmp/events"
addrs=()
for i in $(seq 1 20); do addrs+=("user$i@a.test"); done
printf '%s\n' "${addrs[@]}" >"$tmp/users"
cat >"$tmp/lanes.conf" <<EOF
storm.test rate=50 burst=5 conns=1
EOF
cat >"$tmp/storm.scn" <<EOF
storm 1200 421 4.7.0 Too many connections, try again later
users $tmp/users
conn *
serve
EOF
serve "$tmp/storm.scn"
"$probe" --host 127.0.0.1 --port "$port" --lanes "$tmp/lanes.conf" --lane storm.test \
	--backoff-ms 200 --throttle-retries 10 --no-catch-all --timeout-ms 5000 --lane-stats \
	"${addrs[@]}" >"$tmp/out" 2>"$tmp/probe.err" ||
	{ cat "$tmp/probe.err" >&2; fail "mxsift-probe exited $?"; }
stop
[ "$(grep -c ' deliverable accepted 250 ' "$tmp/out")" -eq 20 ] ||
	{ cat "$tmp/out"; fail "not every address was accepted after the storm"; }
storms=$(awk '$4 == "storm"' "$tmp/events" | wc -l)
[ "$storms" -ge 2 ] || fail "only $storms connection(s) met the storm"
# the k-th pause is 200 ms x 2^(k-1), with jitter 0.5..1.5
awk '$4 == "storm" { if (n) gap[n] = $1 - last; last = $1; n++ }
	END {
		for (k = 1; k < n; k++) {
			min = 200 * 2 ^ (k - 1) / 2 - 20
			if (gap[k] < min) { printf "pause %d: %d ms < %d ms\n", k, gap[k], min; exit 1 }
		}
	}' "$tmp/events" || fail "the lane did not back off exponentially"
grep -q '^lane storm.test rate=50.000 rule_rate=50.000 backoffs=[0-9]* level=0$' "$tmp/out" ||
	fail "the lane did not recover: $(grep ^lane "$tmp/out")"
b=$(sed -n 's/^lane .* backoffs=\([0-9]*\) .*/\1/p' "$tmp/out")
[ "$b" -eq "$storms" ] || fail "$b backoffs for $storms 421 greetings"
grep -q 'msg="lane rate" lane=storm.test rate=25.000 .*why=backoff' "$tmp/probe.err" ||
	fail "no info log line for the first halving"
grep -q 'msg="lane rate" lane=storm.test rate=50.000 .*why=recover' "$tmp/probe.err" ||
	fail "no info log line for the recovery"
bucket_ok RCPT 50 5 || fail "RCPT rate above rate=50 burst=5"
echo "ok   storm: $storms connections refused with 421, $b backoffs, recovered to 50/s"
echo "PASS: lanes"
