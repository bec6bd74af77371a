//! gzip layers read without their CRC (`tender_bundle::gunzip`), against
//! flate2's own multi-member reader, both ways: whatever the bytes, no
//! panic; where flate2 reads them whole, the same bytes come out; and where
//! only this reader takes them, flate2 refused them for the CRC alone.
//! Output is capped so a small input cannot take the run's memory.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use tender_bundle::gunzip::Gunzip;

const CAP: u64 = 16 << 20;

fn read(r: impl Read) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(CAP).read_to_end(&mut v).map(|_| v)
}

fuzz_target!(|data: &[u8]| {
    let ours = Gunzip::new(data).and_then(read);
    let theirs = read(flate2::read::MultiGzDecoder::new(data));
    match (&ours, &theirs) {
        (_, Ok(t)) if (t.len() as u64) < CAP => {
            assert_eq!(ours.as_ref().ok(), Some(t), "flate2 reads {} bytes", t.len());
        }
        (Ok(o), Err(e)) if (o.len() as u64) < CAP => {
            assert!(e.to_string().contains("matching checksum"), "only flate2 refuses: {e}");
        }
        _ => {}
    }
});
