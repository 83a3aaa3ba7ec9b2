//! Sessions and pages: a pure state machine fed with the injected clock, so the
//! 30-minute rule is tested without sleeping. It builds events; the tracker
//! queues them.

use atoll_protocol::events::{TrackedEvent, BACKGROUND, FOREGROUND, LAUNCH, PAGE_VIEW};

#[derive(Debug, Clone)]
struct OpenPage {
    page: String,
    began_ms: i64,
    referrer: Option<String>,
}

/// Where the app is in its lifecycle.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    timeout_ms: i64,
    id: Option<String>,
    launched: bool,
    /// `Some` while in the foreground: since when.
    foreground_since: Option<i64>,
    /// `Some` while in the background after having been in the foreground.
    background_since: Option<i64>,
    /// Begun and not yet ended, oldest first; the last one is the current page.
    /// A list, not one slot, because platforms often begin the next page before
    /// ending the previous one.
    open_pages: Vec<OpenPage>,
    /// The page begun most recently: the referrer of the next one.
    last_page: Option<String>,
}

fn new_session_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Session {
    pub fn new(timeout_ms: i64) -> Session {
        Session {
            timeout_ms,
            id: None,
            launched: false,
            foreground_since: None,
            background_since: None,
            open_pages: Vec::new(),
            last_page: None,
        }
    }

    /// The current session id, if a session was started.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// An event stamped with a fresh uuid, the time, the session and the page.
    pub fn event(&self, event_id: &str, now_ms: i64) -> TrackedEvent {
        TrackedEvent {
            uuid: uuid::Uuid::new_v4().to_string(),
            event_id: event_id.to_owned(),
            time: now_ms,
            session_id: self.id.clone(),
            page: self.open_pages.last().map(|open| open.page.clone()),
            ..TrackedEvent::default()
        }
    }

    /// App launch: `$launch` and `$foreground` in a new session. Only the first
    /// call does anything: a launch happens once per process.
    pub fn start(&mut self, now_ms: i64) -> Vec<TrackedEvent> {
        if self.launched {
            return Vec::new();
        }
        self.launched = true;
        self.id = Some(new_session_id());
        self.foreground_since = Some(now_ms);
        self.background_since = None;
        vec![self.event(LAUNCH, now_ms), self.event(FOREGROUND, now_ms)]
    }

    /// To the background: `$background` with the time spent in the foreground.
    pub fn background(&mut self, now_ms: i64) -> Vec<TrackedEvent> {
        let Some(since) = self.foreground_since.take() else {
            return Vec::new();
        };
        self.background_since = Some(now_ms);
        let mut event = self.event(BACKGROUND, now_ms);
        // A clock set backwards must not produce a negative duration, which the
        // server refuses (and with it the whole batch).
        event.duration_ms = Some((now_ms - since).max(0));
        vec![event]
    }

    /// Back to the foreground: a new session after `timeout` in the background
    /// (or when none was started), else the same one; then `$foreground`.
    pub fn foreground(&mut self, now_ms: i64) -> Vec<TrackedEvent> {
        if self.foreground_since.is_some() {
            return Vec::new();
        }
        let expired = self
            .background_since
            .is_some_and(|since| now_ms - since >= self.timeout_ms);
        if self.id.is_none() || expired {
            self.id = Some(new_session_id());
        }
        self.foreground_since = Some(now_ms);
        self.background_since = None;
        vec![self.event(FOREGROUND, now_ms)]
    }

    /// A page is shown; later events carry it until it ends.
    pub fn page_begin(&mut self, page: &str, now_ms: i64) {
        self.open_pages.push(OpenPage {
            page: page.to_owned(),
            began_ms: now_ms,
            referrer: self.last_page.replace(page.to_owned()),
        });
    }

    /// A page is gone: `$page_view` with its referrer and stay, or `None` when
    /// the page was not begun.
    pub fn page_end(&mut self, page: &str, now_ms: i64) -> Option<TrackedEvent> {
        let index = self.open_pages.iter().rposition(|open| open.page == page)?;
        let open = self.open_pages.remove(index);
        let mut event = self.event(PAGE_VIEW, now_ms);
        event.page = Some(open.page);
        event.referrer = open.referrer;
        event.duration_ms = Some((now_ms - open.began_ms).max(0));
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const T0: i64 = 1_800_000_000_000;

    fn names(events: &[TrackedEvent]) -> Vec<&str> {
        events.iter().map(|event| event.event_id.as_str()).collect()
    }

    #[test]
    fn start_launches_once_in_a_new_session() {
        let mut session = Session::new(30 * MINUTE);
        assert_eq!(session.id(), None);
        let events = session.start(T0);
        assert_eq!(names(&events), [LAUNCH, FOREGROUND]);
        let id = session.id().unwrap().to_owned();
        assert!(uuid::Uuid::try_parse(&id).is_ok());
        assert!(events
            .iter()
            .all(|e| e.session_id.as_deref() == Some(id.as_str())));
        assert!(events.iter().all(|e| e.time == T0));
        assert_ne!(events[0].uuid, events[1].uuid);
        assert!(session.start(T0 + 1).is_empty());
        assert_eq!(session.id(), Some(id.as_str()));
    }

    #[test]
    fn background_reports_the_foreground_time() {
        let mut session = Session::new(30 * MINUTE);
        session.start(T0);
        let events = session.background(T0 + 5 * MINUTE);
        assert_eq!(names(&events), [BACKGROUND]);
        assert_eq!(events[0].duration_ms, Some(5 * MINUTE));
        assert!(
            session.background(T0 + 6 * MINUTE).is_empty(),
            "already in background"
        );
        session.foreground(T0 + 7 * MINUTE);
        let events = session.background(T0 + 10 * MINUTE);
        assert_eq!(events[0].duration_ms, Some(3 * MINUTE));
        // A clock set back gives 0, never a negative duration.
        session.foreground(T0 + 11 * MINUTE);
        assert_eq!(session.background(T0).first().unwrap().duration_ms, Some(0));
    }

    #[test]
    fn a_new_session_starts_after_30_minutes_in_background_not_after_29() {
        let mut session = Session::new(30 * MINUTE);
        session.start(T0);
        let first = session.id().unwrap().to_owned();

        session.background(T0 + MINUTE);
        let events = session.foreground(T0 + MINUTE + 29 * MINUTE);
        assert_eq!(names(&events), [FOREGROUND]);
        assert_eq!(
            session.id(),
            Some(first.as_str()),
            "29 minutes: same session"
        );
        assert_eq!(events[0].session_id.as_deref(), Some(first.as_str()));

        let back = T0 + 40 * MINUTE;
        session.background(back);
        let events = session.foreground(back + 30 * MINUTE);
        let second = session.id().unwrap().to_owned();
        assert_ne!(second, first, "30 minutes: new session");
        assert_eq!(events[0].session_id.as_deref(), Some(second.as_str()));
        // Foreground while in foreground changes nothing.
        assert!(session.foreground(back + 31 * MINUTE).is_empty());
        assert_eq!(session.id(), Some(second.as_str()));
    }

    #[test]
    fn foreground_without_start_opens_a_session() {
        let mut session = Session::new(30 * MINUTE);
        let events = session.foreground(T0);
        assert_eq!(names(&events), [FOREGROUND]);
        assert!(session.id().is_some());
    }

    #[test]
    fn page_views_carry_referrer_and_stay() {
        let mut session = Session::new(30 * MINUTE);
        session.start(T0);
        session.page_begin("home", T0);
        assert_eq!(session.event("tap", T0 + 1).page.as_deref(), Some("home"));
        let home = session.page_end("home", T0 + 2_000).unwrap();
        assert_eq!(home.event_id, PAGE_VIEW);
        assert_eq!(home.page.as_deref(), Some("home"));
        assert_eq!(home.referrer, None);
        assert_eq!(home.duration_ms, Some(2_000));
        assert_eq!(session.event("tap", T0 + 2_001).page, None);

        // The next page begins before the previous one ends (as on Android).
        session.page_begin("list", T0 + 3_000);
        session.page_begin("detail", T0 + 4_000);
        assert_eq!(
            session.event("tap", T0 + 4_500).page.as_deref(),
            Some("detail")
        );
        let list = session.page_end("list", T0 + 4_100).unwrap();
        assert_eq!(
            (list.referrer.as_deref(), list.duration_ms),
            (Some("home"), Some(1_100))
        );
        let detail = session.page_end("detail", T0 + 9_000).unwrap();
        assert_eq!(detail.referrer.as_deref(), Some("list"));
        assert_eq!(detail.duration_ms, Some(5_000));
        assert!(
            session.page_end("detail", T0 + 9_001).is_none(),
            "already ended"
        );
        assert!(session.page_end("never", T0).is_none());
    }
}
