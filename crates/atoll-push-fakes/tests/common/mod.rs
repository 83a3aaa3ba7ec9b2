//! Helpers shared by the provider-against-fake tests.
#![allow(dead_code)]

use atoll_push_vendors::{Notification, Style};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A visible notification expiring in an hour, with a collapse key.
pub fn notification() -> Notification {
    Notification {
        msg_id: uuid::Uuid::new_v4().to_string(),
        title: "Order shipped".into(),
        body: "Your order 42 is on its way".into(),
        silent: false,
        style: Style::Default,
        click: None,
        extras: BTreeMap::from([("order".to_string(), "42".to_string())]),
        collapse_key: Some("order-42".into()),
        expires_at_ms: now_ms() + 3_600_000,
        high_priority: true,
        vendor_options: BTreeMap::new(),
    }
}

/// A notification whose body alone exceeds 4096 bytes.
pub fn oversized() -> Notification {
    let mut n = notification();
    n.body = "x".repeat(5000);
    n
}

/// A 64-hex-digit APNs-style token.
pub fn hex_token(i: usize) -> String {
    format!("{:064x}", 0xa7011_u64 * 1_000_003 + i as u64)
}
