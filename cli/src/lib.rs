//! Shared pieces of the two binaries: progress rendering, output, exit codes.
//! The binaries stay thin: parse arguments, call the libraries, render; one
//! module per command under [`ship`] and [`shore`].

use tender_bundle::{BundleError, ErrorKind};
use tender_deploy::DeployError;
use tender_fleet::FleetError;
use tender_pull::PullError;
use tender_registry::RegistryError;
use tender_serve::ServeError;
use tender_stack::StackError;
use tender_store::StoreError;

pub mod progress;
pub mod shell;
pub mod ship;
pub mod shore;

pub use progress::Bar;

/// Exit code for a bundle, signature or trust check that failed.
pub const EXIT_VERIFY: i32 = 3;
/// Exit code for `fsck` finding damage.
pub const EXIT_DAMAGED: i32 = 4;
/// Exit code for an apply that failed and was undone: the version in force
/// before is back (and healthy, unless `--no-wait`).
pub const EXIT_ROLLED_BACK: i32 = 5;
/// Exit code for an apply that failed and whose undoing failed too.
pub const EXIT_RESTORE_FAILED: i32 = 6;

/// Parse a size: bytes, or a number with K, M, G or T (powers of 1024,
/// optionally followed by `B` or `iB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        Some('T' | 't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (such as 3900M)"))?;
    n.checked_mul(1 << shift).filter(|&v| v > 0).ok_or_else(|| format!("{s:?} is out of range"))
}

/// Bytes in human units.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// The exit code for each kind of failure. Every kind is named, so a new
/// one needs its code chosen here.
pub fn exit_code_for(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Verification | ErrorKind::DigestMismatch => EXIT_VERIFY,
        ErrorKind::RolledBack => EXIT_ROLLED_BACK,
        ErrorKind::RestoreFailed => EXIT_RESTORE_FAILED,
        ErrorKind::Network
        | ErrorKind::Auth
        | ErrorKind::NotFound
        | ErrorKind::Invalid
        | ErrorKind::Refused
        | ErrorKind::Local => 1,
    }
}

/// The kind of `e`, if it is one of the libraries' errors.
fn kind_of(e: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    macro_rules! first_of {
        ($($t:ty),*) => {
            $(if let Some(e) = e.downcast_ref::<$t>() {
                return Some(e.kind());
            })*
        };
    }
    first_of!(
        BundleError,
        StoreError,
        RegistryError,
        PullError,
        DeployError,
        StackError,
        ServeError,
        FleetError
    );
    None
}

/// The exit code for an error: that of the kind of the first error in its
/// chain that has one ([`exit_code_for`]), 1 if none has.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain().find_map(kind_of).map_or(1, exit_code_for)
}

/// Write `bytes` to `path`, replacing it whole or not at all: a temporary
/// file beside it, fsync, rename, fsync of the directory (a keyring or a
/// signature file must never be left half-written).
pub fn write_replacing(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("{}: not a file name this tool writes", path.display()))?;
    // Public files (keyrings, signatures), readable as fs::write makes them.
    tender_bundle::write_replacing(dir, name, bytes, 0o644)
        .map_err(|(at, e)| anyhow::Error::new(e).context(format!("writing {}", at.display())))
}

pub use tender_bundle::error_chain as chain;

/// Print an error chain on stderr and exit with its code.
pub fn fail(err: anyhow::Error) -> ! {
    eprintln!("error: {err:#}");
    std::process::exit(exit_code(&err))
}

/// End the process with a command's outcome: its exit code, or the error
/// printed with [`fail`].
pub fn finish(outcome: anyhow::Result<i32>) {
    match outcome {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => fail(e),
    }
}

