//! Writes the demo stack: small multi-arch OCI images made here (no registry,
//! no download), their Kubernetes manifests, and stack files for two releases.
//!
//!     cargo run --example demo-images -- DIR

#[path = "../tests/support/oci.rs"]
mod oci;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "demo".into());
    let dir = std::path::Path::new(&dir);
    for release in [1, 2] {
        oci::write_demo_stack(dir, release);
    }
    println!("wrote {}: stack-v1.yaml, stack-v2.yaml, stack/, layouts/", dir.display());
}
