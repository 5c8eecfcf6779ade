//! The `/metrics` endpoint: hyper's HTTP/1 server, a task on the process's
//! one Tokio runtime ([`crate::runtime`]).
//!
//! Prometheus must be able to scrape whatever else is connected: a missed
//! scrape for long enough fires `OffsiteAgentDown`. Anyone who can reach the
//! port is untrusted, so every connection is bounded in time and memory, and
//! connections are served concurrently (one slow client never delays
//! another). The limits, and why:
//!
//! | limit | value | why |
//! |---|---|---|
//! | request head (request line and headers) | [`MAX_HEADER_BYTES`] = 8 KiB; read buffer [`READ_BUFFER_BYTES`] = 16 KiB | a scrape request is a few hundred bytes; anything longer is answered `431` and closed, so a huge header line costs at most the buffer |
//! | time to send the request head | [`HEADER_READ_TIMEOUT`] = 5 s from the connection's start | Prometheus sends its request at once; idle and trickling connections are closed |
//! | lifetime of a connection | [`CONNECTION_TIMEOUT`] = 10 s | also bounds a client that never reads its answer |
//! | open connections | [`MAX_CONNECTIONS`] = 256 | about 8 MiB of buffers at most; beyond it new connections wait in the kernel's accept queue until a slot frees (at most [`CONNECTION_TIMEOUT`]) |
//! | requests per connection | one (`Connection: close`) | scrapes are seconds apart; no idle keep-alive connection to time out mid-scrape |
//!
//! The request body is never read. `GET` or `HEAD /metrics` answers the
//! metrics (OpenMetrics when the `Accept` header asks for it, the classic
//! text format otherwise), another method `405`, another path `404`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Longest request head (request line and headers) accepted.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// hyper's read buffer per connection (hyper's minimum is 8 KiB).
pub const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Time a client has to send its whole request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time after which a connection is closed whatever its state.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serve `/metrics` on `listener` as a task on the process's runtime until
/// the process ends. Errors only when the listener cannot be registered.
pub fn spawn(listener: std::net::TcpListener, metrics: Arc<Metrics>) -> Result<()> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("metrics listener", e))?;
    let listener = {
        let _context = crate::runtime::handle().enter();
        tokio::net::TcpListener::from_std(listener).map_err(|e| Error::io("metrics listener", e))?
    };
    crate::runtime::spawn(serve(listener, metrics));
    Ok(())
}

/// Accept connections and serve each on a task of its own, at most
/// [`MAX_CONNECTIONS`] at once. Never returns.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(false);
    loop {
        // Take a slot before accepting: over the limit, clients wait in the accept queue.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "metrics endpoint cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let connection = http.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |request| {
                let response = respond(&request, &metrics);
                async move { Ok::<_, std::convert::Infallible>(response) }
            }),
        );
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                // Clients that misbehave are not worth a log line each (they could flood the log).
                Ok(Err(e)) => tracing::debug!(error = %e, "metrics connection failed"),
                Err(_) => tracing::debug!("metrics connection closed after its time limit"),
            }
        });
    }
}

/// The answer to one request.
fn respond(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found: try /metrics\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let openmetrics = request
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if openmetrics {
        (OPENMETRICS, metrics.encode())
    } else {
        (CLASSIC, metrics.encode_classic())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
