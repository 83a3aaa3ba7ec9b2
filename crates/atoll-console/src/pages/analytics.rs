//! Analytics pages: one page per report (overview, real time, retention,
//! behaviour, pages and paths, events, funnels, distributions, timelines) and the
//! event registry. Each report becomes a list of cards (figures, an SVG chart, a
//! table), rendered by one template, so a report page is only the code that
//! turns the report into cards.

use crate::auth::Authed;
use crate::charts::{bar_chart, compact, flow_chart, heat_class, line_chart, Series};
use crate::pages::Fields;
use crate::view::{self, encode_query, encode_segment, Flash, OrErrorPage, PageResult, Shell};
use crate::ConsoleState;
use askama::Template;
use atoll_platform::Error;
use atoll_protocol::analytics::*;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

/// The report tabs: `(path segment, label)`.
const TABS: &[(&str, &str)] = &[
    ("", "Overview"),
    ("realtime", "Real time"),
    ("retention", "Retention"),
    ("behaviour", "Behaviour"),
    ("pages", "Pages"),
    ("events", "Events"),
    ("funnels", "Funnels"),
    ("distribution", "Distribution"),
    ("timeline", "Timeline"),
    ("registry", "Registry"),
];

pub struct TabLink {
    pub label: &'static str,
    pub href: String,
    pub active: bool,
}

/// One input of a form.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    /// `text`, `date`, `number` or `select`.
    pub kind: &'static str,
    pub options: Vec<(String, String)>,
    pub placeholder: &'static str,
}

impl Field {
    fn text(
        name: &'static str,
        label: &'static str,
        value: &str,
        placeholder: &'static str,
    ) -> Field {
        Field {
            name,
            label,
            value: value.to_owned(),
            kind: "text",
            options: Vec::new(),
            placeholder,
        }
    }

    fn date(name: &'static str, label: &'static str, value: &str) -> Field {
        Field {
            kind: "date",
            ..Field::text(name, label, value, "")
        }
    }

    fn select(
        name: &'static str,
        label: &'static str,
        value: &str,
        options: &[(&str, &str)],
    ) -> Field {
        Field {
            kind: "select",
            options: options
                .iter()
                .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
                .collect(),
            ..Field::text(name, label, value, "")
        }
    }
}

/// A form posted back to the console.
pub struct PostForm {
    pub action: String,
    pub fields: Vec<Field>,
    pub submit: &'static str,
}

pub struct Stat {
    pub label: String,
    pub value: String,
}

pub struct Cell {
    pub text: String,
    pub href: Option<String>,
    pub class: String,
}

impl Cell {
    fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            href: None,
            class: String::new(),
        }
    }

    fn number(value: u64) -> Cell {
        Cell {
            class: "num".into(),
            ..Cell::text(value.to_string())
        }
    }

    fn link(text: impl Into<String>, href: String) -> Cell {
        Cell {
            href: Some(href),
            ..Cell::text(text)
        }
    }
}

