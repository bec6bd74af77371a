//! Sub-layer patch decoding (`tender_bundle::patch::apply_patch`) over
//! arbitrary bytes. A patch is signed, but a signer is trusted only for its
//! stack: what it decodes to must stay within a segment per frame, and bad
//! frames must be refused, never panic.
//!
//! Input: segment (2 bytes, 1 to 4096), margin / 16 (1 byte), frame count
//! (1 byte: bits 0-2 up to 7; bit 7 set: the frames' windows are given),
//! each frame's length (2 bytes each), with bit 7 each frame's window start
//! (2 bytes each, in any order: out of order must be refused), the base's
//! length (2 bytes), the base, then the patch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tender_bundle::patch::{Geometry, apply_patch};

fn u16_at(d: &[u8], i: usize) -> u64 {
    u16::from_le_bytes([*d.get(i).unwrap_or(&0), *d.get(i + 1).unwrap_or(&0)]) as u64
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let segment = 1 + u16_at(data, 0) % 4096;
    let margin = data[2] as u64 * 16;
    let count = (data[3] % 8) as usize;
    let frames: Vec<u64> = (0..count).map(|i| u16_at(data, 4 + 2 * i)).collect();
    let placed = if data[3] & 0x80 != 0 { count } else { 0 };
    let windows: Vec<u64> = (0..placed).map(|i| u16_at(data, 4 + 2 * (count + i))).collect();
    let at = (4 + 2 * (count + placed)).min(data.len());
    let base_len = (u16_at(data, at) as usize).min(data.len().saturating_sub(at + 2));
    let rest = data.get(at + 2..).unwrap_or(&[]);
    let (base, patch) = rest.split_at(base_len.min(rest.len()));
    let g = Geometry { segment, margin };
    let Ok(mut rebuild) = apply_patch(base, patch, &frames, g, &windows) else { return };
    assert!(windows.windows(2).all(|w| w[0] <= w[1]), "windows out of order accepted");
    let (mut seg, mut segments) = (Vec::new(), 0usize);
    while let Ok(true) = rebuild.decode_into(&mut seg) {
        segments += 1;
        // No frame decodes to more than a segment, nor more frames than listed.
        assert!(seg.len() as u64 <= segment, "{} bytes from a segment of {segment}", seg.len());
        assert!(segments <= frames.len());
    }
});
