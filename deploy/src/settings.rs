//! A ship's own settings and local patches, and rendering them into a
//! version's objects: `${NAME}` substituted in string values (only names
//! the version declares), then each local patch merged onto the object it
//! names (JSON merge patch, RFC 7386). The signed manifests stay the source;
//! what a ship adds is declared, checked and recorded (names and a hash in
//! history, never values).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_yaml::Value;
use tender_bundle::settings::{SettingName, substitute};
use tender_bundle::{Descriptor, StackName};
use tender_stack::k8s;
use tender_store::{SettingState, SettingsUsed, Store};

use crate::{DeployError, ObjectRef};

/// How secret settings appear in what is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secrets {
    /// Their values, for the cluster.
    Reveal,
    /// `***`, for `--dry-run` and anything a person reads.
    Mask,
}

/// A local patch: its name and the partial objects it merges.
struct LocalPatch {
    name: String,
    objects: Vec<(ObjectRef, serde_json::Value)>,
}

/// Parse a patch file's text: one or more partial objects, each with
/// apiVersion, kind and metadata.name (and namespace when the object has
/// one), and the fields to change.
fn parse_patch(name: &str, text: &str) -> Result<LocalPatch, DeployError> {
    let bad = |reason: String| DeployError::BadPatch { patch: name.to_owned(), reason };
    let docs = k8s::objects_in_yaml(text).map_err(bad)?;
    if docs.is_empty() {
        return Err(bad("it holds no object".into()));
    }
    let mut objects = Vec::new();
    for d in docs {
        let id = ObjectRef::of(&d).map_err(bad)?;
        let json = serde_json::to_value(&d).map_err(|e| bad(e.to_string()))?;
        objects.push((id, json));
    }
    Ok(LocalPatch { name: name.to_owned(), objects })
}

/// Substitute `values` into every string value of `obj` (keys untouched:
/// a value never adds structure).
fn substitute_in(obj: &mut Value, values: &BTreeMap<SettingName, String>) {
    match obj {
        Value::String(s) if s.contains("${") => {
            *s = substitute(s, &|name| {
                values.iter().find(|(k, _)| k.as_str() == name).map(|(_, v)| v.clone())
            });
        }
        Value::Sequence(items) => items.iter_mut().for_each(|i| substitute_in(i, values)),
        Value::Mapping(m) => m.iter_mut().for_each(|(_, v)| substitute_in(v, values)),
        Value::Tagged(t) => substitute_in(&mut t.value, values),
        _ => {}
    }
}

/// Whether a patch's identity names this object (the apiVersion's group,
/// kind, namespace as written, name).
fn names(patch: &ObjectRef, obj: &ObjectRef) -> bool {
    let group = |v: &str| crate::order::group_of(v).to_owned();
    group(&patch.api_version) == group(&obj.api_version)
        && patch.kind == obj.kind
        && patch.namespace == obj.namespace
        && patch.name == obj.name
}

/// The values `d` is rendered with, and the record of them and of the
/// local patches for history. Refuses, naming each setting and the
/// version, a required setting not set or a value its pattern refuses.
pub(crate) fn resolve(
    store: &Store,
    d: &Descriptor,
    secrets: Secrets,
) -> Result<(BTreeMap<SettingName, String>, Option<SettingsUsed>), DeployError> {
    let mut values = store.resolve_settings(d)?;
    let patches = store.settings(&d.stack.name)?.patches;
    let used =
        (!values.is_empty() || !patches.is_empty()).then(|| SettingsUsed::of(&values, &patches));
    if secrets == Secrets::Mask {
        for s in d.settings.iter().filter(|s| s.secret) {
            if let Some(v) = values.get_mut(&s.name) {
                *v = "***".into();
            }
        }
    }
    Ok((values, used))
}

/// What a local patch naming no object of the version does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unmatched {
    /// Stops the render (an apply: the engineer must know).
    Refuse,
    /// Is skipped (restoring an older version, reading health: a patch
    /// made for a newer version must not stand in the way).
    Skip,
}

