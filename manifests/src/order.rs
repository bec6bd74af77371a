//! The order objects are applied in, whatever the order of the files: what
//! an object needs exists before it. Prune and removal run in the reverse.
//!
//! | rank | kinds |
//! |---|---|
//! | 0 | Namespace |
//! | 1 | CustomResourceDefinition (then wait: Established, served by discovery) |
//! | 2 | ServiceAccount; PriorityClass, ResourceQuota, LimitRange (admission reads them when pods are made) |
//! | 3 | ClusterRole, Role |
//! | 4 | ClusterRoleBinding, RoleBinding |
//! | 5 | ConfigMap, Secret |
//! | 6 | StorageClass, PersistentVolume |
//! | 7 | PersistentVolumeClaim |
//! | 8 | Service |
//! | 9 | workloads: DaemonSet, Deployment, StatefulSet, ReplicaSet, Pod, Job, CronJob |
//! | 10 | everything else: custom resources, Ingress, HPA, PodDisruptionBudget... |
//! | 11 | Validating/MutatingWebhookConfiguration, APIService |
//!
//! Webhook configurations and API services come last on purpose: one
//! applied before the service behind it is up would refuse everything
//! after it.

use serde_yaml::Value;

/// The rank of the CustomResourceDefinitions: after them, apply waits until
/// the kinds they define are served.
pub const CRD_RANK: u8 = 1;

/// Where `kind` of API group `group` ("" for the core group) goes.
pub fn rank(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => CRD_RANK,
        ("", "ServiceAccount" | "ResourceQuota" | "LimitRange")
        | ("scheduling.k8s.io", "PriorityClass") => 2,
        ("rbac.authorization.k8s.io", "ClusterRole" | "Role") => 3,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding" | "RoleBinding") => 4,
        ("", "ConfigMap" | "Secret") => 5,
        ("storage.k8s.io", "StorageClass") | ("", "PersistentVolume") => 6,
        ("", "PersistentVolumeClaim") => 7,
        ("", "Service") => 8,
        ("apps", "DaemonSet" | "Deployment" | "StatefulSet" | "ReplicaSet")
        | ("", "Pod" | "ReplicationController")
        | ("batch", "Job" | "CronJob") => 9,
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        )
        | ("apiregistration.k8s.io", "APIService") => 11,
        _ => 10,
    }
}

/// The API group of an `apiVersion` ("" for `v1`).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// The rank of a manifest object (an object without apiVersion or kind
/// sorts last; it is refused later, naming what it lacks).
pub fn rank_of(obj: &Value) -> u8 {
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    rank(group_of(s("apiVersion")), s("kind"))
}

/// Sort objects into apply order; objects of one rank keep their file order.
pub fn sort(objects: &mut [Value]) {
    objects.sort_by_key(rank_of);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(api_version: &str, kind: &str, name: &str) -> Value {
        serde_yaml::from_str(&format!(
            "{{apiVersion: {api_version}, kind: {kind}, metadata: {{name: {name}}}}}"
        ))
        .unwrap()
    }

    fn names(objects: &[Value]) -> Vec<&str> {
        objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn the_worst_file_order_comes_out_in_apply_order() {
        let mut objects = vec![
            obj("radar.example/v1", "Track", "cr"),
            obj("apps/v1", "Deployment", "deploy"),
            obj("v1", "Service", "svc"),
            obj("v1", "PersistentVolumeClaim", "pvc"),
            obj("v1", "ConfigMap", "cm-a"),
            obj("rbac.authorization.k8s.io/v1", "RoleBinding", "rb"),
            obj("rbac.authorization.k8s.io/v1", "Role", "role"),
            obj("v1", "ServiceAccount", "sa"),
            obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "crd"),
            obj("v1", "ConfigMap", "cm-b"),
            obj("v1", "Namespace", "ns"),
        ];
        sort(&mut objects);
        assert_eq!(
            names(&objects),
            ["ns", "crd", "sa", "role", "rb", "cm-a", "cm-b", "pvc", "svc", "deploy", "cr"]
        );
    }

    #[test]
    fn kinds_are_matched_with_their_group() {
        // A custom kind named like a core one is not the core one.
        assert_eq!(rank("radar.example", "Namespace"), 10);
        assert_eq!(rank("", "Namespace"), 0);
        assert_eq!(rank("apps", "Deployment"), 9);
        assert_eq!(rank("extensions", "Deployment"), 10);
        assert_eq!(rank("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"), 11);
        assert_eq!(rank("scheduling.k8s.io", "PriorityClass"), 2);
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("apps/v1"), "apps");
    }
}
