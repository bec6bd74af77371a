//! Load a version's images straight into containerd's content store over
//! its gRPC socket (k3s, microk8s without the registry add-on): every blob
//! of every platform the bundle carries, then image records named
//! `REPO:TAG` and `REPO@DIGEST`, so the kubelet finds a manifest pinned as
//! `REPO@DIGEST` locally.
//!
//! The writes follow containerd's own import: under a lease (its garbage
//! collector keeps what the lease holds until the image records reference
//! it), children before parents, and the GC labels on each index and
//! manifest that keep their children referenced once the lease is gone.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::{
    AbortRequest, AddResourceRequest, CreateImageRequest, CreateRequest as CreateLease,
    DeleteRequest as DeleteLease, Image, Info, InfoRequest, Resource, UpdateImageRequest,
    UpdateRequest, WriteAction, WriteContentRequest, WriteContentResponse,
    content_client::ContentClient, images_client::ImagesClient, leases_client::LeasesClient,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{self, Code, Status};
use containerd_client::types::Descriptor as CtrDescriptor;
use futures::SinkExt;
use futures::channel::mpsc;
use oci_spec::image::{ImageIndex, ImageManifest};
use tender_bundle::{Descriptor, Digest, ErrorKind, Progress};
use tender_bundle::{ImageRecord, limits::MAX_JSON_BLOB_BYTES};
use tender_registry::PushReport;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// containerd's namespace for Kubernetes (the CRI plugin's).
pub const DEFAULT_NAMESPACE: &str = "k8s.io";

/// Bytes per write message: well under gRPC's 4 MiB message limit, and
/// what memory holds per blob in flight whatever its size.
const CHUNK: usize = 1 << 20;

/// Write messages queued ahead of the socket.
const QUEUE: usize = 2;

/// How long the lease outlives a load that never deletes it (killed): its
/// content is collectable after that.
const LEASE_EXPIRY: Duration = Duration::from_secs(3600);

/// Where images go when they go straight into containerd.
#[derive(Clone, Debug)]
pub struct ContainerdTarget {
    /// containerd's gRPC socket (k3s: `/run/k3s/containerd/containerd.sock`).
    pub socket: PathBuf,
    /// The containerd namespace (`k8s.io` for the kubelet).
    pub namespace: String,
}

/// Failures talking to containerd; each names the socket.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// The socket cannot be reached.
    #[error("containerd at {}: cannot connect: {reason}", socket.display())]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        reason: String,
    },
    /// A call failed (containerd answered with an error, or went away).
    #[error("containerd at {}: {action}: {} ({})", socket.display(), status.message(), status.code())]
    Call {
        /// The socket.
        socket: PathBuf,
        /// What was being done.
        action: String,
        /// containerd's answer.
        status: Box<Status>,
    },
    /// containerd did not answer in time.
    #[error("containerd at {}: {action}: no answer for {}s", socket.display(), after.as_secs())]
    Stalled {
        /// The socket.
        socket: PathBuf,
        /// What was being done.
        action: String,
        /// How long it waited.
        after: Duration,
    },
    /// containerd answered something the write protocol does not allow.
    #[error("containerd at {}: {action}: {reason}", socket.display())]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What was being done.
        action: String,
        /// What was wrong.
        reason: String,
    },
    /// The async runtime for the calls could not start.
    #[error("loading into containerd at {}: cannot start the runtime: {source}", socket.display())]
    Runtime {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored blob cannot be read.
    #[error("loading into containerd at {}: reading {}: {source}", socket.display(), path.display())]
    Read {
        /// The socket.
        socket: PathBuf,
        /// The blob's file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored manifest that cannot be read as one.
    #[error("loading into containerd at {}: manifest {digest}: {reason}", socket.display())]
    BadManifest {
        /// The socket.
        socket: PathBuf,
        /// The manifest.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// The image's reference cannot name an image record.
    #[error("loading into containerd at {}: {reason}", socket.display())]
    BadReference {
        /// The socket.
        socket: PathBuf,
        /// Why.
        reason: String,
    },
}

impl ContainerdError {
    /// What kind of failure this is, from gRPC's code: a socket that
    /// refuses, goes away or stalls is the network's.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContainerdError::Connect { .. } | ContainerdError::Stalled { .. } => ErrorKind::Network,
            ContainerdError::Call { status, .. } => match status.code() {
                // A transport broken mid-call surfaces as Unknown or Cancelled.
                Code::Unavailable
                | Code::Unknown
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::ResourceExhausted => ErrorKind::Network,
                Code::Unauthenticated | Code::PermissionDenied => ErrorKind::Auth,
                Code::NotFound => ErrorKind::NotFound,
                Code::InvalidArgument | Code::OutOfRange => ErrorKind::Invalid,
                Code::Ok
                | Code::AlreadyExists
                | Code::FailedPrecondition
                | Code::Unimplemented
                | Code::Internal
                | Code::DataLoss => ErrorKind::Refused,
            },
            ContainerdError::Protocol { .. } => ErrorKind::Refused,
            ContainerdError::Read { .. } | ContainerdError::Runtime { .. } => ErrorKind::Local,
            ContainerdError::BadManifest { .. } | ContainerdError::BadReference { .. } => {
                ErrorKind::Invalid
            }
        }
    }
}

