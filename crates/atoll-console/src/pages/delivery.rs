//! Delivery pages: upload a package (or register a store link), create a
//! release with its rules, steer it (stage select and rollout slider, pause,
//! resume, end, roll back), see its funnel of checks → offers → downloads →
//! installs, and manage the id lists whitelists name.

use super::Fields;
use crate::auth::Authed;
use crate::view::{self, encode_query, filters, Flash, OrErrorPage, PageResult, Shell};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::delivery::*;
use atoll_protocol::device::Platform;
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

/// `?app=…&release=…&done=…`.
#[derive(Debug, Default, Deserialize)]
pub struct DeliveryQuery {
    #[serde(default)]
    app: String,
    /// The release whose funnel is shown.
    #[serde(default)]
    release: String,
    #[serde(default)]
    done: String,
}

/// How a package is named on the page: "app installer", "h5 20000001",
/// "hotpatch for app 1.2".
fn package_label(package: &Package) -> String {
    match (package.kind, &package.for_app_version) {
        (ResourceKind::App, _) => "app installer".into(),
        (ResourceKind::Hotpatch, Some(version)) => format!("hotpatch for app {version}"),
        (kind, _) => format!("{kind} {}", package.resource_id),
    }
}

struct PackageRow {
    package: Package,
    label: String,
}

struct ReleaseRow {
    release: Release,
    label: String,
    stage_text: String,
    funnel_href: String,
    can_pause: bool,
    can_resume: bool,
    can_end: bool,
    can_roll_back: bool,
}

struct FunnelStep {
    label: &'static str,
    count: u64,
    /// Width of the bar, percent of the first step.
    width: u64,
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    shell: Shell,
    app_key: String,
    packages: Vec<PackageRow>,
    releases: Vec<ReleaseRow>,
    lists: Vec<TargetList>,
    funnel: Option<(String, Release, Vec<FunnelStep>, ReleaseStats)>,
    kinds: Vec<&'static str>,
    platforms: Vec<&'static str>,
    modes: Vec<&'static str>,
    stages: Vec<&'static str>,
    signing_key: String,
}

/// Delivery errors as the console's platform errors.
fn platform_error(error: atoll_delivery::Error) -> Error {
    match error {
        atoll_delivery::Error::Platform(error) => error,
        error => view::module_error(error.code(), error.to_string()),
    }
}

fn lists_error(error: atoll_lists::Error) -> Error {
    match error {
        atoll_lists::Error::Platform(error) => error,
        error => view::module_error(error.code(), error.to_string()),
    }
}

fn funnel_of(stats: &ReleaseStats) -> Vec<FunnelStep> {
    let total = &stats.total;
    let first = total.checks.max(1);
    [
        ("Checks", total.checks),
        ("Offered", total.offered),
        ("Downloaded", total.downloaded),
        ("Installed", total.installed),
        ("Failed", total.failed),
    ]
    .into_iter()
    .map(|(label, count)| FunnelStep {
        label,
        count,
        width: (count.saturating_mul(100) / first).min(100),
    })
    .collect()
}

