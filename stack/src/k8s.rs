//! Finding the images that Kubernetes manifests name.

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
    fn refuses_non_yaml_and_scalars() {
        assert!(images_in_yaml("kind: [unclosed").unwrap_err().contains("document 1"));
        assert!(images_in_yaml("just a string").is_err());
        assert!(images_in_yaml("kind: Pod\nspec: {containers: [{image: [1]}]}").is_err());
    }
}
