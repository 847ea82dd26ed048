#!/usr/bin/env bash
# test_fleet.sh — the fleet path end to end against the test world:
# mxsift submit → Kafka (librdkafka mock cluster) → two mxsift-worker
# processes (one consumer group) → Redis, probing the real Postfix.
#
# Asserts:
#  - status reaches done == total, and total == unique valid addresses +
#    invalid rows of the fixture; counts per status/reason match it; submit's
#    last progress line says that total and every task;
#  - export holds exactly one verdict per unique address (and one per invalid
#    row, with its line, as check writes it), each the one the fixture's
#    `expect` column names; its columns are those export --help lists;
#  - export agrees with `mxsift check` on the same list; export --input gives
#    one row per input row, in order, equal to check's row by row, and in a
#    job submitted with --fold-local always, duplicates by case get their
#    first spelling's verdict; a row not in the job is counted, exit 1; the
#    export of a job no worker serves says it is not complete with the state
#    status says (running), that of a complete one nothing;
#  - Postfix saw one session per MX host set (not per address), RSET between
#    recipients (rset = rcpt - 1), QUIT at the end, no failed MAIL/RSET/EHLO,
#    no 503 anywhere, and exactly one RCPT per unique SMTP-probed address
#    plus one catch-all probe per domain with an accepted address;
#  - both workers got partitions, logged no addresses at info level, stopped
#    with exit 0 on SIGTERM and reported replies_503=0; a junk message on
#    the topic is logged (partition/offset) and skipped.
# Each run uses its own job name, consumer group and topic, so stale
# messages of earlier runs on a long-lived mock cluster cannot leak in.
#
# usage: test_fleet.sh MXSIFT MXSIFT_WORKER FIXTURE_CSV
set -euo pipefail
mxsift=$1 worker=$2 fixture=$3
for v in MXSIFT_TEST_BROKERS MXSIFT_TEST_REDIS MXSIFT_TEST_DNS MXSIFT_TEST_POSTFIX_LOG; do
	if [ -z "${!v:-}" ]; then
		echo "SKIP: $v unset (start the test world: scripts/services up DIR)"; exit 77
	fi
done
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
command -v kcat >/dev/null || { echo "SKIP: kcat not installed"; exit 77; }

tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$tmp"/w*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; } >&2; done
	exit 1
}

run=$(date +%s)-$$-$RANDOM
job=fleet-$run group=fleet-test-$run topic=fleet.test.$run
brokers=$MXSIFT_TEST_BROKERS redis=$MXSIFT_TEST_REDIS dns=$MXSIFT_TEST_DNS
smtp_port=${MXSIFT_TEST_SMTP_PORT:-25}
log=$MXSIFT_TEST_POSTFIX_LOG

# ---- expectations from the fixture (email,expect,norm) ----------------------
# One verdict per unique normalised address; invalid rows are never deduped.
tail -n +2 "$fixture" | awk -F, '$2 ~ /invalid_syntax/ { print $3 "\t" $2 }' >"$tmp/exp.invalid"
tail -n +2 "$fixture" | awk -F, '$2 !~ /invalid_syntax/ { print $3 "\t" $2 }' | sort -u >"$tmp/exp.valid"
sort "$tmp/exp.valid" "$tmp/exp.invalid" >"$tmp/expected"
total=$(wc -l <"$tmp/expected")
smtp_rcpts=$(grep -cE 'accepted|mailbox_not_found' "$tmp/exp.valid")
# plus one catch-all probe (random local part) per domain with an accepted
# address: each domain's addresses go to one worker, whose engine asks once
catchall_probes=$(awk -F'\t' '$2 ~ /accepted/ { sub(/.*@/, "", $1); print $1 }' "$tmp/exp.valid" |
	sort -u | wc -l)
# a normalised address must map to one verdict only: catch fixture typos
dups=$(cut -f1 "$tmp/exp.valid" | sort | uniq -d)
[ -z "$dups" ] || fail "fixture gives two verdicts for: $dups"

