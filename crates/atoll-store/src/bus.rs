//! Subject-based publish/subscribe.
//!
//! Subjects are dot-separated like NATS subjects (`sync.<app>.<device>`), and a
//! subscription pattern may end in `>` to match every subject below a prefix, so the
//! NATS implementation of cluster mode can map one to one. Delivery is at most once
//! and never blocks the publisher: each subscription has a bounded queue, and a
//! message for a full queue is dropped and counted. Modules that need durability
//! persist first (MetaStore) and use the bus only to wake the node that delivers.

use crate::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use std::fmt::Debug;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The subject it was published on.
    pub subject: String,
    /// Opaque payload (modules encode their own frames).
    pub payload: Bytes,
}

/// A stream of messages matching one pattern; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    receiver: mpsc::Receiver<BusMessage>,
}

impl Subscription {
    /// The next message, or `None` once the bus is gone.
    pub async fn next(&mut self) -> Option<BusMessage> {
        self.receiver.recv().await
    }
}

/// Publish/subscribe between the parts of Atoll.
#[async_trait]
pub trait Bus: Send + Sync + Debug {
    /// Publishes to every current subscriber whose pattern matches `subject`.
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<()>;
    /// Subscribes to `pattern` (exact, or a prefix ending in `.>`), with a queue of
    /// `capacity` messages.
    async fn subscribe(&self, pattern: &str, capacity: usize) -> Result<Subscription>;
}

/// Whether `pattern` matches `subject`: equal, or `prefix.>` matching anything
/// with at least one token below `prefix`.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    match pattern.strip_suffix('>') {
        Some("") => true,
        Some(prefix) => {
            prefix.ends_with('.') && subject.len() > prefix.len() && subject.starts_with(prefix)
        }
        None => pattern == subject,
    }
}

/// One subscription's pattern and queue.
type Subscriber = (String, mpsc::Sender<BusMessage>);

/// The in-process bus of a single node.
#[derive(Debug, Default, Clone)]
pub struct MemoryBus {
    subscribers: Arc<RwLock<Vec<Subscriber>>>,
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> MemoryBus {
        MemoryBus::default()
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<()> {
        let mut saw_closed = false;
        {
            let subscribers = self.subscribers.read().map_err(|_| Error::BusClosed)?;
            for (pattern, sender) in subscribers.iter() {
                if !subject_matches(pattern, subject) {
                    continue;
                }
                let message = BusMessage {
                    subject: subject.to_owned(),
                    payload: payload.clone(),
                };
                match sender.try_send(message) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        metrics::counter!("atoll_bus_dropped_total", "reason" => "queue_full")
                            .increment(1);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => saw_closed = true,
                }
            }
        }
        if saw_closed {
            let mut subscribers = self.subscribers.write().map_err(|_| Error::BusClosed)?;
            subscribers.retain(|(_, sender)| !sender.is_closed());
        }
        Ok(())
    }

    async fn subscribe(&self, pattern: &str, capacity: usize) -> Result<Subscription> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        self.subscribers
            .write()
            .map_err(|_| Error::BusClosed)?
            .push((pattern.to_owned(), sender));
        Ok(Subscription { receiver })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.bc"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.>", "ab.c"));
        assert!(subject_matches(">", "anything"));
    }

    #[tokio::test]
    async fn delivers_to_matching_subscribers_and_drops_when_full() {
        let bus = MemoryBus::new();
        let mut all = bus.subscribe("sync.>", 1).await.unwrap();
        let mut exact = bus.subscribe("sync.app.dev1", 8).await.unwrap();
        bus.publish("sync.app.dev1", Bytes::from_static(b"1"))
            .await
            .unwrap();
        bus.publish("sync.app.dev1", Bytes::from_static(b"2"))
            .await
            .unwrap();
        assert_eq!(all.next().await.unwrap().payload, Bytes::from_static(b"1"));
        assert_eq!(
            exact.next().await.unwrap().payload,
            Bytes::from_static(b"1")
        );
        assert_eq!(
            exact.next().await.unwrap().payload,
            Bytes::from_static(b"2")
        );
        drop(exact);
        bus.publish("sync.app.dev1", Bytes::from_static(b"3"))
            .await
            .unwrap();
        assert_eq!(bus.subscribers.read().unwrap().len(), 1);
        assert_eq!(all.next().await.unwrap().payload, Bytes::from_static(b"3"));
    }
}
