//! The one error type that reaches a Docker client.

use std::fmt;

/// HTTP status of a refusal.
///
/// The docker CLI prints `Error response from daemon: <message>` for any
/// non-2xx answer carrying `{"message": ...}`, so the status mostly matters to
/// API clients. Two are used:
/// - [`Status::BadRequest`] (400): the request is malformed or ambiguous
///   (invalid JSON, duplicate keys, odd path encodings). The engine itself
///   answers 400 to malformed input.
/// - [`Status::Forbidden`] (403): the request is well formed but the policy
///   refuses it. This is also what Docker's authorization plugins answer.
///
/// 404 is never used: `docker run` reacts to a 404 from create by pulling
/// the image and retrying, which would hide the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Status {
    BadRequest,
    Forbidden,
}

impl Status {
    /// The numeric HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::Forbidden => 403,
        }
    }
}

/// A request the policy will not let through, with the message the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// HTTP status to answer with.
    pub status: Status,
    /// The message, exactly as the user should read it.
    pub message: String,
}

impl Refusal {
    /// A 403 refusal.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Refusal {
            status: Status::Forbidden,
            message: message.into(),
        }
    }

    /// A 400 refusal.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Refusal {
            status: Status::BadRequest,
            message: message.into(),
        }
    }

    /// The body Docker's own errors have: `{"message":"..."}`.
    pub fn to_docker_json(&self) -> String {
        serde_json::json!({ "message": self.message }).to_string()
    }
}

/// Wrapper so callers can log a status with `{}`.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_json_body() {
        let r = Refusal::forbidden("can't mount /etc because \"x\"");
        assert_eq!(r.status.code(), 403);
        let v: serde_json::Value = serde_json::from_str(&r.to_docker_json()).unwrap();
        assert_eq!(v["message"], "can't mount /etc because \"x\"");
        assert_eq!(Refusal::bad_request("x").status.code(), 400);
    }
}
