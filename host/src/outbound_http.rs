//! Outgoing HTTP (`wasi:http/outgoing-handler`): like Spin, a request to a
//! host the component may not reach (its `allowed_outbound_hosts`) fails with
//! `http-request-denied` when the guest awaits the response; an allowed one
//! goes out through wasmtime-wasi-http's default client.

use std::future::Future;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use crate::allowed_hosts::AllowedHosts;

/// The `send_request` hook of one component instance.
pub struct OutboundHttp {
    allowed: Arc<AllowedHosts>,
}

impl OutboundHttp {
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        OutboundHttp { allowed }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16();
        if !self.allowed.allows(&scheme, &host, port) {
            let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            eprintln!(
                "A component tried to make an outbound network connection to disallowed destination '{scheme}://{authority}'."
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(|b| b.boxed_unsync()),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