async fn render(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    query: &DeliveryQuery,
    status: StatusCode,
    flash: Option<Flash>,
) -> PageResult {
    let app = query.app.as_str();
    let shell = Shell::load(
        state,
        authed,
        Some(ws),
        "/delivery",
        Some(app).filter(|a| !a.is_empty()),
        "Delivery",
    )
    .await?
    .with_flash(flash);
    let (shell, app_key) = shell.app_or_first(app, "releases")?;
    let principal = authed.principal();
    let delivery = &state.delivery;
    let packages = delivery
        .packages(&principal, ws, &app_key, None, Some(50))
        .await
        .map_err(platform_error)
        .or_error_page(&shell)?;
    let releases = delivery
        .releases(&principal, ws, &app_key, Some(50))
        .await
        .map_err(platform_error)
        .or_error_page(&shell)?;
    let lists = state
        .lists
        .list(&principal, ws, &app_key)
        .await
        .map_err(lists_error)
        .or_error_page(&shell)?;
    let signing_key = delivery
        .signing_key(&principal, ws)
        .await
        .map_err(platform_error)
        .or_error_page(&shell)?
        .public_key;
    let base = format!("{}/delivery?app={}", shell.base(), encode_query(&app_key));
    let funnel = match releases.iter().find(|r| r.id == query.release) {
        Some(release) => {
            let stats = delivery
                .release_stats(&principal, ws, &app_key, &release.id)
                .await
                .map_err(platform_error)
                .or_error_page(&shell)?;
            Some((
                package_label(&release.package),
                release.clone(),
                funnel_of(&stats),
                stats,
            ))
        }
        None => None,
    };
    let live = |r: &Release| r.stage != ReleaseStage::Draft;
    let page = DeliveryPage {
        releases: releases
            .into_iter()
            .map(|release| ReleaseRow {
                label: package_label(&release.package),
                stage_text: match release.stage {
                    ReleaseStage::Percentage => format!("percentage · {}%", release.percent),
                    stage => stage.to_string(),
                },
                funnel_href: format!("{base}&release={}#funnel", encode_query(&release.id)),
                can_pause: release.status == ReleaseStatus::Active && live(&release),
                can_resume: release.status == ReleaseStatus::Paused,
                can_end: matches!(
                    release.status,
                    ReleaseStatus::Active | ReleaseStatus::Paused
                ),
                can_roll_back: release.status != ReleaseStatus::RolledBack && live(&release),
                release,
            })
            .collect(),
        packages: packages
            .into_iter()
            .map(|package| PackageRow {
                label: package_label(&package),
                package,
            })
            .collect(),
        lists,
        funnel,
        kinds: ResourceKind::ALL.iter().map(|k| k.as_str()).collect(),
        platforms: Platform::ALL.iter().map(|p| p.as_str()).collect(),
        modes: UpgradeMode::ALL.iter().map(|m| m.as_str()).collect(),
        stages: ReleaseStage::ALL.iter().map(|s| s.as_str()).collect(),
        signing_key,
        app_key,
        shell,
    };
    Ok(view::render(status, &page))
}

/// `GET /w/{ws}/delivery`.
pub async fn index(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Query(query): Query<DeliveryQuery>,
) -> PageResult {
    let flash = view::done_message(&query.done);
    render(&state, &authed, &ws, &query, StatusCode::OK, flash).await
}

/// Back to the page with the message for `done` (post/redirect/get).
fn done_redirect(ws: &str, app: &str, release: &str, done: &str) -> axum::response::Response {
    Redirect::to(&format!(
        "/w/{}/delivery?app={}&release={}&done={done}",
        view::encode_segment(ws),
        encode_query(app),
        encode_query(release),
    ))
    .into_response()
}

async fn done_or_refused(
    state: &ConsoleState,
    authed: &Authed,
    ws: &str,
    app: &str,
    outcome: Result<(String, &str), Error>,
) -> PageResult {
    match outcome {
        Ok((release, done)) => Ok(done_redirect(ws, app, &release, done)),
        Err(error) => {
            let query = DeliveryQuery {
                app: app.to_owned(),
                ..DeliveryQuery::default()
            };
            render(
                state,
                authed,
                ws,
                &query,
                view::status_of(&error),
                Some(Flash::error(&error)),
            )
            .await
        }
    }
}

fn non_empty(value: &str) -> Option<String> {
    super::non_blank(value)
}

