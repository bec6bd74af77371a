//! Which object a manifest names.

use serde::Serialize;
use serde_yaml::Value;

/// Identity of an object as a manifest writes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    /// `group/version` or `version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace as written (None: the default, or cluster-scoped).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{} ({})", self.kind, ns, self.name, self.api_version),
            None => write!(f, "{} {} ({})", self.kind, self.name, self.api_version),
        }
    }
}

impl ObjectRef {
    /// The identity of a manifest object.
    pub fn of(obj: &Value) -> Result<ObjectRef, String> {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
        let api_version = s(obj.get("apiVersion")).ok_or("an object without apiVersion")?;
        let kind = s(obj.get("kind")).ok_or("an object without kind")?;
        let meta = obj.get("metadata");
        let name = s(meta.and_then(|m| m.get("name")))
            .ok_or_else(|| format!("a {kind} without metadata.name"))?;
        Ok(ObjectRef {
            api_version,
            kind,
            namespace: s(meta.and_then(|m| m.get("namespace"))),
            name,
        })
    }
}
