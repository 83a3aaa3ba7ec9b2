//! The HTTP plumbing of the fakes: accept loops (TLS + HTTP/2 only, or plain
//! HTTP/1.1 and h2c), request reading and response helpers, and the test CA.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;

/// A request as the handlers see it: everything read up front.
pub struct Req {
    pub method: hyper::Method,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub version: hyper::Version,
    pub body: Bytes,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// How many times a header occurs.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.get_all(name).iter().count()
    }

    /// The bearer token of `authorization` (scheme case-insensitive).
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    /// Headers as a map of lower-case names.
    pub fn header_map(&self) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &self.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            map.entry(name.as_str().to_string())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        map
    }

    pub fn version_text(&self) -> String {
        format!("{:?}", self.version)
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

pub type Resp = Response<Full<Bytes>>;
type BoxFuture = Pin<Box<dyn Future<Output = Resp> + Send>>;
pub type Handler = Arc<dyn Fn(Req) -> BoxFuture + Send + Sync>;

/// Wraps an async handler function into a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

/// A JSON response.
pub fn json(status: u16, body: &serde_json::Value) -> Resp {
    json_with(status, body, &[])
}

/// A JSON response with extra headers.
pub fn json_with(status: u16, body: &serde_json::Value, headers: &[(&str, String)]) -> Resp {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// An empty response with headers.
pub fn empty_with(status: u16, headers: &[(&str, String)]) -> Resp {
    let mut builder =
        Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Bodies above this are cut off (no vendor takes more than a few KB).
const MAX_BODY: usize = 1 << 20;

async fn read(req: Request<Incoming>) -> Result<Req, Resp> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| empty_with(413, &[]))?
        .to_bytes();
    Ok(Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        version: parts.version,
        body,
    })
}

fn service(
    handler: Handler,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Resp,
    Error = Infallible,
    Future = impl Future<Output = Result<Resp, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        async move {
            Ok::<_, Infallible>(match read(req).await {
                Ok(req) => handler(req).await,
                Err(resp) => resp,
            })
        }
    })
}

/// Serves plain HTTP (HTTP/1.1, or h2c with prior knowledge).
pub fn serve_plain(listener: TcpListener, handler: Handler) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let svc = service(handler.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

/// Serves HTTP/2 over TLS, refusing connections that did not negotiate `h2`
/// by ALPN (as APNs does).
pub fn serve_h2_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: Handler,
) -> JoinHandle<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let svc = service(handler.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                // rustls already fails the handshake when the client offered
                // other protocols only; a client that offered none lands here.
                if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return;
                }
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                // APNs allows many concurrent streams per connection.
                builder.max_concurrent_streams(1000);
                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    })
}

/// Binds `127.0.0.1:port` (0: any free port).
pub async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A throw-away CA and a server certificate for `127.0.0.1`/`localhost`
/// signed by it: (CA PEM, rustls server config with ALPN `h2` only).
pub fn test_tls() -> std::io::Result<(String, Arc<rustls::ServerConfig>)> {
    let err = |e: rcgen::Error| std::io::Error::other(e.to_string());
    let ca_key = rcgen::KeyPair::generate().map_err(err)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "atoll-push-fakes test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(err)?;

    let server_key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&server_key, &ca, &ca_key).map_err(err)?;

    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        server_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone(), ca.der().clone()], key)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((ca.pem(), Arc::new(config)))
}

/// Wraps DER in PEM.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A random id (hex of a v4 UUID).
pub fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