pub struct TableView {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// One block of a report page.
#[derive(Default)]
pub struct Card {
    pub id: String,
    pub title: String,
    pub stats: Vec<Stat>,
    /// SVG markup built by [`charts`] (labels escaped there).
    pub chart: String,
    pub table: Option<TableView>,
    pub note: String,
    pub form: Option<PostForm>,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    shell: Shell,
    heading: &'static str,
    tabs: Vec<TabLink>,
    action: String,
    fields: Vec<Field>,
    app_key: String,
    cards: Vec<Card>,
}

/// Every parameter any analytics page takes.
#[derive(Debug, Default, Deserialize)]
pub struct AnalyticsQuery {
    #[serde(default)]
    app: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    app_version: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    granularity: String,
    #[serde(default)]
    page: String,
    #[serde(default)]
    steps: String,
    #[serde(default)]
    window_hours: String,
    #[serde(default)]
    dimension: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    group_by: String,
    #[serde(default, rename = "where")]
    where_: String,
}

fn opt(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

impl AnalyticsQuery {
    fn filter(&self) -> ReportFilter {
        ReportFilter {
            from: opt(&self.from),
            to: opt(&self.to),
            platform: opt(&self.platform),
            app_version: opt(&self.app_version),
        }
    }

    /// The common part of links to other tabs (app and filters).
    fn common(&self, app: &str) -> String {
        let mut query = format!("app={}", encode_query(app));
        for (name, value) in [
            ("from", &self.from),
            ("to", &self.to),
            ("platform", &self.platform),
            ("app_version", &self.app_version),
        ] {
            if !value.is_empty() {
                query.push_str(&format!("&{name}={}", encode_query(value)));
            }
        }
        query
    }
}

/// Analytics errors as the console's platform errors (for the error page).
fn platform_error(error: atoll_analytics::Error) -> Error {
    match error {
        atoll_analytics::Error::Platform(error) => error,
        error => view::module_error(error.code(), error.to_string()),
    }
}

trait OrPage<T> {
    #[allow(clippy::result_large_err)]
    fn or_page(self, shell: &Shell) -> Result<T, axum::response::Response>;
}

impl<T> OrPage<T> for Result<T, atoll_analytics::Error> {
    fn or_page(self, shell: &Shell) -> Result<T, axum::response::Response> {
        self.map_err(platform_error).or_error_page(shell)
    }
}

/// `GET /w/{ws}/analytics`: the overview.
pub async fn overview(
    state: State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    query: Query<AnalyticsQuery>,
) -> PageResult {
    report(state, authed, ws, String::new(), query.0, None).await
}

/// `GET /w/{ws}/analytics/{tab}`.
pub async fn tab(
    state: State<ConsoleState>,
    authed: Authed,
    Path((ws, tab)): Path<(String, String)>,
    query: Query<AnalyticsQuery>,
) -> PageResult {
    report(state, authed, ws, tab, query.0, None).await
}

/// `GET /w/{ws}/analytics/registry`.
pub async fn tab_registry(
    state: State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    query: Query<AnalyticsQuery>,
) -> PageResult {
    report(state, authed, ws, "registry".into(), query.0, None).await
}

/// `GET /w/{ws}/analytics/funnels`.
pub async fn tab_funnels(
    state: State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    query: Query<AnalyticsQuery>,
) -> PageResult {
    report(state, authed, ws, "funnels".into(), query.0, None).await
}

/// `POST /w/{ws}/analytics/registry`: declares an event.
pub async fn define(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let mut attributes = Vec::new();
    let mut problem = None;
    for line in fields
        .get("attributes")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let (name, kind) = line.split_once(':').unwrap_or((line, "string"));
        let kind = match kind.trim() {
            "string" | "" => AttributeType::String,
            "number" => AttributeType::Number,
            "boolean" => AttributeType::Boolean,
            other => {
                problem = Some(format!(
                    "attribute type '{other}' is not string, number or boolean"
                ));
                continue;
            }
        };
        attributes.push(AttributeDefinition {
            name: name.trim().to_owned(),
            kind,
            description: String::new(),
        });
    }
    let outcome = match problem {
        Some(message) => Err(atoll_analytics::Error::Invalid(message)),
        None => {
            state
                .analytics
                .define_event(
                    &authed.principal(),
                    &ws,
                    &app,
                    EventDefinition {
                        event_id: fields.get("event_id").trim().to_owned(),
                        display_name: fields.get("display_name").trim().to_owned(),
                        description: fields.get("description").trim().to_owned(),
                        attributes,
                    },
                )
                .await
        }
    };
    let flash = match outcome {
        Ok(definition) => Flash::success(format!("Event '{}' declared.", definition.event_id)),
        Err(error) => Flash::error(&platform_error(error)),
    };
    let query = AnalyticsQuery {
        app,
        ..AnalyticsQuery::default()
    };
    report(
        State(state),
        authed,
        ws,
        "registry".into(),
        query,
        Some(flash),
    )
    .await
}

/// `POST /w/{ws}/analytics/funnels`: saves a funnel.
pub async fn save_funnel(
    State(state): State<ConsoleState>,
    authed: Authed,
    Path(ws): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let fields = Fields(fields);
    authed.check_csrf(fields.get("csrf_token"))?;
    let app = fields.get("app").to_owned();
    let funnel = funnel_definition(
        fields.get("steps"),
        fields.get("window_hours"),
        fields.get("by"),
    );
    let outcome = state
        .analytics
        .save_funnel(
            &authed.principal(),
            &ws,
            &app,
            CreateFunnel {
                name: fields.get("name").to_owned(),
                funnel,
            },
        )
        .await;
    let flash = match outcome {
        Ok(saved) => Flash::success(format!("Funnel '{}' saved.", saved.name)),
        Err(error) => Flash::error(&platform_error(error)),
    };
    let query = AnalyticsQuery {
        app,
        steps: fields.get("steps").to_owned(),
        window_hours: fields.get("window_hours").to_owned(),
        by: fields.get("by").to_owned(),
        ..AnalyticsQuery::default()
    };
    report(
        State(state),
        authed,
        ws,
        "funnels".into(),
        query,
        Some(flash),
    )
    .await
}

fn funnel_definition(steps: &str, window_hours: &str, by: &str) -> FunnelDefinition {
    FunnelDefinition {
        steps: steps
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|event_id| FunnelStep {
                event_id: event_id.to_owned(),
                filters: Vec::new(),
            })
            .collect(),
        window_secs: window_hours
            .trim()
            .parse::<f64>()
            .map_or(86_400, |h| (h * 3600.0) as u64),
        by: if by == "user" {
            CountBy::User
        } else {
            CountBy::Device
        },
    }
}

