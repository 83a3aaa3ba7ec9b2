//! The mobile gateway on the admin client: API groups (backends) and their
//! secrets, APIs, app-wide settings, statistics, test calls, OpenAPI export and
//! import, and the workspace's payload-encryption keys.

use crate::{AdminClient, Result};
use atoll_protocol::encode_path_segment as segment;
use atoll_protocol::gateway::*;
use reqwest::Method;

impl AdminClient {
    fn gateway_path(workspace: &str, app_key: &str, rest: &str) -> String {
        format!(
            "/api/v1/workspaces/{}/apps/{}/gateway/{rest}",
            segment(workspace),
            segment(app_key)
        )
    }

    fn group_path(workspace: &str, app_key: &str, name: &str, rest: &str) -> String {
        Self::gateway_path(
            workspace,
            app_key,
            &format!("groups/{}{rest}", segment(name)),
        )
    }

    fn api_path(workspace: &str, app_key: &str, operation_type: &str, rest: &str) -> String {
        Self::gateway_path(
            workspace,
            app_key,
            &format!("apis/{}{rest}", segment(operation_type)),
        )
    }

    fn workspace_keys_path(workspace: &str, rest: &str) -> String {
        format!(
            "/api/v1/workspaces/{}/gateway/keys{rest}",
            segment(workspace)
        )
    }

    /// The app's API groups (backends).
    pub async fn gateway_groups(&self, workspace: &str, app_key: &str) -> Result<Vec<ApiGroup>> {
        self.get(&Self::gateway_path(workspace, app_key, "groups"))
            .await
    }

    /// Creates an API group; the answer holds its secret, shown only here.
    pub async fn create_gateway_group(
        &self,
        workspace: &str,
        app_key: &str,
        spec: &ApiGroupSpec,
    ) -> Result<ApiGroupSecret> {
        let path = Self::gateway_path(workspace, app_key, "groups");
        self.call(Method::POST, &path, Some(spec)).await
    }

    /// One API group.
    pub async fn gateway_group(
        &self,
        workspace: &str,
        app_key: &str,
        name: &str,
    ) -> Result<ApiGroup> {
        self.get(&Self::group_path(workspace, app_key, name, ""))
            .await
    }

    /// Replaces an API group's settings (its secret stays).
    pub async fn update_gateway_group(
        &self,
        workspace: &str,
        app_key: &str,
        name: &str,
        spec: &ApiGroupSpec,
    ) -> Result<ApiGroup> {
        let path = Self::group_path(workspace, app_key, name, "");
        self.call(Method::PUT, &path, Some(spec)).await
    }

