#!/usr/bin/env bash
# test_pipes.sh — no test or script stops reading a pipe early under pipefail.
#
# `producer | grep -q PAT` and `producer | head -n N` close the pipe as soon as
# they have what they want; a producer still writing then dies of SIGPIPE and,
# under `set -o pipefail`, the whole pipeline fails. Whether it does depends on
# how many bytes the producer writes after the reader is gone — in CI the help
# text of `mxsift check` grew past 4 KiB with a longer checkout path and
# `mxsift check --help | grep -q ...` failed there and nowhere else. Worse,
# `producer | grep -q PAT && fail ...` then silently passes.
#
# So in every shell file under tests/ and scripts/ that sets pipefail, a
# pipeline may not end in grep -q/-m or head; read the whole output instead
# (grep -q PAT <<<"$(producer)", sed -n 1,Np).
#
# usage: test_pipes.sh SOURCE_DIR
set -euo pipefail
src=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

files=()
while IFS= read -r f; do
	[ "$f" -ef "$0" ] && continue
	grep -q 'pipefail' "$f" && files+=("$f")
done < <(grep -rlE '^#!.*(ba)?sh' "$src/tests" "$src/scripts" | sort)
[ ${#files[@]} -ge 20 ] || fail "only ${#files[@]} shell files with pipefail found under $src"

# a pipe (not ||) into grep with -q or -m among its options, or into head
bad=$(grep -nE '(^|[^|])\| *(grep( +-[a-zA-Z]+)* +-[a-zA-Z]*[qm]|head)\b' "${files[@]}" |
	grep -vE '^[^:]+:[0-9]+:[[:space:]]*#' || true)
[ -z "$bad" ] || fail "pipelines that stop reading early under pipefail:
$bad"

# the check itself can fail: it finds the pattern it forbids
probe=$'a | grep -q y\nb | grep -Eq y\nc | head -n 1\nd || grep -q y\ne | grep y'
[ "$(grep -cE '(^|[^|])\| *(grep( +-[a-zA-Z]+)* +-[a-zA-Z]*[qm]|head)\b' <<<"$probe")" -eq 3 ] ||
	fail "the pattern does not match its own example"
echo "ok: ${#files[@]} shell files, no early-closing pipeline"
