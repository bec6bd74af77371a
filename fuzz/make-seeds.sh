#!/usr/bin/env bash
# (Re)make the seed corpus from the demo stack, signed with fuzz/seed-key.pem
# (a key for fuzzing only, trusted by nothing else), and hostile variants of
# it (every tar entry type, pax and GNU headers, odd header fields, bad
# detached signatures files). Seeds already there are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
s=fuzz/seeds
if [ ! -f $s/bundle_reader/demo.tender ]; then
  cargo build -q --bins --examples
  w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
  "$target"/debug/examples/demo-images "$w" >/dev/null
  "$target"/debug/tender-shore pack "$w/stack-v1.yaml" --key fuzz/seed-key.pem --sequence 1 --out "$w/demo.tender" >/dev/null
  mkdir -p $s/{bundle_reader,descriptor,stack_file,k8s_manifest}
  cp "$w/demo.tender" $s/bundle_reader/
  tar -xOf "$w/demo.tender" tender/descriptor.json > $s/descriptor/descriptor.json
  tar -xOf "$w/demo.tender" tender/signatures.json > $s/descriptor/signatures.json
  cp "$w/stack-v1.yaml" $s/stack_file/
  cp "$w"/stack/v1/*.yaml $s/k8s_manifest/
fi
if [ ! -f $s/bundle_reader/hostile-pax.tender ]; then
  cargo build -q --example fuzz-seeds
  "$target"/debug/examples/fuzz-seeds $s/bundle_reader/demo.tender $s/bundle_reader >/dev/null
fi
if [ ! -f $s/descriptor/header.bin ]; then
  head -c 512 $s/bundle_reader/demo.tender > $s/descriptor/header.bin
fi
if [ ! -d $s/detached_sigs ]; then
  mkdir -p $s/detached_sigs
  cp $s/descriptor/signatures.json $s/detached_sigs/good.sig
  printf '{"signatures": []}' > $s/detached_sigs/empty.sig
  printf '{"signatures": [], "x": 1}' > $s/detached_sigs/extra-field.sig
  printf '{"signatures": [{"keyid": "%064d", "sig": "AA=="}]}' 0 > $s/detached_sigs/short-sig.sig
fi
if [ ! -d $s/receipt ]; then
  # A ship's receipt (a store holding nothing, fsck run), signed with the
  # seed key as the ship's key.
  cargo build -q --bins
  w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
  "$target"/debug/tender-shore keygen --out "$w/ci" >/dev/null
  "$target"/debug/tender-ship --store "$w/store" trust add "$w/ci.pub" >/dev/null
  install -m 600 fuzz/seed-key.pem "$w/store/ship.key"
  "$target"/debug/tender-ship --store "$w/store" keygen --name "MV Seed" >/dev/null 2>&1
  "$target"/debug/tender-ship --store "$w/store" fsck >/dev/null
  mkdir -p $s/receipt
  "$target"/debug/tender-ship --store "$w/store" report --out $s/receipt/empty.json >/dev/null
fi