/// The repository of `reference` as a container runtime names it, with its
/// registry host (`nginx` is `docker.io/library/nginx`): the CRI plugin
/// looks images up by that normalized name.
pub fn repository(reference: &str) -> Result<String, tender_registry::RegistryError> {
    tender_registry::qualified_repository(reference)
}

/// One blob to put in the content store.
struct Blob {
    digest: Digest,
    size: u64,
    /// GC labels pointing at its children (index and manifests only).
    labels: BTreeMap<String, String>,
}

/// Every blob of `image`, children before their parents (so a parent's
/// GC labels never point at content not yet written), and its index.
fn blobs_of(
    t: &ContainerdTarget,
    image: &ImageRecord,
    blob_path: &dyn Fn(&Digest) -> PathBuf,
) -> Result<Vec<Blob>, ContainerdError> {
    let mut out = Vec::new();
    let mut index_labels = BTreeMap::new();
    // Read from the store and checked against the digest the bundle signs:
    // the GC labels written from them must name what containerd holds.
    let read = |digest: &Digest| {
        let bad = |reason: String| ContainerdError::BadManifest {
            socket: t.socket.clone(),
            digest: digest.clone(),
            reason,
        };
        let bytes = tender_store::read_bounded(&blob_path(digest), MAX_JSON_BLOB_BYTES)
            .map_err(|e| bad(e.to_string()))?;
        if Digest::of(&bytes) != *digest {
            return Err(bad(
                "the store's copy does not hash to its digest (run `tender-ship fsck`)".into(),
            ));
        }
        Ok(bytes)
    };
    // An index's children are labelled by their position in its own
    // `manifests` list, as containerd's import does: a label keyed by
    // another count could overwrite one that keeps another platform.
    let positions: Vec<String> = if image.platforms.iter().any(|p| p.manifest == image.digest) {
        vec![]
    } else {
        let index = ImageIndex::from_reader(&read(&image.digest)?[..]).map_err(|e| {
            ContainerdError::BadManifest {
                socket: t.socket.clone(),
                digest: image.digest.clone(),
                reason: e.to_string(),
            }
        })?;
        index.manifests().iter().map(|m| m.digest().to_string()).collect()
    };
    for p in &image.platforms {
        let bytes = read(&p.manifest)?;
        let bad = |reason: String| ContainerdError::BadManifest {
            socket: t.socket.clone(),
            digest: p.manifest.clone(),
            reason,
        };
        let m = ImageManifest::from_reader(&bytes[..]).map_err(|e| bad(e.to_string()))?;
        let mut labels = BTreeMap::new();
        let config = m.config();
        let config_digest: Digest =
            config.digest().to_string().parse().map_err(|e| bad(format!("{e}")))?;
        labels.insert("containerd.io/gc.ref.content.config".to_owned(), config_digest.to_string());
        out.push(Blob { digest: config_digest, size: config.size(), labels: BTreeMap::new() });
        for (j, l) in m.layers().iter().enumerate() {
            let digest: Digest = l.digest().to_string().parse().map_err(|e| bad(format!("{e}")))?;
            labels.insert(format!("containerd.io/gc.ref.content.l.{j}"), digest.to_string());
            out.push(Blob { digest, size: l.size(), labels: BTreeMap::new() });
        }
        if let Some(i) = positions.iter().position(|d| *d == p.manifest.to_string()) {
            index_labels
                .insert(format!("containerd.io/gc.ref.content.m.{i}"), p.manifest.to_string());
        }
        out.push(Blob { digest: p.manifest.clone(), size: bytes.len() as u64, labels });
    }
    out.push(Blob { digest: image.digest.clone(), size: image.size, labels: index_labels });
    Ok(out)
}

