//! Whether a live object is healthy, judged from its status with the rules
//! of the kstatus library (sigs.k8s.io/cli-utils), which kubectl, Flux and
//! Helm's waits agree with:
//!
//! - any kind: `status.observedGeneration` behind `metadata.generation` is
//!   in progress; a `Stalled` condition that is True is failed, a
//!   `Reconciling` one in progress;
//! - Deployment: `status.replicas`, updated, ready and available replicas
//!   all equal to the desired, so no pod of the old version is left; the
//!   `Progressing` condition with `ProgressDeadlineExceeded` is failed;
//! - StatefulSet: ready and updated replicas as desired, current revision
//!   equal to the update revision (`OnDelete` updates are never waited for);
//! - DaemonSet: updated, available and ready equal to the desired number;
//! - Job: the `Complete` condition; `Failed` is failed;
//! - PersistentVolumeClaim: bound; CustomResourceDefinition: Established;
//!   Pod: running and ready, or succeeded; Namespace: not terminating;
//! - every other kind: present.
//!
//! Where tender is stricter than kstatus, on purpose (the ship must end on
//! a version that works, not one that has merely started): a Job must have
//! completed; a Pod in phase Failed has failed; a DaemonSet or workload
//! without status yet is in progress. And where it waits longer: pods in
//! CrashLoopBackOff, ImagePullBackOff or Unschedulable are waited on until
//! the deadline (a pod waiting for a dependency to start crash-loops a few
//! times on a healthy release), their reason named when time is up.

use serde::Serialize;
use serde_json::Value;

/// The health of one live object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum Health {
    /// As desired.
    Ready,
    /// Not yet; why (e.g. "1 of 2 ready").
    InProgress(String),
    /// It will not get there by waiting; why.
    Failed(String),
    /// Not in the cluster.
    Missing,
}

impl Health {
    /// Ready.
    pub fn is_ready(&self) -> bool {
        matches!(self, Health::Ready)
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Ready => f.write_str("ready"),
            Health::InProgress(why) => write!(f, "in progress: {why}"),
            Health::Failed(why) => write!(f, "failed: {why}"),
            Health::Missing => f.write_str("missing"),
        }
    }
}

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_i64()
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The condition of `type` in `status.conditions`.
fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind)
}

fn condition_is(obj: &Value, kind: &str, status: &str) -> bool {
    condition(obj, kind).is_some_and(|c| c["status"] == status)
}

fn condition_message(obj: &Value, kind: &str) -> String {
    let c = condition(obj, kind);
    let s = |k: &str| c.and_then(|c| c[k].as_str()).filter(|s| !s.is_empty());
    match (s("reason"), s("message")) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => kind.to_owned(),
    }
}

/// Judge `obj` (a live object as the API server returns it) of `kind` in
/// API group `group`.
pub fn judge(group: &str, kind: &str, obj: &Value) -> Health {
    let generation = int(obj, &["metadata", "generation"]);
    let observed = int(obj, &["status", "observedGeneration"]);
    if let (Some(g), Some(o)) = (generation, observed)
        && o < g
    {
        return Health::InProgress(format!(
            "the controller has not seen generation {g} yet (at {o})"
        ));
    }
    if condition_is(obj, "Stalled", "True") {
        return Health::Failed(condition_message(obj, "Stalled"));
    }
    if condition_is(obj, "Reconciling", "True") {
        return Health::InProgress(condition_message(obj, "Reconciling"));
    }
    let workload = matches!(
        (group, kind),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet") | ("batch", "Job")
    );
    // A workload's controller writes observedGeneration with its first
    // status: without it, nothing has looked at this generation yet.
    if workload && observed.is_none() && kind != "Job" {
        return Health::InProgress("no status from its controller yet".into());
    }
    match (group, kind) {
        ("apps", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => stateful_set(obj),
        ("apps", "DaemonSet") => daemon_set(obj),
        ("batch", "Job") => job(obj),
        ("", "PersistentVolumeClaim") => match text(obj, &["status", "phase"]) {
            Some("Bound") => Health::Ready,
            phase => Health::InProgress(format!("phase {}", phase.unwrap_or("unknown"))),
        },
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if condition_is(obj, "NamesAccepted", "False") {
                Health::Failed(condition_message(obj, "NamesAccepted"))
            } else if condition_is(obj, "Established", "True") {
                Health::Ready
            } else {
                Health::InProgress("not established yet".into())
            }
        }
        ("", "Pod") => pod(obj),
        ("", "Namespace") => match text(obj, &["status", "phase"]) {
            Some("Terminating") => Health::Failed("terminating".into()),
            _ => Health::Ready,
        },
        _ => Health::Ready,
    }
}

