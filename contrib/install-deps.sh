#!/bin/sh
# Installs what poold needs to build and test: libev, jansson, check,
# pkg-config, mandoc (man page lint), Node.js (contrib/node tests) and
# libfaketime (check_clock: a wall-clock jump under poold), llhttp (the
# HTTP front door's parser), libcurl and etcd (the etcd client and its
# tests), nftables and iproute2 (check_cluster's link cuts), chromium
# (check_metrics loads the status page in it, headless) and prometheus
# (its promtool checks GET /metrics).  On macOS Chromium is optional:
# check_metrics skips the browser case without it (set CHROMIUM_BIN to
# a Chromium or Chrome binary to run it).
# Debian/Ubuntu (apt-get) or macOS (Homebrew).  Idempotent.
set -eu

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if command -v apt-get >/dev/null 2>&1; then
	pkgs="build-essential pkg-config libev-dev libjansson-dev check mandoc socat"
	pkgs="$pkgs faketime libfaketime"
	pkgs="$pkgs libcurl4-openssl-dev etcd-server openssl nftables iproute2"
	pkgs="$pkgs chromium prometheus"
	command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
	# llhttp: a library from Debian 13 on; bookworm ships its C sources.
	if apt-cache show libllhttp-dev >/dev/null 2>&1; then
		pkgs="$pkgs libllhttp-dev"
	else
		pkgs="$pkgs node-llhttp"
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs
elif command -v brew >/dev/null 2>&1; then
	brew install libev jansson check pkg-config mandoc socat node libfaketime \
	    llhttp curl etcd prometheus
else
	echo "install-deps: need apt-get (Debian/Ubuntu) or brew (macOS)" >&2
	exit 1
fi
