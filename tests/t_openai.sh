#!/bin/sh
# t_openai.sh — the real `openai` npm package (pinned in
# tests/openai/package-lock.json) against poold's HTTP front door, with
# stand-in servers: chat (plain and streamed), embeddings, the models list,
# an unknown model, and an abort mid-stream (its lease released, by STATS).
# Run by `make check`, which sets POOLD_BIN, FAKELLAMA_BIN and POOLD_SRCDIR.

set -u

srcdir=${POOLD_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
POOLD_BIN=${POOLD_BIN:-$srcdir/build/poold}
FAKELLAMA_BIN=${FAKELLAMA_BIN:-$srcdir/build/fakellama}
export POOLD_BIN FAKELLAMA_BIN
testdir=$srcdir/tests/openai

fail() {
	echo "t_openai: FAIL: $*" >&2
	exit 1
}

command -v node >/dev/null 2>&1 || fail "node is not installed (Node.js >= 20 is required)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] 2>/dev/null || fail "node $major is too old (>= 20 needed)"
for b in "$POOLD_BIN" "$FAKELLAMA_BIN"; do
	[ -x "$b" ] || fail "$b is not built (run make)"
done

. "$srcdir/tests/lib.sh"
npm_ci_pinned "$testdir" openai
work_dir t_openai

cd "$testdir" || fail "cannot cd to $testdir"
node --test openai.test.mjs
rc=$?
if [ $rc -eq 0 ]; then
	echo "t_openai: PASS"
else
	echo "t_openai: FAIL: node --test exited $rc" >&2
fi
exit $rc
