//! The one network policy: how long to wait for a registry, how often to
//! try again and how far apart, how many blobs in flight. Every client
//! (oci-client's and the one for capped reads, on ship and on shore) is
//! built from it, and every retry goes through [`Backoff`], which decides
//! from the failure's [`ErrorKind`] alone.

use std::future::Future;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use tender_bundle::ErrorKind;

use crate::RegistryError;

/// How tender talks to registries. [`NetworkPolicy::default`] is what the
/// binaries use; tests shrink it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Attempts in a row, none of which gained a byte, before giving up
    /// (default 6). A failure that retrying cannot help is not retried.
    pub tries: u32,
    /// The wait after the first failure (default 250 ms); each failure
    /// without progress doubles it. A failure after progress waits this
    /// again.
    pub first_backoff: Duration,
    /// The longest wait between attempts (default 8 s).
    pub max_backoff: Duration,
    /// How long to wait for a connection (default 30 s).
    pub connect_timeout: Duration,
    /// A read that stalls this long is a dropped link, retried and resumed
    /// (default 60 s).
    pub read_timeout: Duration,
    /// Blobs fetched or uploaded at once (default 4).
    pub concurrency: usize,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy {
            tries: 6,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            concurrency: 4,
        }
    }
}

impl NetworkPolicy {
    /// oci-client's configuration: plain HTTP only for the hosts in `plain`.
    pub(crate) fn oci_config(&self, plain: Vec<String>) -> ClientConfig {
        ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            use_monolithic_push: true,
            read_timeout: Some(self.read_timeout),
            connect_timeout: Some(self.connect_timeout),
            max_concurrent_upload: self.concurrency,
            max_concurrent_download: self.concurrency,
            ..Default::default()
        }
    }

    /// The HTTP client for capped reads (see `bounded`), with the same
    /// timeouts as oci-client's.
    pub(crate) fn http_client(&self, host: &str) -> Result<reqwest::Client, RegistryError> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .user_agent(concat!("tender/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::Registry {
                registry: host.to_owned(),
                what: "setting up the HTTP client".into(),
                reason: e.to_string(),
                kind: ErrorKind::Local,
            })
    }
}

/// Counts failures and spaces attempts: the one place a retry is decided.
pub(crate) struct Backoff<'a> {
    policy: &'a NetworkPolicy,
    failures: u32,
    wait: Duration,
}

impl<'a> Backoff<'a> {
    pub(crate) fn new(policy: &'a NetworkPolicy) -> Self {
        Backoff { policy, failures: 0, wait: policy.first_backoff }
    }

    /// Count a failure of `kind`: the wait before the next attempt, or
    /// None when retrying cannot help or the tries are spent.
    pub(crate) fn failed(&mut self, kind: ErrorKind) -> Option<Duration> {
        self.failures += 1;
        if !kind.retry_may_help() || self.failures >= self.policy.tries {
            return None;
        }
        let wait = self.wait;
        self.wait = (self.wait * 2).min(self.policy.max_backoff);
        Some(wait)
    }

    /// Bytes arrived since the last failure: the count and the wait start
    /// again, so a link that keeps cutting out but gains each time is
    /// followed to the end.
    pub(crate) fn progressed(&mut self) {
        self.failures = 0;
        self.wait = self.policy.first_backoff;
    }

    /// Failures counted since the start or the last progress.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

/// The last error of [`retry`] and how many attempts were made.
pub(crate) struct Spent {
    pub(crate) error: RegistryError,
    pub(crate) attempts: u32,
}

/// Run `f` until it succeeds, fails in a way retrying cannot help, or has
/// failed [`NetworkPolicy::tries`] times; waits as [`Backoff`] says.
pub(crate) async fn retry<T, F, Fut>(policy: &NetworkPolicy, mut f: F) -> Result<T, Spent>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let mut backoff = Backoff::new(policy);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(error) => match backoff.failed(error.kind()) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(Spent { error, attempts: backoff.failures() }),
            },
        }
    }
}

/// The kind of an HTTP error status.
pub(crate) fn status_kind(code: u16) -> ErrorKind {
    match code {
        401 | 403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        408 | 429 | 500..=599 => ErrorKind::Network,
        _ => ErrorKind::Refused,
    }
}

