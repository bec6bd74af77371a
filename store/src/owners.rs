//! Which stack owns which namespaces and registry repositories.
//!
//! A stack owns the namespaces it first applied into and the repositories
//! (paths in the ship's registry, without its host) it first loaded. Another
//! stack's apply or load that touches them is refused, so a key trusted for
//! one stack cannot reach into another's. Claims are never released by
//! tender itself: an owner changes only by editing `STORE/owners.json`.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};
use tender_bundle::StackName;

use crate::fsutil::write_atomic;
use crate::{Store, StoreError};

/// The file, in the store's root.
const FILE: &str = "owners.json";

/// `STORE/owners.json`: namespace -> stack, repository -> stack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owners {
    /// Namespaces, by name.
    #[serde(default)]
    pub namespaces: BTreeMap<String, StackName>,
    /// Repositories of the ship's registry, by path (`fleet/sensor-fusion`).
    #[serde(default)]
    pub repositories: BTreeMap<String, StackName>,
}

/// Something a stack can own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Claim {
    /// A Kubernetes namespace.
    Namespace(String),
    /// A repository of the ship's registry.
    Repository(String),
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Claim::Namespace(n) => write!(f, "namespace {n}"),
            Claim::Repository(r) => write!(f, "repository {r}"),
        }
    }
}

impl Owners {
    /// The stack owning `claim`, if any.
    pub fn owner(&self, claim: &Claim) -> Option<&StackName> {
        match claim {
            Claim::Namespace(n) => self.namespaces.get(n),
            Claim::Repository(r) => self.repositories.get(r),
        }
    }

    /// The first of `claims` that another stack than `stack` owns.
    pub fn conflict<'a>(
        &self,
        stack: &StackName,
        claims: impl IntoIterator<Item = &'a Claim>,
    ) -> Result<(), StoreError> {
        for c in claims {
            if let Some(owner) = self.owner(c).filter(|o| *o != stack) {
                return Err(StoreError::Owned {
                    claim: c.to_string(),
                    owner: owner.clone(),
                    stack: stack.clone(),
                });
            }
        }
        Ok(())
    }
}

impl Store {
    /// Who owns what (empty before any apply or load).
    pub fn owners(&self) -> Result<Owners, StoreError> {
        let path = self.root.join(FILE);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::BadRecord { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Owners::default()),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Make `stack` the owner of every one of `claims` nobody owns yet;
    /// refuse, writing nothing, if another stack owns any of them. Checked
    /// and written under the store's lock, so two applies cannot both
    /// claim the same namespace.
    pub fn claim(&self, stack: &StackName, claims: &[Claim]) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let mut owners = self.owners()?;
        owners.conflict(stack, claims)?;
        let before = owners.clone();
        for c in claims {
            let map = match c {
                Claim::Namespace(n) => owners.namespaces.entry(n.clone()),
                Claim::Repository(r) => owners.repositories.entry(r.clone()),
            };
            map.or_insert_with(|| stack.clone());
        }
        if owners == before {
            return Ok(());
        }
        let mut bytes = serde_json::to_vec_pretty(&owners).expect("owners serialize");
        bytes.push(b'\n');
        write_atomic(&self.root, FILE, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> StackName {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_stack_owns_and_others_are_refused_without_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        let ns = Claim::Namespace("awareness".into());
        let repo = Claim::Repository("fleet/sensor-fusion".into());
        store.claim(&name("awareness"), &[ns.clone(), repo.clone()]).unwrap();
        // Claiming again is a no-op for the owner.
        store.claim(&name("awareness"), std::slice::from_ref(&ns)).unwrap();
        let before = fs::read(dir.path().join(FILE)).unwrap();
        let radar = Claim::Namespace("radar".into());
        let e = store.claim(&name("radar"), &[radar.clone(), repo.clone()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "repository fleet/sensor-fusion belongs to stack awareness; stack radar may not touch it"
        );
        assert_eq!(fs::read(dir.path().join(FILE)).unwrap(), before, "nothing claimed");
        store.claim(&name("radar"), std::slice::from_ref(&radar)).unwrap();
        let o = store.owners().unwrap();
        assert_eq!(o.owner(&radar), Some(&name("radar")));
        assert_eq!(o.owner(&ns), Some(&name("awareness")));
        assert_eq!(o.owner(&repo), Some(&name("awareness")));
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        fs::write(dir.path().join(FILE), b"{\"namespaces\": {\"a\": \"Not A Name\"}}").unwrap();
        let e = store.owners().unwrap_err().to_string();
        assert!(e.contains("owners.json"), "{e}");
    }
}
