#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 60) each, from the seed corpus.
#   fuzz/run.sh [SECONDS]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain,
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the nightly flags it needs.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
export RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-1}
./make-seeds.sh
for t in bundle_reader descriptor detached_sigs stack_file k8s_manifest artifact_manifest keyring receipt patch_frames gunzip; do
  mkdir -p "corpus/$t"
  cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -rss_limit_mb=512 2>&1 | tail -n 3
done
