//! Keep-alive HTTP/1.1 connections to plain-HTTP backends, on hyper's
//! connection API directly.
//!
//! Why not the general client: forwarding through reqwest and hyper-util's
//! pooled client cost about 90 µs of CPU per call on the benchmark machine
//! (URL re-parsing, a pool keyed and locked per request, boxed connectors,
//! redirect and timeout layers), twice the rest of the gateway together. A
//! backend of a group is one origin, already checked by the SSRF guard, so the
//! pool here is a stack of idle senders per `host:port`: take one, send, read
//! the answer, put it back. HTTPS backends still go through reqwest (rustls,
//! certificate verification settings).
//!
//! Every connection's address passes [`resolve_allowed`] (the guard on the
//! resolved addresses) before it is opened. A sender that was idle is used
//! again only while its connection is open; a request that finds it closed in
//! the meantime is sent again on a new connection when hyper reports it was
//! never written (so no request is sent twice).

use atoll_gateway_policy::backends::BackendPolicy;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request body as the pool sends it.
pub(crate) type Body = Full<Bytes>;

/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most origins remembered; beyond it, origins without idle connections are forgotten.
const MAX_ORIGINS: usize = 1024;

/// Why a request could not be exchanged.
#[derive(Debug)]
pub(crate) enum PoolError {
    /// The SSRF guard refused every address of the host.
    Refused(String),
    /// Resolving, connecting or the exchange failed.
    Io(String),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Refused(detail) => write!(f, "backend address not allowed: {detail}"),
            PoolError::Io(detail) => f.write_str(detail),
        }
    }
}

/// The addresses of `host` the backend policy allows (a literal address was
/// checked with the URL already), or why none is.
pub(crate) async fn resolve_allowed(
    policy: &BackendPolicy,
    host: &str,
    port: u16,
) -> std::io::Result<Result<Vec<SocketAddr>, String>> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(Ok(vec![SocketAddr::new(ip, port)]));
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let allowed: Vec<SocketAddr> = addresses
        .iter()
        .copied()
        .filter(|address| policy.check_resolved_host(host, address.ip()).is_ok())
        .collect();
    if !allowed.is_empty() {
        return Ok(Ok(allowed));
    }
    let refusal = match addresses.first() {
        Some(address) => policy
            .check_resolved_host(host, address.ip())
            .err()
            .map(|refusal| refusal.to_string())
            .unwrap_or_default(),
        None => format!("{host} has no addresses"),
    };
    Ok(Err(refusal))
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// The idle connections to one origin.
#[derive(Default)]
struct Origin {
    idle: Mutex<Vec<Idle>>,
}

/// Idle keep-alive connections by origin.
pub(crate) struct BackendPool {
    origins: Mutex<HashMap<String, Arc<Origin>>>,
    max_idle_per_origin: usize,
    policy: Arc<BackendPolicy>,
}

/// A connection in use; given back with [`Lease::release`] once its answer has
/// been read in full.
pub(crate) struct Lease {
    sender: SendRequest<Body>,
    origin: Arc<Origin>,
    max_idle: usize,
}

impl Lease {
    /// Puts the connection back for the next request, unless it closed or the
    /// origin already keeps enough idle ones.
    pub(crate) fn release(self) {
        if self.sender.is_closed() || !self.sender.is_ready() {
            return;
        }
        let mut idle = self.origin.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                sender: self.sender,
                since: Instant::now(),
            });
        }
    }
}

impl BackendPool {
    pub(crate) fn new(policy: Arc<BackendPolicy>, max_idle_per_origin: usize) -> BackendPool {
        BackendPool {
            origins: Mutex::new(HashMap::new()),
            max_idle_per_origin: max_idle_per_origin.max(1),
            policy,
        }
    }

    fn origin(&self, host: &str, port: u16) -> Arc<Origin> {
        let mut origins = self.origins.lock();
        let key = format!("{host}:{port}");
        if let Some(origin) = origins.get(&key) {
            return origin.clone();
        }
        if origins.len() >= MAX_ORIGINS {
            origins.retain(|_, origin| !origin.idle.lock().is_empty());
        }
        origins.entry(key).or_default().clone()
    }

    /// Sends `request` (origin-form target, `Host` set) to `host:port` and
    /// returns the answer's head with the connection's lease.
    pub(crate) async fn send(
        &self,
        host: &str,
        port: u16,
        mut request: http::Request<Body>,
    ) -> Result<(http::Response<hyper::body::Incoming>, Lease), PoolError> {
        let origin = self.origin(host, port);
        // An idle connection first; if the backend closed it meanwhile and the
        // request was never written, once more on a new connection.
        loop {
            let (mut sender, reused) = match take_idle(&origin) {
                Some(sender) => (sender, true),
                None => (self.connect(host, port).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        sender,
                        origin,
                        max_idle: self.max_idle_per_origin,
                    };
                    return Ok((response, lease));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(PoolError::Io(error_chain(error.error()))),
                },
            }
        }
    }

    async fn connect(&self, host: &str, port: u16) -> Result<SendRequest<Body>, PoolError> {
        let io = |error: std::io::Error| PoolError::Io(format!("{host}:{port}: {error}"));
        let addresses = resolve_allowed(&self.policy, host, port)
            .await
            .map_err(io)?
            .map_err(PoolError::Refused)?;
        let mut last_error = None;
        for address in addresses {
            match tokio::net::TcpStream::connect(address).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(|error| PoolError::Io(error_chain(&error)))?;
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "backend connection ended with an error");
                        }
                    });
                    sender
                        .ready()
                        .await
                        .map_err(|error| PoolError::Io(error_chain(&error)))?;
                    return Ok(sender);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(io(last_error.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
        })))
    }
}

/// The most recently used open connection, dropping expired and closed ones.
fn take_idle(origin: &Origin) -> Option<SendRequest<Body>> {
    let mut idle = origin.idle.lock();
    let now = Instant::now();
    // Oldest first: expired ones sit at the bottom of the stack.
    let expired = idle
        .iter()
        .take_while(|entry| now.duration_since(entry.since) > IDLE_TIMEOUT)
        .count();
    idle.drain(..expired);
    while let Some(entry) = idle.pop() {
        if !entry.sender.is_closed() && entry.sender.is_ready() {
            return Some(entry.sender);
        }
    }
    None
}

/// An error with its causes, for the problem detail.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend that answers one request per connection, then closes it (as a
    /// server whose keep-alive timeout is shorter than the pool's does).
    async fn one_answer_per_connection() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (port, connections)
    }

    fn get(port: u16) -> http::Request<Body> {
        http::Request::builder()
            .uri("/x")
            .header(http::header::HOST, format!("127.0.0.1:{port}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced_without_failing_the_call() {
        let (port, connections) = one_answer_per_connection().await;
        let policy = Arc::new(BackendPolicy::new(&["127.0.0.1".to_owned()]).unwrap());
        let pool = BackendPool::new(policy, 4);
        for _ in 0..3 {
            let (response, lease) = pool.send("127.0.0.1", port, get(port)).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
            lease.release();
            // The backend's close arrives while the connection is idle.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn names_that_resolve_to_internal_addresses_are_refused() {
        let policy = Arc::new(BackendPolicy::new(&[]).unwrap());
        let pool = BackendPool::new(policy, 4);
        match pool.send("localhost", 9, get(9)).await {
            Err(PoolError::Refused(detail)) => assert!(!detail.is_empty()),
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
    }
}
