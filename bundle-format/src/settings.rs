//! Per-ship settings a stack declares (`settings:` in the stack file, carried
//! in the signed descriptor), and `${NAME}` substitution in manifest
//! strings. The signed manifests stay the source: a ship fills in only the
//! names the signer declared, each checked against its declaration.
//!
//! Substitution works on strings already parsed out of YAML (never on the
//! text), so a value cannot add structure to an object: whatever it holds
//! stays one string. `$${X}` writes `${X}`; `${X}` for a name not declared
//! is left as it is (and reported at pack).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::BundleError;

/// A setting's name: `[A-Z_][A-Z0-9_]*`, at most 63 characters (as an
/// environment variable is written).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SettingName(String);

impl SettingName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn valid(s: &str) -> bool {
        let mut bytes = s.bytes();
        s.len() <= 63
            && bytes.next().is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
            && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    }
}

impl TryFrom<String> for SettingName {
    type Error = BundleError;
    fn try_from(s: String) -> Result<Self, BundleError> {
        if SettingName::valid(&s) {
            Ok(SettingName(s))
        } else {
            Err(BundleError::InvalidName { what: "setting name", value: s })
        }
    }
}

impl std::str::FromStr for SettingName {
    type Err = BundleError;
    fn from_str(s: &str) -> Result<Self, BundleError> {
        SettingName::try_from(s.to_owned())
    }
}

impl From<SettingName> for String {
    fn from(n: SettingName) -> String {
        n.0
    }
}

impl fmt::Display for SettingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One setting a stack declares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// Its name, as manifests write it: `${NAME}`.
    pub name: SettingName,
    /// What it is, for the engineer aboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A ship must set it (unless it has a default) before applying.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// A regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The value when a ship sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Never shown (`***`) in listings, dry runs, logs or history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// Why a setting's value cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingProblem {
    /// Required, without a value or a default.
    #[error("{name} is required and not set")]
    Missing {
        /// The setting.
        name: SettingName,
    },
    /// The value does not match the pattern (the value is not shown: it
    /// may be a secret).
    #[error("{name}: the value does not match the pattern {pattern:?}")]
    NoMatch {
        /// The setting.
        name: SettingName,
        /// The pattern.
        pattern: String,
    },
    /// The declaration's pattern is not a regular expression.
    #[error("{name}: the pattern {pattern:?} is not a regular expression: {reason}")]
    BadPattern {
        /// The setting.
        name: SettingName,
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
}

/// The most a pattern may compile to: a signer's pattern is compiled
/// aboard each time a version's descriptor is read (status, list, apply),
/// up to [`crate::limits::MAX_SETTINGS`] of them. At 1 MiB, 1000 patterns
/// of `\w{20}` made `status` take 40 s; a value's pattern needs far less.
const PATTERN_SIZE_LIMIT: usize = 64 << 10;

impl Setting {
    fn regex(&self) -> Result<Option<regex::Regex>, SettingProblem> {
        let Some(p) = &self.pattern else { return Ok(None) };
        // The whole value must match, whatever anchors the author wrote.
        regex::RegexBuilder::new(&format!("^(?:{p})$"))
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map(Some)
            .map_err(|e| SettingProblem::BadPattern {
                name: self.name.clone(),
                pattern: p.clone(),
                reason: e.to_string(),
            })
    }

