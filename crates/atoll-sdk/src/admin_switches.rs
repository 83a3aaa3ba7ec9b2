//! Switches (remote config) on the admin client: the set in force, publishing,
//! previews, history, rollback and evaluation for a sample device.

use crate::{AdminClient, Result};
use atoll_protocol::encode_path_segment as segment;
use atoll_protocol::switches::*;
use reqwest::Method;

impl AdminClient {
    fn switches_path(workspace: &str, app_key: &str, rest: &str) -> String {
        format!(
            "/api/v1/workspaces/{}/apps/{}/switches{rest}",
            segment(workspace),
            segment(app_key)
        )
    }

    /// The set in force.
    pub async fn switches(&self, workspace: &str, app_key: &str) -> Result<SwitchSet> {
        self.get(&Self::switches_path(workspace, app_key, "")).await
    }

    /// Publishes a whole new set.
    pub async fn publish_switches(
        &self,
        workspace: &str,
        app_key: &str,
        request: &PublishSwitches,
    ) -> Result<SwitchSet> {
        let path = Self::switches_path(workspace, app_key, "");
        self.call(Method::PUT, &path, Some(request)).await
    }

    /// Adds or replaces one key (a new version).
    pub async fn put_switch(
        &self,
        workspace: &str,
        app_key: &str,
        request: &PutSwitch,
    ) -> Result<SwitchSet> {
        let rest = format!("/keys/{}", segment(&request.switch.key));
        let path = Self::switches_path(workspace, app_key, &rest);
        self.call(Method::PUT, &path, Some(request)).await
    }

    /// Deletes one key (a new version).
    pub async fn delete_switch(
        &self,
        workspace: &str,
        app_key: &str,
        key: &str,
        expected_version: Option<u64>,
    ) -> Result<SwitchSet> {
        let mut rest = format!("/keys/{}", segment(key));
        if let Some(version) = expected_version {
            rest.push_str(&format!("?expected_version={version}"));
        }
        let path = Self::switches_path(workspace, app_key, &rest);
        self.call::<(), _>(Method::DELETE, &path, None).await
    }

    /// What publishing `switches` would change.
    pub async fn preview_switches(
        &self,
        workspace: &str,
        app_key: &str,
        request: &PublishSwitches,
    ) -> Result<SwitchDiff> {
        let path = Self::switches_path(workspace, app_key, "/preview");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// The history, newest first.
    pub async fn switch_history(
        &self,
        workspace: &str,
        app_key: &str,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Vec<SwitchVersion>> {
        let mut query = Vec::new();
        if let Some(before) = before {
            query.push(format!("before={before}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let rest = if query.is_empty() {
            "/versions".to_owned()
        } else {
            format!("/versions?{}", query.join("&"))
        };
        self.get(&Self::switches_path(workspace, app_key, &rest))
            .await
    }

    /// One version's set.
    pub async fn switch_version(
        &self,
        workspace: &str,
        app_key: &str,
        version: u64,
    ) -> Result<SwitchSet> {
        let rest = format!("/versions/{version}");
        self.get(&Self::switches_path(workspace, app_key, &rest))
            .await
    }

    /// Publishes an earlier version's set again.
    pub async fn rollback_switches(
        &self,
        workspace: &str,
        app_key: &str,
        request: &RollbackSwitches,
    ) -> Result<SwitchSet> {
        let path = Self::switches_path(workspace, app_key, "/rollback");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// What a device with this context would get.
    pub async fn evaluate_switches(
        &self,
        workspace: &str,
        app_key: &str,
        device: &SampleDevice,
    ) -> Result<SwitchValues> {
        let path = Self::switches_path(workspace, app_key, "/evaluate");
        self.call(Method::POST, &path, Some(device)).await
    }
}
