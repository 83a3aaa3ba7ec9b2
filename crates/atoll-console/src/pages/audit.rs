//! The audit log of a workspace, newest first, paged with `?before=<id>`.

use crate::auth::Authed;
use crate::view::{self, filters, OrErrorPage, PageResult, Shell};
use crate::ConsoleState;
use askama::Template;
use atoll_protocol::admin::AuditEntry;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

/// Entries per page.
const PAGE_SIZE: u32 = 50;

struct Row {
    entry: AuditEntry,
    /// The before/after summary as compact JSON (escaped by the template).
    summary: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    shell: Shell,
    rows: Vec<Row>,
    paged: bool,
    older: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    before: Option<i64>,
}

/// `GET /w/{ws}/audit?before=…`.
pub async fn list(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<AuditQuery>,
) -> PageResult {
    let shell = Shell::load(&state, &authed, Some(&ws), "/audit", None, "Audit log").await?;
    let entries = state
        .platform
        .audit_log(&authed.principal(), &ws, query.before, PAGE_SIZE)
        .await
        .or_error_page(&shell)?;
    // A full page may have more behind it; the last id is where the next starts.
    let older = (entries.len() as u32 == PAGE_SIZE)
        .then(|| entries.last().map(|entry| entry.id))
        .flatten();
    let page = AuditPage {
        rows: entries
            .into_iter()
            .map(|entry| Row {
                summary: match &entry.summary {
                    serde_json::Value::Null => String::new(),
                    value => value.to_string(),
                },
                entry,
            })
            .collect(),
        paged: query.before.is_some(),
        older,
        shell,
    };
    Ok(view::render(StatusCode::OK, &page))
}