    /// Check the declaration itself (its pattern compiles, its default
    /// matches it).
    pub fn check(&self) -> Result<(), SettingProblem> {
        let re = self.regex()?;
        if let (Some(re), Some(d)) = (re, &self.default)
            && !re.is_match(d)
        {
            return Err(SettingProblem::NoMatch {
                name: self.name.clone(),
                pattern: self.pattern.clone().unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// The value to use, given what the ship set: its own, else the
    /// default; None when neither (allowed only when not required).
    pub fn resolve<'a>(&'a self, set: Option<&'a str>) -> Result<Option<&'a str>, SettingProblem> {
        let value = set.or(self.default.as_deref());
        match value {
            None if self.required => Err(SettingProblem::Missing { name: self.name.clone() }),
            None => Ok(None),
            Some(v) => match self.regex()? {
                Some(re) if !re.is_match(v) => Err(SettingProblem::NoMatch {
                    name: self.name.clone(),
                    pattern: self.pattern.clone().unwrap_or_default(),
                }),
                _ => Ok(Some(v)),
            },
        }
    }
}

/// Resolve every declared setting against the values a ship set: the
/// values to substitute, or every problem found.
pub fn resolve_all(
    declared: &[Setting],
    set: &BTreeMap<SettingName, String>,
) -> Result<BTreeMap<SettingName, String>, Vec<SettingProblem>> {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for s in declared {
        match s.resolve(set.get(&s.name).map(String::as_str)) {
            Ok(Some(v)) => {
                values.insert(s.name.clone(), v.to_owned());
            }
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() { Ok(values) } else { Err(problems) }
}

/// The `${NAME}` references in `text` (escaped `$${...}` excluded), in
/// order, each once.
pub fn references(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    scan(text, &mut |name| {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
        None
    });
    out
}

/// `text` with each `${NAME}` whose name `lookup` knows replaced, `$${X}`
/// written as `${X}`, and everything else as it was.
pub fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    scan(text, &mut |name| lookup(name))
}

/// Walk `text`, calling `f` for each `${NAME}` (a valid [`SettingName`]);
/// `f`'s answer replaces the reference, None keeps it.
fn scan(text: &str, f: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let escaped = rest[..at].ends_with('$');
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if escaped && SettingName::valid(name) {
            // `$${X}`: drop one `$`, keep `${X}`.
            out.push_str(&rest[..at - 1]);
            out.push_str(&rest[at..at + 3 + end]);
        } else if SettingName::valid(name) {
            out.push_str(&rest[..at]);
            match f(name) {
                Some(v) => out.push_str(&v),
                None => out.push_str(&rest[at..at + 3 + end]),
            }
        } else {
            out.push_str(&rest[..at + 2]);
            rest = after;
            continue;
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn setting(yaml: &str) -> Setting {
        serde_json::from_str(yaml).unwrap()
    }

    #[test]
    fn names_are_checked_once() {
        assert!("VESSEL_NAME".parse::<SettingName>().is_ok());
        assert!("_X1".parse::<SettingName>().is_ok());
        for bad in ["", "vessel", "1X", "A-B", "A B", &"A".repeat(64)] {
            assert!(bad.parse::<SettingName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn substitution_of_declared_names_only_with_escapes() {
        let look = |n: &str| (n == "VESSEL").then(|| "MV Aurora".to_string());
        assert_eq!(substitute("name: ${VESSEL}!", &look), "name: MV Aurora!");
        assert_eq!(substitute("$${VESSEL} and ${OTHER}", &look), "${VESSEL} and ${OTHER}");
        assert_eq!(substitute("${lower} ${ unclosed", &look), "${lower} ${ unclosed");
        assert_eq!(substitute("$$${VESSEL}", &look), "$${VESSEL}");
        assert_eq!(references("${A} $${B} ${A} ${C}"), ["A", "C"]);
    }

    #[test]
    fn values_are_checked_against_their_declaration() {
        let s = setting(
            r#"{"name": "VESSEL_NAME", "required": true, "pattern": "[A-Za-z0-9 .-]{1,40}"}"#,
        );
        assert_eq!(s.resolve(Some("MV Aurora")).unwrap(), Some("MV Aurora"));
        assert!(matches!(s.resolve(None), Err(SettingProblem::Missing { .. })));
        // The whole value must match, though the pattern is not anchored.
        let e = s.resolve(Some("MV Aurora; rm -rf /")).unwrap_err();
        assert!(!e.to_string().contains("rm -rf"), "the value is never shown: {e}");
        let d = setting(r#"{"name": "CAMERA_URL", "default": "rtsp://10.0.0.20/main"}"#);
        assert_eq!(d.resolve(None).unwrap(), Some("rtsp://10.0.0.20/main"));
        let bad = setting(r#"{"name": "X", "pattern": "("}"#);
        assert!(matches!(bad.check(), Err(SettingProblem::BadPattern { .. })));
        let default_off = setting(r#"{"name": "X", "pattern": "[0-9]+", "default": "abc"}"#);
        assert!(default_off.check().is_err());
    }

    proptest! {
        /// A text without `$` is never changed, and substitution with no
        /// known names changes nothing but escapes.
        #[test]
        fn substitution_is_the_identity_without_references(text in "[^$]*") {
            prop_assert_eq!(substitute(&text, &|_| Some("x".into())), text);
        }

        #[test]
        fn substitution_never_panics(text in ".*") {
            let _ = substitute(&text, &|n| Some(n.to_lowercase()));
            let _ = references(&text);
        }
    }
}
