#!/usr/bin/env bash
# (Re)make the seed corpus from the demo stack, signed with fuzz/seed-key.pem
# (a key for fuzzing only, trusted by nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f fuzz/seeds/bundle_reader/demo.tender ] && exit 0
cargo build -q --bins --examples
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
target/debug/examples/demo-images "$w" >/dev/null
target/debug/tender-shore pack "$w/stack-v1.yaml" --key fuzz/seed-key.pem --sequence 1 --out "$w/demo.tender" >/dev/null
mkdir -p fuzz/seeds/{bundle_reader,descriptor,stack_file,k8s_manifest}
cp "$w/demo.tender" fuzz/seeds/bundle_reader/
tar -xOf "$w/demo.tender" tender/descriptor.json > fuzz/seeds/descriptor/descriptor.json
tar -xOf "$w/demo.tender" tender/signatures.json > fuzz/seeds/descriptor/signatures.json
cp "$w/stack-v1.yaml" fuzz/seeds/stack_file/
cp "$w"/stack/v1/*.yaml fuzz/seeds/k8s_manifest/
