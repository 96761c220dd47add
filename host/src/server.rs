//! The HTTP trigger: Spin's routing, request headers and error responses,
//! with a fresh component instance per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::app::App;
use crate::routes::RouteMatch;

/// Serves the application's HTTP routes on `listener` until the task is dropped.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> Result<()> {
    loop {
        let (stream, client) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.handle(req, client).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

impl App {
    /// Answers one request: Spin's reserved health route, 404 (empty body)
    /// for unmatched routes, 500 (empty body) when the component fails.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let path = req.uri().path().to_string();
        if path == "/.well-known/spin/health" {
            return plain(StatusCode::OK, "OK");
        }
        if path.starts_with("/.well-known/spin/") {
            return plain(StatusCode::NOT_FOUND, "");
        }
        let Some(matched) = self.router.route(&path) else {
            return plain(StatusCode::NOT_FOUND, "");
        };
        set_spin_headers(&mut req, &matched, client);
        match self.run_http(&matched.component, req).await {
            Ok(response) => response,
            Err(e) => {
                eprintln!("Error processing request: {e:?}");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "")
            }
        }
    }

    async fn run_http(
        &self,
        id: &str,
        req: Request<Incoming>,
    ) -> Result<Response<HyperOutgoingBody>> {
        let component = &self.http[id];
        let mut store = self.new_store(&component.config);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = component.pre.clone();
        // The handler may go on streaming the body after it sets the response.
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(anyhow!("component answered with error code {code:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(anyhow!("component never set a response")),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("component trapped")),
                Err(e) => Err(anyhow!("component task failed: {e}")),
            },
        }
    }
}

/// The headers Spin adds to every request it routes to a component.
fn set_spin_headers(req: &mut Request<Incoming>, m: &RouteMatch, client: SocketAddr) {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut headers: Vec<(String, String)> = vec![
        (
            "spin-full-url".into(),
            format!("http://{host}{path_and_query}"),
        ),
        ("spin-path-info".into(), m.path_info.clone()),
        ("spin-matched-route".into(), m.matched_route.clone()),
        ("spin-base-path".into(), "/".into()),
        ("spin-raw-component-route".into(), m.raw_route.clone()),
        ("spin-component-route".into(), m.component_route.clone()),
        ("spin-client-addr".into(), client.to_string()),
    ];
    for (name, value) in &m.params {
        headers.push((
            format!("spin-path-match-{}", name.to_ascii_lowercase()),
            value.clone(),
        ));
    }
    let map = req.headers_mut();
    map.remove(http::header::CONNECTION);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            map.insert(name, value);
        }
    }
}

impl App {
    /// Instantiates HTTP component `id` in a fresh store without calling it:
    /// what every request pays before the handler runs (for benchmarks).
    pub async fn instantiate_http(&self, id: &str) -> Result<()> {
        let component = self
            .http
            .get(id)
            .ok_or_else(|| anyhow!("no HTTP component `{id}`"))?;
        let mut store = self.new_store(&component.config);
        component.pre.instantiate_async(&mut store).await?;
        Ok(())
    }
}