/// `spec.replicas`, 1 when unset (as the API server defaults it).
fn desired(obj: &Value) -> i64 {
    int(obj, &["spec", "replicas"]).unwrap_or(1)
}

fn status(obj: &Value, field: &str) -> i64 {
    int(obj, &["status", field]).unwrap_or(0)
}

fn deployment(obj: &Value) -> Health {
    if condition(obj, "Progressing").is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Health::Failed(condition_message(obj, "Progressing"));
    }
    let want = desired(obj);
    let (replicas, updated) = (status(obj, "replicas"), status(obj, "updatedReplicas"));
    let (ready, available) = (status(obj, "readyReplicas"), status(obj, "availableReplicas"));
    if replicas < want {
        Health::InProgress(format!("{replicas} of {want} replicas created"))
    } else if updated < want {
        Health::InProgress(format!("{updated} of {want} updated"))
    } else if replicas > updated {
        Health::InProgress(format!("{} old replica(s) still running", replicas - updated))
    } else if ready < want {
        Health::InProgress(format!("{ready} of {want} ready"))
    } else if available < want {
        Health::InProgress(format!("{available} of {want} available"))
    } else if condition_is(obj, "Available", "False") {
        Health::InProgress(condition_message(obj, "Available"))
    } else {
        Health::Ready
    }
}

fn stateful_set(obj: &Value) -> Health {
    if text(obj, &["spec", "updateStrategy", "type"]) == Some("OnDelete") {
        return Health::Ready;
    }
    let want = desired(obj);
    let partition =
        int(obj, &["spec", "updateStrategy", "rollingUpdate", "partition"]).unwrap_or(0);
    let ready = status(obj, "readyReplicas");
    let updated = status(obj, "updatedReplicas");
    let replicas = status(obj, "replicas");
    if replicas < want {
        return Health::InProgress(format!("{replicas} of {want} replicas created"));
    }
    if ready < want {
        return Health::InProgress(format!("{ready} of {want} ready"));
    }
    if partition > 0 {
        // Only the replicas at or above the partition are updated.
        let expected = (want - partition).max(0);
        return if updated < expected {
            Health::InProgress(format!("{updated} of {expected} updated (partition {partition})"))
        } else {
            Health::Ready
        };
    }
    let current = text(obj, &["status", "currentRevision"]);
    let update = text(obj, &["status", "updateRevision"]);
    if current != update {
        return Health::InProgress(format!("{updated} of {want} updated to the new revision"));
    }
    Health::Ready
}

fn daemon_set(obj: &Value) -> Health {
    let Some(want) = int(obj, &["status", "desiredNumberScheduled"]) else {
        return Health::InProgress("not scheduled yet".into());
    };
    let updated = status(obj, "updatedNumberScheduled");
    let available = status(obj, "numberAvailable");
    let ready = status(obj, "numberReady");
    if updated < want {
        Health::InProgress(format!("{updated} of {want} updated"))
    } else if ready < want {
        Health::InProgress(format!("{ready} of {want} ready"))
    } else if available < want {
        Health::InProgress(format!("{available} of {want} available"))
    } else {
        Health::Ready
    }
}

