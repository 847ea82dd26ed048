#!/usr/bin/env bash
# test_lanes_file.sh — a --lanes FILE that is missing or broken, from the
# flag, MXSIFT_LANES or the configuration file: `mxsift check` and
# `mxsift-worker` stop before any work with exit 2 and one line naming the
# option and the file (and line), as for every other configuration mistake.
# Before the fix check said "out of memory" (exit 1) and the worker "engine
# setup failed" (exit 1), neither naming the file.  --lanes none still runs.
#
# No services: both stop before DNS, Redis or Kafka are touched (the
# worker's brokers and Redis are unreachable loopback ports on purpose).
#
# usage: test_lanes_file.sh MXSIFT MXSIFT_WORKER
set -euo pipefail
mxsift=$1 worker=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }
unset MXSIFT_CONFIG MXSIFT_LANES MXSIFT_CHECK_LANES MXSIFT_WORKER_LANES
export MXSIFT_CONFIG=/dev/null

printf 'a@missing.test\n' >list.txt
printf '# rules\nexample.net rate=1\ngmail.com rate=fast\n' >bad.conf
printf 'lanes = %s/nope.conf\n' "$tmp" >missing.conf

# expect WANT_RC WANT_TEXT NAME COMMAND...: exit status and one stderr line
expect() {
	local want=$1 text=$2 name=$3 rc=0
	shift 3
	timeout 20 "$@" >"$name.out" 2>"$name.err" || rc=$?
	[ "$rc" -eq "$want" ] || { cat "$name.err" >&2; fail "$name: exit $rc, want $want"; }
	grep -qF -- "$text" "$name.err" || { cat "$name.err" >&2; fail "$name: no '$text'"; }
	[ "$(wc -l <"$name.err")" -eq 1 ] || { cat "$name.err" >&2; fail "$name: not one line"; }
}
wargs=(--brokers 127.0.0.1:1 --redis redis://127.0.0.1:1 --metrics-addr off)

expect 2 "mxsift check: --lanes: $tmp/nope.conf: No such file or directory" check_missing \
	"$mxsift" check -q --lanes "$tmp/nope.conf" list.txt
expect 2 "mxsift check: --lanes: bad.conf:3: bad value in \"rate=fast\"" check_bad \
	"$mxsift" check -q --lanes bad.conf list.txt
expect 2 "mxsift check: --lanes: bad.conf:3:" check_env \
	env MXSIFT_LANES=bad.conf "$mxsift" check -q list.txt
expect 2 "mxsift-worker: --lanes: $tmp/nope.conf: No such file or directory" worker_missing \
	"$worker" "${wargs[@]}" --lanes "$tmp/nope.conf"
expect 2 "mxsift-worker: --lanes: bad.conf:3: bad value in \"rate=fast\"" worker_bad \
	"$worker" "${wargs[@]}" --lanes bad.conf
expect 2 "mxsift-worker: --lanes: $tmp/nope.conf:" worker_config \
	"$worker" "${wargs[@]}" --config missing.conf
# a directory is no rules file (it read as an empty one: no rule, no error)
expect 2 "mxsift check: --lanes: $tmp: Is a directory" check_dir \
	"$mxsift" check -q --lanes "$tmp" list.txt
expect 2 "mxsift-worker: --lanes: $tmp: Is a directory" worker_dir \
	"$worker" "${wargs[@]}" --lanes "$tmp"
[ -e "$tmp/nope.conf" ] && fail "a lanes file was created"

# The worker's --helo and --mail-from flags get the config file's checks
# (before, --helo 'a b' was taken and went out as 'EHLO a b'): exit 2, the
# first line naming the flag (the usage follows it).
for a in '--helo=a b' '--helo=' $'--mail-from=a@b.test\nx' '--mail-from=<a@b.test>'; do
	rc=0
	timeout 20 "$worker" "${wargs[@]}" "$a" >flag.out 2>flag.err || rc=$?
	[ "$rc" -eq 2 ] && grep -q "^mxsift-worker: ${a%%=*}: " flag.err ||
		{ cat flag.err >&2; fail "worker $a: exit $rc, want 2 naming ${a%%=*}"; }
done

# --lanes none is no file: check runs (missing.test needs no DNS answer to
# fail; whatever the resolver says, it is not a usage error)
rc=0
timeout 60 "$mxsift" check -q --lanes none --dns 127.0.0.1:1 list.txt >none.out 2>none.err || rc=$?
[ "$rc" -ne 2 ] || { cat none.err >&2; fail "--lanes none: exit 2"; }
echo "PASS: test_lanes_file.sh (missing and broken --lanes files, flag, env and config, check and worker; the worker's bad --helo/--mail-from)"
