//! Sync on the admin client: biz types, sync orders (what an app backend
//! sends with a `sync:write` token), counters, online devices and a device's
//! cursors.

use crate::{AdminClient, Result};
use atoll_protocol::encode_path_segment as segment;
use atoll_protocol::sync::*;
use reqwest::Method;

impl AdminClient {
    fn sync_path(workspace: &str, app_key: &str, rest: &str) -> String {
        format!(
            "/api/v1/workspaces/{}/apps/{}/sync/{rest}",
            segment(workspace),
            segment(app_key)
        )
    }

    /// The app's biz types.
    pub async fn biz_types(&self, workspace: &str, app_key: &str) -> Result<Vec<BizType>> {
        self.get(&Self::sync_path(workspace, app_key, "biz-types"))
            .await
    }

    /// Creates a biz type.
    pub async fn create_biz_type(
        &self,
        workspace: &str,
        app_key: &str,
        spec: &BizTypeSpec,
    ) -> Result<BizType> {
        let path = Self::sync_path(workspace, app_key, "biz-types");
        self.call(Method::POST, &path, Some(spec)).await
    }

    /// One biz type.
    pub async fn biz_type(&self, workspace: &str, app_key: &str, id: &str) -> Result<BizType> {
        self.get(&Self::sync_path(
            workspace,
            app_key,
            &format!("biz-types/{}", segment(id)),
        ))
        .await
    }

    /// Replaces a biz type's settings.
    pub async fn update_biz_type(
        &self,
        workspace: &str,
        app_key: &str,
        spec: &BizTypeSpec,
    ) -> Result<BizType> {
        let path = Self::sync_path(
            workspace,
            app_key,
            &format!("biz-types/{}", segment(&spec.id)),
        );
        self.call(Method::PUT, &path, Some(spec)).await
    }

    /// Deletes a biz type with its data.
    pub async fn delete_biz_type(&self, workspace: &str, app_key: &str, id: &str) -> Result<()> {
        let path = Self::sync_path(workspace, app_key, &format!("biz-types/{}", segment(id)));
        let _: serde_json::Value = self.call::<(), _>(Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// Sends a datum to one user or device. A repeat of the same
    /// `third_msg_id` answers `DUPLICATED_BIZ_ID` with the first datum's id.
    pub async fn send_sync(
        &self,
        workspace: &str,
        app_key: &str,
        order: &SyncOrder,
    ) -> Result<SyncOrderAnswer> {
        let path = Self::sync_path(workspace, app_key, "orders");
        self.call(Method::POST, &path, Some(order)).await
    }

    /// Sends a datum to every device of a global biz type.
    pub async fn send_global_sync(
        &self,
        workspace: &str,
        app_key: &str,
        order: &GlobalSyncOrder,
    ) -> Result<SyncOrderAnswer> {
        let path = Self::sync_path(workspace, app_key, "orders/global");
        self.call(Method::POST, &path, Some(order)).await
    }

    /// Counters per biz type over the last `days` days.
    pub async fn sync_stats(
        &self,
        workspace: &str,
        app_key: &str,
        days: u32,
    ) -> Result<Vec<BizTypeStats>> {
        self.get(&Self::sync_path(
            workspace,
            app_key,
            &format!("stats?days={days}"),
        ))
        .await
    }

    /// The app's devices connected to the node that answers.
    pub async fn sync_online(
        &self,
        workspace: &str,
        app_key: &str,
        limit: u32,
    ) -> Result<OnlineDevices> {
        self.get(&Self::sync_path(
            workspace,
            app_key,
            &format!("online?limit={limit}"),
        ))
        .await
    }

    /// A device's cursors and pending data.
    pub async fn sync_device(
        &self,
        workspace: &str,
        app_key: &str,
        device_id: &str,
    ) -> Result<DeviceSyncState> {
        self.get(&Self::sync_path(
            workspace,
            app_key,
            &format!("devices/{}", segment(device_id)),
        ))
        .await
    }
}