# ---- two workers, one group ----------------------------------------------
start_worker() {
	"$worker" --brokers "$brokers" --redis "$redis" --group "$group" --topic "$topic" \
		--dns "$dns" --helo probe.mxsift.test --mail-from verify@mxsift.test \
		--smtp-port "$smtp_port" --grace 20 -X allow.auto.create.topics=true \
		-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
		--retry-topic "$topic.retry" --dead-topic "$topic.dead" --metrics-addr 127.0.0.1:0 \
		>"$tmp/w$1.log" 2>&1 &
	pids+=($!)
}
start_worker 1
start_worker 2

# Wait until the group is stable: every partition assigned, each worker
# holding some, and each worker's last rebalance event an assignment.
# Submitting earlier would let a late rebalance hand in-flight messages to
# the other worker (correct, at-least-once, but a second SMTP session).
# partitions of the task topic in a worker's last assignment (the retry
# topic's come in the same assignment)
assigned() {
	awk -v t="$topic/" '/msg="partitions assigned"/ { n = 0; s = $0
		while ((i = index(s, t)) > 0) { n++; s = substr(s, i + length(t)) } }
		END { print n + 0 }' "$tmp/w$1.log"
}
last_event() {
	awk '/msg="partitions (assigned|revoked)"/ { e = ($0 ~ /assigned/) ? "assigned" : "revoked" } END { print e }' "$tmp/w$1.log"
}
nparts=0
for i in $(seq 1 300); do
	for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || fail "a worker died at startup"; done
	if [ "$nparts" -eq 0 ]; then
		nparts=$(kcat -b "$brokers" -L -t "$topic" 2>/dev/null |
			sed -n 's/.*with \([0-9]*\) partitions.*/\1/p' | sed -n 1p)
		nparts=${nparts:-0}
	fi
	a1=$(assigned 1) a2=$(assigned 2)
	if [ "$nparts" -gt 0 ] && [ "$(last_event 1)" = assigned ] &&
		[ "$(last_event 2)" = assigned ] && [ "${a1:-0}" -gt 0 ] && [ "${a2:-0}" -gt 0 ] &&
		[ $((a1 + a2)) -eq "$nparts" ]; then
		break
	fi
	sleep 0.2
done
[ $((${a1:-0} + ${a2:-0})) -eq "$nparts" ] && [ "$nparts" -gt 0 ] ||
	fail "workers did not share the $nparts partitions of $topic (got ${a1:-0}+${a2:-0})"
sleep 1

# A message that is not a Task: logged and skipped, never blocks the partition.
printf 'this is not a protobuf Task\377\377\377' |
	kcat -b "$brokers" -P -t "$topic" -k junk 2>/dev/null || fail "kcat could not produce"

# ---- submit -----------------------------------------------------------------
log_start=$(($(stat -c %s "$log" 2>/dev/null || echo 0) + 1))
"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic" --batch 4 "$fixture" >"$tmp/submit.out" 2>"$tmp/submit.err" ||
	{ cat "$tmp/submit.err" >&2; fail "mxsift submit exited non-zero"; }
cat "$tmp/submit.out"
grep -q "^submitted job $job: " "$tmp/submit.out" || fail "no summary line from submit"
# submit's last progress line (stderr is a file: key=value lines) has the
# job's total and every task
tasks_made=$(sed -n 's/.*; \([0-9]*\) tasks (.*/\1/p' "$tmp/submit.out")
last=$(grep '^progress ' "$tmp/submit.err" | tail -n 1)
[[ "$last" == *" tasks=$tasks_made total=$total "* ]] ||
	fail "submit's last progress line, want tasks=$tasks_made total=$total: $last"
# a job name can only be used once (deploy/k8s/hygiene-cronjob.yaml quotes the message)
if "$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic" "$fixture" >/dev/null 2>"$tmp/again.err"; then
	fail "a second submit with the same job name was accepted"
fi
grep -q "^mxsift submit: job '$job' already exists in Redis" "$tmp/again.err" ||
	fail "a second submit with the same job name said: $(cat "$tmp/again.err")"

status() { "$mxsift" status --job "$job" --redis "$redis" --format json; }
s=$(status) || fail "mxsift status failed"
[ "$(jq .total <<<"$s")" -eq "$total" ] || fail "status total $(jq .total <<<"$s"), expected $total"

# ---- wait for done == total ---------------------------------------------------
for i in $(seq 1 600); do
	s=$(status)
	[ "$(jq .done <<<"$s")" -ge "$total" ] && break
	sleep 0.1
