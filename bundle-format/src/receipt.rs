//! A ship's receipt (`tender-ship report`): what it holds, what runs and
//! how it is, signed with the ship's own key. Written aboard, read on shore
//! (`tender-shore fleet ingest`): the format both sides meet in.
//!
//! A receipt is untrusted input on shore until its signature verified
//! against the key the fleet holds for the ship it names, and it is parsed
//! with the same kind of bounds as a descriptor: a size cap known before
//! the first byte is read ([`MAX_RECEIPT_BYTES`]), caps on every list and
//! string, unknown fields refused.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tender_keys::{KeyId, PublicKey, Signature, Trust};

use crate::inventory::{INVENTORY_FORMAT, Inventory};
use crate::{BundleError, Digest, StackName, Version};

/// The receipt format `tender-ship report` writes.
pub const RECEIPT_FORMAT: &str = "tender-receipt/1";
/// Largest receipt read: the descriptor's bound (a ship's inventory lists
/// at most as many blobs as a descriptor may; a fleet stack's receipt is a
/// few KB).
pub const MAX_RECEIPT_BYTES: u64 = crate::limits::MAX_DESCRIPTOR_BYTES;
/// Most stacks, versions per stack, history events per stack and missing
/// settings per stack a receipt may list.
pub const MAX_RECEIPT_ITEMS: usize = 1000;
/// Longest free text (an event's detail, a health reason) a receipt may carry.
pub const MAX_RECEIPT_TEXT: usize = 4096;
/// Most signatures on a receipt.
const MAX_RECEIPT_SIGNATURES: usize = 16;

/// A ship's name, as the captain gave it (`tender-ship keygen --name "MV
/// Aurora"`): 1 to 64 of `A-Z a-z 0-9`, space, `.`, `_`, `-`, starting with
/// a letter or digit and not ending with a space. Its [`ShipName::slug`]
/// names files (`STACK-VERSION-for-SLUG.tender`, the fleet directory's
/// entry): lower case, spaces as `-`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShipName(String);

impl ShipName {
    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's file-name form: lower case, spaces as `-` ("mv-aurora").
    pub fn slug(&self) -> String {
        self.0.chars().map(|c| if c == ' ' { '-' } else { c.to_ascii_lowercase() }).collect()
    }
}

impl TryFrom<String> for ShipName {
    type Error = BundleError;
    fn try_from(s: String) -> Result<Self, BundleError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && !s.ends_with(' ')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
        if ok {
            Ok(ShipName(s))
        } else {
            Err(BundleError::InvalidName {
                what: "ship name (1-64 of A-Z a-z 0-9 space . _ -, starting with a letter or digit)",
                value: s.chars().take(80).collect(),
            })
        }
    }
}

impl std::str::FromStr for ShipName {
    type Err = BundleError;
    fn from_str(s: &str) -> Result<Self, BundleError> {
        ShipName::try_from(s.to_owned())
    }
}

impl From<ShipName> for String {
    fn from(n: ShipName) -> String {
        n.0
    }
}

impl fmt::Display for ShipName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A ship's signed receipt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    /// The ship.
    pub ship: ShipName,
    /// The key that signs its receipts (`tender-ship keygen`).
    pub keyid: KeyId,
    /// Rises with every receipt the ship writes: two receipts within one
    /// second are still ordered.
    pub sequence: u64,
    /// When it was written, RFC 3339 (the ship's clock).
    pub created: String,
    /// When the receipt before it was written, if there was one: the
    /// history below is what happened since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Bytes free for tender on the store's filesystem.
    pub free_bytes: u64,
    /// The last `fsck` and how it ended, if one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsck: Option<FsckSummary>,
    /// Per stack held.
    pub stacks: Vec<ReceiptStack>,
    /// What the store holds (as `tender-ship inventory` gives it, unsigned:
    /// the receipt's signature covers it).
    pub inventory: Inventory,
    /// Signatures by the ship's key over [`Receipt::signing_message`].
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

