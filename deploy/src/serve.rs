//! `tender-ship serve`: a read-only OCI distribution registry over the
//! store, so a ship without a registry add-on (and the demo) needs no other
//! registry. It serves only complete, verified versions: manifests by tag or
//! digest, and the blobs those manifests name, under each image's
//! repository path (the reference without the shore registry's host).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_spec::image::ImageManifest;
use tender_bundle::Digest;
use tender_store::Store;
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

use crate::DeployError;

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

fn catalog(store: &Store) -> Result<Catalog, DeployError> {
    let mut c = Catalog::default();
    for (_, _, d) in store.versions()? {
        if !store.missing_blobs(&d).is_empty() {
            continue;
        }
        let media: HashMap<&Digest, &str> = d.blobs.iter().map(|b| (&b.digest, b.media_type.as_str())).collect();
        for image in &d.images {
            let Ok((repo, tag)) = tender_registry::repository_and_tag(&image.reference) else { continue };
            if let Some(tag) = tag {
                let key = (repo.clone(), tag);
                if c.tags.get(&key).is_none_or(|(_, _, seq)| *seq <= d.sequence) {
                    c.tags.insert(key, (image.digest.clone(), image.media_type.clone(), d.sequence));
                }
            }
            c.manifests.insert((repo.clone(), image.digest.clone()), image.media_type.clone());
            for p in &image.platforms {
                let mt = media.get(&p.manifest).copied().unwrap_or("application/vnd.oci.image.manifest.v1+json");
                c.manifests.insert((repo.clone(), p.manifest.clone()), mt.to_owned());
                let Ok(bytes) = std::fs::read(store.blob_path(&p.manifest)) else { continue };
                let Ok(m) = ImageManifest::from_reader(&bytes[..]) else { continue };
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

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("ASCII header")
}

fn error(status: u16, code: &str, message: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string();
    Response::from_data(body)
        .with_status_code(StatusCode(status))
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Docker-Distribution-API-Version", "registry/2.0"))
}

struct Shared {
    store: Store,
    catalog: Mutex<(Instant, Arc<Catalog>)>,
}

impl Shared {
    /// The catalog, rebuilt when older than a second (imports may add versions).
    fn catalog(&self) -> Result<Arc<Catalog>, DeployError> {
        let mut c = self.catalog.lock().expect("catalog lock");
        if c.0.elapsed() > Duration::from_secs(1) {
            *c = (Instant::now(), Arc::new(catalog(&self.store)?));
        }
        Ok(c.1.clone())
    }
}

fn handle(shared: &Shared, req: Request) {
    let head = *req.method() == Method::Head;
    if !matches!(req.method(), Method::Get | Method::Head) {
        let _ = req.respond(error(405, "UNSUPPORTED", "this registry is read-only"));
        return;
    }
    let url = req.url().split('?').next().unwrap_or("").to_owned();
    if url == "/v2/" || url == "/v2" {
        let _ = req.respond(
            Response::from_string("{}")
                .with_header(header("Content-Type", "application/json"))
                .with_header(header("Docker-Distribution-API-Version", "registry/2.0")),
        );
        return;
    }
    let catalog = match shared.catalog() {
        Ok(c) => c,
        Err(e) => {
            let _ = req.respond(error(500, "UNKNOWN", &e.to_string()));
            return;
        }
    };
    let Some(rest) = url.strip_prefix("/v2/") else {
        let _ = req.respond(error(404, "NAME_UNKNOWN", "not found"));
        return;
    };
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        let mut tags: Vec<&str> =
            catalog.tags.keys().filter(|(r, _)| r == repo).map(|(_, t)| t.as_str()).collect();
        tags.sort();
        let resp = if tags.is_empty() {
            error(404, "NAME_UNKNOWN", &format!("{repo} is not in a complete version"))
        } else {
            Response::from_data(serde_json::json!({"name": repo, "tags": tags}).to_string())
                .with_header(header("Content-Type", "application/json"))
        };
        let _ = req.respond(resp);
        return;
    }
    let found = if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        let hit = match reference.parse::<Digest>() {
            Ok(d) => catalog.manifests.get(&(repo.to_owned(), d.clone())).map(|mt| (d, mt.clone())),
            Err(_) => catalog.tags.get(&(repo.to_owned(), reference.to_owned())).map(|(d, mt, _)| (d.clone(), mt.clone())),
        };
        hit.ok_or_else(|| error(404, "MANIFEST_UNKNOWN", &format!("{repo}:{reference} is not in a complete version")))
    } else if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        match digest.parse::<Digest>() {
            Ok(d) if catalog.blobs.contains(&(repo.to_owned(), d.clone())) => Ok((d, "application/octet-stream".into())),
            _ => Err(error(404, "BLOB_UNKNOWN", &format!("{repo}@{digest} is not in a complete version"))),
        }
    } else {
        Err(error(404, "NAME_UNKNOWN", "not found"))
    };
    let (digest, media_type) = match found {
        Ok(x) => x,
        Err(resp) => {
            let _ = req.respond(resp);
            return;
        }
    };
    let path = shared.store.blob_path(&digest);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            let _ = req.respond(error(500, "UNKNOWN", &format!("{}: {e}", path.display())));
            return;
        }
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let headers = vec![
        header("Content-Type", &media_type),
        header("Docker-Content-Digest", digest.as_str()),
        header("Docker-Distribution-API-Version", "registry/2.0"),
    ];
    let body: Box<dyn std::io::Read + Send> = if head { Box::new(std::io::empty()) } else { Box::new(file) };
    let _ = req.respond(Response::new(StatusCode(200), headers, body, Some(len as usize), None));
}

/// Serve the store on `listen` until the process ends.
pub fn serve(store: Store, listen: &str, ready: impl FnOnce(&str)) -> Result<(), DeployError> {
    let server = Server::http(listen).map_err(|e| DeployError::Serve { listen: listen.into(), reason: e.to_string() })?;
    let shared = Arc::new(Shared {
        catalog: Mutex::new((Instant::now(), Arc::new(catalog(&store)?))),
        store,
    });
    let server = Arc::new(server);
    ready(&server.server_addr().to_string());
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (server, shared) = (server.clone(), shared.clone());
            std::thread::spawn(move || {
                while let Ok(req) = server.recv() {
                    handle(&shared, req);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}
