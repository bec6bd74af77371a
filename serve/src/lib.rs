//! `tender-ship serve`: a read-only OCI distribution registry over the
//! store, so a ship without a registry add-on (and the demo) needs no other
//! registry. It serves only complete, verified versions: manifests by tag or
//! digest, and the blobs those manifests name, under each image's
//! repository path (the reference without the shore registry's host), and
//! each repository only from the stack that owns it.
#![deny(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use oci_spec::image::{ImageManifest, MediaType};
use tender_bundle::limits::MAX_JSON_BLOB_BYTES;
use tender_bundle::{Descriptor, Digest, StackName};
use tender_store::{Store, StoreError, VersionRecord, read_bounded};
use tokio_util::io::ReaderStream;

/// Why `serve` stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address cannot be listened on.
    #[error("cannot serve on {listen}")]
    Listen {
        /// The address.
        listen: String,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the network runtime")]
    Runtime(#[source] std::io::Error),
}

impl ServeError {
    /// What kind of failure it is.
    pub fn kind(&self) -> tender_bundle::ErrorKind {
        match self {
            ServeError::Store(e) => e.kind(),
            ServeError::Listen { .. } | ServeError::Runtime(_) => tender_bundle::ErrorKind::Local,
        }
    }
}

/// What the store offers, per repository.
#[derive(Default)]
struct Catalog {
    /// (repository, tag) -> (digest, media type), newest sequence wins.
    tags: HashMap<(String, String), (Digest, String, u64)>,
    /// (repository, manifest digest) -> media type.
    manifests: HashMap<(String, Digest), String>,
    /// (repository, blob digest).
    blobs: HashSet<(String, Digest)>,
}

/// The stack whose images a repository shows: its owner (the stack that
/// first loaded it), or, before any load, the one stack naming it. A
/// repository that several stacks name and none owns shows nothing, so one
/// stack's signer cannot move another stack's tags.
fn repository_stacks(
    store: &Store,
    versions: &[(PathBuf, VersionRecord, Descriptor)],
) -> Result<HashMap<String, StackName>, ServeError> {
    let mut naming: HashMap<String, HashSet<StackName>> = HashMap::new();
    for (_, _, d) in versions {
        for image in &d.images {
            if let Ok((repo, _)) = tender_registry::repository_and_tag(&image.reference) {
                naming.entry(repo).or_default().insert(d.stack.name.clone());
            }
        }
    }
    let owners = store.owners()?;
    Ok(naming
        .into_iter()
        .filter_map(|(repo, stacks)| {
            let stack = match owners.repositories.get(&repo) {
                Some(owner) => owner.clone(),
                None if stacks.len() == 1 => stacks.into_iter().next()?,
                None => return None,
            };
            Some((repo, stack))
        })
        .collect())
}

fn catalog(store: &Store) -> Result<Catalog, ServeError> {
    let mut c = Catalog::default();
    // Only versions whose signatures still count: a revoked key's version
    // must not win a tag (nor be served by digest).
    let versions = store.trusted_versions()?;
    let shown = repository_stacks(store, &versions)?;
    for (_, _, d) in &versions {
        if !store.missing_blobs(d).is_empty() {
            continue;
        }
        let sizes: HashMap<&Digest, u64> = d.blobs.iter().map(|b| (&b.digest, b.size)).collect();
        let media: HashMap<&Digest, &str> =
            d.blobs.iter().map(|b| (&b.digest, b.media_type.as_str())).collect();
        for image in &d.images {
            let Ok((repo, tag)) = tender_registry::repository_and_tag(&image.reference) else {
                continue;
            };
            if shown.get(&repo) != Some(&d.stack.name) {
                continue;
            }
            // A manifest larger than the import's bound is not served.
            if sizes.get(&image.digest).is_none_or(|s| *s > MAX_JSON_BLOB_BYTES) {
                continue;
            }
            if let Some(tag) = tag {
                let key = (repo.clone(), tag);
                if c.tags.get(&key).is_none_or(|(_, _, seq)| *seq <= d.sequence) {
                    c.tags
                        .insert(key, (image.digest.clone(), image.media_type.clone(), d.sequence));
                }
            }
            c.manifests.insert((repo.clone(), image.digest.clone()), image.media_type.clone());
            for p in &image.platforms {
                let Ok(bytes) = read_bounded(&store.blob_path(&p.manifest), MAX_JSON_BLOB_BYTES)
                else {
                    continue;
                };
                let Ok(m) = ImageManifest::from_reader(&bytes[..]) else { continue };
                let mt = media
                    .get(&p.manifest)
                    .copied()
                    .map_or_else(|| MediaType::ImageManifest.to_string(), |m| (*m).to_owned());
                c.manifests.insert((repo.clone(), p.manifest.clone()), mt);
                for desc in std::iter::once(m.config()).chain(m.layers()) {
                    if let Ok(dg) = desc.digest().to_string().parse::<Digest>() {
                        c.blobs.insert((repo.clone(), dg));
                    }
                }
            }
        }
    }
    Ok(c)
}

type Body = BoxBody<Bytes, std::io::Error>;

fn json_response(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Docker-Distribution-API-Version", "registry/2.0")
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed())
        .expect("valid response")
}