/// The last `fsck` aboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsckSummary {
    /// When it ran, RFC 3339.
    pub at: String,
    /// No corrupt or stray blob.
    pub clean: bool,
    /// Blobs re-hashed.
    pub blobs_checked: u64,
    /// Blobs whose content did not match their name.
    pub corrupt: u64,
    /// Files in blobs/ not named by a digest.
    pub stray: u64,
}

/// One stack aboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptStack {
    /// The stack.
    pub stack: StackName,
    /// The version in force, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_force: Option<InForce>,
    /// The health of the version in force in the cluster.
    pub health: Health,
    /// The versions held.
    pub versions: Vec<HeldVersion>,
    /// Apply attempts since the previous receipt, oldest first.
    pub history: Vec<Event>,
    /// Settings versions held need that this ship has not set (or set to a
    /// value their pattern refuses).
    pub settings_not_set: Vec<SettingGap>,
}

/// The version in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InForce {
    /// Version.
    pub version: Version,
    /// Sequence.
    pub sequence: u64,
    /// Its descriptor's digest.
    pub digest: Digest,
}

/// How the version in force is in the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// What is known.
    pub state: HealthState,
    /// Objects ready, of `total` (when the cluster was read).
    #[serde(default)]
    pub ready: u64,
    /// Objects of the version in force (when the cluster was read).
    #[serde(default)]
    pub total: u64,
    /// Why it is unknown or not healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Health {
    /// Unknown, for `reason`.
    pub fn unknown(reason: impl Into<String>) -> Health {
        let mut reason: String = reason.into();
        truncate(&mut reason);
        Health { state: HealthState::Unknown, ready: 0, total: 0, reason: Some(reason) }
    }
}

/// The health's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthState {
    /// Every object of the version in force is ready.
    Healthy,
    /// Some are not.
    Unhealthy,
    /// No version in force.
    NothingInForce,
    /// The cluster could not be read (no kubeconfig, or it did not answer).
    Unknown,
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::NothingInForce => "nothing in force",
            HealthState::Unknown => "unknown",
        })
    }
}

/// A version held aboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldVersion {
    /// Version.
    pub version: Version,
    /// Sequence.
    pub sequence: u64,
    /// Its descriptor's digest.
    pub digest: Digest,
    /// Every blob is held.
    pub complete: bool,
    /// Bytes of all its blobs.
    pub size: u64,
    /// Bytes not held yet.
    pub bytes_missing: u64,
    /// Media parts it was split into.
    pub parts: u32,
    /// Parts not all held.
    pub parts_missing: Vec<u32>,
}

/// One apply attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Version.
    pub version: Version,
    /// Sequence.
    pub sequence: u64,
    /// When, RFC 3339.
    pub at: String,
    /// How it ended.
    pub outcome: EventOutcome,
    /// What failed, or what was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How an apply attempt ended (the store's history outcomes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventOutcome {
    /// Applied.
    Applied,
    /// Images loaded only.
    Loaded,
    /// Failed.
    Failed,
    /// Failed, and the version before was put back.
    RolledBack,
}

impl EventOutcome {
    /// Whether the attempt failed.
    pub fn failed(self) -> bool {
        matches!(self, EventOutcome::Failed | EventOutcome::RolledBack)
    }
}

/// A setting a version held needs and the ship has not set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingGap {
    /// The version that needs it.
    pub version: Version,
    /// The setting.
    pub name: String,
    /// `missing` or `invalid`.
    pub state: String,
}