done
jq -c . <<<"$s"
[ "$(jq .done <<<"$s")" -eq "$total" ] || fail "done $(jq .done <<<"$s") of $total after 60 s"
[ "$(jq -r .state <<<"$s")" = complete ] || fail "state $(jq -r .state <<<"$s"), expected complete"
"$mxsift" status --job "$job" --redis "$redis" >"$tmp/status.txt" || fail "status (text) failed"
grep -Eq "^done +$total " "$tmp/status.txt" || fail "text status does not show done $total"

# counts per status and reason equal the expected table's
cut -f2 "$tmp/expected" | sort | uniq -c | awk '{ print $2, $1 }' | sort >"$tmp/exp.counts"
jq -r '.reason | to_entries[] | .key + " " + (.value | tostring)' <<<"$s" | sort >"$tmp/reason.counts"
sed 's|^[a-z]*/||' "$tmp/exp.counts" | awk '{ c[$1] += $2 } END { for (k in c) print k, c[k] }' |
	sort >"$tmp/exp.reason.counts"
diff -u "$tmp/exp.reason.counts" "$tmp/reason.counts" || fail "reason counts differ"
for st in deliverable undeliverable risky unknown; do
	want=$(awk -v s="$st" -F'\t' 'index($2, s "/") == 1' "$tmp/expected" | wc -l)
	[ "$(jq ".status.$st" <<<"$s")" -eq "$want" ] || fail "status $st count $(jq ".status.$st" <<<"$s"), expected $want"
done

# ---- stop the workers (SIGTERM: graceful, exit 0) ------------------------------
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do
	rc=0
	for _ in $(seq 1 450); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && fail "worker $p did not stop within 45 s of SIGTERM"
	wait "$p" || rc=$?
	[ "$rc" -eq 0 ] || fail "worker $p exited $rc after SIGTERM"
done
pids=()

# ---- export: one verdict per unique address, the expected one -----------------
"$mxsift" export --job "$job" --redis "$redis" --format jsonl -o "$tmp/export.jsonl" ||
	fail "mxsift export failed"
jq -r '[.address, .status + "/" + .reason] | @tsv' "$tmp/export.jsonl" | sort >"$tmp/have"
if ! diff -u "$tmp/expected" "$tmp/have"; then
	fail "exported verdicts differ from the fixture"
fi
"$mxsift" export --job "$job" --redis "$redis" -o "$tmp/export.csv" || fail "csv export failed"
[ "$(head -n 1 "$tmp/export.csv")" = "line,input,address,status,reason,smtp_code,enhanced_code,mx_host,detail,reply,suggestion" ] ||
	fail "csv export header: $(head -n 1 "$tmp/export.csv")"
# export --help lists the columns the output has
"$mxsift" export --help | sed -n '/^Columns: /,/\.$/p' | tr -d '\n' | sed 's/^Columns: //; s/\.$//' \
	>"$tmp/help.columns"
[ "$(cat "$tmp/help.columns")" = "$(head -n 1 "$tmp/export.csv")" ] ||
	fail "export --help lists the columns '$(cat "$tmp/help.columns")', the output has '$(head -n 1 "$tmp/export.csv")'"
[ "$(($(wc -l <"$tmp/export.csv") - 1))" -eq "$total" ] || fail "csv export has the wrong number of rows"
# SMTP evidence survives the round trip through Redis
jq -e 'select(.reason == "accepted") | select(.smtp_code != 250 or .mx_host == "")' \
	"$tmp/export.jsonl" >/dev/null && fail "an accepted verdict without 250/mx_host evidence"
jq -e 'select(.reason == "mailbox_not_found") | select(.smtp_code != 550 or .enhanced_code != "5.1.1")' \
	"$tmp/export.jsonl" >/dev/null && fail "a mailbox_not_found verdict without 550 5.1.1"

