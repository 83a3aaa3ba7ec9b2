//! The log line formatter: the text or JSON line of `tracing-subscriber`, plus
//! the id of the request being handled when the event is written inside one.
//!
//! The server keeps the request id in a task-local rather than a tracing span
//! per request (a span cost ~25 µs a request under the fmt layer); this adds it
//! back to every line a request writes, `request_id=…` in text and a
//! `"request_id"` field in JSON. Ids are `[A-Za-z0-9_-]{1,64}`, so they need no
//! quoting or escaping. Such lines are written without colour codes.

use std::fmt::Write as _;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps a line format, adding the current request's id.
pub struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl<F> WithRequestId<F> {
    /// `json`: the inner format writes one JSON object a line.
    pub fn new(inner: F, json: bool) -> Self {
        WithRequestId { inner, json }
    }
}

/// Adds `request_id` to one formatted line (without its newline).
fn add_request_id(line: &mut String, request_id: &str, json: bool) {
    if json && line.ends_with('}') {
        line.pop();
        let _ = write!(line, ",\"request_id\":\"{request_id}\"}}");
    } else {
        let _ = write!(line, " request_id={request_id}");
    }
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let with_id = atoll_server::with_request_id(|request_id| {
            let mut line = String::new();
            // Without colours: tracing-subscriber offers no way to keep them on
            // a writer of our own (they only matter on a terminal).
            self.inner
                .format_event(ctx, Writer::new(&mut line), event)?;
            let had_newline = line.ends_with('\n');
            if had_newline {
                line.pop();
            }
            add_request_id(&mut line, request_id, self.json);
            if had_newline {
                line.push('\n');
            }
            writer.write_str(&line)
        });
        match with_id {
            Some(result) => result,
            None => self.inner.format_event(ctx, writer, event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::add_request_id;

    #[test]
    fn the_id_goes_inside_a_json_object_and_after_a_text_line() {
        let mut json = r#"{"level":"WARN","message":"handled"}"#.to_owned();
        add_request_id(&mut json, "abc-1", true);
        assert_eq!(
            json,
            r#"{"level":"WARN","message":"handled","request_id":"abc-1"}"#
        );
        serde_json::from_str::<serde_json::Value>(&json).unwrap();
        let mut text = "2026-12-01T00:00:00Z  WARN atoll: handled status=500".to_owned();
        add_request_id(&mut text, "abc-1", false);
        assert!(text.ends_with(" status=500 request_id=abc-1"));
    }
}
