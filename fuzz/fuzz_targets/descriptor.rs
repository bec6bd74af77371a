//! Descriptor and signatures parsing over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = tender_bundle::Descriptor::parse(data) {
        // Whatever parses re-serializes and parses to the same value.
        assert_eq!(tender_bundle::Descriptor::parse(&d.to_bytes()).unwrap(), d);
    }
    let _ = serde_json::from_slice::<tender_bundle::Signatures>(data);
    let _ = tender_bundle::EntryName::parse(data);
});
