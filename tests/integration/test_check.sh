#!/usr/bin/env bash
# test_check.sh — `mxsift check` end to end against the real test world:
# dnsmasq (MX, implicit MX, null MX, NODATA, NXDOMAIN) and a real Postfix.
#
# Asserts: one output row per input row, in input order, each with the verdict
# the fixture's `expect` column names; and, from Postfix's own log, one SMTP
# session per MX domain (not per address), RSET between recipients, every
# MAIL/RSET/EHLO accepted (a 503 would show as a failed command), no DATA.
#
# usage: test_check.sh MXSIFT_BINARY FIXTURE_CSV
set -euo pipefail
mxsift=$1 fixture=$2
if [ -z "${MXSIFT_TEST_DNS:-}" ] || [ -z "${MXSIFT_TEST_POSTFIX_LOG:-}" ]; then
	echo "SKIP: test services not running (scripts/services up)"; exit 77
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

log=$MXSIFT_TEST_POSTFIX_LOG
start=$(($(stat -c %s "$log" 2>/dev/null || echo 0) + 1))

"$mxsift" check "$fixture" --format jsonl -o "$tmp/out.jsonl" --dns "$MXSIFT_TEST_DNS" \
	--helo probe.mxsift.test --mail-from verify@mxsift.test \
	--smtp-port "${MXSIFT_TEST_SMTP_PORT:-25}" --quiet 2>"$tmp/stderr" || {
	rc=$?; cat "$tmp/stderr" >&2; fail "mxsift check exited $rc"; }

rows=$(($(wc -l <"$fixture") - 1))
got=$(wc -l <"$tmp/out.jsonl")
[ "$got" -eq "$rows" ] || fail "$got output rows for $rows input rows"

# Output in input order: line numbers 2..rows+1 exactly.
jq -r '.line' "$tmp/out.jsonl" >"$tmp/lines"
seq 2 $((rows + 1)) | diff -u - "$tmp/lines" || fail "rows out of order or missing"

# Expected verdict per line from the fixture's first column.
tail -n +2 "$fixture" | cut -d, -f1 >"$tmp/want"
jq -r '.status + "/" + .reason' "$tmp/out.jsonl" >"$tmp/have"
if ! diff -u "$tmp/want" "$tmp/have" >"$tmp/diff"; then
	cat "$tmp/diff"
	paste -d' ' "$tmp/want" "$tmp/have" | nl -v2 | awk '$2 != $3' | sed -n 1,20p
	fail "verdicts differ from the fixture"
fi

# Malformed rows are reported on stderr with their line number.
grep -q '^line 26: ' "$tmp/stderr" || { cat "$tmp/stderr"; fail "no stderr report for bad line 26"; }

# Deliverable rows carry the SMTP evidence.
jq -e 'select(.status == "deliverable") | select(.smtp_code != 250 or .mx_host == "")' \
	"$tmp/out.jsonl" >/dev/null && fail "a deliverable row without 250/mx_host evidence"
jq -e 'select(.reason == "mailbox_not_found") | select(.smtp_code != 550 or .enhanced_code != "5.1.1")' \
	"$tmp/out.jsonl" >/dev/null && fail "a mailbox_not_found row without 550 5.1.1 evidence"

# Postfix's view of this run.
sleep 1   # postlog writes asynchronously
tail -c +"$start" "$log" >"$tmp/maillog"
sessions=$(grep -c 'postfix[^ ]*/smtpd\[[0-9]*\]: connect from' "$tmp/maillog" || true)
grep 'smtpd\[[0-9]*\]: disconnect from' "$tmp/maillog" >"$tmp/disc" || true
echo "postfix sessions: $sessions"; cat "$tmp/disc"
# 5 MX domains are probed: alpha.test, beta.test, hosting.test (gamma+delta),
# implicit.test, failover.test (the dead first MX never reaches Postfix).
[ "$sessions" -eq 5 ] || fail "expected 5 SMTP sessions (one per MX domain), Postfix saw $sessions"
[ "$(wc -l <"$tmp/disc")" -eq 5 ] || fail "expected 5 disconnect summaries"
# 21 recipients probed, plus one catch-all probe (random local part, rejected
# 5.1.1 by Postfix) per domain with an accepted address: alpha, beta, gamma,
# delta, implicit, failover -> 27 RCPT.  Each its own transaction: RSET between
# recipients, rset = rcpt - 1 per session.
rcpt=0 rset=0
while read -r line; do
	r=$(grep -o ' rcpt=[0-9/]*' <<<"$line" | sed 's/.*\///; s/.*=//')
	s=$(grep -o ' rset=[0-9]*' <<<"$line" | sed 's/.*=//'); s=${s:-0}
	m=$(grep -o ' mail=[0-9/]*' <<<"$line" | sed 's/.*=//')
	case "$m" in */*) fail "a MAIL FROM failed (503?): $line";; esac
	case "$line" in *" data="*) fail "DATA was sent: $line";; esac
	grep -q ' quit=1' <<<"$line" || fail "session did not end with QUIT: $line"
	grep -Eq ' (ehlo|rset)=[0-9]+/' <<<"$line" && fail "EHLO or RSET failed: $line"
	grep -q ' unknown=' <<<"$line" && fail "unknown command sent: $line"
	[ "$s" -eq $((r - 1)) ] || fail "expected rset=$((r - 1)) for rcpt=$r: $line"
	rcpt=$((rcpt + r)) rset=$((rset + s))
done <"$tmp/disc"
[ "$rcpt" -eq 27 ] || fail "expected 27 RCPT commands (21 + 6 catch-all probes), Postfix counted $rcpt"
grep -q ' 503 ' "$tmp/maillog" && fail "a 503 reply in the Postfix log"
echo "PASS: $rows rows, $sessions sessions, $rcpt RCPT, $rset RSET"
