//! Receipt parsing (`tender-shore fleet ingest`) over arbitrary bytes.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tender_bundle::receipt::Receipt;

static KEY: LazyLock<tender_keys::PublicKey> = LazyLock::new(|| {
    tender_keys::SigningKey::from_pem(include_str!("../seed-key.pem")).unwrap().public()
});

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Receipt::parse(data) {
        // Whatever parses re-serializes and parses to the same value, its
        // signing message is computed, and a check against a key returns
        // (never panics).
        assert_eq!(Receipt::parse(&r.to_bytes()).unwrap(), r);
        let _ = r.signing_message();
        let _ = r.created_time();
        let _ = r.verify(&KEY);
    }
});
