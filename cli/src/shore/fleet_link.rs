//! `fleet ingest --from REGISTRY/REPO`: the receipts ships pushed with
//! `tender-ship report --to`, fetched (each read with the receipt bound,
//! checked against its digest; retried as `pull` is) for `fleet ingest`.

use std::path::PathBuf;

use anyhow::Result;
use tender_bundle::receipt::{MAX_RECEIPT_MANIFEST_BYTES, parse_receipt_artifact};
use tender_registry::{Registry, Target, Transport};

use super::fleet::Source;

/// How to reach the registry.
#[derive(clap::Args)]
pub struct LinkArgs {
    /// Use plain HTTP for this registry (repeatable; loopback always may).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure: Vec<String>,
    /// Docker-style auth file for registries; default: ~/.docker/config.json.
    #[arg(long)]
    authfile: Option<PathBuf>,
}

/// Every tag of `from` (REGISTRY/REPO), each fetched as a receipt: a tag
/// that cannot be fetched stands alone (its error is reported with it).
pub(super) fn receipts_at(from: &str, link: &LinkArgs) -> Result<Vec<Source>> {
    // A repository, not a tag: parse it with a tag to split host and path.
    let repo = Target::parse(&format!("{from}:x"))?;
    let transport = if link.insecure.is_empty() {
        Transport::TlsExceptLoopback
    } else {
        Transport::PlainHttpFor(link.insecure.clone())
    };
    let auth = match &link.authfile {
        Some(p) => tender_registry::auth_from_file(p, &repo.host)?,
        None => match std::env::var_os("HOME") {
            Some(h) => tender_registry::auth_from_file(
                &PathBuf::from(h).join(".docker/config.json"),
                &repo.host,
            )?,
            None => tender_registry::RegistryAuth::Anonymous,
        },
    };
    let registry = Registry::new(&repo.host, &transport, auth)?;
    let mut tags = registry.list_tags(&repo.repo)?;
    tags.sort();
    let layer = |m: &[u8]| parse_receipt_artifact(m).map_err(Into::into);
    Ok(tags
        .into_iter()
        .map(|tag| {
            let t = Target { host: repo.host.clone(), repo: repo.repo.clone(), tag };
            let fetched = registry.fetch_small_artifact(&t, MAX_RECEIPT_MANIFEST_BYTES, &layer);
            Source::Fetched(PathBuf::from(t.to_string()), fetched)
        })
        .collect())
}