async fn report(
    State(state): State<ConsoleState>,
    authed: Authed,
    ws: String,
    tab: String,
    mut query: AnalyticsQuery,
    flash: Option<Flash>,
) -> PageResult {
    let Some(&(segment, label)) = TABS.iter().find(|(segment, _)| *segment == tab) else {
        return Err(view::bare_error(&Error::NotFound(format!(
            "analytics page '{tab}'"
        ))));
    };
    let shell = Shell::load(
        &state,
        &authed,
        Some(&ws),
        "/analytics",
        opt(&query.app).as_deref(),
        label,
    )
    .await?;
    let shell = shell.with_flash(flash);
    if query.app.is_empty() {
        match shell.apps.first() {
            Some(app) => query.app = app.detail.clone(),
            None => {
                let page = AnalyticsPage {
                    heading: label,
                    tabs: Vec::new(),
                    action: String::new(),
                    fields: Vec::new(),
                    app_key: String::new(),
                    cards: vec![Card {
                        title: "No apps yet".into(),
                        note: "Analytics belong to an app; create one first.".into(),
                        ..Card::default()
                    }],
                    shell,
                };
                return Ok(view::render(StatusCode::OK, &page));
            }
        }
    }
    let base = format!("{}/analytics", shell.base());
    let common = query.common(&query.app);
    let tabs = TABS
        .iter()
        .map(|(s, l)| TabLink {
            label: l,
            href: if s.is_empty() {
                format!("{base}?{common}")
            } else {
                format!("{base}/{s}?{common}")
            },
            active: *s == segment,
        })
        .collect();
    let mut fields = vec![
        Field::date("from", "From", &query.from),
        Field::date("to", "To", &query.to),
        Field::text("platform", "Platform", &query.platform, "all"),
        Field::text("app_version", "App version", &query.app_version, "all"),
    ];
    let principal = authed.principal();
    let analytics = &state.analytics;
    let filter = query.filter();
    let app = query.app.clone();
    let app_base = format!("{}/apps/{}", shell.base(), encode_segment(&app));
    let cards = match segment {
        "" => overview_cards(
            analytics
                .overview(&principal, &ws, &app, &filter)
                .await
                .or_page(&shell)?,
        ),
        "realtime" => realtime_cards(
            analytics
                .realtime(&principal, &ws, &app, &filter)
                .await
                .or_page(&shell)?,
        ),
        "retention" => {
            fields.push(Field::select(
                "by",
                "Count",
                &query.by,
                &[("device", "Devices"), ("user", "Accounts")],
            ));
            fields.push(Field::select(
                "granularity",
                "Cohorts",
                &query.granularity,
                &[("day", "Daily"), ("week", "Weekly"), ("month", "Monthly")],
            ));
            let retention = RetentionQuery {
                by: if query.by == "user" {
                    CountBy::User
                } else {
                    CountBy::Device
                },
                granularity: match query.granularity.as_str() {
                    "week" => Granularity::Week,
                    "month" => Granularity::Month,
                    _ => Granularity::Day,
                },
                periods: None,
            };
            retention_cards(
                analytics
                    .retention(&principal, &ws, &app, &filter, &retention)
                    .await
                    .or_page(&shell)?,
            )
        }
        "behaviour" => behaviour_cards(
            analytics
                .behaviour(&principal, &ws, &app, &filter)
                .await
                .or_page(&shell)?,
        ),
        "pages" => {
            fields.push(Field::text(
                "page",
                "Paths from page",
                &query.page,
                "a page",
            ));
            let pages = analytics
                .pages(&principal, &ws, &app, &filter)
                .await
                .or_page(&shell)?;
            let start = opt(&query.page).or_else(|| pages.pages.first().map(|p| p.page.clone()));
            let mut cards = pages_cards(&pages, &format!("{base}/pages?{common}"));
            if let Some(start) = start {
                let path_query = PathQuery {
                    page: start,
                    depth: Some(3),
                    top: Some(5),
                };
                let paths = analytics
                    .paths(&principal, &ws, &app, &filter, &path_query)
                    .await
                    .or_page(&shell)?;
                cards.insert(0, paths_card(&paths));
            }
            cards
        }
        "events" if !query.event.is_empty() => {
            fields.push(Field::text("event", "Event", &query.event, ""));
            fields.push(Field::text(
                "group_by",
                "Group by attribute",
                &query.group_by,
                "attribute",
            ));
            fields.push(Field::text("where", "Where", &query.where_, "name=value,…"));
            let event_query = EventQuery {
                where_: opt(&query.where_),
                group_by: opt(&query.group_by),
                top: Some(10),
                interval: None,
            };
            event_cards(
                analytics
                    .event_detail(&principal, &ws, &app, &query.event, &filter, &event_query)
                    .await
                    .or_page(&shell)?,
            )
        }
        "events" => events_cards(
            analytics
                .events_report(&principal, &ws, &app, &filter)
                .await
                .or_page(&shell)?,
            &format!("{base}/events?{common}"),
        ),
        "funnels" => {
            fields.push(Field::text(
                "steps",
                "Steps",
                &query.steps,
                "view_item, add_to_cart, purchase",
            ));
            fields.push(Field::text(
                "window_hours",
                "Window (hours)",
                &query.window_hours,
                "24",
            ));
            fields.push(Field::select(
                "by",
                "Count",
                &query.by,
                &[("device", "Devices"), ("user", "Accounts")],
            ));
            let saved = analytics
                .list_funnels(&principal, &ws, &app)
                .await
                .or_page(&shell)?;
            let mut cards = Vec::new();
            let definition = if query.steps.trim().is_empty() {
                saved.first().map(|f| f.funnel.clone())
            } else {
                Some(funnel_definition(
                    &query.steps,
                    &query.window_hours,
                    &query.by,
                ))
            };
            if let Some(funnel) = definition {
                let request = FunnelRequest {
                    funnel: funnel.clone(),
                    filter: filter.clone(),
                };
                let result = analytics
                    .funnel(&principal, &ws, &app, &request)
                    .await
                    .or_page(&shell)?;
                cards.push(funnel_card(&result, &funnel));
            }
            cards.push(saved_funnels_card(
                &saved, &base, &common, &shell, &app, &query,
            ));
            cards
        }
        "distribution" => {
            let dimension = opt(&query.dimension).unwrap_or_else(|| "app_version".into());
            let options: Vec<(&str, &str)> = atoll_analytics::reports::DISTRIBUTION_DIMENSIONS
                .iter()
                .map(|d| (*d, *d))
                .collect();
            fields.push(Field::select(
                "dimension",
                "Dimension",
                &dimension,
                &options,
            ));
            distribution_cards(
                analytics
                    .distribution(&principal, &ws, &app, &dimension, &filter)
                    .await
                    .or_page(&shell)?,
            )
        }
        "timeline" => {
            fields.push(Field::text("device", "Device id", &query.device, ""));
            fields.push(Field::text("user", "User id", &query.user, ""));
            if query.device.is_empty() && query.user.is_empty() {
                vec![Card {
                    title: "Timeline".into(),
                    note: "Enter a device id or a user id to see its most recent events.".into(),
                    ..Card::default()
                }]
            } else {
                let timeline_query = TimelineQuery {
                    device: opt(&query.device),
                    user: opt(&query.user),
                    limit: Some(200),
                };
                timeline_cards(
                    analytics
                        .timeline(&principal, &ws, &app, &timeline_query)
                        .await
                        .or_page(&shell)?,
                    &app_base,
                )
            }
        }
        _ => registry_cards(
            analytics
                .list_definitions(&principal, &ws, &app)
                .await
                .or_page(&shell)?,
            analytics
                .events_report(&principal, &ws, &app, &filter)
                .await
                .or_page(&shell)?,
            &base,
            &shell,
            &app,
        ),
    };
    let page = AnalyticsPage {
        heading: label,
        tabs,
        action: if segment.is_empty() {
            base.clone()
        } else {
            format!("{base}/{segment}")
        },
        fields,
        app_key: app,
        cards,
        shell,
    };
    Ok(view::render(StatusCode::OK, &page))
}

