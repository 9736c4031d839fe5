#!/bin/sh
# tests/valgrind.sh — the integration suite with every poold it starts
# running under valgrind: no leaks, no memory errors, no descriptor leaks.
#
#   sh tests/valgrind.sh [SUITE...]      default: build/check_daemon
#
# Not part of "make check": it is slow (poold runs 20-50 times slower).
# testlib starts $POOLD_BIN -f CONFIG, so POOLD_BIN is pointed at a
# wrapper that execs valgrind on the real poold (same pid: the suite's
# checks of poold's children still hold).  Each poold writes
# vg.PID.log; afterwards every log of a poold (not of its forked children,
# which exec a server or _exit) is read for:
#   - memory errors (ERROR SUMMARY), leaks (definitely/indirectly/possibly
#     lost), and descriptors poold opened and left open at exit
#     (--track-fds; inherited ones do not count).
# Exit status: 0 if the suite passed and valgrind found nothing, else 1.
#
# Environment: POOLD_BIN, FAKELLAMA_BIN (default build/...), VALGRIND,
# VG_KEEP=1 keeps the logs, CK_RUN_CASE to run one test.

set -u
top=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$top/build}
POOLD=${POOLD_BIN:-$B/poold}
FAKE=${FAKELLAMA_BIN:-$B/fakellama}
VALGRIND=${VALGRIND:-valgrind}
[ $# -gt 0 ] || set -- "$B/check_daemon"

command -v "$VALGRIND" >/dev/null 2>&1 || {
	echo "valgrind.sh: $VALGRIND not found (apt-get install valgrind)" >&2
	exit 1
}
for f in "$POOLD" "$FAKE" "$@"; do
	[ -x "$f" ] || { echo "valgrind.sh: $f: not built (make; make $f)" >&2
		exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/poold-vg.XXXXXX")
cat > "$work/poold" <<EOF
#!/bin/sh
exec $VALGRIND --leak-check=full \\
    --show-leak-kinds=definite,indirect,possible \\
    --errors-for-leak-kinds=definite,indirect,possible \\
    --track-fds=yes --error-exitcode=99 --num-callers=30 \\
    --log-file=$work/vg.%p.log "$POOLD" "\$@"
EOF
chmod 755 "$work/poold"

suite_rc=0
for suite in "$@"; do
	echo "== $suite with poold under valgrind"
	POOLD_BIN="$work/poold" FAKELLAMA_BIN="$FAKE" POOLD_SRCDIR="$top" \
	    CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4} \
	    CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-480} \
	    "$suite" || suite_rc=1
done

# A log is poold's own if its parent's log is not in the folder (the
# forked children of poold have their own, with poold as parent).
pids=$(ls "$work" | sed -n 's/^vg\.\([0-9]*\)\.log$/\1/p')
npoold=0; nerr=0; nleak=0; nfd=0; bad=""
for p in $pids; do
	log="$work/vg.$p.log"
	parent=$(sed -n 's/^==[0-9]*== Parent PID: \([0-9]*\).*/\1/p' "$log" |
	    head -1)
	[ -n "$parent" ] && [ -f "$work/vg.$parent.log" ] && continue
	npoold=$((npoold + 1))
	e=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" |
	    tail -1)
	l=$(grep -cE '(definitely|indirectly|possibly) lost in' "$log")
	# "Open file descriptor N: ...", "Open AF_UNIX socket N: ...", not
	# followed by "<inherited from parent>".
	f=$(awk '/== Open [A-Za-z0-9_ ]+ [0-9]+:/ {
		if (pending) n++; pending = 1; next }
	    /<inherited from parent>/ { pending = 0; next }
	    /^==[0-9]+== *$/ { if (pending) n++; pending = 0 }
	    END { if (pending) n++; print n + 0 }' "$log")
	[ -z "$e" ] && e=0
	if [ "$e" != 0 ] || [ "$l" != 0 ] || [ "$f" != 0 ]; then
		bad="$bad $log"
	fi
	nerr=$((nerr + e)); nleak=$((nleak + l)); nfd=$((nfd + f))
done

echo "valgrind: $npoold poold runs; $nerr errors, $nleak leak records," \
    "$nfd descriptors left open"
for log in $bad; do
	echo "---- $log"
	grep -vE '^==[0-9]+== *$' "$log" | head -80
done
rc=0
[ "$suite_rc" = 0 ] || { echo "valgrind.sh: the suite failed"; rc=1; }
[ -z "$bad" ] || { echo "valgrind.sh: valgrind found problems"; rc=1; }
if [ "$rc" = 0 ] && [ "${VG_KEEP:-0}" != 1 ]; then
	rm -rf "$work"
else
	echo "valgrind.sh: logs in $work"
fi
exit $rc
