#!/usr/bin/env bash
# The main job end to end on the embedded demo stack: make small multi-arch
# images (no registry, no download), make a key, pack a signed bundle, trust
# the key aboard, verify, import, list, then import release 2 over it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bins --examples
B=target/debug
W=${DEMO_DIR:-target/demo}
rm -rf "$W"; mkdir -p "$W"
target/debug/examples/demo-images "$W"
export TENDER_STORE=$PWD/$W/ship-store
set -x
$B/tender-shore keygen --out "$W/ci"
$B/tender-shore pack "$W/stack-v1.yaml" --key "$W/ci.key" --sequence 1 --out "$W/awareness-1.0.0.tender"
$B/tender-ship trust add "$W/ci.pub"
$B/tender-ship verify "$W/awareness-1.0.0.tender"
$B/tender-ship import "$W/awareness-1.0.0.tender"
$B/tender-shore pack "$W/stack-v2.yaml" --key "$W/ci.key" --sequence 2 --out "$W/awareness-1.1.0.tender"
$B/tender-ship import "$W/awareness-1.1.0.tender"
$B/tender-ship list
$B/tender-ship fsck
# What `apply` would push and apply (no registry or cluster needed to see it):
$B/tender-ship apply awareness --dry-run --registry localhost:32000 > "$W/rendered.yaml"
head -n 20 "$W/rendered.yaml"
$B/tender-ship status
