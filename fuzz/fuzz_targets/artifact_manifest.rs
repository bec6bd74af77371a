//! The artifact manifest a pull reads from a registry, over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tender_bundle::limits::{MAX_DESCRIPTOR_BYTES, MAX_SIGNATURES_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = tender_bundle::artifact::parse_artifact(data) {
        // Whatever is accepted is within the limits a pull then reads under.
        assert!(r.descriptor_size <= MAX_DESCRIPTOR_BYTES);
        assert!(r.signatures_size <= MAX_SIGNATURES_BYTES);
    }
});
