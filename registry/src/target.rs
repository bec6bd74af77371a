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
        let (host, rest) = s.split_once('/').ok_or_else(|| bad("expected REGISTRY/REPO:TAG"))?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad("the first part must be a registry host (HOST or HOST:PORT)"));
        }
        if rest.contains('@') {
            return Err(bad("name a tag, not a digest"));
        }
        // The tag follows the last ':' after the last '/'.
        let (repo, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (rest, "latest"),
        };
        if !is_host(host) {
            return Err(bad("the registry host is not HOST or HOST:PORT"));
        }
        if !is_repository(repo) || host.len() + 1 + repo.len() > 255 {
            return Err(bad(
                "the repository is not lowercase components joined by '/' (the OCI grammar), or is too long",
            ));
        }
        if !is_tag(tag) {
            return Err(bad("the tag is not [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"));
        }
        Ok(Target { host: host.into(), repo: repo.into(), tag: tag.into() })
    }
}

// The OCI distribution grammar, by hand: oci-spec's `Reference` parser
// compiles a Unicode regular expression the first time it runs (30-40 ms of
// CPU and 10 MB, on every command that names a registry), and is looser
// than the specification for tags (any Unicode word character).

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    tag.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A repository: components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`.
pub fn is_repository(repo: &str) -> bool {
    repo.split('/').all(|c| {
        let b = c.as_bytes();
        let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
            return false;
        }
        // Between alphanumeric runs: '.', '_', '__' or any run of '-'.
        let mut i = 0;
        while i < b.len() {
            if alnum(&b[i]) {
                i += 1;
                continue;
            }
            let j = b[i..].iter().position(alnum).map_or(b.len(), |n| i + n);
            let sep = &c[i..j];
            if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
                return false;
            }
            i = j;
        }
        true
    })
}

/// A registry host: domain components (`[A-Za-z0-9]` or
/// `[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]`) joined by '.', then `:PORT`.
fn is_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let component = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    };
    name.split('.').all(component)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|x| x.is_ascii_digit()))
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
        for bad in [
            "r.example/Fleet/a:1",
            "r.example/a//b:1",
            "r.example/a-:1",
            "r.example/a___b:1",
            "r.example/a:-1",
            "r.example/a:1/b",
            "r.example:x/a:1",
            "-r.example/a:1",
            "r.example/a:\u{1b}[2J",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        for ok in ["r.example/a__b/c-----d.e_f:_V1.0-rc", "localhost/a", "10.0.0.1:5000/a/b:1"] {
            assert!(Target::parse(ok).is_ok(), "{ok}");
        }
    }

    proptest::proptest! {
        /// The hand-written grammar accepts what oci-spec's regular
        /// expression accepts, over ASCII (it is stricter on Unicode tags
        /// only, as the specification is).
        #[test]
        fn agrees_with_oci_spec(rest in "[a-zA-Z0-9._/:@-]{1,24}") {
            let s = format!("r.example:5000/{rest}");
            let ours = Target::parse(&s).ok();
            let theirs = s.parse::<oci_client::Reference>().ok().filter(|r| r.digest().is_none());
            proptest::prop_assert_eq!(
                ours.map(|t| (t.repo, t.tag)),
                theirs.map(|r| (r.repository().to_owned(), r.tag().unwrap_or("latest").to_owned())),
                "{}", s
            );
        }
    }
}