/// Substitute `values` into `objects`, then merge the stack's local
/// patches.
pub(crate) fn apply_to(
    store: &Store,
    d: &Descriptor,
    values: &BTreeMap<SettingName, String>,
    objects: &mut [Value],
    unmatched: Unmatched,
) -> Result<(), DeployError> {
    for o in objects.iter_mut() {
        substitute_in(o, values);
    }
    for (name, text) in store.settings(&d.stack.name)?.patches {
        let patch = parse_patch(&name, &text)?;
        for (id, partial) in &patch.objects {
            let found =
                objects.iter_mut().find(|o| ObjectRef::of(o).is_ok_and(|oid| names(id, &oid)));
            let target = match (found, unmatched) {
                (Some(t), _) => t,
                (None, Unmatched::Skip) => continue,
                (None, Unmatched::Refuse) => {
                    return Err(DeployError::PatchMatchesNothing {
                        patch: patch.name.clone(),
                        object: id.to_string(),
                        stack: d.stack.name.to_string(),
                        version: d.stack.version.to_string(),
                    });
                }
            };
            let bad = |reason: String| DeployError::BadPatch { patch: patch.name.clone(), reason };
            let mut json = serde_json::to_value(&*target).map_err(|e| bad(e.to_string()))?;
            json_patch::merge(&mut json, partial);
            let merged: Value = serde_json::from_value(json).map_err(|e| bad(e.to_string()))?;
            // A patch changes fields, never which object it is.
            if ObjectRef::of(&merged).ok().as_ref() != ObjectRef::of(target).ok().as_ref() {
                return Err(bad(format!("it would change the identity of {id}")));
            }
            *target = merged;
        }
    }
    Ok(())
}

/// What `settings set` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SetReport {
    /// Names set.
    pub set: Vec<SettingName>,
    /// Names removed.
    pub unset: Vec<SettingName>,
    /// What the engineer should look at (a name no version held declares,
    /// a value the newest version's pattern refuses).
    pub warnings: Vec<String>,
}

/// The settings the newest version of `stack` held declares.
fn declared(store: &Store, stack: &StackName) -> Vec<tender_bundle::settings::Setting> {
    store.version(stack, None).map(|(_, d)| d.settings).unwrap_or_default()
}

/// Set `values` for `stack` (kept across versions, 0600).
pub fn set(
    store: &Store,
    stack: &StackName,
    values: Vec<(SettingName, String)>,
) -> Result<SetReport, DeployError> {
    let declared = declared(store, stack);
    let mut report = SetReport::default();
    for (name, value) in &values {
        match declared.iter().find(|s| &s.name == name) {
            None => report.warnings.push(format!(
                "{name}: the newest version of {stack} held does not declare it; kept for a version that does"
            )),
            Some(s) => {
                if let Err(e) = s.resolve(Some(value)) {
                    report.warnings.push(format!("{e}: applying will be refused until it is set again"));
                }
            }
        }
        report.set.push(name.clone());
    }
    store.edit_settings(stack, |s| s.values.extend(values))?;
    Ok(report)
}

/// Parse a values file: a YAML mapping of NAME: value (scalars only).
pub fn values_from_yaml(text: &str) -> Result<Vec<(SettingName, String)>, DeployError> {
    let bad = |reason: String| DeployError::BadPatch { patch: "values file".into(), reason };
    let map: BTreeMap<String, Value> = serde_yaml::from_str(text)
        .map_err(|e| bad(format!("not a YAML mapping of NAME: value: {e}")))?;
    map.into_iter()
        .map(|(k, v)| {
            let name: SettingName =
                k.parse().map_err(|e: tender_bundle::BundleError| bad(e.to_string()))?;
            let value = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(bad(format!(
                        "{name}: a value must be a string, number or boolean"
                    )));
                }
            };
            Ok((name, value))
        })
        .collect()
}

