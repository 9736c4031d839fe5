#!/bin/sh
# t_pm2.sh — poold under the real PM2 (pinned in contrib/pm2/package-lock.json)
# with contrib/pm2/ecosystem.config.js: start it, acquire through the Node
# client while holding leases, `pm2 stop` → every stand-in server is gone and
# the client saw its leases end; start it again, `pm2 kill` → nothing left.
#
# Run by `make check` (POOLD_BIN, FAKELLAMA_BIN, POOLD_SRCDIR set).  Uses a
# private PM2_HOME, so a PM2 of the user's is never touched.

set -u

srcdir=${POOLD_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
POOLD_BIN=${POOLD_BIN:-$srcdir/build/poold}
FAKELLAMA_BIN=${FAKELLAMA_BIN:-$srcdir/build/fakellama}
pm2dir=$srcdir/contrib/pm2
nodedir=$srcdir/contrib/node

work=
helper_pid=
status=FAIL

say() { echo "t_pm2: $*"; }

dump_logs() {
	[ -n "$work" ] || return 0
	for f in "$work"/pm2home/logs/*.log "$work"/helper.out "$work"/pm2.out; do
		[ -s "$f" ] || continue
		echo "---- $f (last 40 lines)"
		tail -n 40 "$f"
	done
}

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ "$status" != PASS ]; then
		dump_logs >&2
	fi
	if [ -n "$helper_pid" ]; then
		kill "$helper_pid" 2>/dev/null
	fi
	if [ -n "$work" ]; then
		if [ -x "$pm2dir/node_modules/.bin/pm2" ] && [ -d "$work/pm2home" ]; then
			PM2_HOME=$work/pm2home "$pm2dir/node_modules/.bin/pm2" kill \
			    >>"$work/pm2.out" 2>&1
		fi
		# Anything still running from our folder was started by us:
		# end it by pid.
		for pid in $(pgrep -f "$work/" 2>/dev/null); do
			[ "$pid" = "$$" ] || kill -9 "$pid" 2>/dev/null
		done
		rm -rf "$work"
	fi
	if [ "$status" = PASS ]; then
		echo "t_pm2: PASS"
		exit 0
	fi
	echo "t_pm2: FAIL" >&2
	[ "$rc" -ne 0 ] || rc=1
	exit "$rc"
}

fail() {
	echo "t_pm2: FAIL: $*" >&2
	exit 1
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v node >/dev/null 2>&1 || fail "node is not installed"
command -v npm >/dev/null 2>&1 || fail "npm is not installed"
command -v pgrep >/dev/null 2>&1 || fail "pgrep is not installed (procps)"
for b in "$POOLD_BIN" "$FAKELLAMA_BIN"; do
	[ -x "$b" ] || fail "$b is not built (run make)"
done

# The pinned PM2, installed from the committed lockfile when missing or stale.
. "$srcdir/tests/lib.sh"
npm_ci_pinned "$pm2dir" pm2
pm2bin=$pm2dir/node_modules/.bin/pm2
[ -x "$pm2bin" ] || fail "$pm2bin missing after npm ci"

work=$(mktemp -d "${TMPDIR:-/tmp}/t_pm2.XXXXXX") || fail "mktemp"
export PM2_HOME="$work/pm2home"
mkdir -p "$PM2_HOME" "$work/models"
sock=$work/poold.sock
# This test's own 100 ports (tests/testlib.c: the C suites lock slots
# below 32000, which may run beside it).
base=32100
for m in alpha beta gamma; do
	printf 'load_ms=150\nmem=8M\n' >"$work/models/$m.gguf"
done
cat >"$work/poold.json" <<EOF
{
  "socket": "$sock",
  "state_file": "$work/state.json",
  "models_dir": "$work/models",
  "command": ["$FAKELLAMA_BIN", "-m", "{path}", "--host", "127.0.0.1", "--port", "{port}"],
  "memory_limit": "256M",
  "reserved": "0",
  "per_model": "32M",
  "ports": [$base, $((base + 99))],
  "idle_timeout": "5m",
  "stop_timeout": "2s"
}
EOF

pm2() {
	echo "\$ pm2 $*" >>"$work/pm2.out"
	"$pm2bin" "$@" >>"$work/pm2.out" 2>&1
}

# Waits up to $2 tenths of a second for the shell condition $1.
wait_for() {
	n=0
	while ! eval "$1"; do
		n=$((n + 1))
		[ "$n" -le "$2" ] || return 1
		sleep 0.1
	done
	return 0
}

sock_up() {
	node -e "require('net').createConnection('$sock')
	    .on('connect', () => process.exit(0)).on('error', () => process.exit(1))"
}

app_status() {
	"$pm2bin" jlist 2>/dev/null | node -e "
	    let s = ''; process.stdin.on('data', (d) => s += d).on('end', () => {
	        const j = JSON.parse(s.slice(s.indexOf('[')));
	        const a = j.find((p) => p.name === 'poold-t');
	        console.log(a ? a.pm2_env.status : 'absent');
	    });"
}

# Our own processes: stand-in servers (their -m names $work/models) and poold
# (its -f names $work/poold.json).
leftovers() {
	pgrep -f "$work/models/|$work/poold.json" 2>/dev/null
}

# --- start poold under PM2 --------------------------------------------------

say "pm2 start (PM2_HOME=$PM2_HOME)"
POOLD_BIN=$POOLD_BIN POOLD_CONFIG=$work/poold.json POOLD_PM2_NAME=poold-t \
    pm2 start "$pm2dir/ecosystem.config.js" || fail "pm2 start failed"
wait_for sock_up 150 || fail "poold did not open $sock under pm2"
[ "$(app_status)" = online ] || fail "pm2 does not say poold-t is online"

# --- a client holding leases -------------------------------------------------

cat >"$work/helper.js" <<EOF
'use strict';
const fs = require('fs');
const { PoolClient } = require('$nodedir');
const c = new PoolClient({ socketPath: '$sock', reconnect: false });
const out = (f, s) => fs.writeFileSync('$work/' + f, s);
setTimeout(() => { console.error('helper: no disconnect in 90 s'); process.exit(2); }, 90000);
c.on('disconnect', (err, info) => {
	out('disconnected', String(info.leasesLost));
	process.exit(0);
});
(async () => {
	const held = await Promise.all([
		c.acquire('alpha', { timeoutMs: 20000 }),
		c.acquire('beta', { timeoutMs: 20000 }),
	]);
	const free = await c.acquire('gamma', { timeoutMs: 20000, hold: false });
	if (held.some((l) => !l.alive) || free.lease !== null)
		throw new Error('unexpected leases');
	const s = await c.stats();
	const pids = s.servers.map((x) => x.pid).filter((p) => Number.isInteger(p) && p > 0);
	if (s.servers.length !== 3)
		throw new Error('expected 3 servers: ' + JSON.stringify(s.servers));
	console.log('servers', JSON.stringify(s.servers.map((x) => [x.model, x.port, x.pid])));
	out('pids', pids.join('\n') + '\n');
	out('ready', '');
})().catch((e) => { console.error('helper:', e.code || '', e.message); process.exit(1); });
EOF
node "$work/helper.js" >"$work/helper.out" 2>&1 &
helper_pid=$!
wait_for "[ -f '$work/ready' ] || ! kill -0 $helper_pid 2>/dev/null" 300 ||
    fail "the client did not get its servers in 30 s"
[ -f "$work/ready" ] || fail "the client failed: $(cat "$work/helper.out")"
say "$(cat "$work/helper.out")"

pids=$(cat "$work/pids")
for pid in $pids; do
	kill -0 "$pid" 2>/dev/null || fail "server pid $pid from STATS is not running"
done
nservers=$(pgrep -f "$work/models/" | wc -l)
[ "$nservers" -ge 3 ] || fail "expected 3 stand-in servers, pgrep finds $nservers"

# --- pm2 stop: poold stops its servers, nothing is left ----------------------

say "pm2 stop with 2 leases held"
pm2 stop poold-t || fail "pm2 stop failed"
wait_for "! kill -0 $helper_pid 2>/dev/null" 100 ||
    fail "the client did not see the connection end"
wait "$helper_pid"
hrc=$?
helper_pid=
[ "$hrc" -eq 0 ] || fail "the client exited $hrc: $(cat "$work/helper.out")"
[ "$(cat "$work/disconnected" 2>/dev/null)" = 2 ] ||
    fail "the client should have lost 2 leases, says '$(cat "$work/disconnected" 2>/dev/null)'"
for pid in $pids; do
	kill -0 "$pid" 2>/dev/null && fail "server pid $pid outlived pm2 stop"
done
left=$(leftovers)
# shellcheck disable=SC2086 # $left: one pid a line, joined with commas
[ -z "$left" ] || fail "left after pm2 stop: $(ps -o pid=,args= -p "$(echo $left | tr ' ' ,)")"
[ "$(app_status)" = stopped ] || fail "pm2 does not say poold-t is stopped: $(app_status)"

# --- again, and pm2 kill ------------------------------------------------------

say "pm2 restart, acquire, pm2 kill"
pm2 restart poold-t || fail "pm2 restart failed"
wait_for sock_up 150 || fail "poold did not come back under pm2"
node -e "
	const { PoolClient } = require('$nodedir');
	const c = new PoolClient({ socketPath: '$sock' });
	c.acquire('alpha', { timeoutMs: 20000 })
	    .then((l) => { console.log('alpha on', l.endpoint); return c.close(); })
	    .catch((e) => { console.error(e.code, e.message); process.exit(1); });
" >>"$work/helper.out" 2>&1 || fail "acquire after pm2 restart failed: $(tail -n 1 "$work/helper.out")"
[ -n "$(pgrep -f "$work/models/")" ] || fail "no stand-in server after the acquire"
pm2 kill || fail "pm2 kill failed"
# shellcheck disable=SC2016 # evaluated by wait_for
wait_for '[ -z "$(leftovers)" ]' 50 ||
    fail "left after pm2 kill: $(leftovers | tr '\n' ' ')"

status=PASS
