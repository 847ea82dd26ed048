#!/usr/bin/env bash
# test_intake.sh — `mxsift submit` on a large mixed list against the test
# world's Kafka mock, Redis and dnsmasq (no workers, no SMTP): every row is
# accounted for.
#
# A 100,000-row list from mxsift-gen-list (valid, duplicates by case and
# blanks, invalid rows, NXDOMAIN / null MX / no-mail domains, quoted CSV
# with CRLF rows) is submitted twice: as CSV from a file, and as JSONL
# gzip-compressed on stdin.  Asserts for each:
#   - the summary's rows = unique + invalid + duplicates, rows = N;
#   - every unique address is either in a task or has a direct verdict:
#     addresses in tasks + direct verdicts = total = unique + invalid;
#   - Redis agrees: status total/done, reason:invalid_syntax = invalid;
#   - the topic holds exactly `tasks` messages, each keyed by an MX domain
#     of the test world, none carrying more than --batch addresses' worth;
#   - both formats give the same counts (the same rows, differently encoded).
#
# usage: test_intake.sh MXSIFT GEN_LIST [ROWS]
set -euo pipefail
mxsift=$1 gen=$2 n=${3:-100000}
for v in MXSIFT_TEST_BROKERS MXSIFT_TEST_REDIS MXSIFT_TEST_DNS; do
	if [ -z "${!v:-}" ]; then
		echo "SKIP: $v unset (start the test world: scripts/services up DIR)"; exit 77
	fi
done
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
command -v kcat >/dev/null || { echo "SKIP: kcat not installed"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

run=$(date +%s)-$$-$RANDOM
"$gen" "$n" >"$tmp/list.csv" 2>/dev/null
"$gen" -f jsonl "$n" 2>/dev/null | gzip -c >"$tmp/list.jsonl.gz"

# submit NAME ARGS... — runs submit, leaves counts in $tmp/NAME.counts
submit() {
	local name=$1 job=intake-$1-$run
	shift
	"$mxsift" submit --job "$job" --brokers "$MXSIFT_TEST_BROKERS" --redis "$MXSIFT_TEST_REDIS" \
		--dns "$MXSIFT_TEST_DNS" --topic "intake.test.$name.$run" --batch 20 \
		-X allow.auto.create.topics=true -q "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" ||
		{ tail -n 20 "$tmp/$name.err" >&2; fail "$name: submit exited non-zero"; }
	cat "$tmp/$name.out"
	read -r rows unique invalid dups total tasks addrs direct < <(sed -n \
		's/^submitted job [^:]*: \([0-9]*\) rows, \([0-9]*\) unique, \([0-9]*\) invalid, \([0-9]*\) duplicates; total \([0-9]*\); \([0-9]*\) tasks (\([0-9]*\) addresses, .*; \([0-9]*\) verdicts written directly (0 reused)$/\1 \2 \3 \4 \5 \6 \7 \8/p' \
		"$tmp/$name.out")
	[ -n "${direct:-}" ] || fail "$name: no summary line"
	[ "$rows" -eq "$n" ] || fail "$name: $rows rows read, $n written"
	[ $((unique + invalid + dups)) -eq "$rows" ] ||
		fail "$name: rows $rows != unique $unique + invalid $invalid + duplicates $dups"
	[ "$total" -eq $((unique + invalid)) ] || fail "$name: total $total != unique + invalid"
	[ $((addrs + direct)) -eq "$total" ] ||
		fail "$name: $addrs addresses in tasks + $direct direct verdicts != total $total"
	[ "$invalid" -gt 0 ] && [ "$dups" -gt 0 ] && [ "$addrs" -gt 0 ] ||
		fail "$name: the list is not mixed enough"

	local s
	s=$("$mxsift" status --job "$job" --redis "$MXSIFT_TEST_REDIS" --format json) ||
		fail "$name: status failed"
	[ "$(jq .total <<<"$s")" -eq "$total" ] || fail "$name: status total $(jq .total <<<"$s")"
	[ "$(jq .rows <<<"$s")" -eq "$rows" ] || fail "$name: status rows $(jq .rows <<<"$s")"
	[ "$(jq .done <<<"$s")" -eq "$direct" ] || fail "$name: status done $(jq .done <<<"$s") != $direct"
	[ "$(jq '.reason.invalid_syntax // 0' <<<"$s")" -eq "$invalid" ] ||
		fail "$name: $(jq '.reason.invalid_syntax' <<<"$s") invalid_syntax verdicts for $invalid invalid rows"

	# the topic: one message per task, keyed by the MX domain
	kcat -b "$MXSIFT_TEST_BROKERS" -C -t "intake.test.$name.$run" -e -q -f '%k\n' \
		>"$tmp/$name.keys" 2>/dev/null || fail "$name: kcat could not read the topic"
	[ "$(wc -l <"$tmp/$name.keys")" -eq "$tasks" ] ||
		fail "$name: $(wc -l <"$tmp/$name.keys") messages on the topic, $tasks tasks"
	sort -u "$tmp/$name.keys" | grep -vxE 'alpha\.test|beta\.test|hosting\.test|implicit\.test|failover\.test' &&
		fail "$name: a task keyed by something other than a world MX domain"
	[ "$addrs" -le $((tasks * 20)) ] || fail "$name: more than --batch addresses per task"
	echo "$rows $unique $invalid $dups $total $addrs $direct" >"$tmp/$name.counts"
}

submit csv "$tmp/list.csv"
submit jsonl --input-format jsonl - <"$tmp/list.jsonl.gz"
diff "$tmp/csv.counts" "$tmp/jsonl.counts" || fail "CSV and gzip JSONL of the same rows disagree"
echo "PASS: $n rows accounted for in CSV and gzip JSONL on stdin"
