//! Answers the gate gives instead of forwarding: Docker's JSON error body,
//! so the CLI prints `Error response from daemon: <message>`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hull_policy::Refusal;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::engine::EngineError;

/// The body type of every response the gate sends.
pub type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// A request the gate answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub status: StatusCode,
    pub message: String,
    /// Refusals are audited; answers such as "no such image" are not.
    pub audit: bool,
}

impl From<Refusal> for Reject {
    fn from(r: Refusal) -> Reject {
        Reject {
            status: StatusCode::from_u16(r.status.code()).unwrap_or(StatusCode::FORBIDDEN),
            message: r.message,
            audit: true,
        }
    }
}

impl Reject {
    /// A refusal with a status of the gate's own (413, 408, ...).
    pub fn refused(status: StatusCode, message: impl Into<String>) -> Reject {
        Reject {
            status,
            message: message.into(),
            audit: true,
        }
    }

    /// An answer that is not a policy decision.
    pub fn plain(status: StatusCode, message: impl Into<String>) -> Reject {
        Reject {
            status,
            message: message.into(),
            audit: false,
        }
    }

    /// The engine could not be asked what the decision needs: the request
    /// is not forwarded (an unchecked request must never reach dockerd).
    pub fn engine(e: &EngineError) -> Reject {
        tracing::warn!("engine query: {e}");
        let status = match e {
            EngineError::Connect(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        Reject::plain(status, format!("hull: can't check the request: {e}"))
    }

    pub fn response(&self) -> Response<Body> {
        let mut r = json_response(
            self.status,
            serde_json::json!({ "message": self.message }).to_string(),
        );
        // After these the rest of the request may still be unread: the
        // connection cannot carry another request.
        if matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ) {
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A complete body.
pub fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_status_and_message() {
        let r: Reject = Refusal::forbidden("no").into();
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.audit);
        let r: Reject = Refusal::bad_request("bad").into();
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.response().status(), StatusCode::BAD_REQUEST);
    }
}
