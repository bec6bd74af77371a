//! Descriptor, signatures, entry names and tar headers over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = tender_bundle::Descriptor::parse(data) {
        // Whatever parses re-serializes and parses to the same value.
        assert_eq!(tender_bundle::Descriptor::parse(&d.to_bytes()).unwrap(), d);
    }
    let _ = serde_json::from_slice::<tender_bundle::Signatures>(data);
    if let Some(name) = tender_bundle::EntryName::parse(data) {
        // One name per entry: what parses is how the writer spells it.
        assert_eq!(name.path().as_bytes(), data);
    }
    if let Some(block) = data.get(..512) {
        if let Ok(h) = tender_bundle::EntryHeader::parse(block.try_into().unwrap(), 0) {
            assert!(matches!(block[156], b'0'));
            assert_eq!(h.name.path().as_bytes(), &block[..h.name.path().len()]);
        }
    }
});
