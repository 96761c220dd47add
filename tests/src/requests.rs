//! Requests to a [`TestApp`]: `app.get(path).admin().send().await` and the
//! like, answering `(status, JSON body or null)`.

use serde_json::Value;

use crate::{admin_bearer, http, TestApp};

/// A request being built.
pub struct Call {
    req: reqwest::RequestBuilder,
}

impl TestApp {
    /// A request with this method to `path` (which starts with `/`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> Call {
        Call {
            req: http().request(method, format!("{}{path}", self.url)),
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.request(reqwest::Method::POST, path)
    }

    pub fn options(&self, path: &str) -> Call {
        self.request(reqwest::Method::OPTIONS, path)
    }

    /// `POST path` with `body` as JSON, no credentials.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post(path).json(body).send().await
    }

    /// The backoffice's retry button for everything due (admin).
    pub async fn retry_all(&self) -> (u16, Value) {
        self.post("/admin/failed-events/retry")
            .admin()
            .json(&serde_json::json!({ "retry_all": true }))
            .send()
            .await
    }
}

impl Call {
    /// With the admin token.
    pub fn admin(self) -> Call {
        self.auth(&admin_bearer())
    }

    /// With this `authorization` header.
    pub fn auth(self, value: &str) -> Call {
        self.header("authorization", value)
    }

    pub fn header(self, name: &str, value: &str) -> Call {
        Call {
            req: self.req.header(name, value),
        }
    }

    pub fn headers(mut self, headers: &[(&str, &str)]) -> Call {
        for (k, v) in headers {
            self = self.header(k, v);
        }
        self
    }

    /// `body` as JSON (`content-type: application/json`).
    pub fn json(self, body: &Value) -> Call {
        self.json_text(body.to_string())
    }

    /// This text as the body, labelled `application/json` (valid or not).
    pub fn json_text(self, body: impl Into<String>) -> Call {
        self.header("content-type", "application/json").body(body)
    }

    /// This body, with no content type added.
    pub fn body(self, body: impl Into<String>) -> Call {
        Call {
            req: self.req.body(body.into()),
        }
    }

    pub async fn response(self) -> reqwest::Response {
        self.req.send().await.unwrap()
    }

    pub async fn status(self) -> u16 {
        self.response().await.status().as_u16()
    }

    /// The status and the JSON body (null when it is not JSON).
    pub async fn send(self) -> (u16, Value) {
        let res = self.response().await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}
