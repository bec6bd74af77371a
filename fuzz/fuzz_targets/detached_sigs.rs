//! The detached signatures file (`BUNDLE.sig`) parser over arbitrary bytes:
//! never panics, and what it accepts it writes back the same.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tender_bundle::{Signatures, parse_detached};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.tender.sig");
    if let Ok(signatures) = parse_detached(data, path) {
        let again = serde_json::to_vec_pretty(&Signatures { signatures: signatures.clone() })
            .expect("signatures serialize");
        assert_eq!(parse_detached(&again, path).unwrap(), signatures);
    }
});
