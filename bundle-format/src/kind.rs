//! What kind of failure an error is, as one small enum every crate shares.
//!
//! Each library error enum answers `kind()`; retries and exit codes are
//! decided from the kind alone, never from an error's message (in the
//! manner of awslabs/tough's `TransportErrorKind` and rustic_core's
//! `ErrorKind`). It lives in this leaf crate because every other crate
//! depends on it.

/// What kind of failure an error is.
///
/// Matches on it are exhaustive on purpose: a new kind makes every place
/// that decides from kinds (the retry rule, the exit codes) decide for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The link failed in a way that may pass: a connection refused, reset
    /// or dropped, a read that stalled, a body cut short, a server error
    /// (5xx), too many requests (429).
    Network,
    /// The far end refused the credentials (HTTP 401 or 403).
    Auth,
    /// What was asked for or needed is not there: a tag, manifest or blob
    /// at a registry (404), a stored version, a store, a delta's base.
    NotFound,
    /// Bytes do not hash to the digest that names them.
    DigestMismatch,
    /// A bundle, signature or trust check failed: a malformed or truncated
    /// bundle, an untrusted or disallowed signer, too few signatures, a
    /// refused keyring, a downgrade, a replayed sequence, an expired
    /// bundle under `--require-fresh`, a version no longer trusted.
    Verification,
    /// What was given or found cannot be used as it is: a reference, a
    /// stack file, a manifest, a record, a registry's answer tender does
    /// not read (too large, not a bundle, not a known format).
    Invalid,
    /// A rule refused the change, or the far end refused the request
    /// for a reason other than credentials: stack ownership, cluster
    /// scope, adoption, a store other users could write, an API server's
    /// answer, a registry's other 4xx.
    Refused,
    /// This machine failed: a file operation, room on disk, the store's
    /// lock, the async runtime.
    Local,
    /// A failed apply was undone: the previous version is in force again.
    RolledBack,
    /// A failed apply could not be undone: the previous version could not
    /// be restored.
    RestoreFailed,
}

impl ErrorKind {
    /// Whether trying again may help: only a failure of the link. A
    /// refused credential, a missing manifest or blob, a digest mismatch
    /// fail the same way on every try, so retrying only delays the error.
    pub fn retry_may_help(self) -> bool {
        match self {
            ErrorKind::Network => true,
            ErrorKind::Auth
            | ErrorKind::NotFound
            | ErrorKind::DigestMismatch
            | ErrorKind::Verification
            | ErrorKind::Invalid
            | ErrorKind::Refused
            | ErrorKind::Local
            | ErrorKind::RolledBack
            | ErrorKind::RestoreFailed => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind::*;

    #[test]
    fn only_a_failed_link_is_retried() {
        assert!(Network.retry_may_help());
        for k in [
            Auth,
            NotFound,
            DigestMismatch,
            Verification,
            Invalid,
            Refused,
            Local,
            RolledBack,
            RestoreFailed,
        ] {
            assert!(!k.retry_may_help(), "{k:?}");
        }
    }
}
