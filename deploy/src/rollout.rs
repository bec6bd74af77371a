//! The cluster step of an apply, after every check has passed and the
//! images are in the ship's registry: apply in kind order, wait until the
//! version is healthy, prune; or, when an object is refused or the version
//! is not healthy in time, put back the version that was in force.
//!
//! Restoring re-applies the previous version's objects (its images pushed
//! again if the registry lost them), deletes what only the failed version
//! created (never a PersistentVolumeClaim, nor a Namespace holding one),
//! and waits for the previous version to be healthy again. Prune of the
//! new version has not run at that point: it runs only once healthy.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use tender_bundle::{Descriptor, Progress, StackName, Version};
use tender_registry::RegistryAuth;
use tender_store::{Claim, Store};

use crate::cluster::{Cluster, ClusterReport, Deadline, ObjectHealth, Plan, RestoreReport};
use crate::{DeployError, LoadTarget, Previous, load, render_with};

/// Whether apply waits for the version to be healthy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wait {
    /// Wait, then prune (the default).
    #[default]
    ForHealth,
    /// Return once applied, and prune at once (`--no-wait`): a version
    /// that never comes up is not noticed, only a refused object is.
    No,
}

/// What apply does with a version that fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Put back the version in force before (the default).
    #[default]
    Restore,
    /// Leave the failed version as it is for diagnosis (`--no-rollback`).
    Leave,
}

/// How an apply reaches the cluster's new state.
#[derive(Clone, Copy, Debug)]
pub struct Rollout {
    /// How long applying and becoming healthy may take, in all; restoring
    /// gets as long again.
    pub timeout: Duration,
    /// Wait for health or not.
    pub wait: Wait,
    /// Restore or leave a failed version.
    pub on_failure: OnFailure,
}

impl Rollout {
    /// Ten minutes: long enough for images to start from the ship's own
    /// registry on a Jetson-class node, short enough to restore before the
    /// captain has walked away.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
}

impl Default for Rollout {
    fn default() -> Rollout {
        Rollout {
            timeout: Rollout::DEFAULT_TIMEOUT,
            wait: Wait::default(),
            on_failure: OnFailure::default(),
        }
    }
}

/// What the cluster step needs besides the plan.
pub(crate) struct Step<'a> {
    pub store: &'a Store,
    pub d: &'a Descriptor,
    pub target: &'a LoadTarget,
    pub auth: &'a RegistryAuth,
    pub conn: &'a Cluster,
    pub progress: &'a dyn Progress,
}