/// Cut `s` to [`MAX_RECEIPT_TEXT`] bytes (at a character boundary).
pub fn truncate(s: &mut String) {
    if s.len() > MAX_RECEIPT_TEXT {
        let mut end = MAX_RECEIPT_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[derive(Deserialize)]
struct FormatProbe {
    format: String,
}

impl Receipt {
    /// The signed bytes: a context line and the receipt without its
    /// signatures, as serde writes it (field order fixed by these structs).
    pub fn signing_message(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signatures.clear();
        let mut m = b"tender-receipt/1\n".to_vec();
        m.extend(serde_json::to_vec(&unsigned).expect("a receipt serializes"));
        m
    }

    /// The bytes written (pretty JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a receipt serializes")
    }

    /// Parse untrusted bytes: at most [`MAX_RECEIPT_BYTES`], the format
    /// first, unknown fields refused, every list and string within its cap.
    /// The signature is not checked here: see [`Receipt::verify`].
    pub fn parse(bytes: &[u8]) -> Result<Receipt, BundleError> {
        if bytes.len() as u64 > MAX_RECEIPT_BYTES {
            return Err(BundleError::TooLarge {
                entry: "receipt".into(),
                size: bytes.len() as u64,
                limit: MAX_RECEIPT_BYTES,
            });
        }
        let bad = |m: String| BundleError::BadReceipt(m);
        let probe: FormatProbe = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if probe.format != RECEIPT_FORMAT {
            return Err(bad(format!(
                "format {:?}, not {RECEIPT_FORMAT}",
                probe.format.chars().take(64).collect::<String>()
            )));
        }
        let r: Receipt = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        r.validate()?;
        Ok(r)
    }

    /// Caps and consistency, for what [`Receipt::parse`] read.
    pub fn validate(&self) -> Result<(), BundleError> {
        let bad = |m: String| Err(BundleError::BadReceipt(m));
        let time = |what: &str, t: &str| {
            humantime::parse_rfc3339(t).map(|_| ()).map_err(|_| {
                BundleError::BadReceipt(format!("{what} {t:?} is not an RFC 3339 time"))
            })
        };
        time("created", &self.created)?;
        if let Some(p) = &self.previous {
            time("previous", p)?;
        }
        if let Some(f) = &self.fsck {
            time("fsck.at", &f.at)?;
        }
        if self.signatures.len() > MAX_RECEIPT_SIGNATURES {
            return bad(format!("{} signatures", self.signatures.len()));
        }
        let inv = &self.inventory;
        if inv.format != INVENTORY_FORMAT || !inv.signatures.is_empty() {
            return bad("its inventory must be an unsigned tender-inventory/1".into());
        }
        time("inventory.created", &inv.created)?;
        if inv.blobs.len() > crate::limits::MAX_BLOBS {
            return bad(format!(
                "{} blobs, more than {}",
                inv.blobs.len(),
                crate::limits::MAX_BLOBS
            ));
        }
        let many = |what: &str, n: usize| {
            if n > MAX_RECEIPT_ITEMS {
                Err(BundleError::BadReceipt(format!("{n} {what}, more than {MAX_RECEIPT_ITEMS}")))
            } else {
                Ok(())
            }
        };
        many("inventory versions", inv.versions.len())?;
        many("stacks", self.stacks.len())?;
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.stacks {
            if !seen.insert(&s.stack) {
                return bad(format!("stack {} listed twice", s.stack));
            }
            many("versions", s.versions.len())?;
            many("history events", s.history.len())?;
            many("missing settings", s.settings_not_set.len())?;
            let texts = s
                .history
                .iter()
                .filter_map(|e| e.detail.as_deref())
                .chain(s.health.reason.as_deref())
                .chain(s.settings_not_set.iter().flat_map(|g| [g.name.as_str(), g.state.as_str()]));
            for t in texts {
                if t.len() > MAX_RECEIPT_TEXT {
                    return bad(format!("a text of {} bytes in stack {}", t.len(), s.stack));
                }
            }
            for e in &s.history {
                time("history.at", &e.at)?;
            }
            for v in &s.versions {
                if v.parts_missing.len() > crate::limits::MAX_PARTS as usize {
                    return bad(format!("{} parts missing", v.parts_missing.len()));
                }
            }
        }
        Ok(())
    }

    /// When it was written (checked by [`Receipt::validate`]).
    pub fn created_time(&self) -> SystemTime {
        humantime::parse_rfc3339(&self.created).unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Sign with the ship's key (replacing any signature).
    pub fn sign(&mut self, key: &tender_keys::SigningKey) {
        self.signatures.clear();
        let sig = key.sign(&self.signing_message());
        self.signatures.push(sig);
    }

    /// Check that `key` is the key the receipt names and that it signed it.
    pub fn verify(&self, key: &PublicKey) -> Result<(), BundleError> {
        if key.key_id() != self.keyid {
            return Err(BundleError::BadReceipt(format!(
                "it names key {}, not {}",
                self.keyid,
                key.key_id()
            )));
        }
        Trust::new(vec![key.clone()]).verify(&self.signing_message(), &self.signatures)?;
        Ok(())
    }
}

/// The artifact type of a receipt pushed to a registry (`report --to`).
pub const RECEIPT_ARTIFACT_TYPE: &str = "application/vnd.tender.receipt.v1";
/// The media type of its one layer: the receipt's bytes.
pub const RECEIPT_MEDIA_TYPE: &str = "application/vnd.tender.receipt.v1+json";
/// The OCI empty config (`{}`), as artifacts without a config carry.
const EMPTY_CONFIG: &[u8] = b"{}";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Largest receipt artifact manifest read (it names two small blobs).
pub const MAX_RECEIPT_MANIFEST_BYTES: u64 = 64 << 10;

/// A receipt as an OCI artifact: the manifest, and the documents it names
/// (the empty config and the receipt), each with its digest.
pub fn receipt_artifact(receipt: &[u8], ship: &ShipName) -> (Vec<u8>, Vec<(Digest, Vec<u8>)>) {
    let layer = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": Digest::of(b), "size": b.len()});
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::media::MediaType::ImageManifest,
        "artifactType": RECEIPT_ARTIFACT_TYPE,
        "config": layer(EMPTY_MEDIA_TYPE, EMPTY_CONFIG),
        "layers": [layer(RECEIPT_MEDIA_TYPE, receipt)],
        "annotations": {"io.tender.ship": ship.as_str()},
    });
    let docs = vec![
        (Digest::of(EMPTY_CONFIG), EMPTY_CONFIG.to_vec()),
        (Digest::of(receipt), receipt.to_vec()),
    ];
    (serde_json::to_vec(&manifest).expect("serializes"), docs)
}

