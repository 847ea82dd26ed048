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
#  3. `mxsift report --job` on a fleet job probed by an mxsift-worker
#     against Postfix (the fleet fixture): totals per status and reason equal
#     `mxsift status`; each row of "Results per MX domain" (alpha.test,
#     beta.test, hosting.test, implicit.test, failover.test, and the rows
#     without a session) and each bar of "SMTP reply codes" (250 2.1.5,
#     550 5.1.1, no SMTP reply) equals what the job's export implies; the
#     throughput chart spans the export's first to last checked_at and its
#     bars are drawn.
# A screenshot is taken as well (Chromium must be able to lay the page out);
# set MXSIFT_TEST_KEEP=DIR to keep the HTML and PNG files for a look.
#
# usage: test_report.sh MXSIFT FIXTURE_CSV MXSIFT_WORKER FLEET_FIXTURE_CSV
set -euo pipefail
mxsift=$1 fixture=$2 worker=${3:-} fleet_fixture=${4:-}
[ -x "$worker" ] && [ -r "$fleet_fixture" ] ||
	{ echo "usage: test_report.sh MXSIFT FIXTURE_CSV MXSIFT_WORKER FLEET_FIXTURE_CSV" >&2; exit 2; }
for v in MXSIFT_TEST_DNS MXSIFT_TEST_REDIS MXSIFT_TEST_BROKERS; do
	if [ -z "${!v:-}" ]; then
		echo "SKIP: $v unset (start the test world: scripts/services up DIR)"; exit 77
	fi
done
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "SKIP: chromium not installed (Debian package chromium)"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }

tmp=$(mktemp -d)
wpid=
cleanup() {
	set +e     # best effort: the worker may be gone already
	if [ -n "$wpid" ]; then
		kill -TERM "$wpid" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$wpid" 2>/dev/null
		wait "$wpid" 2>/dev/null
	fi
	rm -rf "$tmp"
	return 0
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/w.log" ] && tail -n 20 "$tmp/w.log" >&2; exit 1; }

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
elem() { sed -n "s/.*id=\"$2\">\([0-9]*\)<.*/\1/p" "$1" | sed -n 1p; }

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

# ---- 3. mxsift report on a fleet job the worker probed -------------------------------------
job=report-w-$(date +%s)-$$-$RANDOM topic=report.w.$job
"$worker" --brokers "$MXSIFT_TEST_BROKERS" --redis "$MXSIFT_TEST_REDIS" --group "$job" \
	--topic "$topic" --retry-topic "$topic.retry" --dead-topic "$topic.dead" \
	--dns "$MXSIFT_TEST_DNS" --helo probe.mxsift.test --mail-from verify@mxsift.test \
	--smtp-port "${MXSIFT_TEST_SMTP_PORT:-25}" --metrics-addr off -X allow.auto.create.topics=true \
	-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 >"$tmp/w.log" 2>&1 &
wpid=$!
for _ in $(seq 1 300); do
	grep -q 'msg="partitions assigned"' "$tmp/w.log" && break
	kill -0 "$wpid" 2>/dev/null || fail "the worker died at start"
	sleep 0.1
done
grep -q 'msg="partitions assigned"' "$tmp/w.log" || fail "the worker got no partitions"
"$mxsift" submit --job "$job" --brokers "$MXSIFT_TEST_BROKERS" --redis "$MXSIFT_TEST_REDIS" \
	--dns "$MXSIFT_TEST_DNS" --topic "$topic" -X allow.auto.create.topics=true \
	"$fleet_fixture" >"$tmp/submit-w.out" 2>"$tmp/submit-w.err" ||
	{ cat "$tmp/submit-w.err" >&2; fail "mxsift submit (worker job) failed"; }
for _ in $(seq 1 600); do
	s=$("$mxsift" status --job "$job" --redis "$MXSIFT_TEST_REDIS" --format json 2>/dev/null) || s=
	[ -n "$s" ] && [ "$(jq '.state == "complete" and .done == .total' <<<"$s")" = true ] && break
	sleep 0.1
done
[ "$(jq '.state == "complete" and .done == .total' <<<"$s")" = true ] || fail "worker job not complete: $s"
[ "$(jq '.reason.accepted > 0 and .reason.mailbox_not_found > 0' <<<"$s")" = true ] ||
	fail "the job has no worker verdicts: $s"
"$mxsift" report --job "$job" --redis "$MXSIFT_TEST_REDIS" -o "$tmp/worker.html" ||
	fail "mxsift report (worker job) failed"
"$mxsift" export --job "$job" --redis "$MXSIFT_TEST_REDIS" --format jsonl -o "$tmp/worker.jsonl" ||
	fail "mxsift export (worker job) failed"
{
	echo "total $(jq .done <<<"$s")"
	jq -r '.status | to_entries[] | "status-\(.key) \(.value)"' <<<"$s"
	jq -r '.reason | to_entries[] | "reason-\(.key) \(.value)"' <<<"$s"
} >"$tmp/worker.want"
render "$tmp/worker.html" worker
check_dom "$tmp/worker.dom" "$tmp/worker.want"
dom=$tmp/worker.dom

# Results per MX domain: "KEY total deliverable undeliverable risky unknown"
# per row, from the export (the MX domain of .test hosts: the last two labels)
jq -r 'if .mx_host == "" then "(no SMTP session)" else (.mx_host | split(".") | .[-2:] | join(".")) end
	+ "\t" + .status' "$tmp/worker.jsonl" |
	awk -F'\t' '{ t[$1]++; n[$1 "/" $2]++ }
		END { for (k in t) printf "%s %d %d %d %d %d\n", k, t[k], n[k "/deliverable"],
			n[k "/undeliverable"], n[k "/risky"], n[k "/unknown"] }' | sort >"$tmp/dom.want"
grep -o '<tr><td>[^<]*</td>\(<td class="n">[0-9]*</td>\)\{5\}' "$dom" |
	sed 's/<tr><td>//; s/<\/td><td class="n">/ /g; s/<\/td>$//' | sort >"$tmp/dom.have"
for d in alpha.test beta.test hosting.test implicit.test failover.test '(no SMTP session)'; do
	grep -q "^$d " "$tmp/dom.want" || fail "test bug: no $d in the export: $(cat "$tmp/dom.want")"
done
diff -u "$tmp/dom.want" "$tmp/dom.have" || fail "Results per MX domain differ from the export"

# SMTP reply codes: "LABEL COUNT" per bar
jq -r 'if .smtp_code > 0 then (.smtp_code | tostring) + (if .enhanced_code != "" then " " + .enhanced_code else "" end)
	else "no SMTP reply" end' "$tmp/worker.jsonl" | sort | uniq -c |
	awk '{ n = $1; $1 = ""; sub(/^ /, ""); print $0 " " n }' | sort >"$tmp/replies.want"
sed -n '/<h2>SMTP reply codes<\/h2>/,/<\/section>/p' "$dom" |
	grep -o 'class="lbl">[^<]*</text><rect[^>]*>\(</rect>\)\{0,1\}<text[^>]*class="val">[0-9]*' |
	sed 's/class="lbl">\([^<]*\)<.*class="val">\([0-9]*\)$/\1 \2/' | sort >"$tmp/replies.have"
grep -q '^250 2.1.5 ' "$tmp/replies.want" && grep -q '^550 5.1.1 ' "$tmp/replies.want" ||
	fail "test bug: the export lacks 250 2.1.5 or 550 5.1.1: $(cat "$tmp/replies.want")"
diff -u "$tmp/replies.want" "$tmp/replies.have" || fail "SMTP reply codes differ from the export"

# Throughput over time: from the first to the last checked_at, bars drawn
span=$(jq -s '(map(.checked_at) | max) - (map(.checked_at) | min)' "$tmp/worker.jsonl")
first=$(jq -s 'map(.checked_at) | min | strftime("%H:%M:%S")' -r "$tmp/worker.jsonl")
last=$(jq -s 'map(.checked_at) | max | strftime("%H:%M:%S")' -r "$tmp/worker.jsonl")
[ "$span" -lt 600 ] || fail "test bug: the job took $span s (labels would be HH:MM)"
sed -n '/<h2>Throughput over time<\/h2>/,/<\/section>/p' "$dom" >"$tmp/time.html"
grep -q "stacked by status, from $first to $last; average " "$tmp/time.html" ||
	fail "throughput: not from $first to $last: $(grep -o 'Verdicts per [^<]*' "$tmp/time.html" | sed -n 1,2p)"
[ "$(grep -o '<rect ' "$tmp/time.html" | wc -l)" -ge 1 ] || fail "throughput: no bars"
grep -q 'No verdict carries a time' "$tmp/time.html" && fail "throughput: no times"

echo "PASS: check and fleet reports render in Chromium with the expected totals; the worker job's report" \
	"($(jq .done <<<"$s") verdicts) matches its export per MX domain, reply code and time span"
