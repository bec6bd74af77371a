//! Small documents (manifests, descriptors, signatures, keyrings) read from
//! a registry with a byte cap applied while the body streams. oci-client
//! reads a manifest's body whole (and an error answer's body, for its
//! message), so a registry streaming an endless one would fill memory: these
//! requests go through reqwest directly, with oci-client's token.

use http::HeaderValue;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use tender_bundle::ErrorKind;

/// Most bytes of an error answer's body kept for the message.
const MAX_ERROR_BODY: usize = 4 << 10;

/// How a bounded GET failed.
#[derive(Debug)]
pub(crate) enum GetError {
    /// The connection failed or dropped (worth a retry).
    Transport(String),
    /// The registry answered with an error status.
    Status {
        /// The status code.
        code: u16,
        /// The start of the body.
        body: String,
    },
    /// The body is larger than the cap (declared, or as it streamed).
    TooLarge {
        /// The cap.
        limit: u64,
    },
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetError::Transport(e) => write!(f, "{e}"),
            GetError::Status { code, body } => write!(f, "HTTP {code}: {body}"),
            GetError::TooLarge { limit } => {
                write!(f, "the answer is larger than {limit} bytes (refused as it came)")
            }
        }
    }
}

impl GetError {
    /// What kind of failure this is.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            GetError::Transport(_) => ErrorKind::Network,
            GetError::Status { code, .. } => crate::policy::status_kind(*code),
            GetError::TooLarge { .. } => ErrorKind::Invalid,
        }
    }
}

/// `http` or `https` for `host`: plain HTTP only for the hosts in `plain`.
pub(crate) fn scheme(host: &str, plain: &[String]) -> &'static str {
    if plain.iter().any(|p| p == host) { "http" } else { "https" }
}

/// The `Authorization` header for pulls from `r`'s repository: a bearer
/// token oci-client obtains (and caches for its own requests), or the Basic
/// credentials given.
pub(crate) async fn authorization(
    client: &Client,
    r: &Reference,
    auth: &RegistryAuth,
) -> Result<Option<HeaderValue>, oci_client::errors::OciDistributionError> {
    use base64::Engine as _;
    let header = match (client.auth(r, auth, RegistryOperation::Pull).await?, auth) {
        (Some(token), _) => Some(format!("Bearer {token}")),
        (None, RegistryAuth::Basic(user, pass)) => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )),
        (None, _) => None,
    };
    Ok(header.and_then(|h| {
        let mut v = HeaderValue::from_str(&h).ok()?;
        v.set_sensitive(true);
        Some(v)
    }))
}

/// GET `url` (with `accept` and `authorization`) and return its body,
/// refusing it from its declared length, or as soon as more than `limit`
/// bytes arrived.
pub(crate) async fn get_bounded(
    http: &reqwest::Client,
    url: &str,
    accept: &str,
    authorization: Option<&HeaderValue>,
    limit: u64,
) -> Result<Vec<u8>, GetError> {
    let transport = |e: reqwest::Error| GetError::Transport(format!("{url}: {e}"));
    let mut req = http.get(url).header(http::header::ACCEPT, accept);
    if let Some(a) = authorization {
        req = req.header(http::header::AUTHORIZATION, a.clone());
    }
    let mut resp = req.send().await.map_err(transport)?;
    let status = resp.status();
    if !status.is_success() {
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY {
            match resp.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BODY);
        return Err(GetError::Status {
            code: status.as_u16(),
            body: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(GetError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(GetError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
