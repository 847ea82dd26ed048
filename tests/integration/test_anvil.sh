#!/usr/bin/env bash
# test_anvil.sh — lane rules against a real Postfix that rate-limits its
# clients (anvil: smtpd_client_connection_rate_limit and
# smtpd_client_recipient_rate_limit), judged by Postfix itself.
#
# A test world of its own (scripts/services with MXSIFT_WORLD_ANVIL="6 20 5s":
# 6 connections and 20 RCPT per client per 5 s window; anvil counts from a
# client's first event for 5 s inclusive, so a window lasts up to 6 s), on
# an MX address derived from the shared world's (127.0.C.D -> 127.77.C.D), so
# two checkouts' test runs never meet.  Each phase connects from its own
# source address (--bind): anvil keeps its counters per client address.
#
#  1. A lane rule below the limits (rate=2.5 burst=2: at most 2 + 2.5 x 6 = 17
#     RCPT per window; conn_rate=0.5 conn_burst=1: at most 4 connections):
#     Postfix never says "too many" (no rate-limit warning in its log for
#     that client), every verdict is final and right, the lane never backed off.
#  2. A lane rule far above them (rate=50): Postfix refuses with 450 4.7.1 /
#     421 4.7.0 "too many ... from"; the lane backs off (halving its rate,
#     pausing exponentially), asks again, and ends with every verdict final
#     and right; Postfix refused few times (each refusal is a backoff; a
#     client that kept hammering would collect one per RCPT).
#
# usage: test_anvil.sh PROBE MOCK_KAFKA
set -euo pipefail
probe=$1 mock=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${MXSIFT_TEST_MX_IP:-}" ]; then
	echo "SKIP: test services not running (scripts/services up)"; exit 77
fi
command -v postfix >/dev/null || { echo "SKIP: postfix not installed"; exit 77; }
IFS=. read -r _ _ c d <<<"$MXSIFT_TEST_MX_IP"
mx=127.77.$c.$d
tmp=$(mktemp -d)
chmod 755 "$tmp"   # Postfix daemons (user postfix) enter the world below it
world=$tmp/world
cleanup() {
	MXSIFT_MOCK_KAFKA=$mock "$root/scripts/services" down "$world" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

MXSIFT_MOCK_KAFKA=$mock MXSIFT_WORLD_MX_IP=$mx MXSIFT_WORLD_ANVIL="6 20 5s" \
	"$root/scripts/services" up "$world" 2>"$tmp/up.log" ||
	{ cat "$tmp/up.log" >&2; fail "scripts/services up (anvil world on $mx)"; }
log=$world/postfix/maillog

# 30 addresses: 24 known (alice, bob, carol), 6 unknown; expected verdicts
: >"$tmp/addrs"
: >"$tmp/want"
for i in $(seq 1 30); do
	case $((i % 5)) in
	0) a="nobody$i@alpha.test" w="undeliverable mailbox_not_found 550 5.1.1" ;;
	1 | 4) a="alice@alpha.test" w="deliverable accepted 250 2.1.5" ;;
	2) a="bob@alpha.test" w="deliverable accepted 250 2.1.5" ;;
	*) a="carol@alpha.test" w="deliverable accepted 250 2.1.5" ;;
	esac
	echo "$a" >>"$tmp/addrs"
	echo "$a $w" >>"$tmp/want"
done

# phase NAME SOURCE RULE [PROBE ARGS...]: probe every address through lane
# anvil.test from SOURCE; output in $tmp/NAME.out, Postfix's log of it in
# $tmp/NAME.maillog
phase() {
	local name=$1 src=$2 rule=$3 start
	shift 3
	echo "anvil.test $rule" >"$tmp/$name.lanes"
	start=$(stat -c %s "$log")
	"$probe" --host "$mx" --port 25 --bind "$src" --lanes "$tmp/$name.lanes" --lane anvil.test \
		--timeout-ms 10000 --lane-stats "$@" $(cat "$tmp/addrs") >"$tmp/$name.out" \
		2>"$tmp/$name.err" || { cat "$tmp/$name.err" >&2; fail "$name: mxsift-probe exited $?"; }
	sleep 1    # postlogd writes asynchronously
	tail -c +"$((start + 1))" "$log" | grep -F "[$src]" >"$tmp/$name.maillog" || true
	head -n 30 "$tmp/$name.out" | diff -u "$tmp/want" - ||
		fail "$name: verdicts are not all final and right"
	grep -q '^stats .* replies_503=0$' "$tmp/$name.out" || fail "$name: a 503"
}

# Postfix's refusals of a client: "warning: ... rate limit exceeded: N from unknown[SRC]"
refusals() { grep -c 'rate limit exceeded' "$tmp/$1.maillog" || true; }

# ---- 1. below the limits -----------------------------------------------------
t0=$(date +%s%N)
phase below 127.78.0.1 "rate=2.5 burst=2 conn_rate=0.5 conn_burst=1 rcpt_per_session=12"
ms=$((($(date +%s%N) - t0) / 1000000))
n=$(refusals below)
[ "$n" -eq 0 ] || { grep 'rate limit exceeded' "$tmp/below.maillog" | sed -n 1,5p; fail "below: Postfix refused $n times"; }
grep -q '^lane anvil.test rate=2.500 rule_rate=2.500 backoffs=0 level=0$' "$tmp/below.out" ||
	fail "below: the lane backed off: $(grep ^lane "$tmp/below.out")"
sessions=$(grep -c 'connect from unknown' "$tmp/below.maillog" || true)
rcpts=$(sed -n 's/^stats connections=[0-9]* rcpts=\([0-9]*\) .*/\1/p' "$tmp/below.out")
# near the rule, not far below it: 30+ RCPT at 2.5/s after a burst of 2
[ "$ms" -ge 10000 ] && [ "$ms" -le 30000 ] || fail "below: $rcpts RCPT took $ms ms (want 10..30 s)"
echo "ok   below: $rcpts RCPT in $sessions sessions over $ms ms, no refusal from anvil"

# ---- 2. above the limits ------------------------------------------------------
phase above 127.78.0.2 "rate=50 burst=10 conn_rate=10 conn_burst=3 rcpt_per_session=100" \
	--backoff-ms 500 --throttle-retries 10
n=$(refusals above)
[ "$n" -ge 1 ] || fail "above: Postfix never refused: the rule was not above its limits?"
b=$(sed -n 's/^lane .* backoffs=\([0-9]*\) .*/\1/p' "$tmp/above.out")
[ "$b" -ge 1 ] || fail "above: the lane never backed off ($n refusals)"
grep -qE 'msg="lane backoff" lane=anvil.test code=(450 enhanced=4\.7\.1|421 enhanced=4\.7\.0)' \
	"$tmp/above.err" || fail "above: no 'lane backoff' line for Postfix's refusal"
grep -q 'msg="lane rate" lane=anvil.test rate=25.000 .*why=backoff' "$tmp/above.err" ||
	fail "above: the rate was not halved"
# every refusal paused the lane exponentially: few of them, not one per RCPT
[ "$n" -le 12 ] || fail "above: Postfix refused $n times (backoffs $b): the lane kept hammering"
echo "ok   above: Postfix refused $n times, the lane backed off $b times, every verdict final;" \
	"$(grep ^lane "$tmp/above.out")"
echo "PASS: anvil"
