//! The deploy crate as a library, without a process: applies, health,
//! restores and rollbacks against the stand-in API server
//! (`tests/support/apiserver.rs`, whose header says what it models), with
//! a store built in the test. The binaries' tests in `tests/` run the same
//! paths through `tender-ship`.

#[path = "../../tests/support/apiserver.rs"]
mod apiserver;
#[path = "../../tests/support/memory_bundle.rs"]
mod memory_bundle;

use std::path::{Path, PathBuf};
use std::time::Duration;

use apiserver::{ApiServer, Behaviour, PodState};
use tender_bundle::{ErrorKind, NoProgress};
use tender_deploy::{
    ClusterTarget, DeployError, LoadTarget, OnFailure, RegistryTarget, Rollout, Wait,
};
use tender_keys::SigningKey;
use tender_registry::{RegistryAuth, Transport};
use tender_store::{ImportPolicy, Outcome, Pick, Store};

/// A Deployment running `image` (not carried: nothing is pushed).
fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: fusion, namespace: default}}\n\
         spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: fusion}}}}\n  template:\n\
         \x20   metadata: {{labels: {{app: fusion}}}}\n\
         \x20   spec: {{containers: [{{name: fusion, image: \"{image}\"}}]}}\n"
    )
}

/// Import version `version` (sequence `seq`) of stack `awareness`, whose one
/// manifest is `yaml`, into `store`.
fn import(store: &Store, key: &SigningKey, version: &str, seq: u64, yaml: &str) {
    let bytes = memory_bundle::bundle(key, ("awareness", version, seq), &[("app.yaml", yaml)], &[]);
    store
        .import_with(&bytes[..], Path::new("b.tender"), &[], ImportPolicy::default(), &NoProgress)
        .unwrap();
}

struct Ship {
    _dir: tempfile::TempDir,
    store: Store,
    kubeconfig: PathBuf,
    api: ApiServer,
}

fn ship() -> Ship {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(&dir.path().join("store")).unwrap();
    let key = SigningKey::generate().unwrap();
    store.trust_add(&key.public().to_pem().unwrap()).unwrap();
    import(&store, &key, "1.0.0", 1, &deployment("shore.example/fusion:1"));
    import(&store, &key, "1.1.0", 2, &deployment("shore.example/fusion:2"));
    let api = ApiServer::start();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    Ship { _dir: dir, store, kubeconfig, api }
}

impl Ship {
    fn apply(&self, pick: Pick, timeout: Duration) -> Result<(), DeployError> {
        let name = "awareness".to_string().try_into().unwrap();
        let (rec, d) = self.store.pick(&name, &pick).unwrap();
        // No image is carried, so the registry is never reached.
        let target = LoadTarget::Registry(RegistryTarget {
            host: "127.0.0.1:9".into(),
            transport: Transport::TlsExceptLoopback,
        });
        let rollout = Rollout { timeout, wait: Wait::ForHealth, on_failure: OnFailure::Restore };
        let cluster = ClusterTarget { kubeconfig: &self.kubeconfig, adopt: &[], rollout };
        tender_deploy::deploy(
            &self.store,
            &rec,
            &d,
            &target,
            RegistryAuth::Anonymous,
            Some(cluster),
            &NoProgress,
        )
        .map(|_| ())
    }

    fn live_image(&self) -> String {
        let o = self.api.object("/apis/apps/v1/namespaces/default/deployments/fusion").unwrap();
        o["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_owned()
    }

    fn history(&self) -> tender_store::History {
        self.store.history(&"awareness".to_string().try_into().unwrap()).unwrap()
    }
}

#[test]
fn a_version_never_healthy_is_undone_and_the_one_in_force_stays_in_force() {
    let s = ship();
    let timeout = Duration::from_secs(20);
    s.apply(Pick::Named(Some("1.0.0".to_string().try_into().unwrap())), timeout).unwrap();
    assert_eq!(s.live_image(), "shore.example/fusion:1");
    // 1.1.0 crash-loops.
    s.api.behave(|image| {
        image.ends_with(":2").then(|| {
            Behaviour::Never(PodState::CrashLoop { message: "no camera at /dev/video0".into() })
        })
    });
    let e = s.apply(Pick::Named(None), Duration::from_secs(3)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RolledBack, "{e}");
    let text = tender_bundle::error_chain(&e);
    assert!(text.contains("CrashLoopBackOff") && text.contains("no camera"), "{text}");
    assert_eq!(s.live_image(), "shore.example/fusion:1", "the version before is back");
    let h = s.history();
    assert_eq!(h.current.as_ref().unwrap().version.as_str(), "1.0.0");
    assert_eq!(h.entries.last().unwrap().outcome, Outcome::RolledBack);
}

#[test]
fn a_rollback_returns_to_the_version_applied_before_and_records_it() {
    let s = ship();
    let timeout = Duration::from_secs(20);
    s.apply(Pick::Named(Some("1.0.0".to_string().try_into().unwrap())), timeout).unwrap();
    s.apply(Pick::Named(None), timeout).unwrap();
    assert_eq!(s.live_image(), "shore.example/fusion:2");
    assert_eq!(s.history().previous().unwrap().version.as_str(), "1.0.0");
    // Healthy but bad: the captain asks for the one before.
    s.apply(Pick::Previous, timeout).unwrap();
    assert_eq!(s.live_image(), "shore.example/fusion:1");
    let h = s.history();
    assert_eq!(h.current.as_ref().unwrap().version.as_str(), "1.0.0");
    assert_eq!(h.previous().unwrap().version.as_str(), "1.1.0", "and back again is possible");
}

#[test]
fn an_api_server_that_is_gone_changes_nothing_and_says_where() {
    let s = ship();
    std::fs::write(
        &s.kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"http://127.0.0.1:9\"}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n\
         current-context: c\n",
    )
    .unwrap();
    let e = s.apply(Pick::Named(None), Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{}", tender_bundle::error_chain(&e));
    assert!(tender_bundle::error_chain(&e).contains("127.0.0.1:9"), "{e}");
    assert!(s.history().current.is_none(), "nothing in force");
}
