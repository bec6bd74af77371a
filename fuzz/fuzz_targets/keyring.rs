//! Keyring parsing and chain checks over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tender_keys::keyring::SignedKeyring;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = SignedKeyring::parse(data) {
        // Whatever parses re-serializes and parses to the same value, and a
        // chain check returns (never panics) whatever the keys.
        assert_eq!(SignedKeyring::parse(&k.to_bytes()).unwrap(), k);
        let _ = k.verify_successor(None, &[], 1);
        let _ = k.verify_successor(Some(&k.signed), &[], 1);
        let _ = k.signed.signer_keys(std::time::SystemTime::now());
    }
});
