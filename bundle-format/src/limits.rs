//! Bounds on every size a reader takes from untrusted bytes.

/// Largest `tender/descriptor.json` accepted: 16 MiB (a stack of 10,000
/// blobs needs about 2 MiB).
pub const MAX_DESCRIPTOR_BYTES: u64 = 16 << 20;
/// Largest `tender/signatures.json` accepted.
pub const MAX_SIGNATURES_BYTES: u64 = 64 << 10;
/// Largest `index.json` and `oci-layout` accepted.
pub const MAX_INDEX_BYTES: u64 = 16 << 20;
/// Most blobs one descriptor may list.
pub const MAX_BLOBS: usize = 100_000;
/// Largest image index, manifest or config read into memory.
pub const MAX_JSON_BLOB_BYTES: u64 = 4 << 20;
/// Most media parts one version may be split into.
pub const MAX_PARTS: u32 = 9999;
/// Largest segment of a sub-layer patch: the ship holds two to four
/// decoded segments in memory while it rebuilds a layer (at most 64 MiB of
/// them unless two are more).
pub const MAX_PATCH_SEGMENT: u64 = 128 << 20;
/// Largest margin of a sub-layer patch: the window of the base layer a
/// segment is decoded against reaches this far either side (so the ship
/// holds at most a segment plus two margins of the base).
pub const MAX_PATCH_MARGIN: u64 = 128 << 20;
/// Largest margin of a sub-layer patch in segments: what a rebuild moves
/// within its window per segment then stays in proportion to the segment
/// it writes (the shore's margin is one segment).
pub const MAX_PATCH_MARGIN_SEGMENTS: u64 = 4;
/// Largest zstd window (log2) a patch frame may use (1 GiB).
pub const MAX_PATCH_WINDOW_LOG: u32 = 30;
/// Largest Kubernetes manifest file read aboard to render and apply (a
/// stack's YAML; a large CRD is about 1 MiB).
pub const MAX_KUBERNETES_FILE_BYTES: u64 = 16 << 20;

/// Most settings a descriptor may declare (each pattern is compiled aboard).
pub const MAX_SETTINGS: usize = 1000;
