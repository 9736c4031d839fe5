#!/bin/sh
#
# run.sh B — run poold's benchmarks (built into B/bench) and print one
# table.  Called by "make bench"; see BENCHMARKS.md.
#
#   LLAMA_PREFIX=DIR    setup-real-llama.sh prefix (default
#                       $HOME/.cache/poold-llama); parts 3-4 skip the real
#                       llama-server rows when it is not installed
#   BENCH_REPS=5        repetitions (medians with min-max)
#   BENCH_QUIET_S=60    the quiet window of part 2
#   BENCH_SKIP="..."    any of: hot profile scale cold router sim door
#                       cluster
#
# Raw rows go to B/bench/results.tsv, progress and the machine to stderr
# and B/bench/bench.log, the callgrind annotation to B/bench/profile.txt.

set -u

B=${1:-build}
BB=$B/bench
LLAMA_PREFIX=${LLAMA_PREFIX:-${HOME:-/root}/.cache/poold-llama}
REPS=${BENCH_REPS:-5}
QUIET=${BENCH_QUIET_S:-60}
SKIP=${BENCH_SKIP:-}
OUT=$BB/results.tsv
LOG=$BB/bench.log
TAB=$(printf '\t')

[ -x "$BB/hot" ] || { echo "run.sh: build the benches first" >&2; exit 1; }
: > "$OUT"
: > "$LOG"

say() { echo "$*" | tee -a "$LOG" >&2; }
skipped() { case " $SKIP " in *" $1 "*) return 0 ;; esac; return 1; }

# Runs one part; its rows to $OUT, its progress to the log and stderr.
part() {
	name=$1
	shift
	if skipped "$name"; then
		printf 'ROW\t-\t%s: skipped (BENCH_SKIP)\t-\t-\t-\t-\tskipped\n' \
		    "$name" >> "$OUT"
		return
	fi
	say "== $name: $*"
	t0=$(date +%s)
	if ! "$@" >> "$OUT" 2>> "$LOG"; then
		printf 'ROW\t-\t%s FAILED (see %s)\t-\t-\t-\t-\tfailed\n' \
		    "$name" "$LOG" >> "$OUT"
		say "   $name FAILED; last lines of $LOG:"
		tail -5 "$LOG" >&2
	fi
	say "   $name: $(($(date +%s) - t0)) s"
}

cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
say "machine: $(nproc) cpus, ${cpu:-unknown cpu}, $mem RAM, $(uname -sr)"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)

PROFILE="-o $BB/profile.txt"
skipped profile && PROFILE=
if ! command -v valgrind >/dev/null 2>&1; then
	PROFILE=
	printf 'NOTE\tprofile: skipped, valgrind not installed\n' >> "$OUT"
fi
[ -x "$LLAMA_PREFIX/bin/llama-server" ] || \
    say "llama-server not in $LLAMA_PREFIX: real-llama and router rows skip"

# shellcheck disable=SC2086
part hot "$BB/hot" -b "$B" -r "$REPS" $PROFILE
part scale "$BB/scale" -b "$B" -r "$REPS" -q "$QUIET"
part cold "$BB/cold" -b "$B" -l "$LLAMA_PREFIX"
part router "$BB/router" -b "$B" -l "$LLAMA_PREFIX" -w "$REPS"
part sim "$BB/sim" -r "$REPS"
part door "$BB/door" -b "$B" -l "$LLAMA_PREFIX" -r "$REPS"
part cluster "$BB/cluster" -b "$B" -r "$REPS"

# Every process a bench started is gone: anything still running from a
# bench folder is a bug, reported and ended by its pid.
left=0
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	cmd=$(cat "$d/cmdline" 2>/dev/null | tr '\0' ' ')
	if echo "$cmd" | grep -q '/tmp/pbench-'; then
		say "leftover process $pid: $cmd"
		kill -9 "$pid" 2>/dev/null
		left=$((left + 1))
	fi
done
printf 'NOTE\tcleanup: %d leftover processes after the run\n' "$left" \
    >> "$OUT"
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); total" \
    "$(($(date +%s) - start)) s"

# The table: columns padded to their widest cell.
{
	printf 'section\twhat\tpoold\tbaseline (same run)\tratio\ttarget\tverdict\n'
	sed -n "s/^ROW$TAB//p" "$OUT"
} | awk -F "$TAB" -f "$(dirname "$0")/table.awk"
echo
echo "Notes:"
sed -n "s/^NOTE$TAB/- /p" "$OUT"
