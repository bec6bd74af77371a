//! `fleet ingest --from REGISTRY/REPO`: the receipts ships pushed with
//! `tender-ship report --to`, fetched (each read with the receipt bound,
//! checked against its digest; retried as `pull` is) for `fleet ingest`.

use std::path::PathBuf;

use anyhow::{Result, bail};
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
    let registry = std::rc::Rc::new(Registry::new(&repo.host, &transport, auth)?);
    let mut tags = registry.list_tags(&repo.repo)?;
    // The registry decides how many tags it lists: a fleet has far fewer
    // ships than this, and each receipt is fetched only when ingested, so
    // at most one is held at a time.
    if tags.len() > MAX_TAGS {
        bail!(
            "{from} lists {} tags, more than the {MAX_TAGS} receipts one ingest reads; \
             is it the fleet's receipt repository?",
            tags.len()
        );
    }
    tags.sort();
    Ok(tags
        .into_iter()
        .map(|tag| {
            let shown = PathBuf::from(format!("{from}:{}", tag.escape_debug()));
            if !tender_registry::is_tag(&tag) {
                let bad = tender_registry::RegistryError::BadReference {
                    reference: shown.display().to_string(),
                    reason: "not a tag (A-Z a-z 0-9 _ . -, at most 128)".into(),
                };
                return Source::Fetched(shown, Box::new(move || Err(bad)));
            }
            let t = Target { host: repo.host.clone(), repo: repo.repo.clone(), tag };
            let registry = registry.clone();
            Source::Fetched(
                shown,
                Box::new(move || {
                    let layer = |m: &[u8]| parse_receipt_artifact(m).map_err(Into::into);
                    registry.fetch_small_artifact(&t, MAX_RECEIPT_MANIFEST_BYTES, &layer)
                }),
            )
        })
        .collect())
}

/// The most tags `ingest --from` reads.
const MAX_TAGS: usize = 1000;

#[cfg(test)]
mod tests {
    #[test]
    fn tags_follow_the_oci_grammar() {
        for ok in ["mv-aurora", "_x", "a.b_c-1", &"a".repeat(128)] {
            assert!(tender_registry::is_tag(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/../b", "a\u{1b}[2J", &"a".repeat(129), "a:b"] {
            assert!(!tender_registry::is_tag(bad), "{bad:?}");
        }
    }
}
