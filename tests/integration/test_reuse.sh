#!/usr/bin/env bash
# test_reuse.sh — `mxsift submit --reuse-within` against the test world:
# Kafka mock, Redis, dnsmasq, one mxsift-worker probing Postfix.
#
# Job A probes a small list.  Job B submits the same list plus one new
# address with --reuse-within 1h: the addresses A verified by SMTP are not
# probed again (no task carries them), their verdicts are copied from A
# (same checked_at), counted as reused in B's summary and meta and shown by
# `mxsift status` (text and JSON; not at all for a meta without it), and B still
# reaches done == total.  Job C with --reuse-within 1s after they aged
# reuses nothing.  Invalid rows and DNS failures are never "reused": they
# are decided without SMTP anyway.  A bad duration is a usage error.
#
# usage: test_reuse.sh MXSIFT MXSIFT_WORKER
set -euo pipefail
mxsift=$1 worker=$2
for v in MXSIFT_TEST_BROKERS MXSIFT_TEST_REDIS MXSIFT_TEST_DNS; do
	if [ -z "${!v:-}" ]; then
		echo "SKIP: $v unset (start the test world: scripts/services up DIR)"; exit 77
	fi
done
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
tmp=$(mktemp -d)
wpid=""
cleanup() {
	if [ -n "$wpid" ]; then
		kill -TERM "$wpid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$wpid" 2>/dev/null || true
		wait "$wpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/w.log" ] && tail -n 20 "$tmp/w.log" >&2; exit 1; }

run=$(date +%s)-$$-$RANDOM
topic=reuse.test.$run
common=(--brokers "$MXSIFT_TEST_BROKERS" --redis "$MXSIFT_TEST_REDIS" --dns "$MXSIFT_TEST_DNS"
	--topic "$topic" -X allow.auto.create.topics=true -q)
# unique local parts per run: the last-verdict keys are global in Redis
printf 'email\nalice+%s@alpha.test\nbob+%s@alpha.test\nnobody%s@alpha.test\ndave+%s@beta.test\nbroken-%s\nx%s@missing.test\n' \
	"$run" "$run" "$run" "$run" "$run" "$run" | tr -- '-' '_' >"$tmp/a.csv"
{ cat "$tmp/a.csv"; echo "erin+$run@beta.test" | tr -- '-' '_'; } >"$tmp/b.csv"

"$worker" --brokers "$MXSIFT_TEST_BROKERS" --redis "$MXSIFT_TEST_REDIS" --group "reuse-$run" \
	--topic "$topic" --dns "$MXSIFT_TEST_DNS" --helo probe.mxsift.test \
	--mail-from verify@mxsift.test --smtp-port "${MXSIFT_TEST_SMTP_PORT:-25}" \
	-X allow.auto.create.topics=true --metrics-addr 127.0.0.1:0 >"$tmp/w.log" 2>&1 &
wpid=$!

wait_done() {
	local job=$1 s
	for _ in $(seq 1 600); do
		s=$("$mxsift" status --job "$job" --redis "$MXSIFT_TEST_REDIS" --format json) ||
			fail "status $job failed"
		[ "$(jq -r .state <<<"$s")" = complete ] && return 0
		kill -0 "$wpid" 2>/dev/null || fail "the worker died"
		sleep 0.1
	done
	fail "job $job not complete after 60 s: $s"
}
summary() { sed -n "s/.*; \([0-9]*\) tasks (.*(\([0-9]*\) reused)\$/\1 \2/p" "$1"; }

"$mxsift" submit --job "reuse-a-$run" "${common[@]}" "$tmp/a.csv" >"$tmp/a.out" ||
	fail "submit A failed"
wait_done "reuse-a-$run"
read -r tasks_a reused_a < <(summary "$tmp/a.out")
[ "$reused_a" -eq 0 ] || fail "job A reused $reused_a"
[ "$tasks_a" -ge 1 ] || fail "job A made no task"
"$mxsift" export --job "reuse-a-$run" --redis "$MXSIFT_TEST_REDIS" --format jsonl \
	-o "$tmp/a.jsonl" || fail "export A failed"

"$mxsift" submit --job "reuse-b-$run" --reuse-within 1h "${common[@]}" "$tmp/b.csv" \
	>"$tmp/b.out" || fail "submit B failed"
cat "$tmp/b.out"
read -r tasks_b reused_b < <(summary "$tmp/b.out")
# alice, bob, nobody (mailbox_not_found) and dave were verified by SMTP in A
[ "$reused_b" -eq 4 ] || fail "job B reused $reused_b, expected 4"
[ "$tasks_b" -eq 1 ] || fail "job B made $tasks_b tasks, expected 1 (erin only)"
wait_done "reuse-b-$run"
s=$("$mxsift" status --job "reuse-b-$run" --redis "$MXSIFT_TEST_REDIS" --format json)
[ "$(jq .total <<<"$s")" -eq 7 ] || fail "job B total $(jq .total <<<"$s"), expected 7"
[ "$(redis-cli -u "$MXSIFT_TEST_REDIS" HGET "mxsift:job:reuse-b-$run:meta" reused)" = 4 ] ||
	fail "job B meta has no reused=4"
