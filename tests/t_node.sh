#!/bin/sh
# t_node.sh — the Node.js client's tests (contrib/node/test/), against the
# real poold with stand-in servers.  Run by `make check`, which sets
# POOLD_BIN, FAKELLAMA_BIN and POOLD_SRCDIR.

set -u

srcdir=${POOLD_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
POOLD_BIN=${POOLD_BIN:-$srcdir/build/poold}
FAKELLAMA_BIN=${FAKELLAMA_BIN:-$srcdir/build/fakellama}
export POOLD_BIN FAKELLAMA_BIN

fail() {
	echo "t_node: FAIL: $*" >&2
	exit 1
}

command -v node >/dev/null 2>&1 || fail "node is not installed (Node.js >= 18 is required)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] 2>/dev/null || fail "node $major is too old (>= 18 needed)"
for b in "$POOLD_BIN" "$FAKELLAMA_BIN"; do
	[ -x "$b" ] || fail "$b is not built (run make)"
done

. "$srcdir/tests/lib.sh"
work_dir t_node

cd "$srcdir" || fail "cannot cd to $srcdir"
node --test contrib/node/test/
rc=$?
if [ $rc -eq 0 ]; then
	echo "t_node: PASS"
else
	echo "t_node: FAIL: node --test exited $rc" >&2
fi
exit $rc
