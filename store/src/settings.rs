//! What this ship set for each stack: setting values and local patches,
//! kept apart from versions (`STORE/settings/<stack>.json`, 0600) so they
//! survive updates. The store keeps them and judges values against the
//! declarations versions carry; what a patch means to Kubernetes is the
//! deploy crate's business.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tender_bundle::settings::{Setting, SettingName, SettingProblem, resolve_all};
use tender_bundle::{Descriptor, StackName};

use crate::fsutil::{check_private_dir, create_dirs, read_private, write_atomic};
use crate::{Store, StoreError};

/// The most a settings file may hold: values and patches are small.
const MAX_SETTINGS_FILE: u64 = 4 << 20;

/// One stack's settings aboard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSettings {
    /// Values by name.
    #[serde(default)]
    pub values: BTreeMap<SettingName, String>,
    /// Local patches by name (their file name): YAML text.
    #[serde(default)]
    pub patches: BTreeMap<String, String>,
    /// A random key (hex), made at the first write, that the record of the
    /// values used is hashed with: history and `status` show that hash, and
    /// an unkeyed hash of a short secret (a PIN) is a dictionary away from
    /// the secret, the other values being shown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
}

/// Which settings an apply used: their names, and a hash of the values
/// (never the values: some are secrets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsUsed {
    /// The names substituted.
    pub names: Vec<SettingName>,
    /// SHA-256 over the ship's key (see [`StackSettings::key`]),
    /// `NAME=VALUE\n` lines in name order, and the patches (`patch NAME\n`
    /// and its text) applied.
    pub sha256: String,
    /// The local patches applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<String>,
}

impl SettingsUsed {
    /// The record of `values` and `patches` used, hashed with `key`.
    pub fn of(
        key: &str,
        values: &BTreeMap<SettingName, String>,
        patches: &BTreeMap<String, String>,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(format!("key {key}\n"));
        for (k, v) in values {
            h.update(format!("{k}={v}\n"));
        }
        for (name, text) in patches {
            h.update(format!("patch {name}\n"));
            h.update(text);
        }
        SettingsUsed {
            names: values.keys().cloned().collect(),
            sha256: hex::encode(h.finalize()),
            patches: patches.keys().cloned().collect(),
        }
    }
}

/// One declared setting's state aboard, for `status` and `settings list`.
#[derive(Clone, Debug, Serialize)]
pub struct SettingState {
    /// Name.
    pub name: SettingName,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Required.
    pub required: bool,
    /// Secret: its value is never shown.
    pub secret: bool,
    /// The value in use: the ship's, `***` for a secret, the default, or
    /// None.
    pub value: Option<String>,
    /// `set`, `default`, `missing` (required, no value), `unset`
    /// (optional, no value) or `invalid` (does not match its pattern).
    pub state: &'static str,
}

impl Store {
    fn settings_path(&self, stack: &StackName) -> std::path::PathBuf {
        self.root.join("settings").join(format!("{stack}.json"))
    }

    /// What this ship set for `stack` (empty if nothing). Its local
    /// patches may add any field to a pod, so, like the trust files, it
    /// must be a regular file in a directory no other user can write, and
    /// itself not writable by them.
    pub fn settings(&self, stack: &StackName) -> Result<StackSettings, StoreError> {
        let path = self.settings_path(stack);
        check_private_dir(&self.root.join("settings"))?;
        let Some(bytes) = read_private(&path, MAX_SETTINGS_FILE)? else {
            return Ok(StackSettings::default());
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::BadRecord { path, reason: e.to_string() })
    }

    /// Change `stack`'s settings with `edit`, under the store's lock, and
    /// write them back (0600, atomically).
    pub fn edit_settings<T>(
        &self,
        stack: &StackName,
        edit: impl FnOnce(&mut StackSettings) -> T,
    ) -> Result<T, StoreError> {
        let _lock = self.lock()?;
        let mut s = self.settings(stack)?;
        let out = edit(&mut s);
        if s.key.is_empty() {
            s.key = random_key(&self.root)?;
        }
        let dir = self.root.join("settings");
        create_dirs(&dir)?;
        let bytes = serde_json::to_vec_pretty(&s).expect("settings serialize");
        // Never write what could not be read back: every later read
        // (list, apply, unset) would fail.
        if bytes.len() as u64 > MAX_SETTINGS_FILE {
            return Err(StoreError::BadRecord {
                path: self.settings_path(stack),
                reason: format!(
                    "the settings would take {} bytes, more than the {MAX_SETTINGS_FILE} a settings file may hold; nothing changed",
                    bytes.len()
                ),
            });
        }
        write_atomic(&dir, &format!("{stack}.json"), &bytes)?;
        Ok(out)
    }

