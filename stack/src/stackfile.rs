//! The stack file: what to pack.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tender_bundle::{StackName, Version};

use crate::StackError;
use crate::platform::Platform;

/// Largest stack file read.
const MAX_STACK_FILE: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    version: serde_yaml::Value,
    #[serde(default)]
    manifests: Vec<String>,
    #[serde(default)]
    platforms: Option<Vec<String>>,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    settings: Vec<tender_bundle::settings::Setting>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    prefix: String,
    #[serde(rename = "oci-layout")]
    oci_layout: String,
}

/// Where images with a prefix are read from.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    /// References starting with this are covered.
    pub prefix: String,
    /// `DIR/<rest of the repository path>` is an OCI image layout.
    pub oci_layout: PathBuf,
}

/// A parsed, validated stack file.
#[derive(Clone, Debug)]
pub struct StackFile {
    /// The file.
    pub path: PathBuf,
    /// The stack's name.
    pub name: StackName,
    /// Its version.
    pub version: Version,
    /// Manifest files: (path relative to the stack file, absolute path).
    pub manifests: Vec<(String, PathBuf)>,
    /// Platforms to keep.
    pub platforms: Vec<Platform>,
    /// Extra image references.
    pub images: Vec<String>,
    /// Image sources, in order.
    pub sources: Vec<SourceSpec>,
    /// Settings each ship fills in, each checked (pattern, default).
    pub settings: Vec<tender_bundle::settings::Setting>,
}

impl StackFile {
    /// Read and validate a stack file; expands the manifest globs.
    pub fn load(path: &Path) -> Result<StackFile, StackError> {
        let bad = |reason: String| StackError::BadStackFile { path: path.to_owned(), reason };
        let len = fs::metadata(path)
            .map_err(|e| StackError::Io { path: path.to_owned(), source: e })?
            .len();
        if len > MAX_STACK_FILE {
            return Err(bad(format!("{len} bytes, more than {MAX_STACK_FILE}")));
        }
        let text = fs::read_to_string(path)
            .map_err(|e| StackError::Io { path: path.to_owned(), source: e })?;
        Self::parse(&text, path)
    }

    /// Parse and validate stack file text as if read from `path` (manifest
    /// globs are expanded relative to its directory).
    pub fn parse(text: &str, path: &Path) -> Result<StackFile, StackError> {
        let bad = |reason: String| StackError::BadStackFile { path: path.to_owned(), reason };
        if text.len() as u64 > MAX_STACK_FILE {
            return Err(bad(format!("{} bytes, more than {MAX_STACK_FILE}", text.len())));
        }
        let raw: Raw =
            serde_yaml::from_str(text).map_err(|e| bad(format!("not a valid stack file: {e}")))?;
        let name = StackName::try_from(raw.name).map_err(|e| bad(e.to_string()))?;
        // `version: 1.0` parses as a float in YAML; take its text as written.
        let version = match raw.version {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            other => return Err(bad(format!("version must be a string, not {other:?}"))),
        };
        let version = Version::try_from(version).map_err(|e| bad(e.to_string()))?;
        let platforms = match raw.platforms {
            None => vec![Platform::parse("linux/amd64")?, Platform::parse("linux/arm64")?],
            Some(p) if p.is_empty() => return Err(bad("platforms is empty".into())),
            Some(p) => p.iter().map(|s| Platform::parse(s)).collect::<Result<_, _>>()?,
        };
        if raw.manifests.is_empty() {
            return Err(StackError::NoManifests { path: path.to_owned() });
        }
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        let mut manifests = BTreeMap::new();
        for pattern in &raw.manifests {
            if pattern.starts_with('/') || pattern.split('/').any(|c| c == "..") {
                return Err(bad(format!(
                    "manifest pattern {pattern:?} must be relative to the stack file, without `..`"
                )));
            }
            let full = base.join(pattern);
            let matches = glob::glob(&full.to_string_lossy())
                .map_err(|e| bad(format!("pattern {pattern:?}: {e}")))?;
            let mut found = false;
            for m in matches {
                let m =
                    m.map_err(|e| StackError::Io { path: e.path().to_owned(), source: e.into() })?;
                if !m.is_file() {
                    continue;
                }
                let rel = m.strip_prefix(&base).unwrap_or(&m).to_string_lossy().replace('\\', "/");
                tender_bundle::check_relative_path(&rel).map_err(|e| bad(e.to_string()))?;
                manifests.insert(rel, m);
                found = true;
            }
            if !found {
                return Err(StackError::PatternMatchesNothing {
                    stack: path.to_owned(),
                    pattern: pattern.clone(),
                });
            }
        }
        let sources = raw
            .sources
            .into_iter()
            .map(|s| SourceSpec { prefix: s.prefix, oci_layout: base.join(s.oci_layout) })
            .collect();
        let mut names = std::collections::BTreeSet::new();
        for s in &raw.settings {
            s.check().map_err(|e| bad(format!("setting {e}")))?;
            if !names.insert(&s.name) {
                return Err(bad(format!("setting {} is declared twice", s.name)));
            }
        }
        Ok(StackFile {
            path: path.to_owned(),
            name,
            version,
            manifests: manifests.into_iter().collect(),
            platforms,
            images: raw.images,
            sources,
            settings: raw.settings,
        })
    }
}
