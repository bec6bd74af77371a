//! Progress reporting: libraries report, the CLI renders.

/// Receives progress from long operations. Every method has a no-op default.
pub trait Progress: Sync {
    /// A phase starts; `total_bytes` is what it will move, when known.
    fn start(&self, _phase: &str, _total_bytes: u64) {}
    /// `bytes` more were moved.
    fn advance(&self, _bytes: u64) {}
    /// `bytes` of the phase were done before it started (what a resumed
    /// pull kept): counted as done, but not in the rate.
    fn skip(&self, bytes: u64) {
        self.advance(bytes);
    }
    /// The current item (a blob, an image) changed.
    fn item(&self, _name: &str) {}
    /// The phase ended.
    fn finish(&self) {}
    /// What a phase without bytes is at, in words (what apply waits for:
    /// "1 of 4 ready; waiting for Deployment awareness/sensor-fusion: 0 of 1 ready").
    fn note(&self, _line: &str) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
