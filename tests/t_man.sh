#!/bin/sh
# t_man.sh — every manual page in man/ lints clean, renders, and its
# cross-references to our own pages point at pages that exist.
#
# Run by `make check` (from the top of the tree, POOLD_SRCDIR set) or by
# hand: sh tests/t_man.sh.  mandoc is required: CI installs it, and a
# missing mandoc fails the test rather than skipping it.

srcdir=${POOLD_SRCDIR:-$(dirname "$0")/..}
cd "$srcdir" || exit 1

if ! command -v mandoc >/dev/null 2>&1; then
	echo "t_man: mandoc not found; install it (Debian: apt-get install" \
	    "mandoc, macOS: brew install mandoc)" >&2
	exit 1
fi

# Our own pages: an .Xr to one of these names must name an existing page.
own="poold poolc libpoolc poold.json poold-protocol"

failed=0
npages=0
tmp=$(mktemp "${TMPDIR:-/tmp}/t_man.XXXXXX") || exit 1
trap 'rm -f "$tmp"' EXIT

fail() {
	echo "FAIL $*" >&2
	failed=1
}

for page in man/*.[1-8]; do
	[ -f "$page" ] || continue
	npages=$((npages + 1))

	# Lint: warnings and worse.  Style suggestions are left out:
	# "referenced manual not found" fires for every page not yet installed.
	if ! mandoc -Tlint -W warning "$page" >"$tmp" 2>&1 || [ -s "$tmp" ]; then
		fail "$page: mandoc -Tlint -W warning:"
		sed 's/^/    /' "$tmp" >&2
	fi

	if ! mandoc -Tutf8 "$page" >"$tmp" 2>/dev/null; then
		fail "$page: mandoc -Tutf8 failed"
	elif [ ! -s "$tmp" ]; then
		fail "$page: mandoc -Tutf8 rendered nothing"
	fi

	# Every "Xr name section" on a macro line, as "line name section".
	awk '/^[.\047]/ {
		for (i = 1; i <= NF - 2; i++)
			if ($i == ".Xr" || $i == "Xr")
				print FNR, $(i + 1), $(i + 2)
	}' "$page" >"$tmp"
	while read -r line name sect; do
		for o in $own; do
			[ "$name" = "$o" ] || continue
			[ -f "man/$name.$sect" ] ||
			    fail "$page:$line: Xr $name $sect: no man/$name.$sect"
		done
	done <"$tmp"
done

if [ "$npages" -eq 0 ]; then
	fail "no manual pages in $srcdir/man"
fi

if [ "$failed" -ne 0 ]; then
	exit 1
fi
echo "t_man: $npages pages ok"
exit 0