/// `11-28` of `2026-11-28` (and `11-28T10:00` of an hour): axis labels omit the year.
fn short_date(date: &str) -> String {
    date.get(5..).unwrap_or(date).to_owned()
}

fn stat(label: &str, value: impl ToString) -> Stat {
    Stat {
        label: label.to_owned(),
        value: value.to_string(),
    }
}

fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    if secs >= 3600 {
        format!("{}h {:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn overview_cards(report: OverviewReport) -> Vec<Card> {
    let labels: Vec<String> = report.days.iter().map(|d| short_date(&d.date)).collect();
    let series = |name: &'static str, pick: fn(&OverviewDay) -> u64| Series {
        name,
        values: report.days.iter().map(|d| pick(d) as f64).collect(),
    };
    let last = report.days.last().cloned().unwrap_or_default();
    let totals = &report.totals;
    let mut cards = vec![
        Card {
            id: "overview-totals".into(),
            title: "This period".into(),
            stats: vec![
                stat("Active devices", compact(totals.active_devices as f64)),
                stat("New devices", compact(totals.new_devices as f64)),
                stat("Active accounts", compact(totals.active_users as f64)),
                stat("Launches", compact(totals.launches as f64)),
                stat("Avg session", duration(totals.avg_session_ms)),
                stat(
                    "DAU / WAU / MAU",
                    format!("{} / {} / {}", last.active_devices, last.wau, last.mau),
                ),
                stat("All devices", compact(last.cumulative_devices as f64)),
            ],
            ..Card::default()
        },
        Card {
            id: "overview-trend".into(),
            title: "Active and new devices by day".into(),
            chart: line_chart(
                "Active and new devices",
                &labels,
                &[
                    series("Active devices", |d| d.active_devices),
                    series("New devices", |d| d.new_devices),
                    series("Active accounts", |d| d.active_users),
                ],
            ),
            ..Card::default()
        },
        Card {
            id: "overview-launches".into(),
            title: "Launches and sessions".into(),
            chart: line_chart(
                "Launches and sessions",
                &labels,
                &[
                    series("Launches", |d| d.launches),
                    series("Sessions", |d| d.sessions),
                ],
            ),
            ..Card::default()
        },
    ];
    for split in &report.splits {
        cards.push(Card {
            id: format!("split-{}", split.dimension),
            title: format!("Active devices by {}", split.dimension.replace('_', " ")),
            chart: bar_chart(
                &split.dimension,
                &split
                    .values
                    .iter()
                    .take(10)
                    .map(|v| (v.value.clone(), v.active_devices as f64))
                    .collect::<Vec<_>>(),
            ),
            ..Card::default()
        });
    }
    cards.push(Card {
        id: "overview-days".into(),
        title: "By day".into(),
        table: Some(TableView {
            headers: [
                "Day",
                "New",
                "Active",
                "WAU",
                "MAU",
                "Accounts",
                "Launches",
                "Sessions",
                "Avg session",
            ]
            .map(String::from)
            .to_vec(),
            rows: report
                .days
                .iter()
                .rev()
                .map(|d| {
                    vec![
                        Cell::text(&d.date),
                        Cell::number(d.new_devices),
                        Cell::number(d.active_devices),
                        Cell::number(d.wau),
                        Cell::number(d.mau),
                        Cell::number(d.active_users),
                        Cell::number(d.launches),
                        Cell::number(d.sessions),
                        Cell::text(duration(d.avg_session_ms)),
                    ]
                })
                .collect(),
        }),
        ..Card::default()
    });
    cards
}

