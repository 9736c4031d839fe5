#!/usr/bin/env bash
# tests/llama-setup.sh [PREFIX]
#
# Makes sure a real llama.cpp llama-server (and make-tiny-gguf, the
# generator of small random-weight GGUF models) is installed in PREFIX
# (default $HOME/.cache/poold-llama) and prints the path of the
# llama-server binary on stdout; everything else goes to stderr.
#
# If PREFIX/bin/llama-server already works (--version), nothing is done.
# Otherwise the shared tool setup-real-llama.sh installs it (about 12 s,
# needs only Debian's archive; see ../shared/tools/README.md).  The tool
# is found in $POOLD_SHARED/tools, else in the shared folder beside the
# checkout: $(git rev-parse --show-toplevel)/../shared/tools.
#
# Use:
#     LLAMA_SERVER=$(tests/llama-setup.sh) &&
#     MAKE_TINY_GGUF=$(dirname "$LLAMA_SERVER")/make-tiny-gguf make check
set -euo pipefail

PREFIX=${1:-${HOME:?HOME is not set; give a PREFIX}/.cache/poold-llama}
PREFIX=${PREFIX%/}
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "llama-setup: $*" >&2; }

works() {
	[ -x "$PREFIX/bin/llama-server" ] && [ -x "$PREFIX/bin/make-tiny-gguf" ] &&
	    "$PREFIX/bin/llama-server" --version >/dev/null 2>&1
}

find_tool() {
	local top cand
	if [ -n "${POOLD_SHARED:-}" ]; then
		cand=$POOLD_SHARED/tools/setup-real-llama.sh
		[ -f "$cand" ] && { echo "$cand"; return 0; }
		log "POOLD_SHARED=$POOLD_SHARED holds no tools/setup-real-llama.sh"
		return 1
	fi
	top=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/.." && pwd))
	cand=$top/../shared/tools/setup-real-llama.sh
	[ -f "$cand" ] && { echo "$cand"; return 0; }
	log "no setup-real-llama.sh in $top/../shared/tools; set POOLD_SHARED to the shared folder"
	return 1
}

if ! works; then
	tool=$(find_tool)
	command -v python3 >/dev/null 2>&1 ||
	    log "warning: no python3: make-tiny-gguf (the test models) needs it"
	mkdir -p "$(dirname "$PREFIX")"
	# Two runs at once (make -j, a developer and CI) must not both
	# unpack into PREFIX: the lock is beside it, never inside (the tool
	# refuses a non-empty PREFIX it did not make).
	exec 9>"$PREFIX.lock"
	if command -v flock >/dev/null 2>&1; then
		flock 9
	fi
	if ! works; then
		log "installing the real llama-server into $PREFIX with $tool"
		# bash explicitly: the shared copy may have no exec bits.
		bash "$tool" "$PREFIX" >&2
	fi
	exec 9>&-
	works || { log "$PREFIX/bin/llama-server --version still fails after setup"; exit 1; }
fi
echo "$PREFIX/bin/llama-server"
