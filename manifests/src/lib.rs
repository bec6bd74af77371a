//! Kubernetes manifests as both sides of tender read them: the objects in
//! a YAML text, the images they name (the shore packs them; the ship pins
//! them by digest), each object's identity, and the order objects are
//! applied in. A leaf crate: it knows neither bundles, stores nor clusters.
#![deny(missing_docs)]

mod identity;
pub mod order;

pub use identity::ObjectRef;

use serde::Deserialize;
use serde_yaml::Value;

/// Kinds whose pod template sits at `spec.template.spec`.
const TEMPLATE_KINDS: &[&str] =
    &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"];
const CONTAINER_LISTS: &[&str] = &["initContainers", "containers", "ephemeralContainers"];

/// The pod spec of an object, if its kind carries one.
fn pod_spec(obj: &Value) -> Option<&Value> {
    let kind = obj.get("kind")?.as_str()?;
    let spec = obj.get("spec")?;
    match kind {
        "Pod" => Some(spec),
        "CronJob" => spec.get("jobTemplate")?.get("spec")?.get("template")?.get("spec"),
        "PodTemplate" => obj.get("template")?.get("spec"),
        k if TEMPLATE_KINDS.contains(&k) => spec.get("template")?.get("spec"),
        _ => None,
    }
}

fn collect(obj: &Value, out: &mut Vec<String>) -> Result<(), String> {
    if obj.get("kind").and_then(Value::as_str) == Some("List") {
        for item in obj.get("items").and_then(Value::as_sequence).into_iter().flatten() {
            collect(item, out)?;
        }
        return Ok(());
    }
    let Some(spec) = pod_spec(obj) else { return Ok(()) };
    for list in CONTAINER_LISTS {
        for c in spec.get(*list).and_then(Value::as_sequence).into_iter().flatten() {
            match c.get("image") {
                Some(Value::String(s)) if !s.trim().is_empty() => {
                    if !out.contains(s) {
                        out.push(s.clone());
                    }
                }
                Some(Value::String(_)) | None => {}
                Some(other) => {
                    return Err(format!("a container's image is not a string: {other:?}"));
                }
            }
        }
    }
    Ok(())
}

fn pod_spec_mut(obj: &mut Value) -> Option<&mut Value> {
    let kind = obj.get("kind")?.as_str()?.to_owned();
    match kind.as_str() {
        "Pod" => obj.get_mut("spec"),
        "CronJob" => obj
            .get_mut("spec")?
            .get_mut("jobTemplate")?
            .get_mut("spec")?
            .get_mut("template")?
            .get_mut("spec"),
        "PodTemplate" => obj.get_mut("template")?.get_mut("spec"),
        k if TEMPLATE_KINDS.contains(&k) => {
            obj.get_mut("spec")?.get_mut("template")?.get_mut("spec")
        }
        _ => None,
    }
}

/// Replace every container image found in `obj` (as [`images_in_yaml`] finds
/// them) by `map(image)`, where it returns a new reference.
pub fn rewrite_images(obj: &mut Value, map: &dyn Fn(&str) -> Option<String>) {
    if obj.get("kind").and_then(Value::as_str) == Some("List") {
        if let Some(items) = obj.get_mut("items").and_then(Value::as_sequence_mut) {
            for item in items {
                rewrite_images(item, map);
            }
        }
        return;
    }
    let Some(spec) = pod_spec_mut(obj) else { return };
    for list in CONTAINER_LISTS {
        if let Some(cs) = spec.get_mut(*list).and_then(Value::as_sequence_mut) {
            for c in cs {
                if let Some(new) = c.get("image").and_then(Value::as_str).and_then(map) {
                    c["image"] = Value::String(new);
                }
            }
        }
    }
}

/// The objects of a (multi-document) YAML text, `List`s flattened, empty
/// documents skipped.
pub fn objects_in_yaml(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc)
            .map_err(|e| format!("document {}: not valid YAML: {e}", i + 1))?;
        match v {
            Value::Null => {}
            Value::Mapping(_) if v.get("kind").and_then(Value::as_str) == Some("List") => {
                out.extend(
                    v.get("items").and_then(Value::as_sequence).into_iter().flatten().cloned(),
                );
            }
            Value::Mapping(_) => out.push(v),
            _ => return Err(format!("document {}: not a Kubernetes object (a mapping)", i + 1)),
        }
    }
    Ok(out)
}

/// Every image reference in a (multi-document) YAML text, in order of first
/// appearance. An error says what is wrong, for the caller to name the file.
pub fn images_in_yaml(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc)
            .map_err(|e| format!("document {}: not valid YAML: {e}", i + 1))?;
        match &v {
            Value::Null => continue,
            Value::Mapping(_) => {
                collect(&v, &mut out).map_err(|e| format!("document {}: {e}", i + 1))?
            }
            _ => return Err(format!("document {}: not a Kubernetes object (a mapping)", i + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_kind_and_list() {
        let y = r#"
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers: [{name: i, image: "r/init:1"}]
      containers: [{name: a, image: "r/a:1"}, {name: b, image: "r/a:1"}]
---
kind: CronJob
spec: {jobTemplate: {spec: {template: {spec: {containers: [{image: "r/cron@sha256:00"}]}}}}}
---
kind: Pod
spec: {ephemeralContainers: [{image: r/debug:2}]}
---
kind: ConfigMap
data: {image: "not/an-image:1"}
---
"#;
        assert_eq!(
            images_in_yaml(y).unwrap(),
            vec!["r/init:1", "r/a:1", "r/cron@sha256:00", "r/debug:2"]
        );
    }

    #[test]
    fn rewrites_every_container_image() {
        let y = "kind: Deployment\nspec: {template: {spec: {initContainers: [{image: a:1}], containers: [{image: a:1}, {image: b:2}]}}}\n---\nkind: ConfigMap\ndata: {image: a:1}\n";
        let mut objs = objects_in_yaml(y).unwrap();
        for o in &mut objs {
            rewrite_images(o, &|r| (r == "a:1").then(|| "local/a@sha256:00".to_string()));
        }
        let out = serde_yaml::to_string(&objs).unwrap();
        assert_eq!(out.matches("local/a@sha256:00").count(), 2, "{out}");
        assert!(
            out.contains("b:2") && out.contains("image: a:1"),
            "ConfigMap data untouched: {out}"
        );
    }

    #[test]
    fn refuses_non_yaml_and_scalars() {
        assert!(images_in_yaml("kind: [unclosed").unwrap_err().contains("document 1"));
        assert!(images_in_yaml("just a string").is_err());
        assert!(images_in_yaml("kind: Pod\nspec: {containers: [{image: [1]}]}").is_err());
    }
}
