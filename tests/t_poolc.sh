#!/bin/sh
# t_poolc.sh — the README's way in, for real: the demo pool of `make run`
# (tests/make-demo.sh), the real poold, and poolc doing what a person
# does with it.  Each step states what must hold; any failure prints
# poold's log and exits 1.
#
# Run by `make check` (POOLD_BIN, POOLC_BIN, FAKELLAMA_BIN, POOLD_SRCDIR).

set -u

srcdir=${POOLD_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
POOLD_BIN=${POOLD_BIN:-$srcdir/build/poold}
POOLC_BIN=${POOLC_BIN:-$srcdir/build/poolc}
FAKELLAMA_BIN=${FAKELLAMA_BIN:-$srcdir/build/fakellama}

work=$(mktemp -d "${TMPDIR:-/tmp}/t_poolc.XXXXXX")
pid=

say() { echo "t_poolc: $*"; }

cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

fail() {
	say "FAIL: $*"
	[ -f "$work/poold.log" ] && sed 's/^/    /' "$work/poold.log" | tail -n 30
	exit 1
}

# expect STATUS DESCRIPTION -- poolc ARGS…: runs poolc, checks its exit
# status, leaves its stdout in $work/out and stderr in $work/err.
expect() {
	want=$1 what=$2
	shift 3
	"$POOLC_BIN" -s "$sock" "$@" >"$work/out" 2>"$work/err"
	got=$?
	[ "$got" -eq "$want" ] || fail "$what: exit $got, want $want" \
	    "($(cat "$work/err"))"
}

sh "$srcdir/tests/make-demo.sh" "$work/demo" "$FAKELLAMA_BIN" >/dev/null ||
	fail "make-demo.sh"
# The demo's ports are fixed (18080-); move them to this test's own slot
# (tests/testlib.c: the C suites lock slots below 32000).
base=32000
sed -i.bak "s/\[18080, 18179\]/[$base, $((base + 99))]/" \
	"$work/demo/poold.json" || fail "sed"
sock=$work/demo/poold.sock

"$POOLD_BIN" -f "$work/demo/poold.json" 2>"$work/poold.log" &
pid=$!
i=0
until "$POOLC_BIN" -s "$sock" ping >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "poold did not answer PING within 5 s"
	kill -0 "$pid" 2>/dev/null || fail "poold exited"
	sleep 0.05
done

# Pass: acquire prints the endpoint of a healthy server.
expect 0 "acquire" -- acquire tiny-a
grep -q "^http://127.0.0.1:[0-9]*$" "$work/out" ||
	fail "acquire printed '$(cat "$work/out")'"
port=$(sed 's/.*://' "$work/out")
say "acquire tiny-a -> port $port"

# Pass: stats shows the budget line and a ready row for tiny-a.
expect 0 "stats" -- stats
grep -q "budget 256.0M" "$work/out" || fail "no budget line in stats"
grep -q "^tiny-a  *ready  *$port " "$work/out" || fail "no ready tiny-a row"

# Pass: run holds a lease while the command runs, with the endpoint in
# its environment, and exits with the command's status.
# shellcheck disable=SC2016 # expanded by the command poolc runs
expect 7 "run" -- run tiny-b -- sh -c \
	'echo "$POOLD_MODEL $POOLD_PORT $POOLD_ENDPOINT" >'"$work/env"'; exit 7'
read -r m p e <"$work/env" || fail "run: no environment written"
if [ "$m" != tiny-b ] || [ -z "$p" ] || [ "$e" != "http://127.0.0.1:$p" ]; then
	fail "run: environment '$m $p $e'"
fi
say "run tiny-b -> status 7, POOLD_ENDPOINT $e"

# Pass: the lease ended with the command: tiny-b is idle (0 leases).
expect 0 "stats --json" -- stats --json
grep -q '"model":"tiny-b","state":"ready","port":[0-9]*,"pid":[0-9]*,"leases":0' \
	"$work/out" || fail "tiny-b still leased after run"

# Pass: models lists the catalog of five with their states.
expect 0 "models" -- models
[ "$(grep -c '^tiny-' "$work/out")" -eq 5 ] || fail "models: not 5 rows"
grep -q "^tiny-c  *stopped" "$work/out" || fail "models: tiny-c not stopped"

# Pass: evict stops tiny-a and answers once it is reaped.
expect 0 "evict" -- evict tiny-a
expect 0 "stats after evict" -- stats
grep -q "^tiny-a " "$work/out" && fail "tiny-a still listed after evict"

# Pass: errors: unknown model → 1 with poold's message; usage → 2;
# no daemon → 3.
expect 1 "unknown model" -- acquire no-such-model
grep -q "unknown_model" "$work/err" || fail "no unknown_model in '$(cat "$work/err")'"
expect 2 "usage" -- frobnicate
"$POOLC_BIN" -s "$work/nowhere.sock" ping >/dev/null 2>&1
[ $? -eq 3 ] || fail "no daemon: exit status is not 3"

# Pass: budget prints the memory lines.
expect 0 "budget" -- budget
grep -q "budget" "$work/out" || fail "budget printed nothing"

# Pass: SIGTERM stops poold and every server, exit 0, socket gone.
kill "$pid"
wait "$pid"
st=$?
pid=
[ "$st" -eq 0 ] || fail "poold exited $st"
[ -e "$sock" ] && fail "socket left behind"
if pgrep -f "$work/demo/models" >/dev/null 2>&1; then
	fail "a server outlived poold"
fi
say "PASS"