    /// Deletes an API group.
    pub async fn delete_gateway_group(
        &self,
        workspace: &str,
        app_key: &str,
        name: &str,
    ) -> Result<()> {
        let path = Self::group_path(workspace, app_key, name, "");
        let _: serde_json::Value = self.call::<(), _>(Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// Rotates an API group's secret; the answer holds the new one, shown only
    /// here.
    pub async fn rotate_gateway_group_secret(
        &self,
        workspace: &str,
        app_key: &str,
        name: &str,
    ) -> Result<ApiGroupSecret> {
        let path = Self::group_path(workspace, app_key, name, "/rotate-secret");
        self.call::<(), _>(Method::POST, &path, None).await
    }

    /// The OpenAPI document of a group's APIs.
    pub async fn gateway_group_openapi(
        &self,
        workspace: &str,
        app_key: &str,
        name: &str,
    ) -> Result<serde_json::Value> {
        self.get(&Self::group_path(workspace, app_key, name, "/openapi"))
            .await
    }

    /// Imports the operations of an OpenAPI document as APIs of a group; the
    /// answer is the import report.
    pub async fn import_gateway_group_openapi(
        &self,
        workspace: &str,
        app_key: &str,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let path = Self::group_path(workspace, app_key, name, "/openapi");
        self.call(Method::POST, &path, Some(document)).await
    }

    /// The app's APIs.
    pub async fn gateway_apis(&self, workspace: &str, app_key: &str) -> Result<Vec<Api>> {
        self.get(&Self::gateway_path(workspace, app_key, "apis"))
            .await
    }

    /// Creates an API (disabled unless the spec says `enabled`).
    pub async fn create_gateway_api(
        &self,
        workspace: &str,
        app_key: &str,
        spec: &ApiSpec,
    ) -> Result<Api> {
        let path = Self::gateway_path(workspace, app_key, "apis");
        self.call(Method::POST, &path, Some(spec)).await
    }

    /// One API, by operation type.
    pub async fn gateway_api(
        &self,
        workspace: &str,
        app_key: &str,
        operation_type: &str,
    ) -> Result<Api> {
        self.get(&Self::api_path(workspace, app_key, operation_type, ""))
            .await
    }

    /// Replaces an API.
    pub async fn update_gateway_api(
        &self,
        workspace: &str,
        app_key: &str,
        operation_type: &str,
        spec: &ApiSpec,
    ) -> Result<Api> {
        let path = Self::api_path(workspace, app_key, operation_type, "");
        self.call(Method::PUT, &path, Some(spec)).await
    }

    /// Deletes an API.
    pub async fn delete_gateway_api(
        &self,
        workspace: &str,
        app_key: &str,
        operation_type: &str,
    ) -> Result<()> {
        let path = Self::api_path(workspace, app_key, operation_type, "");
        let _: serde_json::Value = self.call::<(), _>(Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// Enables an API: devices can call it.
    pub async fn enable_gateway_api(
        &self,
        workspace: &str,
        app_key: &str,
        operation_type: &str,
    ) -> Result<Api> {
        let path = Self::api_path(workspace, app_key, operation_type, "/enable");
        self.call::<(), _>(Method::POST, &path, None).await
    }

    /// Disables an API: calls get `api_disabled`.
    pub async fn disable_gateway_api(
        &self,
        workspace: &str,
        app_key: &str,
        operation_type: &str,
    ) -> Result<Api> {
        let path = Self::api_path(workspace, app_key, operation_type, "/disable");
        self.call::<(), _>(Method::POST, &path, None).await
    }

    /// The app's gateway settings.
    pub async fn gateway_settings(
        &self,
        workspace: &str,
        app_key: &str,
    ) -> Result<GatewaySettings> {
        self.get(&Self::gateway_path(workspace, app_key, "settings"))
            .await
    }

    /// Replaces the app's gateway settings.
    pub async fn put_gateway_settings(
        &self,
        workspace: &str,
        app_key: &str,
        settings: &GatewaySettings,
    ) -> Result<GatewaySettings> {
        let path = Self::gateway_path(workspace, app_key, "settings");
        self.call(Method::PUT, &path, Some(settings)).await
    }

    /// Counters and latencies of the app's APIs since the server started.
    pub async fn gateway_stats(&self, workspace: &str, app_key: &str) -> Result<Vec<ApiStats>> {
        self.get(&Self::gateway_path(workspace, app_key, "stats"))
            .await
    }

    /// Sends a test call through the gateway as a trusted caller.
    pub async fn gateway_test_call(
        &self,
        workspace: &str,
        app_key: &str,
        call: &TestCall,
    ) -> Result<TestCallResult> {
        let path = Self::gateway_path(workspace, app_key, "test");
        self.call(Method::POST, &path, Some(call)).await
    }

    /// The workspace's payload-encryption public keys.
    pub async fn workspace_gateway_keys(&self, workspace: &str) -> Result<Vec<GatewayKey>> {
        self.get(&Self::workspace_keys_path(workspace, "")).await
    }

    /// Rotates the workspace's payload-encryption keys; the answer lists the
    /// keys after the rotation.
    pub async fn rotate_workspace_gateway_keys(
        &self,
        workspace: &str,
        request: &RotateGatewayKeys,
    ) -> Result<Vec<GatewayKey>> {
        let path = Self::workspace_keys_path(workspace, "/rotate");
        self.call(Method::POST, &path, Some(request)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_every_segment() {
        assert_eq!(
            AdminClient::gateway_path("acme co", "ak/1", "groups"),
            "/api/v1/workspaces/acme%20co/apps/ak%2F1/gateway/groups"
        );
        assert_eq!(
            AdminClient::group_path("w", "a", "orders/v2", "/rotate-secret"),
            "/api/v1/workspaces/w/apps/a/gateway/groups/orders%2Fv2/rotate-secret"
        );
        assert_eq!(
            AdminClient::api_path("w", "a", "com.shop.order.create", "/enable"),
            "/api/v1/workspaces/w/apps/a/gateway/apis/com.shop.order.create/enable"
        );
        assert_eq!(
            AdminClient::workspace_keys_path("w?x", "/rotate"),
            "/api/v1/workspaces/w%3Fx/gateway/keys/rotate"
        );
    }
}
