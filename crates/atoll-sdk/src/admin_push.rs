//! Push on the admin client: the four send types (what an app backend sends
//! with a `push:send` token), templates, vendor channels, settings, tasks,
//! revoke, a device's deliveries and the core indexes.

use crate::{AdminClient, Result};
use atoll_protocol::encode_path_segment as segment;
use atoll_protocol::push::*;
use reqwest::Method;

impl AdminClient {
    fn push_path(workspace: &str, app_key: &str, rest: &str) -> String {
        format!(
            "/api/v1/workspaces/{}/apps/{}/push/{rest}",
            segment(workspace),
            segment(app_key)
        )
    }

    /// A simple push (≤ 10 targets).
    pub async fn push_simple(
        &self,
        workspace: &str,
        app_key: &str,
        push: &SimplePush,
    ) -> Result<SendResult> {
        let path = Self::push_path(workspace, app_key, "simple");
        self.call(Method::POST, &path, Some(push)).await
    }

    /// A template push (≤ 10 targets).
    pub async fn push_template(
        &self,
        workspace: &str,
        app_key: &str,
        push: &TemplatePush,
    ) -> Result<SendResult> {
        let path = Self::push_path(workspace, app_key, "template");
        self.call(Method::POST, &path, Some(push)).await
    }

    /// A multiple push (≤ 100 targets, values per target).
    pub async fn push_multiple(
        &self,
        workspace: &str,
        app_key: &str,
        push: &MultiplePush,
    ) -> Result<SendResult> {
        let path = Self::push_path(workspace, app_key, "multiple");
        self.call(Method::POST, &path, Some(push)).await
    }

    /// A broadcast to every matching device.
    pub async fn push_broadcast(
        &self,
        workspace: &str,
        app_key: &str,
        push: &BroadcastPush,
    ) -> Result<SendResult> {
        let path = Self::push_path(workspace, app_key, "broadcast");
        self.call(Method::POST, &path, Some(push)).await
    }

    /// The app's templates.
    pub async fn push_templates(&self, workspace: &str, app_key: &str) -> Result<Vec<Template>> {
        self.get(&Self::push_path(workspace, app_key, "templates"))
            .await
    }

    /// Creates a template.
    pub async fn create_push_template(
        &self,
        workspace: &str,
        app_key: &str,
        spec: &TemplateSpec,
    ) -> Result<Template> {
        let path = Self::push_path(workspace, app_key, "templates");
        self.call(Method::POST, &path, Some(spec)).await
    }

    /// Stores a vendor's credentials.
    pub async fn put_push_channel(
        &self,
        workspace: &str,
        app_key: &str,
        channel: &str,
        credentials: &ChannelCredentials,
    ) -> Result<ChannelInfo> {
        let path = Self::push_path(
            workspace,
            app_key,
            &format!("channels/{}", segment(channel)),
        );
        self.call(Method::PUT, &path, Some(credentials)).await
    }

    /// The app's vendor channels.
    pub async fn push_channels(&self, workspace: &str, app_key: &str) -> Result<Vec<ChannelInfo>> {
        self.get(&Self::push_path(workspace, app_key, "channels"))
            .await
    }

    /// Replaces the app's push settings.
    pub async fn put_push_settings(
        &self,
        workspace: &str,
        app_key: &str,
        settings: &PushSettings,
    ) -> Result<PushSettings> {
        let path = Self::push_path(workspace, app_key, "settings");
        self.call(Method::PUT, &path, Some(settings)).await
    }

    /// The app's tasks, newest first.
    pub async fn push_tasks(&self, workspace: &str, app_key: &str) -> Result<Vec<PushTask>> {
        self.get(&Self::push_path(workspace, app_key, "tasks"))
            .await
    }

    /// One task with its breakdowns.
    pub async fn push_task(
        &self,
        workspace: &str,
        app_key: &str,
        task_id: &str,
    ) -> Result<PushTaskDetail> {
        self.get(&Self::push_path(
            workspace,
            app_key,
            &format!("tasks/{}", segment(task_id)),
        ))
        .await
    }

    /// Revokes a message or task.
    pub async fn push_revoke(
        &self,
        workspace: &str,
        app_key: &str,
        request: &RevokeRequest,
    ) -> Result<RevokeResult> {
        let path = Self::push_path(workspace, app_key, "revoke");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// The deliveries to one device, newest first.
    pub async fn push_device_messages(
        &self,
        workspace: &str,
        app_key: &str,
        device_id: &str,
    ) -> Result<Vec<DeliveryStatus>> {
        self.get(&Self::push_path(
            workspace,
            app_key,
            &format!("devices/{}/messages", segment(device_id)),
        ))
        .await
    }

    /// The core indexes (`from`, `to` as `YYYY-MM-DD`).
    pub async fn push_stats(
        &self,
        workspace: &str,
        app_key: &str,
        from: &str,
        to: &str,
    ) -> Result<PushStats> {
        self.get(&Self::push_path(
            workspace,
            app_key,
            &format!("stats?from={}&to={}", segment(from), segment(to)),
        ))
        .await
    }
}