fn realtime_cards(report: RealtimeReport) -> Vec<Card> {
    let labels: Vec<String> = report
        .minutes
        .iter()
        .map(|m| {
            crate::time::format_ms(m.minute)
                .get(11..16)
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    vec![Card {
        id: "realtime".into(),
        title: "Last 30 minutes".into(),
        stats: vec![
            stat("Events", compact(report.events as f64)),
            stat("Active devices", compact(report.active_devices as f64)),
        ],
        chart: line_chart(
            "Events and devices per minute",
            &labels,
            &[
                Series {
                    name: "Events",
                    values: report.minutes.iter().map(|m| m.events as f64).collect(),
                },
                Series {
                    name: "Devices",
                    values: report.minutes.iter().map(|m| m.devices as f64).collect(),
                },
            ],
        ),
        ..Card::default()
    }]
}

fn retention_cards(report: RetentionReport) -> Vec<Card> {
    let periods = report.cohorts.first().map_or(0, |c| c.retained.len());
    let unit = match report.granularity {
        Granularity::Week => "Week",
        Granularity::Month => "Month",
        _ => "Day",
    };
    let mut headers = vec!["Cohort".to_owned(), "Size".to_owned()];
    headers.extend((1..=periods).map(|n| format!("{unit} {n}")));
    let rows = report
        .cohorts
        .iter()
        .map(|cohort| {
            let mut row = vec![Cell::text(&cohort.start), Cell::number(cohort.size)];
            for retained in &cohort.retained {
                row.push(match retained {
                    Some(count) => {
                        let share = if cohort.size == 0 {
                            0.0
                        } else {
                            *count as f64 / cohort.size as f64
                        };
                        Cell {
                            text: percent(share),
                            href: None,
                            class: format!("heat {}", heat_class(share)),
                        }
                    }
                    None => Cell::text(""),
                });
            }
            row
        })
        .collect();
    vec![Card {
        id: "retention".into(),
        title: format!(
            "New {} retained, by cohort",
            if report.by == CountBy::User { "accounts" } else { "devices" }
        ),
        table: Some(TableView { headers, rows }),
        note: "Each row is the devices first seen in that period; each cell the share of them active again N periods later.".into(),
        ..Card::default()
    }]
}

fn bucket_chart(id: &str, title: &str, buckets: &[Bucket]) -> Card {
    Card {
        id: id.into(),
        title: title.into(),
        chart: bar_chart(
            title,
            &buckets
                .iter()
                .map(|b| (b.label.clone(), b.count as f64))
                .collect::<Vec<_>>(),
        ),
        ..Card::default()
    }
}

fn behaviour_cards(report: BehaviourReport) -> Vec<Card> {
    let hours: Vec<String> = (0..24).map(|h| format!("{h:02}h")).collect();
    vec![
        bucket_chart(
            "session-length",
            "Sessions by length",
            &report.session_length,
        ),
        bucket_chart(
            "launches-per-day",
            "Devices by launches per day",
            &report.launches_per_day,
        ),
        Card {
            id: "active-hours".into(),
            title: "Activity by hour (UTC)".into(),
            chart: line_chart(
                "Activity by hour",
                &hours,
                &[
                    Series {
                        name: "Events",
                        values: report
                            .active_hours
                            .iter()
                            .map(|h| h.events as f64)
                            .collect(),
                    },
                    Series {
                        name: "Devices",
                        values: report
                            .active_hours
                            .iter()
                            .map(|h| h.devices as f64)
                            .collect(),
                    },
                ],
            ),
            ..Card::default()
        },
    ]
}

fn pages_cards(report: &PagesReport, self_href: &str) -> Vec<Card> {
    vec![Card {
        id: "pages".into(),
        title: "Pages".into(),
        table: Some(TableView {
            headers: [
                "Page",
                "Views",
                "Visitors",
                "Avg stay",
                "Entries",
                "Entry rate",
                "Exits",
                "Exit rate",
            ]
            .map(String::from)
            .to_vec(),
            rows: report
                .pages
                .iter()
                .map(|p| {
                    vec![
                        Cell::link(
                            &p.page,
                            format!("{self_href}&page={}", encode_query(&p.page)),
                        ),
                        Cell::number(p.views),
                        Cell::number(p.visitors),
                        Cell::text(duration(p.avg_stay_ms)),
                        Cell::number(p.entries),
                        Cell::text(percent(p.entry_rate)),
                        Cell::number(p.exits),
                        Cell::text(percent(p.exit_rate)),
                    ]
                })
                .collect(),
        }),
        ..Card::default()
    }]
}

fn paths_card(report: &PathReport) -> Card {
    let links: Vec<(u32, String, String, u64)> = report
        .links
        .iter()
        .map(|l| (l.step, l.from.clone(), l.to.clone(), l.count))
        .collect();
    Card {
        id: "paths".into(),
        title: format!("Where sessions go after “{}”", report.page),
        stats: vec![stat("Views", report.views)],
        chart: flow_chart("Access paths", &report.page, &links),
        ..Card::default()
    }
}

fn events_cards(report: EventsReport, self_href: &str) -> Vec<Card> {
    vec![
        Card {
            id: "events-chart".into(),
            title: "Most frequent events".into(),
            chart: bar_chart(
                "Events",
                &report
                    .events
                    .iter()
                    .take(12)
                    .map(|e| (e.event_id.clone(), e.count as f64))
                    .collect::<Vec<_>>(),
            ),
            ..Card::default()
        },
        Card {
            id: "events".into(),
            title: "Events".into(),
            table: Some(TableView {
                headers: ["Event", "Count", "Devices", "Accounts", "Registry"]
                    .map(String::from)
                    .to_vec(),
                rows: report
                    .events
                    .iter()
                    .map(|e| {
                        vec![
                            Cell::link(
                                &e.event_id,
                                format!("{self_href}&event={}", encode_query(&e.event_id)),
                            ),
                            Cell::number(e.count),
                            Cell::number(e.devices),
                            Cell::number(e.users),
                            Cell {
                                class: if e.registered {
                                    "muted".into()
                                } else {
                                    "warn".into()
                                },
                                ..Cell::text(if e.registered {
                                    "declared"
                                } else {
                                    "unregistered"
                                })
                            },
                        ]
                    })
                    .collect(),
            }),
            ..Card::default()
        },
    ]
}

fn event_cards(detail: EventDetail) -> Vec<Card> {
    let labels: Vec<String> = detail.trend.iter().map(|t| short_date(&t.at)).collect();
    let mut cards = vec![Card {
        id: "event-detail".into(),
        title: format!("“{}”", detail.stats.event_id),
        stats: vec![
            stat("Count", compact(detail.stats.count as f64)),
            stat("Devices", compact(detail.stats.devices as f64)),
            stat("Accounts", compact(detail.stats.users as f64)),
            stat(
                "Registry",
                if detail.stats.registered {
                    "declared"
                } else {
                    "unregistered"
                },
            ),
        ],
        chart: line_chart(
            "Trend",
            &labels,
            &[
                Series {
                    name: "Count",
                    values: detail.trend.iter().map(|t| t.count as f64).collect(),
                },
                Series {
                    name: "Devices",
                    values: detail.trend.iter().map(|t| t.devices as f64).collect(),
                },
            ],
        ),
        ..Card::default()
    }];
    if !detail.groups.is_empty() {
        cards.push(Card {
            id: "event-groups".into(),
            title: "Top values".into(),
            chart: bar_chart(
                "Top values",
                &detail
                    .groups
                    .iter()
                    .map(|g| (g.value.clone(), g.count as f64))
                    .collect::<Vec<_>>(),
            ),
            ..Card::default()
        });
    }
    cards
}

fn funnel_card(report: &FunnelReport, funnel: &FunnelDefinition) -> Card {
    Card {
        id: "funnel".into(),
        title: format!(
            "Funnel within {} by {}",
            duration(funnel.window_secs * 1000),
            if funnel.by == CountBy::User {
                "account"
            } else {
                "device"
            }
        ),
        stats: vec![stat(
            "Overall conversion",
            percent(report.overall_conversion),
        )],
        chart: bar_chart(
            "Funnel",
            &report
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{}. {}", i + 1, s.event_id), s.count as f64))
                .collect::<Vec<_>>(),
        ),
        table: Some(TableView {
            headers: ["Step", "Reached", "From previous", "Overall"]
                .map(String::from)
                .to_vec(),
            rows: report
                .steps
                .iter()
                .map(|s| {
                    vec![
                        Cell::text(&s.event_id),
                        Cell::number(s.count),
                        Cell::text(percent(s.conversion_from_previous)),
                        Cell::text(percent(s.conversion_overall)),
                    ]
                })
                .collect(),
        }),
        ..Card::default()
    }
}

fn saved_funnels_card(
    saved: &[SavedFunnel],
    base: &str,
    common: &str,
    shell: &Shell,
    app: &str,
    query: &AnalyticsQuery,
) -> Card {
    Card {
        id: "saved-funnels".into(),
        title: "Saved funnels".into(),
        table: Some(TableView {
            headers: ["Name", "Steps", "Window"].map(String::from).to_vec(),
            rows: saved
                .iter()
                .map(|f| {
                    let steps: Vec<&str> =
                        f.funnel.steps.iter().map(|s| s.event_id.as_str()).collect();
                    let by = if f.funnel.by == CountBy::User {
                        "user"
                    } else {
                        "device"
                    };
                    vec![
                        Cell::link(
                            &f.name,
                            format!(
                                "{base}/funnels?{common}&steps={}&window_hours={}&by={by}",
                                encode_query(&steps.join(",")),
                                f.funnel.window_secs as f64 / 3600.0
                            ),
                        ),
                        Cell::text(steps.join(" → ")),
                        Cell::text(duration(f.funnel.window_secs * 1000)),
                    ]
                })
                .collect(),
        }),
        form: shell.can_write.then(|| PostForm {
            action: format!("{base}/funnels"),
            fields: vec![
                Field::text("name", "Name", "", "Checkout"),
                Field::text(
                    "steps",
                    "Steps",
                    &query.steps,
                    "view_item, add_to_cart, purchase",
                ),
                Field::text("window_hours", "Window (hours)", &query.window_hours, "24"),
                Field::select(
                    "by",
                    "Count",
                    &query.by,
                    &[("device", "Devices"), ("user", "Accounts")],
                ),
                Field {
                    kind: "hidden",
                    ..Field::text("app", "", app, "")
                },
            ],
            submit: "Save funnel",
        }),
        ..Card::default()
    }
}

fn distribution_cards(report: DistributionReport) -> Vec<Card> {
    vec![Card {
        id: "distribution".into(),
        title: format!("Active devices by {}", report.dimension.replace('_', " ")),
        chart: bar_chart(
            &report.dimension,
            &report
                .values
                .iter()
                .take(15)
                .map(|v| (v.value.clone(), v.devices as f64))
                .collect::<Vec<_>>(),
        ),
        table: Some(TableView {
            headers: ["Value", "Devices", "Share"].map(String::from).to_vec(),
            rows: report
                .values
                .iter()
                .map(|v| {
                    vec![
                        Cell::text(&v.value),
                        Cell::number(v.devices),
                        Cell::text(percent(v.share)),
                    ]
                })
                .collect(),
        }),
        ..Card::default()
    }]
}

fn timeline_cards(report: TimelineReport, app_base: &str) -> Vec<Card> {
    vec![Card {
        id: "timeline".into(),
        title: "Recent events".into(),
        table: Some(TableView {
            headers: ["Time", "Event", "Page", "Device", "Account", "Attributes"]
                .map(String::from)
                .to_vec(),
            rows: report
                .events
                .iter()
                .map(|e| {
                    vec![
                        Cell::text(crate::time::format_ms(e.time)),
                        Cell::text(&e.event_id),
                        Cell::text(e.page.clone().unwrap_or_default()),
                        Cell::link(
                            &e.device_id,
                            crate::pages::devices::device_href(app_base, &e.device_id),
                        ),
                        Cell::text(e.user_id.clone().unwrap_or_default()),
                        Cell::text(
                            e.attributes
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                    ]
                })
                .collect(),
        }),
        ..Card::default()
    }]
}

fn registry_cards(
    definitions: Vec<EventDefinition>,
    seen: EventsReport,
    base: &str,
    shell: &Shell,
    app: &str,
) -> Vec<Card> {
    let unregistered: Vec<&EventStats> = seen.events.iter().filter(|e| !e.registered).collect();
    let mut cards = vec![Card {
        id: "registry".into(),
        title: "Declared events".into(),
        table: Some(TableView {
            headers: ["Event", "Name", "Attributes", "Description"]
                .map(String::from)
                .to_vec(),
            rows: definitions
                .iter()
                .map(|d| {
                    vec![
                        Cell::text(&d.event_id),
                        Cell::text(&d.display_name),
                        Cell::text(
                            d.attributes
                                .iter()
                                .map(|a| format!("{}: {}", a.name, a.kind.as_str()))
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        Cell::text(&d.description),
                    ]
                })
                .collect(),
        }),
        form: shell.can_write.then(|| PostForm {
            action: format!("{base}/registry"),
            fields: vec![
                Field::text("event_id", "Event", "", "purchase"),
                Field::text("display_name", "Name", "", "Purchase"),
                Field::text("description", "Description", "", ""),
                Field {
                    kind: "textarea",
                    ..Field::text(
                        "attributes",
                        "Attributes (name: type per line)",
                        "",
                        "price: number",
                    )
                },
                Field {
                    kind: "hidden",
                    ..Field::text("app", "", app, "")
                },
            ],
            submit: "Declare event",
        }),
        ..Card::default()
    }];
    if !unregistered.is_empty() {
        cards.push(Card {
            id: "unregistered".into(),
            title: "Seen but not declared".into(),
            note: "These events arrived in the last 7 days without a declaration. They are kept; declare them to document their attributes, or turn on “refuse undeclared events” in the app's settings.".into(),
            table: Some(TableView {
                headers: ["Event", "Count"].map(String::from).to_vec(),
                rows: unregistered
                    .iter()
                    .map(|e| vec![Cell { class: "warn".into(), ..Cell::text(&e.event_id) }, Cell::number(e.count)])
                    .collect(),
            }),
            ..Card::default()
        });
    }
    cards
}
