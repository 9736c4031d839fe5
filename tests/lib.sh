# lib.sh — shell helpers for the tests/t_*.sh scripts (sourced; each
# script defines fail() first).

# npm_ci_pinned DIR PACKAGE: installs DIR's dependencies from its committed
# lockfile when PACKAGE is missing or not the pinned version (npm ci then
# needs the registry or a warm npm cache).  Prints the pinned version.
npm_ci_pinned() {
	_dir=$1 _pkg=$2
	_want=$(node -p "require('$_dir/package-lock.json').packages['node_modules/$_pkg'].version") ||
	    fail "cannot read $_dir/package-lock.json"
	_have=$(node -p "try { require('$_dir/node_modules/$_pkg/package.json').version } catch (e) { '' }")
	if [ "$_have" != "$_want" ]; then
		echo "npm ci in $_dir ($_pkg $_want)" >&2
		(cd "$_dir" && npm ci --no-audit --no-fund --loglevel=error) ||
		    fail "npm ci in $_dir failed"
	fi
}

# work_dir NAME: makes $work, exported as POOLD_TEST_TMPDIR.  Everything a
# test starts lives under it; whatever is left there when the script ends
# (a test killed half-way) is ended by pid, and the folder removed.
work_dir() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || fail "mktemp"
	trap work_dir_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	export POOLD_TEST_TMPDIR="$work"
}

work_dir_cleanup() {
	for _pid in $(pgrep -f "$work/" 2>/dev/null); do
		[ "$_pid" = "$$" ] || kill -9 "$_pid" 2>/dev/null
	done
	rm -rf "$work"
}