    /// The settings `d` declares, resolved against what this ship set: the
    /// values to substitute, or every problem, naming the setting and the
    /// version (values are never shown).
    pub fn resolve_settings(
        &self,
        d: &Descriptor,
    ) -> Result<BTreeMap<SettingName, String>, StoreError> {
        let set = self.settings(&d.stack.name)?;
        resolve_all(&d.settings, &set.values).map_err(|problems| StoreError::Settings {
            stack: d.stack.name.clone(),
            version: d.stack.version.clone(),
            problems,
        })
    }

    /// What `d` needs that this ship has not set (or set to a value its
    /// declaration refuses), as warnings for `import`.
    pub fn settings_not_set(&self, d: &Descriptor) -> Result<Vec<String>, StoreError> {
        let (stack, version) = (&d.stack.name, &d.stack.version);
        Ok(self
            .setting_states(stack, &d.settings)?
            .into_iter()
            .filter(|s| matches!(s.state, "missing" | "invalid"))
            .map(|s| {
                format!(
                    "{stack} {version} needs setting {}, which is {} on this ship: `tender-ship settings set {stack} {}=...` before applying it",
                    s.name,
                    if s.state == "missing" { "not set" } else { "set to a value its pattern refuses" },
                    s.name
                )
            })
            .collect())
    }

    /// Each setting `declared` and its state aboard.
    pub fn setting_states(
        &self,
        stack: &StackName,
        declared: &[Setting],
    ) -> Result<Vec<SettingState>, StoreError> {
        let set = self.settings(stack)?;
        Ok(declared.iter().map(|s| state_of(s, set.values.get(&s.name))).collect())
    }
}

/// 32 random bytes, hex.
fn random_key(root: &std::path::Path) -> Result<String, StoreError> {
    use std::io::Read as _;
    let mut buf = [0u8; 32];
    let path = std::path::Path::new("/dev/urandom");
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| StoreError::Io { path: root.join("settings"), source: e })?;
    Ok(hex::encode(buf))
}

fn state_of(s: &Setting, set: Option<&String>) -> SettingState {
    let state = match (set, s.resolve(set.map(String::as_str))) {
        (_, Err(SettingProblem::Missing { .. })) => "missing",
        (_, Err(_)) => "invalid",
        (Some(_), Ok(_)) => "set",
        (None, Ok(Some(_))) => "default",
        (None, Ok(None)) => "unset",
    };
    let value =
        set.or(s.default.as_ref()).map(|v| if s.secret { "***".to_owned() } else { v.clone() });
    SettingState {
        name: s.name.clone(),
        description: s.description.clone(),
        required: s.required,
        secret: s.secret,
        value,
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_of_settings_used_hashes_values_and_never_holds_them() {
        let values: BTreeMap<SettingName, String> =
            [("AIS_TOKEN".parse().unwrap(), "s3cret".to_string())].into();
        let used = SettingsUsed::of("k", &values, &BTreeMap::new());
        let json = serde_json::to_string(&used).unwrap();
        assert!(json.contains("AIS_TOKEN") && !json.contains("s3cret"), "{json}");
        let other: BTreeMap<SettingName, String> =
            [("AIS_TOKEN".parse().unwrap(), "other".to_string())].into();
        assert_ne!(SettingsUsed::of("k", &other, &BTreeMap::new()).sha256, used.sha256);
    }

    #[test]
    fn states_mask_secrets() {
        let s: Setting =
            serde_json::from_str(r#"{"name": "AIS_TOKEN", "secret": true, "required": true}"#)
                .unwrap();
        assert_eq!(state_of(&s, None).state, "missing");
        let st = state_of(&s, Some(&"tok".to_string()));
        assert_eq!((st.state, st.value.as_deref()), ("set", Some("***")));
        let p: Setting =
            serde_json::from_str(r#"{"name": "N", "pattern": "[0-9]+", "default": "1"}"#).unwrap();
        assert_eq!(state_of(&p, None).state, "default");
        assert_eq!(state_of(&p, Some(&"x".to_string())).state, "invalid");
    }
}