/// A client of one containerd socket and namespace, under one lease.
struct Session<'a> {
    t: &'a ContainerdTarget,
    content: ContentClient<Channel>,
    images: ImagesClient<Channel>,
    leases: LeasesClient<Channel>,
    lease: Option<String>,
    stall: Duration,
}

impl Session<'_> {
    fn call_err(&self, action: impl Into<String>) -> impl FnOnce(Status) -> ContainerdError + '_ {
        let action = action.into();
        move |status| ContainerdError::Call {
            socket: self.t.socket.clone(),
            action,
            status: Box::new(status),
        }
    }

    /// A request in the namespace, and under the lease once there is one.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        let md = r.metadata_mut();
        if let Ok(v) = self.t.namespace.parse() {
            md.insert("containerd-namespace", v);
        }
        if let Some(v) = self.lease.as_deref().and_then(|l| l.parse().ok()) {
            md.insert("containerd-lease", v);
        }
        r
    }

    /// Await `f`, an error when containerd says nothing for the stall time.
    async fn timed<T>(
        &self,
        action: &str,
        f: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, ContainerdError> {
        match tokio::time::timeout(self.stall, f).await {
            Ok(r) => r.map_err(self.call_err(action)),
            Err(_) => Err(ContainerdError::Stalled {
                socket: self.t.socket.clone(),
                action: action.to_owned(),
                after: self.stall,
            }),
        }
    }

    /// The content's info, None when containerd lacks it.
    async fn info(&mut self, digest: &Digest) -> Result<Option<Info>, ContainerdError> {
        let req = self.request(InfoRequest { digest: digest.to_string() });
        let mut c = self.content.clone();
        match tokio::time::timeout(self.stall, c.info(req)).await {
            Ok(Ok(r)) => Ok(r.into_inner().info),
            Ok(Err(s)) if s.code() == Code::NotFound => Ok(None),
            Ok(Err(s)) => Err(self.call_err(format!("asking for {digest}"))(s)),
            Err(_) => Err(ContainerdError::Stalled {
                socket: self.t.socket.clone(),
                action: format!("asking for {digest}"),
                after: self.stall,
            }),
        }
    }

    /// Content containerd already holds: into the lease (the collector
    /// could take it between this check and the image record otherwise),
    /// and given the GC labels it lacks.
    async fn keep(&mut self, blob: &Blob, info: Info) -> Result<(), ContainerdError> {
        let action = format!("holding {}", blob.digest);
        let lease = self.lease.clone().unwrap_or_default();
        let req = self.request(AddResourceRequest {
            id: lease,
            resource: Some(Resource { id: blob.digest.to_string(), r#type: "content".into() }),
        });
        let mut l = self.leases.clone();
        self.timed(&action, l.add_resource(req)).await?;
        let missing: Vec<String> = blob
            .labels
            .iter()
            .filter(|(k, v)| info.labels.get(*k) != Some(*v))
            .map(|(k, _)| format!("labels.{k}"))
            .collect();
        if !missing.is_empty() {
            let mut info = info;
            info.labels.extend(blob.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            let req = self.request(UpdateRequest {
                info: Some(info),
                update_mask: Some(prost_types::FieldMask { paths: missing }),
            });
            let mut c = self.content.clone();
            self.timed(&format!("labelling {}", blob.digest), c.update(req)).await?;
        }
        Ok(())
    }

    /// Stream `blob` from `path` through the content Write stream: stat,
    /// writes from where an interrupted write left off, commit with the
    /// expected digest and size. False when containerd already had it.
    async fn write(
        &mut self,
        blob: &Blob,
        path: &Path,
        resume: bool,
        progress: &dyn Progress,
    ) -> Result<bool, ContainerdError> {
        let action = format!("writing {}", blob.digest);
        let reference = format!("tender-{}", blob.digest);
        let read_err = |source| ContainerdError::Read {
            socket: self.t.socket.clone(),
            path: path.to_owned(),
            source,
        };
        let protocol = |reason: String| ContainerdError::Protocol {
            socket: self.t.socket.clone(),
            action: action.clone(),
            reason,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(read_err)?;
        let (mut tx, rx) = mpsc::channel::<WriteContentRequest>(QUEUE);
        let base = WriteContentRequest {
            r#ref: reference.clone(),
            total: blob.size as i64,
            expected: blob.digest.to_string(),
            ..Default::default()
        };
        // Queued before the call: containerd answers (and sends its
        // headers) only once it has read the first message.
        let stat = WriteContentRequest { action: WriteAction::Stat as i32, ..base.clone() };
        tx.send(stat).await.map_err(|e| protocol(e.to_string()))?;
        let req = self.request(rx);
        let mut c = self.content.clone();
        let mut answers = match tokio::time::timeout(self.stall, c.write(req)).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(s)) if s.code() == Code::AlreadyExists => return Ok(false),
            Ok(Err(s)) => return Err(self.call_err(action.clone())(s)),
            Err(_) => {
                return Err(ContainerdError::Stalled {
                    socket: self.t.socket.clone(),
                    action: action.clone(),
                    after: self.stall,
                });
            }
        };
        let stall = self.stall;
        let answer = |r: Result<Option<WriteContentResponse>, Status>| match r {
            Ok(Some(a)) => Ok(Some(a)),
            Ok(None) => Err(protocol("the write stream ended early".into())),
            Err(s) if s.code() == Code::AlreadyExists => Ok(None),
            Err(s) => Err(ContainerdError::Call {
                socket: self.t.socket.clone(),
                action: action.clone(),
                status: Box::new(s),
            }),
        };
        let Some(stat) = answer(next_answer(stall, &mut answers).await)? else { return Ok(false) };
        // What an interrupted write left in containerd's ingest is kept
        // only when asked: the commit checks the digest either way.
        let mut offset = match u64::try_from(stat.offset) {
            Ok(o) if resume && o <= blob.size => o,
            _ => 0,
        };
        progress.advance(offset);
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(read_err)?;
        let mut first = true;
        while offset < blob.size || first {
            let want = (blob.size - offset).min(CHUNK as u64) as usize;
            let mut data = vec![0u8; want];
            file.read_exact(&mut data).await.map_err(read_err)?;
            let last = offset + want as u64 == blob.size;
            let message = WriteContentRequest {
                action: (if last { WriteAction::Commit } else { WriteAction::Write }) as i32,
                // Offset 0 makes containerd drop what an earlier write left.
                offset: offset as i64,
                data,
                labels: if last {
                    blob.labels.clone().into_iter().collect()
                } else {
                    Default::default()
                },
                ..base.clone()
            };
            if tx.send(message).await.is_err() {
                // containerd closed the stream: its answer says why.
                answer(next_answer(stall, &mut answers).await)?;
                return Err(protocol("the write stream closed early".into()));
            }
            let Some(a) = answer(next_answer(stall, &mut answers).await)? else { return Ok(false) };
            offset += want as u64;
            progress.advance(want as u64);
            if a.offset != offset as i64 {
                return Err(protocol(format!(
                    "containerd is at offset {}, not {offset}",
                    a.offset
                )));
            }
            first = false;
            if last {
                break;
            }
        }
        drop(tx);
        Ok(true)
    }

    /// Abort an interrupted write's ingest, so the next starts clean.
    async fn abort(&mut self, digest: &Digest) {
        let req = self.request(AbortRequest { r#ref: format!("tender-{digest}") });
        let mut c = self.content.clone();
        let _ = tokio::time::timeout(self.stall, c.abort(req)).await;
    }

    /// Create (or point again) the image record `name` at `target`.
    async fn image(&mut self, name: &str, target: &CtrDescriptor) -> Result<(), ContainerdError> {
        let image = Image {
            name: name.to_owned(),
            // The CRI plugin lists images labelled so as its own.
            labels: [("io.cri-containerd.image".to_owned(), "managed".to_owned())].into(),
            target: Some(target.clone()),
            created_at: None,
            updated_at: None,
        };
        let req = self
            .request(CreateImageRequest { image: Some(image.clone()), source_date_epoch: None });
        let mut i = self.images.clone();
        let action = format!("creating image {name}");
        match tokio::time::timeout(self.stall, i.create(req)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(s)) if s.code() == Code::AlreadyExists => {
                let req = self.request(UpdateImageRequest {
                    image: Some(image),
                    update_mask: None,
                    source_date_epoch: None,
                });
                self.timed(&format!("updating image {name}"), i.update(req)).await?;
                Ok(())
            }
            Ok(Err(s)) => Err(self.call_err(action)(s)),
            Err(_) => Err(ContainerdError::Stalled {
                socket: self.t.socket.clone(),
                action,
                after: self.stall,
            }),
        }
    }
}

/// The next answer of a write stream, an error when none comes in `stall`.
async fn next_answer(
    stall: Duration,
    answers: &mut tonic::Streaming<WriteContentResponse>,
) -> Result<Option<WriteContentResponse>, Status> {
    match tokio::time::timeout(stall, answers.message()).await {
        Ok(r) => r,
        Err(_) => Err(Status::deadline_exceeded(format!("no answer for {}s", stall.as_secs()))),
    }
}

/// Write every image of `d` into containerd at `t`: the blobs it lacks
/// (streamed from `blob_path`), then the image records. The report counts
/// blobs written and blobs containerd held already.
pub fn load(
    t: &ContainerdTarget,
    d: &Descriptor,
    blob_path: &dyn Fn(&Digest) -> PathBuf,
    progress: &dyn Progress,
) -> Result<PushReport, ContainerdError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ContainerdError::Runtime { socket: t.socket.clone(), source })?;
    let policy = tender_registry::NetworkPolicy::default();
    rt.block_on(async {
        let connect = containerd_client::connect(&t.socket);
        let channel = match tokio::time::timeout(policy.connect_timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(ContainerdError::Connect {
                    socket: t.socket.clone(),
                    reason: tender_bundle::error_chain(&e),
                });
            }
            Err(_) => {
                return Err(ContainerdError::Connect {
                    socket: t.socket.clone(),
                    reason: format!("no answer in {}s", policy.connect_timeout.as_secs()),
                });
            }
        };
        let mut s = Session {
            t,
            content: ContentClient::new(channel.clone()),
            images: ImagesClient::new(channel.clone()),
            leases: LeasesClient::new(channel),
            lease: None,
            stall: policy.read_timeout,
        };
        let id = format!(
            "tender-load-{}-{}",
            std::process::id(),
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos()
        );
        let expire = humantime::format_rfc3339_seconds(SystemTime::now() + LEASE_EXPIRY);
        let req = s.request(CreateLease {
            id: id.clone(),
            labels: [("containerd.io/gc.expire".to_owned(), expire.to_string())].into(),
        });
        let mut l = s.leases.clone();
        s.timed("creating a lease", l.create(req)).await?;
        s.lease = Some(id.clone());
        let result = load_images(&mut s, d, blob_path, progress).await;
        // The image records reference everything now; on failure the
        // lease's expiry frees what was half done.
        if result.is_ok() {
            s.lease = None;
            let req = s.request(DeleteLease { id, sync: false });
            let mut l = s.leases.clone();
            s.timed("deleting the lease", l.delete(req)).await?;
        }
        result
    })
}