# ---- Postfix's view: sessions per MX host set, RSET, no 503 ----------------------
sleep 1    # postlog writes asynchronously
tail -c +"$log_start" "$log" >"$tmp/maillog"
sessions=$(grep -c 'smtpd\[[0-9]*\]: connect from' "$tmp/maillog" || true)
grep 'smtpd\[[0-9]*\]: disconnect from' "$tmp/maillog" >"$tmp/disc" || true
echo "postfix sessions: $sessions"; cat "$tmp/disc"
# MX host sets probed: mx1.alpha.test, mx.beta.test, mx.hosting.test (gamma and
# delta: one lane), implicit.test, failover.test (dead first MX never reaches
# Postfix): 5 sessions, whatever the number of addresses or tasks.
[ "$sessions" -eq 5 ] || fail "expected 5 SMTP sessions (one per MX host set), Postfix saw $sessions"
[ "$(wc -l <"$tmp/disc")" -eq 5 ] || fail "expected 5 disconnect summaries"
rcpt=0
while read -r line; do
	r=$(grep -o ' rcpt=[0-9/]*' <<<"$line" | sed 's/.*\///; s/.*=//')
	s2=$(grep -o ' rset=[0-9]*' <<<"$line" | sed 's/.*=//'); s2=${s2:-0}
	m=$(grep -o ' mail=[0-9/]*' <<<"$line" | sed 's/.*=//')
	case "$m" in */*) fail "a MAIL FROM failed (503?): $line";; esac
	case "$line" in *" data="*) fail "DATA was sent: $line";; esac
	grep -q ' quit=1' <<<"$line" || fail "session did not end with QUIT: $line"
	grep -Eq ' (ehlo|rset)=[0-9]+/' <<<"$line" && fail "EHLO or RSET failed: $line"
	[ "$s2" -eq $((r - 1)) ] || fail "expected rset=$((r - 1)) for rcpt=$r: $line"
	rcpt=$((rcpt + r))
done <"$tmp/disc"
[ "$rcpt" -eq $((smtp_rcpts + catchall_probes)) ] ||
	fail "expected $smtp_rcpts RCPT (one per unique address) + $catchall_probes catch-all probes, Postfix counted $rcpt"
grep -q ' 503 ' "$tmp/maillog" && fail "a 503 reply in the Postfix log"

# ---- the junk message went to the dead-letter topic, with the error -------------
kcat -b "$brokers" -C -t "$topic.dead" -o beginning -e -q -f '%h|%k|%s\n' >"$tmp/dead" 2>/dev/null ||
	fail "cannot read the dead-letter topic $topic.dead"
[ "$(grep -c . "$tmp/dead")" -eq 1 ] || fail "expected 1 dead letter, got: $(cat "$tmp/dead")"
grep -q 'mxsift-error=not a Task.*mxsift-source='"$topic"'/[0-9]*/[0-9]*.*|junk|this is not a protobuf Task' \
	"$tmp/dead" || grep -q 'mxsift-source='"$topic"'/[0-9]*/[0-9]*.*mxsift-error=not a Task.*|junk|this is not' \
	"$tmp/dead" || fail "dead letter lacks error/source headers or the original bytes: $(cat "$tmp/dead")"
[ "$(jq .dead_no_job <<<"$(status)")" -ge 1 ] || fail "the dead letter is not counted globally"
[ "$(jq '.dead + .retried' <<<"$s")" -eq 0 ] || fail "this job had no dead letters or retries"

# ---- worker logs ---------------------------------------------------------------
cat "$tmp"/w*.log >"$tmp/workers.log"
grep -q 'msg="undecodable task".*partition=[0-9]* offset=[0-9]*' "$tmp/workers.log" ||
	fail "the junk message was not reported with partition and offset"
[ -z "$(awk '/level=info/ && /@/' "$tmp/workers.log")" ] || fail "an address in an info-level log line"
grep 'level=error' "$tmp/workers.log" | grep -v 'msg="undecodable task"' && fail "unexpected error lines"
[ "$(grep -c 'msg="worker stopped".*replies_503=0' "$tmp/workers.log")" -eq 2 ] ||
	fail "each worker must report replies_503=0 when it stops"
tasks=$(sed -n 's/.* \([0-9]*\) tasks (.*/\1/p' "$tmp/submit.out")
done_tasks=$(grep -c "msg=\"task done\" job=$job " "$tmp/workers.log" || true)
[ "$done_tasks" -eq "$tasks" ] || fail "$done_tasks task-done lines for $tasks tasks"
for i in 1 2; do
	grep -q "msg=\"task done\" job=$job " "$tmp/w$i.log" || echo "note: worker $i had no task"
done