# status shows the meta's reused count, in JSON and in text
[ "$(jq .reused <<<"$s")" = 4 ] || fail "status --format json of job B: reused $(jq .reused <<<"$s"), expected 4"
"$mxsift" status --job "reuse-b-$run" --redis "$MXSIFT_TEST_REDIS" >"$tmp/b.status" ||
	fail "status B failed"
grep -Eq '^reused +4$' "$tmp/b.status" || fail "status of job B has no 'reused 4' line: $(cat "$tmp/b.status")"
"$mxsift" export --job "reuse-b-$run" --redis "$MXSIFT_TEST_REDIS" --format jsonl \
	-o "$tmp/b.jsonl" || fail "export B failed"
# the reused verdicts are A's, checked_at and all
for who in alice bob nobody dave; do
	a=$(jq -c "select(.address | startswith(\"$who\")) | [.status, .reason, .checked_at]" "$tmp/a.jsonl")
	b=$(jq -c "select(.address | startswith(\"$who\")) | [.status, .reason, .checked_at]" "$tmp/b.jsonl")
	[ -n "$a" ] && [ "$a" = "$b" ] || fail "$who: job B has $b, job A had $a"
done

sleep 2
"$mxsift" submit --job "reuse-c-$run" --reuse-within 1s "${common[@]}" "$tmp/a.csv" \
	>"$tmp/c.out" || fail "submit C failed"
read -r tasks_c reused_c < <(summary "$tmp/c.out")
[ "$reused_c" -eq 0 ] || fail "job C reused $reused_c verdicts older than 1 s"
wait_done "reuse-c-$run"
s=$("$mxsift" status --job "reuse-c-$run" --redis "$MXSIFT_TEST_REDIS" --format json)
[ "$(jq .reused <<<"$s")" = 0 ] || fail "status of job C: reused $(jq .reused <<<"$s"), expected 0"
# a job whose meta has no reused (submitted by an older mxsift) shows none
redis-cli -u "$MXSIFT_TEST_REDIS" HDEL "mxsift:job:reuse-c-$run:meta" reused >/dev/null
s=$("$mxsift" status --job "reuse-c-$run" --redis "$MXSIFT_TEST_REDIS" --format json)
[ "$(jq 'has("reused")' <<<"$s")" = false ] || fail "status shows reused for a meta without it"
grep -q '^reused' <<<"$("$mxsift" status --job "reuse-c-$run" --redis "$MXSIFT_TEST_REDIS")" &&
	fail "status text shows reused for a meta without it"

# --reuse-within off (or 0) on the command line switches off what the
# environment (or a config file) set: nothing reused, all five probed
for off in off 0; do
	MXSIFT_SUBMIT_REUSE_WITHIN=1h "$mxsift" submit --job "reuse-e$off-$run" --reuse-within "$off" \
		"${common[@]}" "$tmp/b.csv" >"$tmp/e.out" || fail "submit E (--reuse-within $off) failed"
	read -r tasks_e reused_e < <(summary "$tmp/e.out")
	[ "$reused_e" -eq 0 ] || fail "--reuse-within $off over MXSIFT_SUBMIT_REUSE_WITHIN=1h reused $reused_e"
	wait_done "reuse-e$off-$run"
done
# ... while the environment alone does reuse (the case above is not vacuous)
MXSIFT_SUBMIT_REUSE_WITHIN=1h "$mxsift" submit --job "reuse-f-$run" "${common[@]}" "$tmp/b.csv" \
	>"$tmp/f.out" || fail "submit F failed"
read -r tasks_f reused_f < <(summary "$tmp/f.out")
[ "$reused_f" -ge 4 ] || fail "MXSIFT_SUBMIT_REUSE_WITHIN=1h reused only $reused_f"
wait_done "reuse-f-$run"

# brokers nobody answers: the job fails, and the message says where it sent and what to do
rc=0
"$mxsift" submit --job "reuse-g-$run" --brokers 127.0.0.1:1 --redis "$MXSIFT_TEST_REDIS" \
	--dns "$MXSIFT_TEST_DNS" --topic "$topic" -X message.timeout.ms=1500 -q "$tmp/b.csv" \
	>/dev/null 2>"$tmp/g.err" || rc=$?
[ "$rc" -eq 1 ] || { cat "$tmp/g.err" >&2; fail "submit to no brokers exited $rc, expected 1"; }
grep -q "^mxsift submit: job reuse-g-$run failed: 0 of [1-9][0-9]* tasks delivered to Kafka (127.0.0.1:1).*--resume" \
	"$tmp/g.err" || fail "submit to no brokers: $(cat "$tmp/g.err")"

rc=0
"$mxsift" submit --job "reuse-d-$run" --reuse-within 7x "${common[@]}" "$tmp/a.csv" \
	>/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "--reuse-within 7x exited $rc, expected 2"
echo "PASS: 4 of 5 addresses reused within 1h (status: reused 4), none within 1s"
