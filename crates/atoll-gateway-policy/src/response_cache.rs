//! The response cache of gateway APIs.
//!
//! A [`CacheKeySpec`] says which request fields (`$.id`, `$.filter.kind`,
//! `$.items[0]`) and headers (`$.header.accept-language`) tell answers apart; the
//! [`CacheKey`] is a SHA-256 of the app, the operation type and those values (as
//! canonical JSON, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are the same key), with a
//! missing value kept distinct from an empty one. Two different requests sharing
//! an answer would leak one user's data to another, hence a cryptographic hash
//! rather than a fast one.
//!
//! [`ResponseCache`] holds answers up to a total size in bytes, drops expired ones
//! first and then the least recently used, and can drop every answer of one API
//! at once when its settings change (each key carries its API's hash, and the
//! cache keeps an index by API).

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parts a key may have (as `atoll_protocol::gateway::limits::MAX_CACHE_KEY_PARTS`).
pub const MAX_KEY_PARTS: usize = 16;
/// Bytes counted for an entry besides its body and headers: the index entries and
/// allocations, so a flood of tiny answers is bounded too.
const ENTRY_OVERHEAD: usize = 160;

/// A key part that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache key part '{part}': {reason}")]
pub struct CacheKeyError {
    /// The part as written.
    pub part: String,
    /// What is wrong.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Body(Vec<Step>),
    /// Lower-case header name.
    Header(String),
}

/// What a cache key is made of.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheKeySpec {
    parts: Vec<Part>,
}

/// A cache key: the API's hash and the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    api: [u8; 16],
    request: [u8; 16],
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// RFC 9110 `tchar`.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn parse_part(text: &str) -> Result<Part, &'static str> {
    let path = text.strip_prefix("$.").ok_or("must start with '$.'")?;
    if let Some(name) = path.strip_prefix("header.") {
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err("a header name is letters, digits and -_.!#$%&'*+^`|~");
        }
        return Ok(Part::Header(name.to_ascii_lowercase()));
    }
    let mut steps = Vec::new();
    for segment in path.split('.') {
        let (name, mut rest) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
        if name.is_empty() || !name.chars().all(is_field_char) {
            return Err("a field name is letters, digits, '_' and '-', segments separated by '.'");
        }
        steps.push(Step::Field(name.to_owned()));
        while !rest.is_empty() {
            let close = rest.find(']').ok_or("unclosed '['")?;
            let digits = &rest[1..close];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err("an index is written [0], [1], ...");
            }
            let index = digits.parse().map_err(|_| "index too large")?;
            steps.push(Step::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err("an index ends a segment");
            }
        }
    }
    Ok(Part::Body(steps))
}