# ---- export agrees with mxsift check on the same list -------------------------------
"$mxsift" check "$fixture" --column email --format jsonl -o "$tmp/check.jsonl" --dns "$dns" \
	--helo probe.mxsift.test --mail-from verify@mxsift.test --smtp-port "$smtp_port" \
	--quiet 2>"$tmp/check.err" || { cat "$tmp/check.err" >&2; fail "mxsift check failed"; }
jq -r '[.address, .status + "/" + .reason] | @tsv' "$tmp/check.jsonl" >"$tmp/check.tsv"
{ grep -v 'invalid_syntax' "$tmp/check.tsv" | sort -u; grep 'invalid_syntax' "$tmp/check.tsv"; } |
	sort >"$tmp/check.sorted"
diff -u "$tmp/check.sorted" "$tmp/have" || fail "mxsift export and mxsift check disagree"
# export knows an invalid row's line (its field is #line:N) and writes it, as check
# does; every other row has none
inv='select(.reason == "invalid_syntax") | [.line, .address] | @tsv'
jq -r "$inv" "$tmp/check.jsonl" | sort >"$tmp/check.inv"
jq -r "$inv" "$tmp/export.jsonl" | sort >"$tmp/export.inv"
[ -s "$tmp/check.inv" ] || fail "the fixture has no invalid rows"
diff -u "$tmp/check.inv" "$tmp/export.inv" || fail "export: invalid rows' lines differ from check's"
jq -e 'select(.reason != "invalid_syntax" and .line != null)' "$tmp/export.jsonl" >/dev/null &&
	fail "export wrote a line for a unique address"

# ---- a second job, folded, after the Postfix log checks (a third worker; its
# RCPTs are not the first job's): export --input gives each row its first
# spelling's verdict
start_worker 3
job2="$job-fold"
printf 'email\nAlice@alpha.test\nalice@alpha.test\nALICE@alpha.test\nbob@alpha.test\nBOB@alpha.test\nnobody@alpha.test\nnot-an-address\n' \
	>"$tmp/fold.csv"
"$mxsift" submit --job "$job2" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic" --fold-local always "$tmp/fold.csv" >"$tmp/submit2.out" 2>"$tmp/submit2.err" ||
	{ cat "$tmp/submit2.err" >&2; fail "submit of the folded job failed"; }
for i in $(seq 1 300); do
	s2=$("$mxsift" status --job "$job2" --redis "$redis" --format json)
	[ "$(jq .done <<<"$s2")" -ge 4 ] && break
	sleep 0.1
done
[ "$(jq .done <<<"$s2")" -eq 4 ] || fail "folded job: done $(jq .done <<<"$s2"), want 4 (3 unique + 1 invalid)"
kill -TERM "${pids[0]}"
wait "${pids[0]}" || fail "worker 3 exited non-zero after SIGTERM"
pids=()

# ---- export --input: one row per input row, in order, as check writes them ----------
"$mxsift" export --job "$job" --redis "$redis" --input "$fixture" --column email --format jsonl \
	-o "$tmp/export-rows.jsonl" 2>"$tmp/export-rows.err" ||
	{ cat "$tmp/export-rows.err" >&2; fail "export --input failed"; }
cols='[.line, .input, .address, .status, .reason, .smtp_code, .enhanced_code, .mx_host] | @tsv'
jq -r "$cols" "$tmp/check.jsonl" >"$tmp/check.rows"
jq -r "$cols" "$tmp/export-rows.jsonl" >"$tmp/export.rows"
[ "$(wc -l <"$tmp/export.rows")" -eq "$(tail -n +2 "$fixture" | grep -c .)" ] ||
	fail "export --input: $(wc -l <"$tmp/export.rows") rows for $(tail -n +2 "$fixture" | grep -c .) input rows"
diff -u "$tmp/check.rows" "$tmp/export.rows" || fail "export --input and mxsift check disagree row by row"
"$mxsift" export --job "$job" --redis "$redis" --input "$fixture" --column email \
	-o "$tmp/export-rows.csv" || fail "export --input (csv) failed"
[ "$(($(wc -l <"$tmp/export-rows.csv") - 1))" -eq "$(wc -l <"$tmp/export.rows")" ] ||
	fail "export --input csv has another number of rows than jsonl"

# folded job: duplicates by case get the first spelling's verdict, in input order
"$mxsift" export --job "$job2" --redis "$redis" --input "$tmp/fold.csv" --format jsonl \
	-o "$tmp/fold.jsonl" || fail "export --input of the folded job failed"