/// The kind of an oci-client error: from its status or the registry's
/// error codes where it has them, a failed request is the link's.
pub(crate) fn oci_kind(e: &OciDistributionError) -> ErrorKind {
    use OciDistributionError as E;
    match e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => ErrorKind::Auth,
        E::ImageManifestNotFoundError(_) => ErrorKind::NotFound,
        E::ServerError { code, .. } => status_kind(*code),
        // The first code decides; registries send one.
        E::RegistryError { envelope, .. } => match envelope.errors.first().map(|e| &e.code) {
            Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => ErrorKind::Auth,
            Some(
                OciErrorCode::BlobUnknown
                | OciErrorCode::ManifestUnknown
                | OciErrorCode::ManifestBlobUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::NotFound,
            ) => ErrorKind::NotFound,
            Some(OciErrorCode::Toomanyrequests) => ErrorKind::Network,
            _ => ErrorKind::Refused,
        },
        E::RequestError(e) => match e.status() {
            Some(s) => status_kind(s.as_u16()),
            None if e.is_builder() => ErrorKind::Local,
            None => ErrorKind::Network,
        },
        E::IoError(_) => ErrorKind::Network,
        E::ConfigConversionError(_)
        | E::DigestError(_)
        | E::GenericError(_)
        | E::HeaderValueError(_)
        | E::ImageIndexParsingNoPlatformResolverError
        | E::IncompatibleLayerMediaTypeError(_)
        | E::JsonError(_)
        | E::ManifestEncodingError(_)
        | E::ManifestParsingError(_)
        | E::PushNoDataError
        | E::PushLayerNoDataError
        | E::PullNoLayersError
        | E::RegistryNoDigestError
        | E::RegistryNoLocationError
        | E::RegistryTokenDecodeError(_)
        | E::SpecViolationError(_)
        | E::UrlParseError(_)
        | E::UnsupportedMediaTypeError(_)
        | E::UnsupportedSchemaVersionError(_)
        | E::VersionedParsingError(_) => ErrorKind::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> NetworkPolicy {
        NetworkPolicy {
            tries: 4,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..NetworkPolicy::default()
        }
    }

    #[test]
    fn statuses_have_kinds() {
        for (code, kind) in [
            (401, ErrorKind::Auth),
            (403, ErrorKind::Auth),
            (404, ErrorKind::NotFound),
            (408, ErrorKind::Network),
            (429, ErrorKind::Network),
            (500, ErrorKind::Network),
            (503, ErrorKind::Network),
            (400, ErrorKind::Refused),
            (405, ErrorKind::Refused),
        ] {
            assert_eq!(status_kind(code), kind, "{code}");
        }
    }

    #[test]
    fn oci_errors_have_kinds() {
        let envelope = |code: &str| {
            let body = format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#);
            OciDistributionError::RegistryError {
                envelope: serde_json::from_str(&body).unwrap(),
                url: "u".into(),
            }
        };
        assert_eq!(oci_kind(&envelope("UNAUTHORIZED")), ErrorKind::Auth);
        assert_eq!(oci_kind(&envelope("DENIED")), ErrorKind::Auth);
        assert_eq!(oci_kind(&envelope("MANIFEST_UNKNOWN")), ErrorKind::NotFound);
        assert_eq!(oci_kind(&envelope("BLOB_UNKNOWN")), ErrorKind::NotFound);
        assert_eq!(oci_kind(&envelope("TOOMANYREQUESTS")), ErrorKind::Network);
        assert_eq!(oci_kind(&envelope("MANIFEST_INVALID")), ErrorKind::Refused);
        let server = |code| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: String::new(),
        };
        assert_eq!(oci_kind(&server(502)), ErrorKind::Network);
        assert_eq!(oci_kind(&server(404)), ErrorKind::NotFound);
        let unauthorized = OciDistributionError::UnauthorizedError { url: "u".into() };
        assert_eq!(oci_kind(&unauthorized), ErrorKind::Auth);
        let dropped = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(oci_kind(&OciDistributionError::IoError(dropped)), ErrorKind::Network);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_restarts_after_progress() {
        let p = small();
        let mut b = Backoff::new(&p);
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis());
        assert_eq!(ms(b.failed(ErrorKind::Network)), Some(100));
        assert_eq!(ms(b.failed(ErrorKind::Network)), Some(200));
        b.progressed();
        assert_eq!(ms(b.failed(ErrorKind::Network)), Some(100));
        assert_eq!(ms(b.failed(ErrorKind::Network)), Some(200));
        assert_eq!(ms(b.failed(ErrorKind::Network)), Some(300));
        // The fourth failure in a row spends the tries.
        assert_eq!(b.failed(ErrorKind::Network), None);
        assert_eq!(b.failures(), 4);
    }

    /// `retry` on an operation failing with `kind` every time: the
    /// attempts it made and the time it waited.
    async fn attempts_on(kind: ErrorKind) -> (u32, Duration) {
        let p = small();
        let calls = std::cell::Cell::new(0);
        let start = tokio::time::Instant::now();
        let spent = retry(&p, || {
            calls.set(calls.get() + 1);
            async move {
                Err::<(), _>(RegistryError::Registry {
                    registry: "r".into(),
                    what: "w".into(),
                    reason: "x".into(),
                    kind,
                })
            }
        })
        .await
        .err()
        .unwrap();
        assert_eq!(spent.attempts, calls.get());
        assert_eq!(spent.error.kind(), kind);
        (calls.get(), start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_failed_link_is_tried_again() {
        let (n, waited) = attempts_on(ErrorKind::Network).await;
        assert_eq!(n, 4);
        assert_eq!(waited, Duration::from_millis(100 + 200 + 300));
        for kind in [
            ErrorKind::Auth,
            ErrorKind::NotFound,
            ErrorKind::DigestMismatch,
            ErrorKind::Verification,
            ErrorKind::Invalid,
            ErrorKind::Refused,
            ErrorKind::Local,
        ] {
            assert_eq!(attempts_on(kind).await, (1, Duration::ZERO), "{kind:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_after_failures_is_returned() {
        let p = small();
        let calls = std::cell::Cell::new(0);
        let v = retry(&p, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(RegistryError::Registry {
                        registry: "r".into(),
                        what: "w".into(),
                        reason: "reset".into(),
                        kind: ErrorKind::Network,
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(v.ok(), Some(3));
    }
}
