//! The one error every endpoint answers with: an HTTP status, a stable
//! machine-readable `code`, a sentence for people, and the input at fault
//! (`field`) when one is. Handlers are written as
//! `inner(&req).unwrap_or_else(ApiError::into_response)` with `?` inside:
//! database, job and configuration errors convert into it.

use serde_json::{json, Value};
use spin_sdk::http::Response;

use crate::db::DbError;
use crate::jobs::JobError;

/// What went wrong, as the caller sees it: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Names the input at fault.
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// 400 with `code`, naming `field`.
    pub fn bad_request(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message).field(field)
    }

    /// 400 `invalid_field`: `field` is there but wrong.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::bad_request("invalid_field", field, message)
    }

    /// 400 `missing_field`: `field` is required.
    pub fn missing(field: &str) -> ApiError {
        ApiError::bad_request("missing_field", field, format!("{field} is required"))
    }

    /// 500 `misconfigured`: a Spin variable is missing or malformed.
    pub fn misconfigured(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "misconfigured", message)
    }

    /// A database failure, saying what did not happen (`context`, e.g. "the
    /// lead was not stored"): 503 `database_unavailable` when Postgres could
    /// not be reached or was too busy (the caller may retry), else 500
    /// `database_error`. Postgres' own words go to the log, under a request
    /// id the answer gives, never to the caller.
    pub fn db(e: DbError, context: &str) -> ApiError {
        let (status, code, what) = if e.is_unavailable() {
            (
                503,
                "database_unavailable",
                "the database could not be reached or did not answer in time; try again",
            )
        } else {
            (500, "database_error", "a database statement failed")
        };
        ApiError::logged(status, code, context, what, &e.to_string())
    }

    /// An error whose details are logged, not answered: the answer says
    /// `what` happened and the request id to look for in the log.
    fn logged(
        status: u16,
        code: &'static str,
        context: &str,
        what: &str,
        detail: &str,
    ) -> ApiError {
        let id = request_id();
        eprintln!("request {id}: {status} {code}: {context}: {detail}");
        let message = if context.is_empty() {
            format!("{what} (request {id})")
        } else {
            format!("{context}: {what} (request {id})")
        };
        ApiError::new(status, code, message)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = &self.field {
            error["field"] = json!(field);
        }
        json!({ "error": error })
    }

    pub fn into_response(self) -> Response {
        crate::respond::json(self.status, &self.body())
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError::db(e, "")
    }
}

/// A job that failed: 503 when the database could not be reached, else 500
/// with `job_failed`; callers that name their job use [`ApiError::job`].
impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        ApiError::job(e, "job_failed")
    }
}

impl ApiError {
    /// A failed job run: 503 `database_unavailable` or 500 `code`; the
    /// error itself is in `job_runs` and the log.
    pub fn job(e: JobError, code: &'static str) -> ApiError {
        if e.unavailable {
            ApiError::logged(
                503,
                "database_unavailable",
                "",
                "the database could not be reached or did not answer in time; try again",
                &e.message,
            )
        } else {
            ApiError::logged(
                500,
                code,
                "",
                "the run failed; its error is recorded in job_runs",
                &e.message,
            )
        }
    }
}

/// A short id tying an answer to its log line.
fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_field_only_when_there_is_one() {
        let e = ApiError::invalid("client_id", "client_id must be a UUID");
        assert_eq!(
            e.body(),
            json!({"error": {"code": "invalid_field", "message": "client_id must be a UUID", "field": "client_id"}})
        );
        assert_eq!(
            (e.status, ApiError::missing("to").code),
            (400, "missing_field")
        );
        assert_eq!(
            ApiError::misconfigured("x").body(),
            json!({"error": {"code": "misconfigured", "message": "x"}})
        );
    }

    #[test]
    fn database_failures_are_503_when_worth_retrying() {
        let down = ApiError::db(DbError::unavailable("refused"), "events were not stored");
        assert_eq!((down.status, down.code), (503, "database_unavailable"));
        assert!(down
            .message
            .starts_with("events were not stored: the database could not be reached"));
        let failed = ApiError::from(DbError::failed(
            "query failed: relation \"x\" does not exist (ERROR 42P01)",
        ));
        assert_eq!((failed.status, failed.code), (500, "database_error"));
        // Postgres' words stay in the log.
        assert!(!failed.message.contains("42P01") && failed.message.contains("(request "));
        let job = ApiError::job(
            JobError {
                message: "m".into(),
                unavailable: false,
            },
            "rollup_failed",
        );
        assert_eq!((job.status, job.code), (500, "rollup_failed"));
    }
}