/// `POST /w/{ws}/delivery/upload` (multipart): the fields, then the file.
pub async fn upload(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    mut multipart: Multipart,
) -> PageResult {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut spooled = None;
    let bad_form =
        |detail: String| Error::Validation(format!("the upload form could not be read: {detail}"));
    let outcome: Result<Package, Error> = async {
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| bad_form(e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                // The CSRF token comes first in the form: check it before
                // accepting any bytes of the file.
                let csrf = Fields(fields.clone());
                if authed.check_csrf(csrf.get("csrf_token")).is_err() {
                    return Err(Error::Forbidden(
                        "the form's CSRF token is missing or wrong; reload the page".into(),
                    ));
                }
                let app = csrf.get("app").to_owned();
                state
                    .delivery
                    .authorize_upload(&authed.principal(), &ws, &app)
                    .await
                    .map_err(platform_error)?;
                spooled = state.delivery.spool(field).await.map_err(platform_error)?;
            } else {
                let value = field.text().await.map_err(|e| bad_form(e.body_text()))?;
                fields.push((name, value));
            }
        }
        let fields = Fields(fields.clone());
        if authed.check_csrf(fields.get("csrf_token")).is_err() {
            return Err(Error::Forbidden(
                "the form's CSRF token is missing or wrong; reload the page".into(),
            ));
        }
        let kind = ResourceKind::parse(fields.get("kind"))
            .ok_or_else(|| Error::Validation("choose what kind of package this is".into()))?;
        let platform = Platform::parse(fields.get("platform"))
            .ok_or_else(|| Error::Validation("choose a platform".into()))?;
        let request = UploadPackage {
            kind,
            platform,
            version: fields.get("version").trim().to_owned(),
            resource_id: non_empty(fields.get("resource_id")),
            for_app_version: non_empty(fields.get("for_app_version")),
            file_name: non_empty(fields.get("file_name")),
            store_url: non_empty(fields.get("store_url")),
        };
        state
            .delivery
            .upload_package(
                &authed.principal(),
                &ws,
                fields.get("app"),
                request,
                spooled.as_ref().map(|s| s.file()),
            )
            .await
            .map_err(platform_error)
    }
    .await;
    let app = Fields(fields).get("app").to_owned();
    done_or_refused(
        &state,
        &authed,
        &ws,
        &app,
        outcome.map(|_| (String::new(), "package_uploaded")),
    )
    .await
}

/// `POST /w/{ws}/delivery/releases`: a new draft release.
pub async fn create(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let request = CreateRelease {
        package_id: fields.get("package_id").to_owned(),
        mode: UpgradeMode::parse(fields.get("mode")),
        whitelist: non_empty(fields.get("whitelist")),
        rule: non_empty(fields.get("rule")),
        app_versions: non_empty(fields.get("app_versions")),
        force_below: non_empty(fields.get("force_below")),
        notes: fields.get("notes").trim().to_owned(),
    };
    let outcome = state
        .delivery
        .create_release(&authed.principal(), &ws, &app, request)
        .await
        .map_err(platform_error)
        .map(|release| (release.id, "release_created"));
    done_or_refused(&state, &authed, &ws, &app, outcome).await
}

/// `POST /w/{ws}/delivery/rollout`: stage and percentage.
pub async fn rollout(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let release = fields.get("release").to_owned();
    let outcome = async {
        let stage = ReleaseStage::parse(fields.get("stage"))
            .ok_or_else(|| Error::Validation("choose a stage".into()))?;
        let percent = match stage {
            ReleaseStage::Percentage => {
                Some(fields.get("percent").trim().parse::<f64>().map_err(|_| {
                    Error::Validation("the percentage is a number from 0 to 100".into())
                })?)
            }
            _ => None,
        };
        state
            .delivery
            .promote(
                &authed.principal(),
                &ws,
                &app,
                &release,
                PromoteRelease { stage, percent },
            )
            .await
            .map_err(platform_error)
    }
    .await
    .map(|release| (release.id, "release_changed"));
    done_or_refused(&state, &authed, &ws, &app, outcome).await
}

/// `POST /w/{ws}/delivery/action`: pause, resume, end or roll back.
pub async fn action(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let release = fields.get("release");
    let principal = authed.principal();
    let delivery = &state.delivery;
    let outcome = match ReleaseAction::parse(fields.get("action")) {
        Some(action) => delivery.act(&principal, &ws, &app, release, action).await,
        None => Err(atoll_delivery::Error::Invalid(format!(
            "unknown action '{}'",
            fields.get("action")
        ))),
    }
    .map_err(platform_error)
    .map(|release| (release.id, "release_changed"));
    done_or_refused(&state, &authed, &ws, &app, outcome).await
}

/// `POST /w/{ws}/delivery/lists`: create or replace a list from pasted ids.
pub async fn put_list(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let outcome = async {
        let kind = ListKind::parse(fields.get("kind"))
            .ok_or_else(|| Error::Validation("a list holds device or user ids".into()))?;
        let ids = fields
            .get("ids")
            .split(['\n', ','])
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect();
        state
            .lists
            .put(
                &authed.principal(),
                &ws,
                &app,
                fields.get("name").trim(),
                PutList { kind, ids },
            )
            .await
            .map_err(lists_error)
    }
    .await
    .map(|_| (String::new(), "list_saved"));
    done_or_refused(&state, &authed, &ws, &app, outcome).await
}
