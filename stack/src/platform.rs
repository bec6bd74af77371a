//! `os/arch[/variant]` platforms.

use std::fmt;

use crate::StackError;

/// A platform as a stack file or image index names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture, e.g. `arm64`.
    pub arch: String,
    /// Variant, e.g. `v8`, if any.
    pub variant: Option<String>,
}

impl Platform {
    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, StackError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        };
        match parts[..] {
            [os, arch] if ok(os) && ok(arch) => {
                Ok(Platform { os: os.into(), arch: arch.into(), variant: None })
            }
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => {
                Ok(Platform { os: os.into(), arch: arch.into(), variant: Some(v.into()) })
            }
            _ => Err(StackError::BadPlatform(s.chars().take(64).collect())),
        }
    }

    /// Whether an image's platform satisfies this requested one: same os and
    /// arch, and the same variant when one is requested.
    pub fn accepts(&self, image: &Platform) -> bool {
        self.os == image.os
            && self.arch == image.arch
            && (self.variant.is_none() || self.variant == image.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_accept() {
        let want = Platform::parse("linux/arm64").unwrap();
        assert!(want.accepts(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(!want.accepts(&Platform::parse("linux/amd64").unwrap()));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(!v7.accepts(&Platform::parse("linux/arm/v6").unwrap()));
        assert_eq!(v7.to_string(), "linux/arm/v7");
        for bad in ["linux", "linux/", "a/b/c/d", "linux/amd 64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }
}