impl Step<'_> {
    /// Apply `plan`, wait, prune; or undo it (see the module's doc).
    pub fn run(
        &self,
        plan: &Plan,
        previous: Previous,
        rollout: Rollout,
    ) -> Result<ClusterReport, DeployError> {
        let deadline = Deadline::after(rollout.timeout);
        let waited = rollout.wait == Wait::ForHealth;
        self.progress.start("apply", 0);
        let result = self.conn.apply(plan, &deadline, self.progress).and_then(|applied| {
            if waited {
                self.progress.start("health", 0);
                self.conn.wait(plan, &deadline, self.progress)?;
            }
            Ok(applied)
        });
        self.progress.finish();
        let cause = match result {
            Ok(applied) => {
                let mut report = ClusterReport {
                    applied,
                    adopted: plan.adopted.clone(),
                    waited,
                    ..ClusterReport::default()
                };
                self.conn.prune(plan, &mut report);
                return Ok(report);
            }
            Err(e) => e,
        };
        let (stack, version) = (self.d.stack.name.to_string(), self.d.stack.version.to_string());
        let previous_name = match &previous {
            Previous::Version(p) => Some(p.1.stack.version.clone()),
            _ => None,
        };
        if rollout.on_failure == OnFailure::Leave {
            let in_force = match &previous_name {
                Some(v) => format!(
                    "the version in force is still {v}: `tender-ship rollback {stack} {v}` restores it"
                ),
                None => "nothing was in force before it".to_owned(),
            };
            return Err(DeployError::LeftInPlace {
                stack,
                version,
                in_force,
                cause: Box::new(cause),
            });
        }
        match self.restore(plan, previous, rollout) {
            Ok((restored, r)) => {
                let mut what = restored;
                if !r.deleted.is_empty() {
                    what.push_str(&format!("; removed {}", r.deleted.join(", ")));
                }
                if !r.left.is_empty() {
                    what.push_str(&format!("; left {}", r.left.join("; ")));
                }
                for n in &r.notes {
                    what.push_str(&format!("; {n}"));
                }
                Err(DeployError::RolledBack {
                    stack,
                    version,
                    restored: what,
                    cause: Box::new(cause),
                })
            }
            Err(e) => Err(DeployError::RestoreFailed {
                stack,
                version,
                cause: crate::chain(&cause),
                previous: previous_name.map(|v| v.to_string()),
                restore: Box::new(e),
            }),
        }
    }

    /// Put back what was in force before `failed` was applied; what it says
    /// of the result, and what it did.
    fn restore(
        &self,
        failed: &Plan,
        previous: Previous,
        rollout: Rollout,
    ) -> Result<(String, RestoreReport), DeployError> {
        let mut report = RestoreReport::default();
        let pd = match previous {
            Previous::Gone(why) => {
                return Err(DeployError::VersionGone(format!("{why}: nothing to restore")));
            }
            Previous::Never => {
                self.conn.remove_created(failed, &BTreeSet::new(), &mut report)?;
                return Ok((
                    "nothing was in force before it: what it created is removed".into(),
                    report,
                ));
            }
            Previous::Version(p) => p.1,
        };
        let stack = pd.stack.name.as_str();
        self.progress.note(&format!("restoring {stack} {}", pd.stack.version));
        // The registry may have lost images since (a registry reset): push
        // again what it lacks, which is nothing in the common case.
        let missing = self.store.missing_blobs(&pd).len();
        if missing == 0 {
            load(self.store, &pd, self.target, self.auth.clone(), self.progress)?;
        } else {
            report.notes.push(format!(
                "{}'s images were not pushed again: the store lacks {missing} of its blobs (gc); the registry must still hold them",
                pd.stack.version
            ));
        }
        let rendered = render_with(
            self.store,
            &pd,
            Some(self.target),
            crate::Secrets::Reveal,
            crate::settings::Unmatched::Skip,
        )?;
        let mut back = self.conn.plan(stack, &rendered.objects, None)?;
        // The version in force passed these checks when it was applied, but
        // not necessarily here and now: an object written without a
        // namespace lands in the kubeconfig's default namespace of today,
        // and a cluster-scoped object may have been deleted and made again
        // by another stack since. Restore over nothing that is not ours.
        let claims: Vec<Claim> = back.namespaces().into_iter().map(Claim::Namespace).collect();
        self.store.owners()?.conflict(&pd.stack.name, &claims)?;
        let deadline = Deadline::after(rollout.timeout);
        self.conn.check_live_within(&mut back, &[], Some(&deadline))?;
        self.progress.start("restore", 0);
        report.applied = self.conn.apply(&back, &deadline, self.progress)?;
        self.conn.remove_created(failed, &back.keys(), &mut report)?;
        if rollout.wait == Wait::ForHealth {
            self.conn.wait(&back, &deadline, self.progress)?;
        }
        self.progress.finish();
        let health = if rollout.wait == Wait::ForHealth { ", healthy" } else { "" };
        Ok((format!("{} is back{health}", pd.stack.version), report))
    }
}

/// The version in force of `stack` and the health of each of its objects in
/// the cluster `kubeconfig` names; None when nothing is in force.
pub fn cluster_health(
    store: &Store,
    stack: &StackName,
    kubeconfig: &Path,
) -> Result<Option<(Version, Vec<ObjectHealth>)>, DeployError> {
    let d = match crate::previous(store, stack)? {
        Previous::Never => return Ok(None),
        Previous::Gone(why) => {
            return Err(DeployError::VersionGone(format!("{why}: its objects are unknown")));
        }
        Previous::Version(p) => p.1,
    };
    let conn = Cluster::connect(kubeconfig)?;
    // Identity only: rendered as applied (settings can name objects),
    // secrets masked, images as written.
    let rendered =
        render_with(store, &d, None, crate::Secrets::Mask, crate::settings::Unmatched::Skip)?;
    let plan = conn.plan(stack.as_str(), &rendered.objects, None)?;
    Ok(Some((d.stack.version.clone(), conn.health(&plan))))
}
