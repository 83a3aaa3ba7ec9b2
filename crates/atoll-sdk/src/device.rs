//! The device side: identity, signing, compression, retries.

use crate::error::check;
use crate::{Error, Result, RetryPolicy};
use atoll_protocol::device::{
    BindRequest, BindingResponse, PushChannel, PushTokenRequest, RegisterRequest, RegisterResponse,
};
use atoll_protocol::signing::{self, SignedParts};
use atoll_protocol::ErrorCode;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a device needs to talk to its app on an Atoll server.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The server's URL, e.g. `https://atoll.example.com`.
    pub server_url: String,
    /// The app key.
    pub app_key: String,
    /// The app secret (signs requests; never sent).
    pub app_secret: String,
    /// A folder the SDK may keep its state in (the device id).
    pub storage_dir: PathBuf,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
    /// Time limit of one attempt.
    pub timeout: Duration,
}

impl DeviceConfig {
    /// A configuration with default retry and timeout.
    pub fn new(
        server_url: &str,
        app_key: &str,
        app_secret: &str,
        storage_dir: impl Into<PathBuf>,
    ) -> DeviceConfig {
        DeviceConfig {
            server_url: server_url.trim_end_matches('/').to_owned(),
            app_key: app_key.to_owned(),
            app_secret: app_secret.to_owned(),
            storage_dir: storage_dir.into(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(15),
        }
    }
}

/// How a request body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As is.
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// `Content-Encoding: zstd`.
    Zstd,
    /// gzip above 1 KiB, none below.
    Auto,
}

/// Knobs of one request, mostly for tests and tools: the defaults are what an
/// app should use.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// Body compression.
    pub compression: Compression,
    /// Sign with this Unix timestamp instead of the (corrected) clock.
    pub timestamp: Option<i64>,
    /// Use this nonce instead of a random one.
    pub nonce: Option<String>,
    /// Sign with this secret instead of the configured one.
    pub secret: Option<String>,
    /// Retry per the policy (re-signing each attempt).
    pub retry: bool,
    /// Extra request headers (e.g. `If-None-Match`); they are not signed.
    pub headers: Vec<(&'static str, String)>,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            compression: Compression::Auto,
            timestamp: None,
            nonce: None,
            secret: None,
            retry: true,
            headers: Vec::new(),
        }
    }
}

/// A device's client of the Atoll device API.
#[derive(Debug)]
pub struct DeviceClient {
    http: reqwest::Client,
    config: DeviceConfig,
    device_id: String,
    /// Server time minus local time, in seconds, learned from the server.
    clock_offset_secs: AtomicI64,
}

const DEVICE_ID_FILE: &str = "atoll-device-id";

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