/// Feeds a length-prefixed string, so `("ab", "c")` and `("a", "bc")` differ.
fn feed(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// Feeds a value as canonical JSON-like bytes: a type tag, then the content, with
/// object keys sorted, so equal values give equal keys whatever their key order.
fn feed_value(hasher: &mut Sha256, value: &Value) {
    match value {
        Value::Null => hasher.update([b'n']),
        Value::Bool(flag) => hasher.update([b'b', u8::from(*flag)]),
        Value::Number(number) => {
            hasher.update([b'd']);
            feed(hasher, number.to_string().as_bytes());
        }
        Value::String(text) => {
            hasher.update([b's']);
            feed(hasher, text.as_bytes());
        }
        Value::Array(items) => {
            hasher.update([b'a']);
            hasher.update((items.len() as u64).to_be_bytes());
            for item in items {
                feed_value(hasher, item);
            }
        }
        Value::Object(map) => {
            hasher.update([b'o']);
            hasher.update((map.len() as u64).to_be_bytes());
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (name, item) in entries {
                feed(hasher, name.as_bytes());
                feed_value(hasher, item);
            }
        }
    }
}

fn truncate(digest: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn api_hash(app_id: &str, operation_type: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(b"atoll gateway cache api\0");
    feed(&mut hasher, app_id.as_bytes());
    feed(&mut hasher, operation_type.as_bytes());
    truncate(&hasher.finalize())
}

impl CacheKeySpec {
    /// Parses the parts of an API's `cache.key`. No parts: one answer for all.
    pub fn parse(parts: &[String]) -> Result<CacheKeySpec, CacheKeyError> {
        if parts.len() > MAX_KEY_PARTS {
            return Err(CacheKeyError {
                part: parts[MAX_KEY_PARTS].clone(),
                reason: "a key has at most 16 parts",
            });
        }
        let parts = parts
            .iter()
            .map(|part| {
                parse_part(part).map_err(|reason| CacheKeyError {
                    part: part.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CacheKeySpec { parts })
    }

    /// The key of one call. `header` looks a request header up by its lower-case
    /// name (give it a case-insensitive map such as `http::HeaderMap`).
    pub fn key<'h>(
        &self,
        app_id: &str,
        operation_type: &str,
        body: &Value,
        header: impl Fn(&str) -> Option<&'h str>,
    ) -> CacheKey {
        let api = api_hash(app_id, operation_type);
        let mut hasher = Sha256::new();
        hasher.update(b"atoll gateway cache request\0");
        hasher.update(api);
        for part in &self.parts {
            match part {
                Part::Body(steps) => match lookup(body, steps) {
                    Some(value) => {
                        hasher.update([1]);
                        feed_value(&mut hasher, value);
                    }
                    None => hasher.update([0]),
                },
                Part::Header(name) => match header(name) {
                    Some(value) => {
                        hasher.update([1]);
                        feed(&mut hasher, value.as_bytes());
                    }
                    None => hasher.update([0]),
                },
            }
        }
        CacheKey {
            api,
            request: truncate(&hasher.finalize()),
        }
    }

    /// The request headers the key uses (lower case), e.g. to add a `Vary`.
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Header(name) => Some(name.as_str()),
            Part::Body(_) => None,
        })
    }
}

fn lookup<'a>(body: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(body, |value, step| match step {
        Step::Field(name) => value.as_object()?.get(name),
        Step::Index(index) => value.as_array()?.get(*index),
    })
}

/// Whether a backend answer may be cached: not when `Cache-Control` says
/// `no-cache`, `no-store` or `private` (any case, anywhere in the list), when
/// `Pragma: no-cache`, nor when it sets a cookie (a cookie is one user's; it must
/// not be replayed to others). `header` looks up a response header by lower-case
/// name; repeated headers should be given comma-joined.
pub fn may_store<'h>(header: impl Fn(&str) -> Option<&'h str>) -> bool {
    let has_directive = |value: &str, names: &[&str]| {
        value.split(',').any(|directive| {
            let name = directive.split('=').next().unwrap_or("").trim();
            names.iter().any(|n| name.eq_ignore_ascii_case(n))
        })
    };
    if let Some(value) = header("cache-control") {
        if has_directive(value, &["no-cache", "no-store", "private"]) {
            return false;
        }
    }
    if let Some(value) = header("pragma") {
        if has_directive(value, &["no-cache"]) {
            return false;
        }
    }
    header("set-cookie").is_none()
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Other headers to replay.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl CachedResponse {
    /// The bytes the entry is charged for.
    fn size(&self) -> usize {
        ENTRY_OVERHEAD
            + self.body.len()
            + self.content_type.as_ref().map_or(0, String::len)
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 16)
                .sum::<usize>()
    }
}

#[derive(Debug)]
struct Entry {
    response: Arc<CachedResponse>,
    size: usize,
    expires: Instant,
    /// Position in the recency order.
    used: u64,
    /// Position in the expiry order (unique per insert).
    serial: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    /// Least recently used first.
    recency: BTreeMap<u64, CacheKey>,
    /// Soonest expiry first.
    expiry: BTreeMap<(Instant, u64), CacheKey>,
    by_api: HashMap<[u8; 16], HashSet<CacheKey>>,
    bytes: usize,
    counter: u64,
}

impl Inner {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn remove(&mut self, key: &CacheKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.recency.remove(&entry.used);
        self.expiry.remove(&(entry.expires, entry.serial));
        if let Some(keys) = self.by_api.get_mut(&key.api) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_api.remove(&key.api);
            }
        }
        self.bytes -= entry.size;
        Some(entry)
    }

    fn purge_expired(&mut self, now: Instant) {
        while let Some((&(expires, _), &key)) = self.expiry.first_key_value() {
            if expires > now {
                break;
            }
            self.remove(&key);
        }
    }
}

