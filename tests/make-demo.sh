#!/bin/sh
#
# make-demo.sh DIR FAKELLAMA_BIN — a demo pool of stand-in servers.
#
# Writes DIR/models (five small fakellama model files) and DIR/poold.json
# pointing at them, so "make run" shows poold starting, sharing and
# evicting servers without a real model.  Re-running overwrites both.

set -eu

usage() {
	echo "usage: make-demo.sh dir fakellama-bin" >&2
	exit 1
}

# The config is JSON: refuse paths that would need escaping.
check_path() {
	case $1 in
	*[\"\\]*)
		echo "make-demo.sh: cannot put '$1' in JSON" >&2
		exit 1 ;;
	esac
}

[ $# -eq 2 ] || usage
mkdir -p "$1/models"
dir=$(cd "$1" && pwd)
bindir=$(cd "$(dirname "$2")" && pwd)
bin=$bindir/$(basename "$2")
check_path "$dir"
check_path "$bin"

# Four models fit the 48M slot poold accounts each; tiny-e needs 64M and
# says so in the config ("models"), as a big model of a real pool would.
for m in a b c d e; do
	mem=32M
	[ "$m" = e ] && mem=64M
	cat > "$dir/models/tiny-$m.gguf" <<MODEL
# fakellama model file: see tests/fakellama.c
load_ms=300
mem=$mem
MODEL
done

cat > "$dir/poold.json" <<CONF
{
  "socket": "$dir/poold.sock",
  "state_file": "$dir/state.json",
  "models_dir": "$dir/models",
  "command": ["$bin", "-m", "{path}", "--host", "127.0.0.1",
              "--port", "{port}"],
  "memory_limit": "256M",
  "reserved": "0",
  "per_model": "48M",
  "ports": [18080, 18179],
  "idle_timeout": "5m",
  "models": { "tiny-e": { "memory": "80M" } }
}
CONF

echo "make-demo.sh: 5 models in $dir/models, config $dir/poold.json"
