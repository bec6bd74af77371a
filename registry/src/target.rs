//! Where a bundle or a receipt is published: `REGISTRY/REPO:TAG`.

use crate::RegistryError;

/// `REGISTRY/REPO:TAG`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]`.
    pub host: String,
    /// Repository path.
    pub repo: String,
    /// Tag.
    pub tag: String,
}

impl Target {
    /// Parse `REGISTRY/REPO:TAG` (the registry part is required: a bundle
    /// never goes to Docker Hub by default).
    pub fn parse(s: &str) -> Result<Target, RegistryError> {
        let bad = |reason: &str| RegistryError::BadReference {
            reference: s.into(),
            reason: reason.into(),
        };
        let (host, _) = s.split_once('/').ok_or_else(|| bad("expected REGISTRY/REPO:TAG"))?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad("the first part must be a registry host (HOST or HOST:PORT)"));
        }
        let r: oci_client::Reference =
            s.parse().map_err(|e: oci_client::ParseError| bad(&e.to_string()))?;
        if r.digest().is_some() {
            return Err(bad("name a tag, not a digest"));
        }
        Ok(Target {
            host: host.into(),
            repo: r.repository().into(),
            tag: r.tag().unwrap_or("latest").into(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.host, self.repo, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("127.0.0.1:5000/fleet/awareness:1.1.0").unwrap();
        assert_eq!(
            t,
            Target {
                host: "127.0.0.1:5000".into(),
                repo: "fleet/awareness".into(),
                tag: "1.1.0".into()
            }
        );
        assert_eq!(Target::parse("shore.example/a").unwrap().tag, "latest");
        assert!(Target::parse("fleet/awareness:1").is_err(), "no registry host");
        assert!(Target::parse(&format!("r.example/a@sha256:{}", "0".repeat(64))).is_err());
    }
}