/// Remove `names` from `stack`'s values.
pub fn unset(
    store: &Store,
    stack: &StackName,
    names: &[SettingName],
) -> Result<SetReport, DeployError> {
    let removed = store.edit_settings(stack, |s| {
        names.iter().filter(|n| s.values.remove(n).is_some()).cloned().collect::<Vec<_>>()
    })?;
    let warnings =
        names.iter().filter(|n| !removed.contains(n)).map(|n| format!("{n} was not set")).collect();
    Ok(SetReport { set: vec![], unset: removed, warnings })
}

/// Keep `text` as the local patch `name` of `stack` (replacing one of that
/// name), once it parses as partial objects with their identity.
pub fn add_patch(
    store: &Store,
    stack: &StackName,
    name: &str,
    text: String,
) -> Result<(), DeployError> {
    parse_patch(name, &text)?;
    store.edit_settings(stack, |s| s.patches.insert(name.to_owned(), text))?;
    Ok(())
}

/// Remove the local patch `name`; whether there was one.
pub fn remove_patch(store: &Store, stack: &StackName, name: &str) -> Result<bool, DeployError> {
    Ok(store.edit_settings(stack, |s| s.patches.remove(name).is_some())?)
}

/// What `settings list` shows.
#[derive(Clone, Debug, Serialize)]
pub struct SettingsList {
    /// The stack.
    pub stack: StackName,
    /// The settings the newest version held declares, with their state
    /// (secret values `***`).
    pub declared: Vec<SettingState>,
    /// Values set that it does not declare (names only).
    pub undeclared: Vec<SettingName>,
    /// Local patches, by name, and the objects each names.
    pub patches: BTreeMap<String, Vec<String>>,
}

/// List `stack`'s settings and patches.
pub fn list(store: &Store, stack: &StackName) -> Result<SettingsList, DeployError> {
    let declared = declared(store, stack);
    let set = store.settings(stack)?;
    let mut patches = BTreeMap::new();
    for (name, text) in &set.patches {
        let p = parse_patch(name, text)?;
        patches.insert(name.clone(), p.objects.iter().map(|(id, _)| id.to_string()).collect());
    }
    Ok(SettingsList {
        stack: stack.clone(),
        declared: store.setting_states(stack, &declared)?,
        undeclared: set
            .values
            .keys()
            .filter(|n| !declared.iter().any(|s| &s.name == *n))
            .cloned()
            .collect(),
        patches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_reaches_every_string_value_and_no_key() {
        let mut obj: Value = serde_yaml::from_str(
            "metadata: {name: ui, labels: {'${VESSEL}': keep}}\nspec:\n  env: [{name: V, value: 'on ${VESSEL}'}, {name: W, value: '$${VESSEL}'}]\n",
        )
        .unwrap();
        let values = [("VESSEL".parse().unwrap(), "MV Aurora: x\n- y".to_string())].into();
        substitute_in(&mut obj, &values);
        assert_eq!(
            obj["spec"]["env"][0]["value"], "on MV Aurora: x\n- y",
            "one string, whatever it holds"
        );
        assert_eq!(obj["spec"]["env"][1]["value"], "${VESSEL}");
        assert_eq!(obj["metadata"]["labels"]["${VESSEL}"], "keep");
    }

    #[test]
    fn values_files_and_patches_are_checked() {
        let v = values_from_yaml("VESSEL_NAME: MV Aurora\nRATE: 20\n").unwrap();
        assert_eq!(v[0].1, "20");
        assert!(values_from_yaml("vessel: x\n").is_err());
        assert!(values_from_yaml("A: [1]\n").is_err());
        assert!(parse_patch("p.yaml", "kind: Deployment\n").is_err());
        let p = parse_patch(
            "p.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: fusion, namespace: awareness}\nspec: {replicas: 2}\n",
        )
        .unwrap();
        assert_eq!(p.objects.len(), 1);
    }
}