fn random_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Loads the device id from the storage folder, or creates and persists one.
/// The id survives app restarts, like an install id; a reinstall (wiped folder)
/// makes a new device.
fn load_or_create_device_id(dir: &std::path::Path) -> Result<String> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(DEVICE_ID_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(existing.to_owned());
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(id.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    Ok(id)
}

impl DeviceClient {
    /// A client for `config`, with the device id loaded or created.
    pub fn new(config: DeviceConfig) -> Result<DeviceClient> {
        if config.app_key.is_empty() || config.app_secret.is_empty() {
            return Err(Error::Config("app_key and app_secret are required".into()));
        }
        let device_id = load_or_create_device_id(&config.storage_dir)?;
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(DeviceClient {
            http,
            config,
            device_id,
            clock_offset_secs: AtomicI64::new(0),
        })
    }

    /// This install's device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The folder the SDK keeps its state in (device id, queues, caches).
    pub fn storage_dir(&self) -> &std::path::Path {
        &self.config.storage_dir
    }

    /// The server's URL, without a trailing slash (server paths such as
    /// download URLs are relative to it).
    pub fn server_url(&self) -> &str {
        &self.config.server_url
    }

    /// The app key.
    pub fn app_key(&self) -> &str {
        &self.config.app_key
    }

    /// Registers (or re-describes) this device.
    pub async fn register(&self, description: &RegisterRequest) -> Result<RegisterResponse> {
        let response: RegisterResponse = self
            .post(
                "/device/v1/register",
                description,
                &RequestOptions::default(),
            )
            .await?;
        // Keep our clock aligned with the server's for signing.
        self.clock_offset_secs.store(
            response.server_time.div_euclid(1000) - now_secs(),
            Ordering::Relaxed,
        );
        Ok(response)
    }

    /// Binds the app's signed-in user to this device.
    pub async fn bind_user(&self, user_id: &str) -> Result<BindingResponse> {
        self.post(
            "/device/v1/bind",
            &BindRequest {
                user_id: user_id.to_owned(),
            },
            &RequestOptions::default(),
        )
        .await
    }

    /// Unbinds the user (sign-out).
    pub async fn unbind_user(&self) -> Result<BindingResponse> {
        self.post(
            "/device/v1/unbind",
            &serde_json::json!({}),
            &RequestOptions::default(),
        )
        .await
    }

    /// Registers this device's token for a vendor push channel.
    pub async fn register_push_token(&self, channel: PushChannel, token: &str) -> Result<()> {
        let _: atoll_protocol::device::Ack = self
            .post(
                "/device/v1/push-token",
                &PushTokenRequest {
                    channel,
                    token: token.to_owned(),
                },
                &RequestOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Reports push messages that arrived through a vendor, were opened or
    /// were dismissed (≤ 100 ids per call).
    pub async fn report_push(
        &self,
        msg_ids: &[String],
        event: atoll_protocol::push::PushEvent,
    ) -> Result<()> {
        self.post_no_content(
            "/device/v1/push/report",
            &atoll_protocol::push::PushReport {
                msg_ids: msg_ids.to_vec(),
                event,
            },
            &RequestOptions::default(),
        )
        .await
    }

    /// Sends a signed POST with a JSON body and decodes the JSON answer.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        options: &RequestOptions,
    ) -> Result<T> {
        let json = serde_json::to_vec(body).map_err(|error| Error::Decode(error.to_string()))?;
        let response = self.send_raw("POST", path, "", &json, options).await?;
        response
            .json()
            .await
            .map_err(|error| Error::Decode(error.to_string()))
    }

    /// Sends a signed POST with a JSON body to an endpoint that answers
    /// `204 No Content`; whatever body a success carries is ignored.
    pub async fn post_no_content<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        options: &RequestOptions,
    ) -> Result<()> {
        let json = serde_json::to_vec(body).map_err(|error| Error::Decode(error.to_string()))?;
        self.send_raw("POST", path, "", &json, options).await?;
        Ok(())
    }

    /// Sends a signed request with raw body bytes, retrying per the policy.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        options: &RequestOptions,
    ) -> Result<reqwest::Response> {
        let (encoding, wire_body) = compress(body, options.compression)?;
        let route = Route {
            method,
            path,
            signed_path: path,
            query,
            content_type: "application/json",
            encoding,
            headers: &[],
            gateway: false,
        };
        let (response, ()) = self
            .send_signed(&route, options, |_| Ok((wire_body.clone(), ())))
            .await?;
        Ok(response)
    }

    /// Sends a signed request, retrying per the policy. `seal` makes the body of
    /// each attempt from the timestamp that attempt is signed with (an encrypted
    /// body binds it), and returns what the caller needs to read the answer.
    pub(crate) async fn send_signed<S>(
        &self,
        route: &Route<'_>,
        options: &RequestOptions,
        mut seal: impl FnMut(i64) -> Result<(Vec<u8>, S)>,
    ) -> Result<(reqwest::Response, S)> {
        let mut attempt = 0;
        let mut corrected_skew = false;
        loop {
            let outcome = self.attempt(route, options, &mut seal).await;
            let error = match outcome {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            // A skewed clock is fixed once from the server's own time, then retried.
            if error.code() == Some(ErrorCode::TimestampSkew)
                && options.timestamp.is_none()
                && !corrected_skew
            {
                if let Error::Api { .. } = &error {
                    corrected_skew = true;
                    if let Some(server_secs) = self.server_time_secs().await {
                        self.clock_offset_secs
                            .store(server_secs - now_secs(), Ordering::Relaxed);
                        continue;
                    }
                }
            }
            if !options.retry || (route.gateway && !never_forwarded(&error)) {
                return Err(error);
            }
            match self.config.retry.delay_after(attempt, &error) {
                Some(delay) => {
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => return Err(error),
            }
        }
    }

    async fn attempt<S>(
        &self,
        route: &Route<'_>,
        options: &RequestOptions,
        seal: &mut impl FnMut(i64) -> Result<(Vec<u8>, S)>,
    ) -> Result<(reqwest::Response, S)> {
        let timestamp = options
            .timestamp
            .unwrap_or_else(|| now_secs() + self.clock_offset_secs.load(Ordering::Relaxed));
        let (wire_body, state) = seal(timestamp)?;
        let nonce = options.nonce.clone().unwrap_or_else(random_nonce);
        let parts = SignedParts {
            app_key: &self.config.app_key,
            device_id: &self.device_id,
            method: route.method,
            path: route.signed_path,
            query: route.query,
            timestamp,
            nonce: &nonce,
            body: &wire_body,
        };
        let secret = options.secret.as_deref().unwrap_or(&self.config.app_secret);
        let signature = signing::sign(secret, &parts);
        let (path, query) = (route.path, route.query);
        let url = if query.is_empty() {
            format!("{}{path}", self.config.server_url)
        } else {
            format!("{}{path}?{query}", self.config.server_url)
        };
        let method = reqwest::Method::from_bytes(route.method.as_bytes())
            .map_err(|error| Error::Config(error.to_string()))?;
        let mut request = self
            .http
            .request(method, url)
            .header(signing::HEADER_APP_KEY, &self.config.app_key)
            .header(signing::HEADER_DEVICE_ID, &self.device_id)
            .header(signing::HEADER_TIMESTAMP, timestamp.to_string())
            .header(signing::HEADER_NONCE, nonce)
            .header(signing::HEADER_SIGNATURE, signature)
            .header(reqwest::header::CONTENT_TYPE, route.content_type)
            .body(wire_body);
        if let Some(encoding) = route.encoding {
            request = request.header(reqwest::header::CONTENT_ENCODING, encoding);
        }
        for (name, value) in route.headers {
            request = request.header(*name, *value);
        }
        for (name, value) in &options.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await?;
        // A gateway call passes a backend's own error answers through as they are;
        // only the server's problem documents are errors.
        if route.gateway && !response.status().is_success() && !is_problem(&response) {
            return Ok((response, state));
        }
        Ok((check(response).await?, state))
    }

    /// The five signature headers of a request, for transports that do not go
    /// through [`DeviceClient::send_raw`] (the device connection's upgrade).
    pub fn signature_headers(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let timestamp = now_secs() + self.clock_offset_secs.load(Ordering::Relaxed);
        let nonce = random_nonce();
        let signature = signing::sign(
            &self.config.app_secret,
            &SignedParts {
                app_key: &self.config.app_key,
                device_id: &self.device_id,
                method,
                path,
                query,
                timestamp,
                nonce: &nonce,
                body,
            },
        );
        vec![
            (
                signing::HEADER_APP_KEY.to_owned(),
                self.config.app_key.clone(),
            ),
            (signing::HEADER_DEVICE_ID.to_owned(), self.device_id.clone()),
            (signing::HEADER_TIMESTAMP.to_owned(), timestamp.to_string()),
            (signing::HEADER_NONCE.to_owned(), nonce),
            (signing::HEADER_SIGNATURE.to_owned(), signature),
        ]
    }

    /// Learns the server's clock after it reported a skew.
    pub(crate) async fn correct_clock(&self) -> bool {
        match self.server_time_secs().await {
            Some(server_secs) => {
                self.clock_offset_secs
                    .store(server_secs - now_secs(), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The server's clock, read from the `Date` header of a cheap request.
    async fn server_time_secs(&self) -> Option<i64> {
        let response = self
            .http
            .get(format!("{}/healthz", self.config.server_url))
            .send()
            .await
            .ok()?;
        let date = response
            .headers()
            .get(reqwest::header::DATE)?
            .to_str()
            .ok()?;
        parse_http_date(date)
    }
}

/// Where one signed request goes and how it is signed and answered.
pub(crate) struct Route<'a> {
    /// HTTP method, upper case.
    pub(crate) method: &'a str,
    /// The path the request is sent to.
    pub(crate) path: &'a str,
    /// The path the signature covers (the gateway signs another than it sends).
    pub(crate) signed_path: &'a str,
    /// Raw query string without `?`, or empty.
    pub(crate) query: &'a str,
    /// `Content-Type` of the body.
    pub(crate) content_type: &'a str,
    /// `Content-Encoding` of the body, if compressed.
    pub(crate) encoding: Option<&'static str>,
    /// Further headers (not signed).
    pub(crate) headers: &'a [(&'static str, &'a str)],
    /// A gateway call: non-problem error answers are returned, not errors, and
    /// only failures that never reached a backend are retried.
    pub(crate) gateway: bool,
}

/// Whether an answer is a problem document (`application/problem+json`).
fn is_problem(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/problem+json")
        })
}

/// Whether a failed gateway call certainly never reached a backend, so sending
/// it again cannot do the backend's work twice: the connection was never made,
/// or the server refused it itself (rate limit, load shedding, open breaker).
fn never_forwarded(error: &Error) -> bool {
    match error {
        Error::Transport(error) => error.is_connect(),
        Error::Api { status, .. } => matches!(status, 429 | 503),
        _ => false,
    }
}

pub(crate) fn compress(
    body: &[u8],
    compression: Compression,
) -> Result<(Option<&'static str>, Vec<u8>)> {
    let chosen = match compression {
        Compression::Auto if body.len() > 1024 => Compression::Gzip,
        Compression::Auto => Compression::None,
        other => other,
    };
    Ok(match chosen {
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(body)?;
            (Some("gzip"), encoder.finish()?)
        }
        Compression::Zstd => (Some("zstd"), zstd::encode_all(body, 3)?),
        _ => (None, body.to_vec()),
    })
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
fn parse_http_date(text: &str) -> Option<i64> {
    let mut fields = text.split_whitespace().skip(1);
    let day: i64 = fields.next()?.parse().ok()?;
    let month = match fields.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = fields.next()?.parse().ok()?;
    let mut clock = fields
        .next()?
        .split(':')
        .map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if !(1..=31).contains(&day) {
        return None;
    }
    let days = atoll_protocol::time::days_from_civil(year, month, day as u32);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("garbage"), None);
    }

    #[test]
    fn device_id_persists_in_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_device_id(dir.path()).unwrap();
        let again = load_or_create_device_id(dir.path()).unwrap();
        assert_eq!(first, again);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(first, load_or_create_device_id(other.path()).unwrap());
    }

    #[test]
    fn compression_round_trips() {
        let body = vec![b'a'; 4096];
        let (encoding, wire) = compress(&body, Compression::Auto).unwrap();
        assert_eq!(encoding, Some("gzip"));
        assert!(wire.len() < body.len());
        let (encoding, wire) = compress(b"{}", Compression::Auto).unwrap();
        assert_eq!((encoding, wire.as_slice()), (None, &b"{}"[..]));
    }
}