fn error(status: u16, code: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string(),
    )
}

struct Shared {
    store: Store,
    catalog: Mutex<(Instant, Arc<Catalog>)>,
}

impl Shared {
    /// The catalog, rebuilt when older than a second (imports may add versions).
    fn catalog(&self) -> Result<Arc<Catalog>, ServeError> {
        let mut c = self.catalog.lock().expect("catalog lock");
        if c.0.elapsed() > Duration::from_secs(1) {
            *c = (Instant::now(), Arc::new(catalog(&self.store)?));
        }
        Ok(c.1.clone())
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return error(405, "UNSUPPORTED", "this registry is read-only");
    }
    let url = req.uri().path().to_owned();
    if url == "/v2/" || url == "/v2" {
        return json_response(200, "{}".into());
    }
    let catalog = match shared.catalog() {
        Ok(c) => c,
        Err(e) => return error(500, "UNKNOWN", &tender_bundle::error_chain(&e)),
    };
    let Some(rest) = url.strip_prefix("/v2/") else {
        return error(404, "NAME_UNKNOWN", "not found");
    };
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        let mut tags: Vec<&str> =
            catalog.tags.keys().filter(|(r, _)| r == repo).map(|(_, t)| t.as_str()).collect();
        tags.sort();
        if tags.is_empty() {
            return error(404, "NAME_UNKNOWN", &format!("{repo} is not in a complete version"));
        }
        return json_response(200, serde_json::json!({"name": repo, "tags": tags}).to_string());
    }
    let found = if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        let hit = match reference.parse::<Digest>() {
            Ok(d) => catalog.manifests.get(&(repo.to_owned(), d.clone())).map(|mt| (d, mt.clone())),
            Err(_) => catalog
                .tags
                .get(&(repo.to_owned(), reference.to_owned()))
                .map(|(d, mt, _)| (d.clone(), mt.clone())),
        };
        hit.ok_or_else(|| {
            error(
                404,
                "MANIFEST_UNKNOWN",
                &format!("{repo}:{reference} is not in a complete version"),
            )
        })
    } else if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        match digest.parse::<Digest>() {
            Ok(d) if catalog.blobs.contains(&(repo.to_owned(), d.clone())) => {
                Ok((d, "application/octet-stream".into()))
            }
            _ => Err(error(
                404,
                "BLOB_UNKNOWN",
                &format!("{repo}@{digest} is not in a complete version"),
            )),
        }
    } else {
        Err(error(404, "NAME_UNKNOWN", "not found"))
    };
    let (digest, media_type) = match found {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let path = shared.store.blob_path(&digest);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return error(500, "UNKNOWN", &format!("{}: {e}", path.display())),
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let body: Body = if head {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        StreamBody::new(ReaderStream::with_capacity(file, 1 << 20).map_ok(Frame::data)).boxed()
    };
    Response::builder()
        .status(200)
        .header("Content-Type", media_type)
        .header("Content-Length", len)
        .header("Docker-Content-Digest", digest.as_str())
        .header("Docker-Distribution-API-Version", "registry/2.0")
        .body(body)
        .expect("valid response")
}

/// Serve the store on `listen` until the process ends. `ready` gets the
/// bound address (useful with port 0).
pub fn serve(store: Store, listen: &str, ready: impl FnOnce(&str)) -> Result<(), ServeError> {
    let serve_err = |e: std::io::Error| ServeError::Listen { listen: listen.into(), source: e };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let shared = Arc::new(Shared {
        catalog: Mutex::new((Instant::now(), Arc::new(catalog(&store)?))),
        store,
    });
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(serve_err)?;
        ready(&listener.local_addr().map_err(serve_err)?.to_string());
        loop {
            let (stream, _) = listener.accept().await.map_err(serve_err)?;
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
                });
                // A client that speaks TLS to this plain-HTTP port gets an
                // immediate 400 and a closed connection, so it falls back to
                // HTTP at once; a stalled client is dropped after 30 s.
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
