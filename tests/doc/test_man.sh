#!/usr/bin/env bash
# test_man.sh — the manual pages agree with the programs.
#
#  - groff formats both pages without a warning (-ww);
#  - every long option printed by `mxsift COMMAND --help` (check, submit,
#    status, export, report) is documented in mxsift.1 in that command's own
#    section (.SS mxsift COMMAND) or under "Options of every command", and
#    every one of `mxsift-worker --help` in mxsift-worker.1;
#  - every command's --help lists --config, and --config FILE is read by it:
#    an unknown key in the command's section stops it with FILE:LINE, exit 2;
#  - both programs answer --version with the version in the pages' .TH line;
#  - check --help and submit --help name UTF-16 under exit 3 (unusable input);
#  - `mxsift COMMAND --help` exits 0 and prints to stdout for every command;
#  - deploy/mxsift.conf.example, the file a new user starts from, is accepted
#    by every command (a key it names that a command lacks would stop it).
#
# usage: test_man.sh MXSIFT MXSIFT_WORKER DOC_DIR EXAMPLE_CONF
set -euo pipefail
mxsift=$1 worker=$2 doc=$3 example=$4
command -v groff >/dev/null || { echo "SKIP: groff not installed"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp_err=$(mktemp) tmp_sec=$(mktemp) tmp_conf=$(mktemp)
trap 'rm -f "$tmp_err" "$tmp_sec" "$tmp_conf"' EXIT

for page in "$doc/mxsift.1" "$doc/mxsift-worker.1"; do
	out=$(groff -ww -z -man -t "$page" 2>&1) || fail "groff failed on $page"
	[ -z "$out" ] || fail "groff warnings on $page: $out"
done

# long options of a --help text, one per line
longopts() { grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }
# the options a --help text defines (its option lines, not its prose)
defined() { grep -oE -- '^ +(-[a-zA-Z], )?--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z0-9-]+' | sort -u; }
# documented: the page spells --a-b as \-\-a\-b
documented() { grep -qF -- "$(sed 's/-/\\-/g' <<<"$1")" "$2"; }

# section CMD: the .SS of mxsift CMD up to the next .SS or .SH, plus the
# section "Options of every command"
section() {
	awk -v want="^\\.SS mxsift $1( |$)" '
		/^\.S[SH] / { in_cmd = $0 ~ want; in_all = $0 ~ /^\.SS Options of every command/ }
		in_cmd || in_all' "$doc/mxsift.1"
}
missing=()
for cmd in check submit status export report; do
	help=$("$mxsift" "$cmd" --help) || fail "mxsift $cmd --help exited non-zero"
	[ -n "$help" ] || fail "mxsift $cmd --help printed nothing on stdout"
	section "$cmd" >"$tmp_sec"
	[ "$(grep -c '' "$tmp_sec")" -gt 20 ] || fail "no section .SS mxsift $cmd in mxsift.1"
	grep -q -- '--config' <<<"$help" || missing+=("mxsift $cmd --help: --config")
	while read -r opt; do
		documented "$opt" "$doc/mxsift.1" || missing+=("mxsift $cmd $opt")
	done < <(longopts <<<"$help")
	n=$(defined <<<"$help" | grep -c '')
	[ "$n" -ge 4 ] || fail "mxsift $cmd --help: only $n option lines found"
	while read -r opt; do
		documented "$opt" "$tmp_sec" || missing+=("mxsift $cmd $opt (not in its section)")
	done < <(defined <<<"$help")
done
help=$("$worker" --help) || fail "mxsift-worker --help exited non-zero"
while read -r opt; do
	documented "$opt" "$doc/mxsift-worker.1" || missing+=("mxsift-worker $opt")
done < <(longopts <<<"$help")
[ ${#missing[@]} -eq 0 ] || fail "options missing from the man pages: ${missing[*]}"

# check and submit refuse UTF-16 input with exit 3: both helps say so, as mxsift.1 does
for cmd in check submit; do
	codes=$("$mxsift" "$cmd" --help | sed -n '/^Exit codes:/,/^$/p' | tr '\n' ' ')
	grep -q '3 input unusable ([^)]*UTF-16' <<<"$codes" ||
		fail "mxsift $cmd --help: exit 3 does not name UTF-16"
done
grep -q 'UTF\\-16' "$doc/mxsift.1" || fail "mxsift.1 does not name UTF-16"

v1=$("$mxsift" --version) v2=$("$worker" --version)
ver=${v1#mxsift }
[ "$v2" = "mxsift-worker $ver" ] || fail "versions differ: '$v1' / '$v2'"
for page in "$doc/mxsift.1" "$doc/mxsift-worker.1"; do
	grep -q "^\.TH .*\"mxsift $ver\"" "$page" || fail "$page: .TH does not say mxsift $ver"
done
unset MXSIFT_CONFIG
for cmd in check submit status export report; do
	"$mxsift" "$cmd" --config "$example" --help >/dev/null 2>"$tmp_err" ||
		fail "mxsift $cmd rejects $example: $(cat "$tmp_err")"
done
# --config is read: an unknown key of the command's own section stops it
for cmd in check submit status export report; do
	printf '# test_man.sh\n[%s]\nno-such-key = 1\n' "$cmd" >"$tmp_conf"
	rc=0
	"$mxsift" "$cmd" --config "$tmp_conf" --help >/dev/null 2>"$tmp_err" || rc=$?
	[ "$rc" -eq 2 ] && grep -q "$tmp_conf:3: unknown key 'no-such-key'" "$tmp_err" ||
		fail "mxsift $cmd --config did not read the file (exit $rc): $(cat "$tmp_err")"
done
"$worker" --config "$example" --help >/dev/null 2>"$tmp_err" ||
	fail "mxsift-worker rejects $example: $(cat "$tmp_err")"
echo "PASS: man pages document every option of $((5 + 1)) --help texts, version $ver; the example configuration is accepted"
