//! The bundle reader over arbitrary bytes: never panics, never accepts
//! what it cannot verify. The trusted key is fixed so that seeds made with
//! `fuzz/seed-key.pem` get past the signature and exercise the blob path.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tender_bundle::{NoProgress, VerifyOnly, read_bundle};
use tender_keys::{SigningKey, Trust};

const SEED_KEY: &str = include_str!("../seed-key.pem");

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_pem(SEED_KEY).expect("seed key parses");
    let trust = Trust::new(vec![key.public()]);
    let _ = read_bundle(data, Path::new("fuzz"), &trust, &mut VerifyOnly, &NoProgress);
});