/// Print a value as pretty JSON on stdout.
pub fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializable"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("3900M"), Ok(3900 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn an_io_error_is_printed_once_with_its_path() {
        use std::path::PathBuf;
        let full = || std::io::Error::from_raw_os_error(28);
        let want = "No space left on device (os error 28)";
        let path = PathBuf::from("/var/lib/tender/staging/blob-1");
        let errors: Vec<anyhow::Error> = vec![
            StoreError::Io { path: path.clone(), source: full() }.into(),
            StoreError::Bundle(BundleError::Write { path: path.clone(), source: full() }).into(),
            BundleError::Read { path: path.clone(), source: full() }.into(),
            StackError::Io { path: path.clone(), source: full() }.into(),
            StackError::Named {
                files: "a.yaml".into(),
                source: Box::new(StackError::Io { path: path.clone(), source: full() }),
            }
            .into(),
            tender_registry::RegistryError::Io { path: path.clone(), source: full() }.into(),
        ];
        for e in errors {
            let e = e.context("importing a.tender");
            let text = format!("{e:#}");
            assert_eq!(text.matches(want).count(), 1, "{text}");
            assert_eq!(text.matches("staging/blob-1").count(), 1, "{text}");
            assert!(text.starts_with("importing a.tender: ") && text.ends_with(want), "{text}");
            assert_eq!(chain(e.as_ref()), text, "chain prints what {{:#}} does");
        }
    }

    #[test]
    fn each_kind_has_its_exit_code() {
        for (kind, code) in [
            (ErrorKind::Network, 1),
            (ErrorKind::Auth, 1),
            (ErrorKind::NotFound, 1),
            (ErrorKind::Invalid, 1),
            (ErrorKind::Refused, 1),
            (ErrorKind::Local, 1),
            (ErrorKind::Verification, 3),
            (ErrorKind::DigestMismatch, 3),
            (ErrorKind::RolledBack, 5),
            (ErrorKind::RestoreFailed, 6),
        ] {
            assert_eq!(exit_code_for(kind), code, "{kind:?}");
        }
    }

    fn digest(c: char) -> tender_bundle::Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    fn mismatch() -> BundleError {
        BundleError::DigestMismatch {
            entry: "e".into(),
            expected: digest('a'),
            actual: digest('b'),
        }
    }

    fn io(path: &str) -> std::io::Error {
        std::io::Error::other(path.to_owned())
    }

    fn downgrade() -> StoreError {
        StoreError::Downgrade { stack: "awareness".parse().unwrap(), sequence: 1, floor: 2 }
    }

    /// The codes each library error had before kinds decided them: 3 for
    /// a failed bundle, signature or trust check, 1 for the rest.
    #[test]
    fn library_errors_keep_their_exit_codes() {
        let code = |e: anyhow::Error| exit_code(&e);
        let registry = |kind| RegistryError::Registry {
            registry: "r".into(),
            what: "w".into(),
            reason: "x".into(),
            kind,
        };
        let truncated = || BundleError::Truncated { entry: "e".into(), read: 1, expected: 2 };
        // Bundles: a check failed (3), or this machine's I/O (1).
        assert_eq!(code(mismatch().into()), 3);
        assert_eq!(code(truncated().into()), 3);
        assert_eq!(code(BundleError::InvalidDigest("x".into()).into()), 3);
        assert_eq!(code(BundleError::Read { path: "b".into(), source: io("b") }.into()), 1);
        assert_eq!(code(BundleError::Write { path: "b".into(), source: io("b") }.into()), 1);
        // The store: the trust gate's refusals (3), the rest (1).
        assert_eq!(code(downgrade().into()), 3);
        assert_eq!(code(StoreError::Key(tender_keys::KeyError::BadKeyId("k".into())).into()), 3);
        assert_eq!(code(StoreError::Bundle(mismatch()).into()), 3);
        assert_eq!(code(StoreError::NoTrustedKeys { path: "t".into() }.into()), 3);
        assert_eq!(code(StoreError::NotAStore { path: "s".into() }.into()), 1);
        assert_eq!(code(StoreError::Busy { path: "s".into() }.into()), 1);
        // The registry: its own failures (1), the store's and bundles' as theirs.
        assert_eq!(code(registry(ErrorKind::Auth).into()), 1);
        assert_eq!(code(registry(ErrorKind::NotFound).into()), 1);
        assert_eq!(code(registry(ErrorKind::Network).into()), 1);
        assert_eq!(code(PullError::Store(downgrade()).into()), 3);
        let sink = tender_registry::SinkError::new(ErrorKind::Verification, downgrade());
        assert_eq!(code(RegistryError::Sink(sink).into()), 3);
        assert_eq!(code(PullError::Registry(registry(ErrorKind::Auth)).into()), 1);
        assert_eq!(code(RegistryError::Bundle(truncated()).into()), 3);
        assert_eq!(
            code(RegistryError::NotABundle { what: "w".into(), reason: "r".into() }.into()),
            1
        );
        // Deploy: the store's codes through it and through the registry.
        assert_eq!(code(DeployError::Store(downgrade()).into()), 3);
        let after =
            RegistryError::After { attempts: 2, source: Box::new(registry(ErrorKind::Network)) };
        assert_eq!(code(DeployError::Registry(after).into()), 1);
        assert_eq!(code(DeployError::Registry(registry(ErrorKind::Network)).into()), 1);
        assert_eq!(code(DeployError::BadObject { reason: "r".into() }.into()), 1);
        // The shore: a bundle check (3); an image that cannot be resolved
        // is bad input on shore (1), whatever its cause.
        assert_eq!(code(StackError::Bundle(mismatch()).into()), 3);
        let named = StackError::Named {
            files: "f".into(),
            source: Box::new(StackError::Bundle(mismatch())),
        };
        assert_eq!(code(named.into()), 1);
        assert_eq!(code(StackError::Key(tender_keys::KeyError::BadKeyId("k".into())).into()), 1);
        // Context on top changes nothing; an error of no library is 1.
        assert_eq!(code(anyhow::Error::from(downgrade()).context("importing")), 3);
        assert_eq!(code(anyhow::anyhow!("usage")), 1);
    }
}