jq -r '[.line, .input, .address, .status + "/" + .reason] | @tsv' "$tmp/fold.jsonl" >"$tmp/fold.have"
printf '%s\t%s\t%s\t%s\n' \
	2 Alice@alpha.test Alice@alpha.test deliverable/accepted \
	3 alice@alpha.test Alice@alpha.test deliverable/accepted \
	4 ALICE@alpha.test Alice@alpha.test deliverable/accepted \
	5 bob@alpha.test bob@alpha.test deliverable/accepted \
	6 BOB@alpha.test bob@alpha.test deliverable/accepted \
	7 nobody@alpha.test nobody@alpha.test undeliverable/mailbox_not_found \
	8 not-an-address not-an-address undeliverable/invalid_syntax >"$tmp/fold.want"
diff -u "$tmp/fold.want" "$tmp/fold.have" || fail "export --input of the folded job"

# a job no worker serves (a topic of its own): export names its state as status does
job3="$job-idle"
"$mxsift" submit --job "$job3" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic.idle" --quiet "$tmp/fold.csv" >/dev/null 2>"$tmp/submit3.err" ||
	{ cat "$tmp/submit3.err" >&2; fail "submit of the idle job failed"; }
s3=$("$mxsift" status --job "$job3" --redis "$redis" --format json)
[ "$(jq -r .state <<<"$s3")" = running ] || fail "idle job: state $(jq -r .state <<<"$s3"), want running"
grep -Eq '^state +running$' <<<"$("$mxsift" status --job "$job3" --redis "$redis")" ||
	fail "idle job: text status does not say running"
# ... and writes what is there, but exits 1: `export && load` must not load half a job
rc=0
"$mxsift" export --job "$job3" --redis "$redis" -o "$tmp/idle.csv" 2>"$tmp/idle.err" || rc=$?
[ "$rc" -eq 1 ] || fail "export of the idle job: exit $rc, want 1: $(cat "$tmp/idle.err")"
[ "$(grep -c '' "$tmp/idle.csv")" -eq $((1 + $(jq .done <<<"$s3"))) ] ||
	fail "export of the idle job: $(grep -c '' "$tmp/idle.csv") lines for $(jq .done <<<"$s3") verdicts"
grep -qF "mxsift export: job $job3 is not complete ($(jq .done <<<"$s3") of $(jq .total <<<"$s3") verdicts, state running): exporting what is there (exit 1)" \
	"$tmp/idle.err" || fail "export of the idle job: $(cat "$tmp/idle.err")"
# a complete job's export says nothing of the kind
grep -q 'not complete' "$tmp/export-rows.err" && fail "export of a complete job: $(cat "$tmp/export-rows.err")"

# a row the job has no verdict for: written, unknown/temp_failure, counted, exit 1
printf 'email\nalice@alpha.test\nstranger@alpha.test\n' >"$tmp/other.csv"
rc=0
"$mxsift" export --job "$job" --redis "$redis" --input "$tmp/other.csv" --format jsonl \
	-o "$tmp/other.jsonl" 2>"$tmp/other.err" || rc=$?
[ "$rc" -eq 1 ] || fail "export --input with a row not in the job: exit $rc, want 1"
grep -q "1 of 2 rows have no verdict in job $job" "$tmp/other.err" ||
	fail "export --input: no count of the rows without a verdict: $(cat "$tmp/other.err")"
[ "$(jq -r '[.line, .status, .reason, .detail] | @tsv' "$tmp/other.jsonl" | tail -n 1)" = \
	"$(printf '3\tunknown\ttemp_failure\tno verdict in job %s' "$job")" ] ||
	fail "export --input: the row without a verdict: $(tail -n 1 "$tmp/other.jsonl")"
# usage and unusable input
rc=0; "$mxsift" export --job "$job" --redis "$redis" --column email >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "export --column without --input: exit $rc, want 2"
rc=0; "$mxsift" export --job "$job" --redis "$redis" --input "$tmp/nonexistent.csv" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "export --input of a missing file: exit $rc, want 3"

echo "PASS: $total verdicts ($smtp_rcpts by SMTP) via $tasks tasks, 2 workers, $sessions sessions"
