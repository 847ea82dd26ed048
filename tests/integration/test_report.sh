#!/usr/bin/env bash
# test_report.sh — the HTML reports, rendered by a real browser.
#
#  1. `mxsift check --report` on the world fixture (Postfix, dnsmasq): the
#     report rendered by headless Chromium (--dump-dom) shows the totals per
#     status and reason that the check's own output implies (one per unique
#     address plus one per invalid row), all five sections and their SVG
#     charts, and Chromium logs no console message, refused load or
#     Content-Security-Policy violation.
#  2. `mxsift report --job` on a fleet job in Redis (submitted with addresses
#     the coordinator decides alone, so no worker is needed): its rendered
#     totals equal `mxsift status`.
# A screenshot is taken as well (Chromium must be able to lay the page out);
# set MXSIFT_TEST_KEEP=DIR to keep the HTML and PNG files for a look.
#
# usage: test_report.sh MXSIFT FIXTURE_CSV
set -euo pipefail
mxsift=$1 fixture=$2
for v in MXSIFT_TEST_DNS MXSIFT_TEST_REDIS MXSIFT_TEST_BROKERS; do
	if [ -z "${!v:-}" ]; then
		echo "SKIP: $v unset (start the test world: scripts/services up DIR)"; exit 77
	fi
done
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "SKIP: chromium not installed (Debian package chromium)"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# render HTML -> DOM (stdout) ; also a screenshot; fail on browser complaints
render() {
	local html=$1 name=$2 profile
	profile=$(mktemp -d "$tmp/profile.XXXXXX")
	local flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
		--disable-component-update --disable-sync --no-first-run --disable-dev-shm-usage
		--user-data-dir="$profile" --enable-logging=stderr --v=0)
	timeout 120 "$chromium" "${flags[@]}" --dump-dom "file://$html" >"$tmp/$name.dom" \
		2>"$tmp/$name.chrome.err" || { tail -n 20 "$tmp/$name.chrome.err" >&2; fail "$name: chromium --dump-dom failed"; }
	if grep -E 'CONSOLE|Uncaught|Refused to|Content Security Policy|net::ERR_' "$tmp/$name.chrome.err"; then
		fail "$name: the browser reported errors loading the report"
	fi
	timeout 120 "$chromium" "${flags[@]}" --hide-scrollbars --window-size=1000,2400 \
		--screenshot="$tmp/$name.png" "file://$html" >/dev/null 2>&1 || fail "$name: screenshot failed"
	[ "$(stat -c %s "$tmp/$name.png")" -gt 20000 ] || fail "$name: screenshot suspiciously small"
	if [ -n "${MXSIFT_TEST_KEEP:-}" ]; then
		mkdir -p "$MXSIFT_TEST_KEEP"
		cp "$html" "$tmp/$name.png" "$MXSIFT_TEST_KEEP/"
	fi
}

# the text of the element with id ID in a DOM dump
elem() { sed -n "s/.*id=\"$2\">\([0-9]*\)<.*/\1/p" "$1" | head -n 1; }

# check the DOM against "total N" / "status-X N" / "reason-Y N" lines
check_dom() {
	local dom=$1 want=$2 key n got
	grep -q '<footer id="end">' "$dom" || fail "$dom: the page did not render to its end"
	for h in Status Reasons 'Results per MX domain' 'SMTP reply codes' 'Throughput over time'; do
		grep -q "<h2>$h</h2>" "$dom" || fail "$dom: section '$h' missing"
	done
	[ "$(grep -o '<svg class="chart"' "$dom" | wc -l)" -ge 4 ] || fail "$dom: charts missing"
	while read -r key n; do
		got=$(elem "$dom" "$key")
		[ "$got" = "$n" ] || fail "$dom: $key shows '${got}', expected $n"
	done <"$want"
}

# ---- 1. mxsift check --report --------------------------------------------------
"$mxsift" check "$fixture" --column email --format jsonl -o "$tmp/check.jsonl" \
	--dns "$MXSIFT_TEST_DNS" --helo probe.mxsift.test --mail-from verify@mxsift.test \
	--smtp-port "${MXSIFT_TEST_SMTP_PORT:-25}" --quiet --report "$tmp/check.html" \
	2>"$tmp/check.err" || { cat "$tmp/check.err" >&2; fail "mxsift check --report failed"; }
[ -s "$tmp/check.html" ] || fail "no report written"
# expected: one verdict per unique address, one per invalid row
jq -r 'if .reason == "invalid_syntax" then "#\(.line)\t\(.status)\t\(.reason)"
	else "\(.address)\t\(.status)\t\(.reason)" end' "$tmp/check.jsonl" | sort -u >"$tmp/uniq"
{
	echo "total $(wc -l <"$tmp/uniq")"
	for s in deliverable undeliverable risky unknown; do
		echo "status-$s $(awk -F'\t' -v s=$s '$2 == s' "$tmp/uniq" | wc -l)"
	done
	cut -f3 "$tmp/uniq" | sort | uniq -c | awk '{ print "reason-" $2, $1 }'
} >"$tmp/check.want"
cat "$tmp/check.want" | tr '\n' ' '; echo
render "$tmp/check.html" check
check_dom "$tmp/check.dom" "$tmp/check.want"
grep -q '<title>mxsift check: ' "$tmp/check.dom" || fail "check report title"
grep -q '<td>alpha.test</td>' "$tmp/check.dom" || fail "alpha.test missing from the MX domain table"
grep -q '>250 2.1.5</text>' "$tmp/check.dom" || fail "reply code 250 2.1.5 missing"

# ---- 2. mxsift report on a fleet job ------------------------------------------------
job=report-$(date +%s)-$$-$RANDOM
printf 'email\nnot-an-address\na@missing.test\nb@missing.test\nc@nullmx.test\nx@y\n' >"$tmp/list.csv"
"$mxsift" submit --job "$job" --brokers "$MXSIFT_TEST_BROKERS" --redis "$MXSIFT_TEST_REDIS" \
	--dns "$MXSIFT_TEST_DNS" --topic "report.test.$job" -X allow.auto.create.topics=true \
	"$tmp/list.csv" >"$tmp/submit.out" 2>"$tmp/submit.err" ||
	{ cat "$tmp/submit.err" >&2; fail "mxsift submit failed"; }
s=$("$mxsift" status --job "$job" --redis "$MXSIFT_TEST_REDIS" --format json)
[ "$(jq '.done == .total and .total == 5' <<<"$s")" = true ] || fail "fleet job not complete: $s"
"$mxsift" report --job "$job" --redis "$MXSIFT_TEST_REDIS" -o "$tmp/fleet.html" ||
	fail "mxsift report failed"
{
	echo "total $(jq .done <<<"$s")"
	jq -r '.status | to_entries[] | "status-\(.key) \(.value)"' <<<"$s"
	jq -r '.reason | to_entries[] | "reason-\(.key) \(.value)"' <<<"$s"
} >"$tmp/fleet.want"
render "$tmp/fleet.html" fleet
check_dom "$tmp/fleet.dom" "$tmp/fleet.want"
grep -q "<dt>job</dt><dd>$job</dd>" "$tmp/fleet.dom" || fail "job name missing from the facts"
# no such job: exit 1, no file
rc=0
"$mxsift" report --job "no-such-$job" --redis "$MXSIFT_TEST_REDIS" -o "$tmp/none.html" 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "report of a missing job: exit $rc, expected 1"
[ ! -e "$tmp/none.html" ] || fail "report of a missing job left a file"

echo "PASS: check and fleet reports render in Chromium with the expected totals"