fn job(obj: &Value) -> Health {
    if condition_is(obj, "Failed", "True") {
        Health::Failed(condition_message(obj, "Failed"))
    } else if condition_is(obj, "Complete", "True") {
        Health::Ready
    } else {
        let done = status(obj, "succeeded");
        let want = int(obj, &["spec", "completions"]).unwrap_or(1);
        Health::InProgress(format!("{done} of {want} completed"))
    }
}

fn pod(obj: &Value) -> Health {
    match text(obj, &["status", "phase"]) {
        Some("Succeeded") => Health::Ready,
        Some("Running") if condition_is(obj, "Ready", "True") => Health::Ready,
        Some("Failed") => {
            Health::Failed(text(obj, &["status", "message"]).unwrap_or("the pod failed").to_owned())
        }
        _ => match pod_problem(obj) {
            Some(p) => Health::InProgress(p),
            None => Health::InProgress("not ready".into()),
        },
    }
}

/// Why a pod does not come up, as its status tells: a container waiting
/// in `ImagePullBackOff` or `CrashLoopBackOff` (with the last termination's
/// message), or the pod `Unschedulable`. None when nothing is wrong yet.
pub fn pod_problem(pod: &Value) -> Option<String> {
    let name = text(pod, &["metadata", "name"]).unwrap_or("?");
    let statuses = ["initContainerStatuses", "containerStatuses"].into_iter().flat_map(|k| {
        pod.pointer(&format!("/status/{k}")).and_then(Value::as_array).into_iter().flatten()
    });
    for c in statuses {
        let Some(reason) = c.pointer("/state/waiting/reason").and_then(Value::as_str) else {
            continue;
        };
        if matches!(reason, "ContainerCreating" | "PodInitializing") {
            continue;
        }
        let container = c["name"].as_str().unwrap_or("?");
        let mut line = format!("pod {name}: container {container}: {reason}");
        let last = c.pointer("/lastState/terminated");
        if let Some(t) = last {
            let code = t["exitCode"].as_i64().map(|c| format!("exit code {c}"));
            let said = t["message"].as_str().or(t["reason"].as_str()).map(str::trim);
            let parts: Vec<String> =
                code.into_iter().chain(said.map(String::from)).filter(|s| !s.is_empty()).collect();
            if !parts.is_empty() {
                line.push_str(&format!(" (last termination: {})", parts.join(": ")));
            }
        } else if let Some(m) = c.pointer("/state/waiting/message").and_then(Value::as_str) {
            line.push_str(&format!(" ({})", m.trim()));
        }
        return Some(line);
    }
    let unschedulable = condition(pod, "PodScheduled")
        .filter(|c| c["status"] == "False" && c["reason"] == "Unschedulable");
    unschedulable.map(|_| format!("pod {name}: {}", condition_message(pod, "PodScheduled")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(spec_replicas: i64, status: Value) -> Value {
        json!({"metadata": {"generation": 2}, "spec": {"replicas": spec_replicas}, "status": status})
    }

    #[test]
    fn a_deployment_is_ready_only_when_no_old_pod_is_left() {
        let full = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                          "readyReplicas": 2, "availableReplicas": 2});
        let mut scaling = full.clone();
        scaling["replicas"] = json!(1);
        assert_eq!(
            judge("apps", "Deployment", &deploy(2, scaling)),
            Health::InProgress("1 of 2 replicas created".into())
        );
        assert_eq!(judge("apps", "Deployment", &deploy(2, full.clone())), Health::Ready);
        let mut old_left = full.clone();
        old_left["replicas"] = json!(3);
        assert_eq!(
            judge("apps", "Deployment", &deploy(2, old_left)),
            Health::InProgress("1 old replica(s) still running".into())
        );
        let mut one_ready = full.clone();
        one_ready["readyReplicas"] = json!(1);
        assert_eq!(
            judge("apps", "Deployment", &deploy(2, one_ready)),
            Health::InProgress("1 of 2 ready".into())
        );
        let mut behind = full.clone();
        behind["observedGeneration"] = json!(1);
        assert!(matches!(judge("apps", "Deployment", &deploy(2, behind)), Health::InProgress(_)));
        let mut stuck = full;
        stuck["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet x has timed out progressing."}]);
        assert_eq!(
            judge("apps", "Deployment", &deploy(2, stuck)),
            Health::Failed(
                "ProgressDeadlineExceeded: ReplicaSet x has timed out progressing.".into()
            )
        );
        assert!(matches!(judge("apps", "Deployment", &json!({"spec": {}})), Health::InProgress(_)));
    }

    #[test]
    fn stateful_sets_daemon_sets_and_jobs() {
        let sts = |current: &str| {
            json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
                   "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                              "currentRevision": current, "updateRevision": "b"}})
        };
        assert_eq!(judge("apps", "StatefulSet", &sts("b")), Health::Ready);
        assert!(matches!(judge("apps", "StatefulSet", &sts("a")), Health::InProgress(_)));
        let ds = |ready: i64| {
            json!({"status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                   "updatedNumberScheduled": 2, "numberAvailable": 2, "numberReady": ready}})
        };
        assert_eq!(judge("apps", "DaemonSet", &ds(2)), Health::Ready);
        assert_eq!(judge("apps", "DaemonSet", &ds(1)), Health::InProgress("1 of 2 ready".into()));
        let unscheduled = json!({"status": {"observedGeneration": 1}});
        assert!(matches!(judge("apps", "DaemonSet", &unscheduled), Health::InProgress(_)));
        let job = |t: &str| json!({"status": {"conditions": [{"type": t, "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(judge("batch", "Job", &job("Complete")), Health::Ready);
        assert!(matches!(judge("batch", "Job", &job("Failed")), Health::Failed(_)));
        assert!(matches!(judge("batch", "Job", &json!({})), Health::InProgress(_)));
    }

    #[test]
    fn claims_definitions_and_the_rest() {
        let pvc = |p: &str| json!({"status": {"phase": p}});
        assert_eq!(judge("", "PersistentVolumeClaim", &pvc("Bound")), Health::Ready);
        assert!(matches!(
            judge("", "PersistentVolumeClaim", &pvc("Pending")),
            Health::InProgress(_)
        ));
        let crd = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(judge("apiextensions.k8s.io", "CustomResourceDefinition", &crd), Health::Ready);
        assert!(matches!(
            judge("apiextensions.k8s.io", "CustomResourceDefinition", &json!({})),
            Health::InProgress(_)
        ));
        assert_eq!(judge("", "ConfigMap", &json!({"data": {}})), Health::Ready);
        let stalled = json!({"status": {"conditions": [{"type": "Stalled", "status": "True", "reason": "Bad"}]}});
        assert_eq!(judge("radar.example", "Track", &stalled), Health::Failed("Bad".into()));
    }

    #[test]
    fn pod_problems_are_named_from_the_pod_status() {
        let crash = json!({"metadata": {"name": "p-1"}, "status": {"containerStatuses": [{
            "name": "fusion", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 2, "message": "no camera at /dev/video0\n"}}}]}});
        assert_eq!(
            pod_problem(&crash).unwrap(),
            "pod p-1: container fusion: CrashLoopBackOff (last termination: exit code 2: no camera at /dev/video0)"
        );
        let pull = json!({"metadata": {"name": "p-2"}, "status": {"containerStatuses": [{
            "name": "ui", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}});
        assert_eq!(
            pod_problem(&pull).unwrap(),
            "pod p-2: container ui: ImagePullBackOff (Back-off pulling image)"
        );
        let unsched = json!({"metadata": {"name": "p-3"}, "status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/2 nodes are available: 2 node(s) didn't match node selector."}]}});
        assert_eq!(
            pod_problem(&unsched).unwrap(),
            "pod p-3: Unschedulable: 0/2 nodes are available: 2 node(s) didn't match node selector."
        );
        let creating = json!({"metadata": {"name": "p-4"}, "status": {"containerStatuses": [{
            "name": "ui", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(pod_problem(&creating), None);
    }
}
