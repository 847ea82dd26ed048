#!/usr/bin/env bash
# test_bind.sh — the source address of SMTP connections (--bind, config key
# bind) as the real Postfix of the test world sees it, and the one info line
# per SMTP session end.
#
#  1. `mxsift check --bind 127.0.0.5`: Postfix logs "connect from
#     unknown[127.0.0.5]" for every session of the run, the verdicts are
#     right, and stderr (--log-level info) holds one "smtp session end" line
#     per session, naming the MX domain, host, peer, counts and outcome=quit,
#     and no recipient address.
#  2. `bind = 127.0.0.6` in a configuration file: the same with 127.0.0.6.
#  3. `--bind ::1` to an IPv4-only MX: unknown/connection_failed "no source
#     address for IPv4", and Postfix sees no connection from it.
#  4. `--bind 192.0.2.7` (not an address of this host): exit 2 at once with a
#     message naming the address.
#
# usage: test_bind.sh MXSIFT_BINARY
set -euo pipefail
mxsift=$1
if [ -z "${MXSIFT_TEST_DNS:-}" ] || [ -z "${MXSIFT_TEST_POSTFIX_LOG:-}" ]; then
	echo "SKIP: test services not running (scripts/services up)"; exit 77
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
log=$MXSIFT_TEST_POSTFIX_LOG
mx_ip=${MXSIFT_TEST_MX_IP:-127.0.0.10}
unset MXSIFT_CONFIG

printf '%s\n' alice@alpha.test nobody@alpha.test bob@alpha.test dave@beta.test >"$tmp/list.txt"

# check OUT [ARGS...]: mxsift check of the list; stderr in OUT.err
check() {
	local out=$1
	shift
	"$mxsift" check "$tmp/list.txt" --format jsonl -o "$out" --dns "$MXSIFT_TEST_DNS" \
		--helo probe.mxsift.test --smtp-port "${MXSIFT_TEST_SMTP_PORT:-25}" --quiet \
		--log-level info "$@" 2>"$out.err"
}

# postfix_since OFFSET FILE: the Postfix log written after OFFSET (bytes),
# once postlogd has caught up
postfix_since() {
	sleep 1
	tail -c +"$(($1 + 1))" "$log" >"$2"
}

# run_bound ADDR NAME [ARGS...]: check from ADDR, assert Postfix saw it
run_bound() {
	local addr=$1 name=$2 start sessions ends
	shift 2
	start=$(stat -c %s "$log")
	check "$tmp/$name.jsonl" "$@" || { cat "$tmp/$name.jsonl.err" >&2; fail "$name: mxsift check exited $?"; }
	postfix_since "$start" "$tmp/$name.maillog"
	jq -r '.address + " " + .status + "/" + .reason' "$tmp/$name.jsonl" | sort >"$tmp/$name.have"
	sort >"$tmp/want" <<-EOF
	alice@alpha.test deliverable/accepted
	bob@alpha.test deliverable/accepted
	dave@beta.test deliverable/accepted
	nobody@alpha.test undeliverable/mailbox_not_found
	EOF
	diff -u "$tmp/want" "$tmp/$name.have" || fail "$name: verdicts"
	sessions=$(grep -c "smtpd\[[0-9]*\]: connect from unknown\[$addr\]" "$tmp/$name.maillog" || true)
	# alpha.test and beta.test: two MX domains, one session each
	[ "$sessions" -eq 2 ] || { cat "$tmp/$name.maillog"; fail "$name: Postfix saw $sessions sessions from $addr, want 2"; }
	ends=$(grep -c 'level=info msg="smtp session end"' "$tmp/$name.jsonl.err" || true)
	[ "$ends" -eq 2 ] || { cat "$tmp/$name.jsonl.err"; fail "$name: $ends session end lines, want 2"; }
	grep -qE "msg=\"smtp session end\" conn=[0-9]+ mx_domain=alpha\.test host=mx1\.alpha\.test peer=${mx_ip//./\\.}:[0-9]+ tls=0 rcpts=4 rejects=1 duration_ms=[0-9]+ outcome=quit why=[a-z_]+ code=0$" \
		"$tmp/$name.jsonl.err" || { cat "$tmp/$name.jsonl.err"; fail "$name: the alpha.test end line (3 + 1 catch-all RCPT; only nobody counts as a reject: the catch-all probe's expected 5.1.1 does not)"; }
	grep -q '@' "$tmp/$name.jsonl.err" && { cat "$tmp/$name.jsonl.err"; fail "$name: an address in the info log"; }
	echo "ok   $name: Postfix saw $sessions sessions from $addr; end lines: $(grep -o 'outcome=[a-z_]* why=[a-z_]*' "$tmp/$name.jsonl.err" | sort | uniq -c | xargs)"
}

# 1. the flag
run_bound 127.0.0.5 flag --bind 127.0.0.5

# 2. the configuration file key
printf '# test_bind.sh\nbind = 127.0.0.6\n[check]\nlog-level = info\n' >"$tmp/mxsift.conf"
run_bound 127.0.0.6 config --config "$tmp/mxsift.conf"

# 3. an IPv6 source address and an IPv4-only MX
start=$(stat -c %s "$log")
check "$tmp/v6.jsonl" --bind ::1 || { cat "$tmp/v6.jsonl.err" >&2; fail "v6: mxsift check exited $?"; }
postfix_since "$start" "$tmp/v6.maillog"
n=$(jq -r 'select(.status == "unknown" and .reason == "connection_failed" and
	(.detail | startswith("no source address for IPv4"))) | .address' "$tmp/v6.jsonl" | wc -l)
[ "$n" -eq 4 ] || { cat "$tmp/v6.jsonl"; fail "v6: $n of 4 addresses unknown/connection_failed 'no source address'"; }
grep -q 'connect from unknown\[::1\]' "$tmp/v6.maillog" && fail "v6: Postfix saw a connection from ::1"
echo "ok   v6: an IPv6 source address never reaches an IPv4-only MX ($n connection_failed)"

# 4. not an address of this host
rc=0
check "$tmp/bad.jsonl" --bind 192.0.2.7 || rc=$?
[ "$rc" -eq 2 ] || fail "--bind 192.0.2.7 exited $rc, want 2"
grep -q -- '--bind 192.0.2.7: Cannot assign requested address' "$tmp/bad.jsonl.err" ||
	{ cat "$tmp/bad.jsonl.err"; fail "no clear message for an unbindable address"; }
echo "ok   bad: $(head -n 1 "$tmp/bad.jsonl.err")"
echo "PASS: bind"