async fn load_images(
    s: &mut Session<'_>,
    d: &Descriptor,
    blob_path: &dyn Fn(&Digest) -> PathBuf,
    progress: &dyn Progress,
) -> Result<PushReport, ContainerdError> {
    let t = s.t;
    let mut report = PushReport::default();
    let mut plan = Vec::new();
    let mut seen = HashSet::new();
    for image in &d.images {
        let blobs = blobs_of(t, image, blob_path)?;
        plan.push((
            image,
            blobs.into_iter().filter(|b| seen.insert(b.digest.clone())).collect::<Vec<_>>(),
        ));
    }
    progress.start("load", plan.iter().flat_map(|(_, b)| b).map(|b| b.size).sum());
    for (image, blobs) in &plan {
        progress.item(&image.reference);
        for blob in blobs {
            if let Some(info) = s.info(&blob.digest).await? {
                s.keep(blob, info).await?;
                report.blobs_present += 1;
                report.bytes_present += blob.size;
                progress.advance(blob.size);
                continue;
            }
            let path = blob_path(&blob.digest);
            let written = match s.write(blob, &path, true, progress).await {
                // What an interrupted write left may not be what it seemed:
                // once more from the start.
                Err(ContainerdError::Call { status, .. })
                    if matches!(
                        status.code(),
                        Code::FailedPrecondition | Code::InvalidArgument | Code::OutOfRange
                    ) =>
                {
                    s.abort(&blob.digest).await;
                    s.write(blob, &path, false, progress).await?
                }
                other => other?,
            };
            if written {
                report.blobs_pushed += 1;
                report.bytes_pushed += blob.size;
            } else {
                report.blobs_present += 1;
                report.bytes_present += blob.size;
            }
        }
        let repo = repository(&image.reference).map_err(|e| ContainerdError::BadReference {
            socket: t.socket.clone(),
            reason: e.to_string(),
        })?;
        let (_, tag) = tender_registry::repository_and_tag(&image.reference).map_err(|e| {
            ContainerdError::BadReference { socket: t.socket.clone(), reason: e.to_string() }
        })?;
        let target = CtrDescriptor {
            media_type: image.media_type.clone(),
            digest: image.digest.to_string(),
            size: image.size as i64,
            annotations: Default::default(),
        };
        let pinned = format!("{repo}@{}", image.digest);
        if let Some(tag) = tag {
            s.image(&format!("{repo}:{tag}"), &target).await?;
        }
        s.image(&pinned, &target).await?;
        report.images.push((image.reference.clone(), pinned));
    }
    progress.finish();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(code: Code) -> ContainerdError {
        ContainerdError::Call {
            socket: "/run/k3s/containerd/containerd.sock".into(),
            action: "writing".into(),
            status: Box::new(Status::new(code, "x")),
        }
    }

    #[test]
    fn a_socket_that_refuses_or_goes_away_is_the_network_and_named() {
        let refused =
            ContainerdError::Connect { socket: "/s.sock".into(), reason: "refused".into() };
        assert_eq!(refused.kind(), ErrorKind::Network);
        assert!(refused.to_string().contains("/s.sock"));
        for code in [Code::Unavailable, Code::Unknown, Code::Cancelled] {
            assert_eq!(call(code).kind(), ErrorKind::Network, "{code:?}");
        }
        assert_eq!(call(Code::FailedPrecondition).kind(), ErrorKind::Refused);
        assert_eq!(call(Code::PermissionDenied).kind(), ErrorKind::Auth);
        assert!(call(Code::Unknown).to_string().contains("/run/k3s/containerd/containerd.sock"));
    }

    #[test]
    fn image_names_carry_the_registry_as_the_cri_plugin_names_them() {
        assert_eq!(
            repository("shore.registry.example/fleet/sensor-fusion:1.0.0").unwrap(),
            "shore.registry.example/fleet/sensor-fusion"
        );
        assert_eq!(repository("nginx:1.25").unwrap(), "docker.io/library/nginx");
        assert_eq!(repository("localhost:5000/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000").unwrap(), "localhost:5000/a/b");
    }
}
