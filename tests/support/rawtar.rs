//! Tar entries byte for byte, for hostile bundles: headers as they stand
//! in the file, edited field by field (tests, and the fuzz seeds of
//! `examples/fuzz-seeds.rs`).
#![allow(dead_code)]

/// One tar entry as it stands in the file: its header block and its data.
#[derive(Clone)]
pub struct Raw {
    pub header: [u8; 512],
    pub data: Vec<u8>,
}

impl Raw {
    /// A regular file as tender's writer makes it.
    pub fn file(name: &str, data: Vec<u8>) -> Raw {
        Raw::of_type(name, data, tar::EntryType::Regular)
    }

    pub fn of_type(name: &str, data: Vec<u8>, t: tar::EntryType) -> Raw {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(t);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        Raw { header: *h.as_bytes(), data }
    }

    pub fn name(&self) -> String {
        let n = &self.header[..100];
        String::from_utf8_lossy(&n[..n.iter().position(|&b| b == 0).unwrap_or(100)]).into()
    }

    /// Edit the header bytes, then fix the checksum (so that only the edit
    /// is hostile).
    pub fn edit(mut self, f: impl FnOnce(&mut [u8; 512])) -> Raw {
        f(&mut self.header);
        let mut h = tar::Header::from_byte_slice(&self.header).clone();
        h.set_cksum();
        self.header = *h.as_bytes();
        self
    }
}

pub fn raw_entries(bytes: &[u8]) -> Vec<Raw> {
    let (mut out, mut at) = (Vec::new(), 0);
    loop {
        let header: [u8; 512] = bytes[at..at + 512].try_into().unwrap();
        if header.iter().all(|&b| b == 0) {
            return out;
        }
        let size = tar::Header::from_byte_slice(&header).entry_size().unwrap() as usize;
        out.push(Raw { header, data: bytes[at + 512..at + 512 + size].to_vec() });
        at += 512 + size.div_ceil(512) * 512;
    }
}

/// The entries as a tar file, with the end marker.
pub fn tar_of(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.header);
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Offset of entry `i`'s header.
pub fn offset_of(entries: &[Raw], i: usize) -> u64 {
    entries[..i].iter().map(|e| 512 + e.data.len().div_ceil(512) as u64 * 512).sum()
}

/// A pax record `LEN key=value\n`, LEN counting itself.
pub fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}
