//! Analytics on the admin client: reports, the event registry, funnels,
//! settings, privacy requests and the backfill path.

use crate::{AdminClient, Result};
use atoll_protocol::analytics::*;
use atoll_protocol::encode_path_segment as segment;
use atoll_protocol::events::EventBatchResponse;
use reqwest::Method;
use serde::Serialize;

/// `?a=1&b=2` of the non-empty fields of each part (report filters and a
/// report's own parameters).
fn query(parts: &[&dyn erased::Query]) -> String {
    let mut pairs = Vec::new();
    for part in parts {
        if let Ok(serde_json::Value::Object(map)) = part.to_value() {
            for (key, value) in map {
                let text = match value {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                };
                pairs.push(format!("{key}={}", encode_query(&text)));
            }
        }
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Percent-encodes a query value.
fn encode_query(value: &str) -> String {
    segment(value)
}

mod erased {
    /// Any serialisable parameter set, as JSON.
    pub trait Query {
        fn to_value(&self) -> serde_json::Result<serde_json::Value>;
    }

    impl<T: serde::Serialize> Query for T {
        fn to_value(&self) -> serde_json::Result<serde_json::Value> {
            serde_json::to_value(self)
        }
    }
}

impl AdminClient {
    fn analytics_path(workspace: &str, app_key: &str, rest: &str) -> String {
        format!(
            "/api/v1/workspaces/{}/apps/{}/analytics/{rest}",
            segment(workspace),
            segment(app_key)
        )
    }

    /// The overview report.
    pub async fn analytics_overview(
        &self,
        workspace: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<OverviewReport> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, "overview"),
            query(&[filter])
        ))
        .await
    }

    /// Active and new devices and accounts by day (DAU, WAU, MAU, UV), from the
    /// server's per-day sets.
    pub async fn analytics_active_users(
        &self,
        workspace: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<ActiveReport> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, "active"),
            query(&[filter])
        ))
        .await
    }

    /// The last 30 minutes.
    pub async fn analytics_realtime(
        &self,
        workspace: &str,
        app_key: &str,
    ) -> Result<RealtimeReport> {
        self.get(&Self::analytics_path(workspace, app_key, "realtime"))
            .await
    }

    /// Cohort retention.
    pub async fn analytics_retention(
        &self,
        workspace: &str,
        app_key: &str,
        filter: &ReportFilter,
        retention: &RetentionQuery,
    ) -> Result<RetentionReport> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, "retention"),
            query(&[filter, retention])
        ))
        .await
    }

    /// Sessions, launches and hours.
    pub async fn analytics_behaviour(
        &self,
        workspace: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<BehaviourReport> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, "behaviour"),
            query(&[filter])
        ))
        .await
    }

    /// Pages.
    pub async fn analytics_pages(
        &self,
        workspace: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<PagesReport> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, "pages"),
            query(&[filter])
        ))
        .await
    }

    /// Access paths from a page.
    pub async fn analytics_paths(
        &self,
        workspace: &str,
        app_key: &str,
        filter: &ReportFilter,
        paths: &PathQuery,
    ) -> Result<PathReport> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, "paths"),
            query(&[filter, paths])
        ))
        .await
    }

    /// Every event with counts.
    pub async fn analytics_events(
        &self,
        workspace: &str,
        app_key: &str,
        filter: &ReportFilter,
    ) -> Result<EventsReport> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, "events"),
            query(&[filter])
        ))
        .await
    }

    /// One event in detail.
    pub async fn analytics_event(
        &self,
        workspace: &str,
        app_key: &str,
        event_id: &str,
        filter: &ReportFilter,
        detail: &EventQuery,
    ) -> Result<EventDetail> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, &format!("events/{}", segment(event_id))),
            query(&[filter, detail])
        ))
        .await
    }

    /// A funnel computed now.
    pub async fn analytics_funnel(
        &self,
        workspace: &str,
        app_key: &str,
        funnel: &FunnelDefinition,
        filter: &ReportFilter,
    ) -> Result<FunnelReport> {
        #[derive(Serialize)]
        struct Definition {
            definition: String,
        }
        let definition = Definition {
            definition: serde_json::to_string(funnel)
                .map_err(|e| crate::Error::Decode(e.to_string()))?,
        };
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, "funnel"),
            query(&[&definition, filter])
        ))
        .await
    }

    /// Saves a funnel.
    pub async fn analytics_save_funnel(
        &self,
        workspace: &str,
        app_key: &str,
        funnel: &CreateFunnel,
    ) -> Result<SavedFunnel> {
        self.call(
            Method::POST,
            &Self::analytics_path(workspace, app_key, "funnels"),
            Some(funnel),
        )
        .await
    }

    /// Saved funnels.
    pub async fn analytics_funnels(
        &self,
        workspace: &str,
        app_key: &str,
    ) -> Result<Vec<SavedFunnel>> {
        self.get(&Self::analytics_path(workspace, app_key, "funnels"))
            .await
    }

    /// Active devices by a dimension.
    pub async fn analytics_distribution(
        &self,
        workspace: &str,
        app_key: &str,
        dimension: &str,
        filter: &ReportFilter,
    ) -> Result<DistributionReport> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(
                workspace,
                app_key,
                &format!("distribution/{}", segment(dimension))
            ),
            query(&[filter])
        ))
        .await
    }

    /// A device's or user's newest events.
    pub async fn analytics_timeline(
        &self,
        workspace: &str,
        app_key: &str,
        timeline: &TimelineQuery,
    ) -> Result<TimelineReport> {
        self.get(&format!(
            "{}{}",
            Self::analytics_path(workspace, app_key, "timeline"),
            query(&[timeline])
        ))
        .await
    }

    /// Declares an event in the registry.
    pub async fn analytics_define_event(
        &self,
        workspace: &str,
        app_key: &str,
        definition: &EventDefinition,
    ) -> Result<EventDefinition> {
        self.call(
            Method::PUT,
            &Self::analytics_path(
                workspace,
                app_key,
                &format!("registry/{}", segment(&definition.event_id)),
            ),
            Some(definition),
        )
        .await
    }

    /// Changes the app's analytics settings.
    pub async fn analytics_update_settings(
        &self,
        workspace: &str,
        app_key: &str,
        settings: &AnalyticsSettings,
    ) -> Result<AnalyticsSettings> {
        self.call(
            Method::PUT,
            &Self::analytics_path(workspace, app_key, "settings"),
            Some(settings),
        )
        .await
    }

    /// Every event of a device or user (privacy export).
    pub async fn analytics_export(
        &self,
        workspace: &str,
        app_key: &str,
        request: &PrivacyRequest,
    ) -> Result<Vec<TimelineEvent>> {
        self.call(
            Method::POST,
            &Self::analytics_path(workspace, app_key, "privacy/export"),
            Some(request),
        )
        .await
    }

    /// Deletes every event of a device or user (privacy request).
    pub async fn analytics_delete(
        &self,
        workspace: &str,
        app_key: &str,
        request: &PrivacyRequest,
    ) -> Result<DeletionReport> {
        self.call(
            Method::POST,
            &Self::analytics_path(workspace, app_key, "privacy/delete"),
            Some(request),
        )
        .await
    }

    /// Stores past events of one device with their own times (admin only).
    pub async fn analytics_backfill(
        &self,
        workspace: &str,
        app_key: &str,
        batch: &BackfillBatch,
    ) -> Result<EventBatchResponse> {
        self.call(
            Method::POST,
            &Self::analytics_path(workspace, app_key, "backfill"),
            Some(batch),
        )
        .await
    }
}