/// A byte-bounded cache of answers. Share it behind an `Arc`; one mutex guards
/// it, held only for map operations (answers are handed out as `Arc`s).
#[derive(Debug)]
pub struct ResponseCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

impl ResponseCache {
    /// A cache holding up to `max_bytes` of answers (bodies, headers and a small
    /// per-entry overhead).
    pub fn new(max_bytes: usize) -> ResponseCache {
        ResponseCache {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    /// The answer for `key`, unless it has expired (then it is dropped).
    pub fn get(&self, key: &CacheKey, now: Instant) -> Option<Arc<CachedResponse>> {
        let mut inner = self.inner.lock();
        let expires = inner.entries.get(key)?.expires;
        if now >= expires {
            inner.remove(key);
            return None;
        }
        let used = inner.next();
        let entry = inner.entries.get_mut(key).expect("checked above");
        let previous = std::mem::replace(&mut entry.used, used);
        let response = Arc::clone(&entry.response);
        inner.recency.remove(&previous);
        inner.recency.insert(used, *key);
        Some(response)
    }

    /// Stores an answer for `ttl`, replacing any for the same key. Returns false
    /// (and stores nothing) when the TTL is zero or the answer is bigger than an
    /// eighth of the cache: one answer must not push out all the others.
    pub fn insert(
        &self,
        key: CacheKey,
        response: CachedResponse,
        ttl: Duration,
        now: Instant,
    ) -> bool {
        let size = response.size();
        if ttl.is_zero() || size > self.max_bytes / 8 {
            return false;
        }
        let Some(expires) = now.checked_add(ttl) else {
            return false;
        };
        let mut inner = self.inner.lock();
        inner.remove(&key);
        inner.purge_expired(now);
        while inner.bytes + size > self.max_bytes {
            let Some((_, &oldest)) = inner.recency.first_key_value() else {
                break;
            };
            inner.remove(&oldest);
        }
        let used = inner.next();
        let serial = inner.next();
        inner.entries.insert(
            key,
            Entry {
                response: Arc::new(response),
                size,
                expires,
                used,
                serial,
            },
        );
        inner.recency.insert(used, key);
        inner.expiry.insert((expires, serial), key);
        inner.by_api.entry(key.api).or_default().insert(key);
        inner.bytes += size;
        true
    }

    /// Drops every answer of one API (its settings changed). Returns how many.
    pub fn invalidate(&self, app_id: &str, operation_type: &str) -> usize {
        let api = api_hash(app_id, operation_type);
        let mut inner = self.inner.lock();
        let keys = inner.by_api.remove(&api).unwrap_or_default();
        for key in &keys {
            inner.remove(key);
        }
        keys.len()
    }

    /// Drops every answer.
    pub fn clear(&self) {
        *self.inner.lock() = Inner::default();
    }

    /// Answers held (expired ones may still be counted until touched).
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged for the answers held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn spec(parts: &[&str]) -> CacheKeySpec {
        CacheKeySpec::parse(&parts.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn no_headers(_: &str) -> Option<&'static str> {
        None
    }

    fn response(body: &str) -> CachedResponse {
        CachedResponse {
            status: 200,
            content_type: Some("application/json".into()),
            headers: vec![("etag".into(), "\"1\"".into())],
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn parses_parts() {
        let s = spec(&[
            "$.id",
            "$.a.b",
            "$.items[0]",
            "$.m[1][2].x",
            "$.header.Accept-Language",
            "$.header",
        ]);
        assert_eq!(s.headers().collect::<Vec<_>>(), vec!["accept-language"]);
        for bad in [
            "id",
            "$",
            "$.",
            "$.a..b",
            "$.a[",
            "$.a[x]",
            "$.a[]",
            "$.a[0]b",
            "$.header.",
            "$.header.a b",
            "$.a b",
            "$.[0]",
        ] {
            let err = CacheKeySpec::parse(&[bad.to_string()]).unwrap_err();
            assert_eq!(err.part, bad);
            assert!(err.to_string().contains(bad));
        }
        let many: Vec<String> = (0..17).map(|i| format!("$.f{i}")).collect();
        assert!(CacheKeySpec::parse(&many).is_err());
        assert!(CacheKeySpec::parse(&many[..16]).is_ok());
    }

    #[test]
    fn keys_tell_requests_apart() {
        let s = spec(&["$.id", "$.items[1]", "$.header.accept-language"]);
        let headers = |lang: Option<&'static str>| {
            move |name: &str| {
                if name == "accept-language" {
                    lang
                } else {
                    None
                }
            }
        };
        let key = |app: &str, op: &str, body: Value, lang| s.key(app, op, &body, headers(lang));
        let base = key(
            "app",
            "a.b.c",
            json!({"id": 1, "items": [0, {"x": 1, "y": 2}]}),
            Some("en"),
        );
        // Same values in another order, unused fields differ: same key.
        assert_eq!(
            base,
            key(
                "app",
                "a.b.c",
                json!({"other": 5, "items": [9, {"y": 2, "x": 1}], "id": 1}),
                Some("en")
            )
        );
        let different = [
            key(
                "app2",
                "a.b.c",
                json!({"id": 1, "items": [0, {"x": 1, "y": 2}]}),
                Some("en"),
            ),
            key(
                "app",
                "a.b.d",
                json!({"id": 1, "items": [0, {"x": 1, "y": 2}]}),
                Some("en"),
            ),
            key(
                "app",
                "a.b.c",
                json!({"id": "1", "items": [0, {"x": 1, "y": 2}]}),
                Some("en"),
            ),
            key(
                "app",
                "a.b.c",
                json!({"id": 1, "items": [0, {"x": 1}]}),
                Some("en"),
            ),
            key(
                "app",
                "a.b.c",
                json!({"id": 1, "items": [0, {"x": 1, "y": 2}]}),
                Some("fr"),
            ),
            key(
                "app",
                "a.b.c",
                json!({"id": 1, "items": [0, {"x": 1, "y": 2}]}),
                None,
            ),
            key(
                "app",
                "a.b.c",
                json!({"id": 1, "items": [0, {"x": 1, "y": 2}]}),
                Some(""),
            ),
        ];
        for (i, k) in different.iter().enumerate() {
            assert_ne!(&base, k, "case {i}");
        }
        // Missing is not empty, nor null.
        let s = spec(&["$.q"]);
        let k = |body: Value| s.key("a", "o", &body, no_headers);
        assert_ne!(k(json!({})), k(json!({"q": ""})));
        assert_ne!(k(json!({})), k(json!({"q": null})));
        assert_ne!(k(json!({"q": null})), k(json!({"q": "null"})));
        // Length prefixes keep app and operation apart.
        assert_ne!(
            s.key("ab", "c", &json!({}), no_headers),
            s.key("a", "bc", &json!({}), no_headers)
        );
    }

    #[test]
    fn may_store_follows_the_headers() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            may_store(move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
        };
        assert!(with(&[]));
        assert!(with(&[("cache-control", "public, max-age=60")]));
        assert!(!with(&[("cache-control", "max-age=60, No-Store")]));
        assert!(!with(&[("cache-control", "PRIVATE")]));
        assert!(!with(&[("cache-control", "no-cache=\"set-cookie\"")]));
        assert!(!with(&[("pragma", "no-cache")]));
        assert!(!with(&[("set-cookie", "s=1")]));
        assert!(with(&[("cache-control", "no-transform")]));
    }

    #[test]
    fn get_insert_expire() {
        let cache = ResponseCache::new(64 * 1024);
        let s = spec(&["$.id"]);
        let t0 = Instant::now();
        let k = s.key("a", "o", &json!({"id": 1}), no_headers);
        assert!(cache.get(&k, t0).is_none());
        assert!(cache.insert(k, response("one"), Duration::from_secs(10), t0));
        assert_eq!(
            cache.get(&k, t0 + Duration::from_secs(9)).unwrap().body,
            "one"
        );
        assert!(cache.get(&k, t0 + Duration::from_secs(10)).is_none());
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
        assert!(!cache.insert(k, response("x"), Duration::ZERO, t0));
        // Too big: more than an eighth.
        assert!(!cache.insert(
            k,
            response(&"x".repeat(8 * 1024)),
            Duration::from_secs(1),
            t0
        ));
        assert!(cache.is_empty());
    }

    #[test]
    fn evicts_expired_then_least_recently_used() {
        let one = response(&"x".repeat(100)).size();
        let cache = ResponseCache::new(one * 8);
        let s = spec(&["$.id"]);
        let t0 = Instant::now();
        let key = |i: u32| s.key("a", "o", &json!({ "id": i }), no_headers);
        for i in 0..8 {
            // Entry 0 expires soon, the others later.
            let ttl = Duration::from_secs(if i == 0 { 1 } else { 100 });
            assert!(cache.insert(key(i), response(&"x".repeat(100)), ttl, t0));
        }
        assert_eq!(cache.len(), 8);
        // Use 1 so 2 is the least recently used.
        assert!(cache.get(&key(1), t0).is_some());
        let t1 = t0 + Duration::from_secs(2);
        assert!(cache.insert(
            key(8),
            response(&"x".repeat(100)),
            Duration::from_secs(100),
            t1
        ));
        assert!(
            cache.get(&key(2), t1).is_some(),
            "the expired entry went first"
        );
        assert!(cache.insert(
            key(9),
            response(&"x".repeat(100)),
            Duration::from_secs(100),
            t1
        ));
        assert!(
            cache.get(&key(3), t1).is_none(),
            "then the least recently used"
        );
        for i in [1, 2, 4, 5, 6, 7, 8, 9] {
            assert!(cache.get(&key(i), t1).is_some(), "{i}");
        }
        assert_eq!(cache.bytes(), one * 8);
    }

    #[test]
    fn invalidates_one_api() {
        let cache = ResponseCache::new(1 << 20);
        let s = spec(&["$.id"]);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        for i in 0..5 {
            cache.insert(
                s.key("a", "o1", &json!({ "id": i }), no_headers),
                response("1"),
                ttl,
                t0,
            );
            cache.insert(
                s.key("a", "o2", &json!({ "id": i }), no_headers),
                response("2"),
                ttl,
                t0,
            );
        }
        assert_eq!(cache.invalidate("a", "o1"), 5);
        assert_eq!(cache.invalidate("a", "o1"), 0);
        assert_eq!(cache.len(), 5);
        assert!(cache
            .get(&s.key("a", "o2", &json!({"id": 0}), no_headers), t0)
            .is_some());
        cache.clear();
        assert!(cache.is_empty());
    }

    proptest! {
        /// Under any sequence of operations the byte count is exact, within the
        /// bound, and the indexes agree with the entries.
        #[test]
        fn stays_bounded_and_consistent(ops in proptest::collection::vec((0u8..4, 0u32..20, 0usize..400, 0u64..5), 1..200)) {
            let cache = ResponseCache::new(4096);
            let t0 = Instant::now();
            let mut now = t0;
            for (op, id, len, step) in ops {
                now += Duration::from_millis(step * 300);
                let key = CacheKeySpec::default().key("a", &format!("o{}", id % 3), &Value::Null, no_headers);
                let key = CacheKey { request: [id as u8; 16], ..key };
                match op {
                    0 | 1 => { cache.insert(key, response(&"b".repeat(len)), Duration::from_secs(1), now); }
                    2 => { cache.get(&key, now); }
                    _ => { cache.invalidate("a", &format!("o{}", id % 3)); }
                }
                let inner = cache.inner.lock();
                prop_assert!(inner.bytes <= 4096);
                prop_assert_eq!(inner.bytes, inner.entries.values().map(|e| e.size).sum::<usize>());
                prop_assert_eq!(inner.recency.len(), inner.entries.len());
                prop_assert_eq!(inner.expiry.len(), inner.entries.len());
                prop_assert_eq!(inner.by_api.values().map(HashSet::len).sum::<usize>(), inner.entries.len());
            }
        }
    }
}