/// The receipt layer a receipt artifact manifest names: its digest and
/// size (at most [`MAX_RECEIPT_BYTES`]). Anything else is refused.
pub fn parse_receipt_artifact(bytes: &[u8]) -> Result<(Digest, u64), BundleError> {
    #[derive(Deserialize)]
    struct Layer {
        #[serde(rename = "mediaType")]
        media_type: String,
        digest: Digest,
        size: u64,
    }
    #[derive(Deserialize)]
    struct Manifest {
        #[serde(rename = "artifactType", default)]
        artifact_type: Option<String>,
        layers: Vec<Layer>,
    }
    let bad = |m: String| BundleError::BadReceipt(format!("not a tender receipt artifact: {m}"));
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if m.artifact_type.as_deref() != Some(RECEIPT_ARTIFACT_TYPE) {
        return Err(bad(format!("artifact type {:?}", m.artifact_type)));
    }
    match &m.layers[..] {
        [l] if l.media_type == RECEIPT_MEDIA_TYPE && l.size <= MAX_RECEIPT_BYTES => {
            Ok((l.digest.clone(), l.size))
        }
        _ => Err(bad("it must have one receipt layer of at most 16 MiB".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(key: &tender_keys::SigningKey) -> Receipt {
        let d = Digest::of(b"x");
        let mut r = Receipt {
            format: RECEIPT_FORMAT.into(),
            ship: "MV Aurora".parse().unwrap(),
            keyid: key.public().key_id(),
            sequence: 3,
            created: "2026-11-01T00:00:00Z".into(),
            previous: Some("2026-10-01T00:00:00Z".into()),
            free_bytes: 1 << 30,
            fsck: Some(FsckSummary {
                at: "2026-10-30T00:00:00Z".into(),
                clean: true,
                blobs_checked: 4,
                corrupt: 0,
                stray: 0,
            }),
            stacks: vec![ReceiptStack {
                stack: "awareness".parse().unwrap(),
                in_force: Some(InForce {
                    version: "1.0.0".parse().unwrap(),
                    sequence: 1,
                    digest: d.clone(),
                }),
                health: Health::unknown("no kubeconfig"),
                versions: vec![HeldVersion {
                    version: "1.0.0".parse().unwrap(),
                    sequence: 1,
                    digest: d.clone(),
                    complete: true,
                    size: 10,
                    bytes_missing: 0,
                    parts: 1,
                    parts_missing: vec![],
                }],
                history: vec![Event {
                    version: "1.0.0".parse().unwrap(),
                    sequence: 1,
                    at: "2026-10-02T00:00:00Z".into(),
                    outcome: EventOutcome::Applied,
                    detail: None,
                }],
                settings_not_set: vec![],
            }],
            inventory: Inventory {
                format: INVENTORY_FORMAT.into(),
                created: "2026-11-01T00:00:00Z".into(),
                blobs: vec![d],
                versions: vec![],
                signatures: vec![],
            },
            signatures: vec![],
        };
        r.sign(key);
        r
    }

    #[test]
    fn receipt_round_trips_and_verifies() {
        let key = tender_keys::SigningKey::generate().unwrap();
        let r = sample(&key);
        let back = Receipt::parse(&r.to_bytes()).unwrap();
        assert_eq!(back, r);
        back.verify(&key.public()).unwrap();
    }

    #[test]
    fn receipt_altered_or_by_another_key_is_refused() {
        let key = tender_keys::SigningKey::generate().unwrap();
        let other = tender_keys::SigningKey::generate().unwrap();
        let mut r = sample(&key);
        r.free_bytes += 1;
        assert!(r.verify(&key.public()).is_err());
        let r = sample(&key);
        assert!(r.verify(&other.public()).is_err());
        // Signed by another key while naming this one: the forged signature
        // names an unknown key, so nothing verifies.
        let mut forged = sample(&key);
        forged.signatures = vec![other.sign(&forged.signing_message())];
        assert!(forged.verify(&key.public()).is_err());
    }

    #[test]
    fn receipt_bounds() {
        let key = tender_keys::SigningKey::generate().unwrap();
        let bytes = sample(&key).to_bytes();
        // Truncated anywhere: refused, never a panic.
        for n in (0..bytes.len()).step_by(7) {
            assert!(Receipt::parse(&bytes[..n]).is_err(), "{n}");
        }
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["extra"] = 1.into();
        let e = Receipt::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["format"] = "tender-receipt/2".into();
        assert!(Receipt::parse(&serde_json::to_vec(&v).unwrap()).is_err());
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["stacks"][0]["history"][0]["detail"] = "x".repeat(MAX_RECEIPT_TEXT + 1).into();
        assert!(Receipt::parse(&serde_json::to_vec(&v).unwrap()).is_err());
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["created"] = "yesterday".into();
        assert!(Receipt::parse(&serde_json::to_vec(&v).unwrap()).is_err());
        let big = vec![b' '; MAX_RECEIPT_BYTES as usize + 1];
        assert!(matches!(Receipt::parse(&big), Err(BundleError::TooLarge { .. })));
    }

    #[test]
    fn receipt_artifact_round_trip() {
        let key = tender_keys::SigningKey::generate().unwrap();
        let r = sample(&key);
        let bytes = r.to_bytes();
        let (m, docs) = receipt_artifact(&bytes, &r.ship);
        assert_eq!(parse_receipt_artifact(&m).unwrap(), (Digest::of(&bytes), bytes.len() as u64));
        assert_eq!(docs.len(), 2);
        let mut v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        v["layers"][0]["size"] = (MAX_RECEIPT_BYTES + 1).into();
        assert!(parse_receipt_artifact(&serde_json::to_vec(&v).unwrap()).is_err());
        v["artifactType"] = "application/vnd.tender.bundle.v1".into();
        assert!(parse_receipt_artifact(&serde_json::to_vec(&v).unwrap()).is_err());
    }

    #[test]
    fn ship_names() {
        let n: ShipName = "MV Aurora".parse().unwrap();
        assert_eq!(n.slug(), "mv-aurora");
        for bad in ["", " MV", "MV ", "../x", "a/b", ".hidden", "-x", "é", &"a".repeat(65)] {
            assert!(bad.parse::<ShipName>().is_err(), "{bad:?}");
        }
        for good in ["Aurora", "MV Aurora 2", "ship_3.b-c"] {
            good.parse::<ShipName>().unwrap();
        }
    }
}
