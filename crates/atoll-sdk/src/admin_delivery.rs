//! Delivery on the admin client: package uploads, releases and their
//! lifecycle, release stats, the workspace signing key and uploaded id lists.

use crate::error::check;
use crate::{AdminClient, Error, Result};
use atoll_protocol::delivery::*;
use atoll_protocol::encode_path_segment as segment;
use reqwest::Method;
use serde::Deserialize;

/// A list with its ids, as `GET …/lists/{name}` answers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ListWithIds {
    /// The list.
    #[serde(flatten)]
    pub list: TargetList,
    /// The ids, sorted.
    pub ids: Vec<String>,
}

fn query_pair(out: &mut Vec<String>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        out.push(format!("{name}={}", segment(value)));
    }
}

impl AdminClient {
    fn app_path(workspace: &str, app_key: &str, rest: &str) -> String {
        format!(
            "/api/v1/workspaces/{}/apps/{}{rest}",
            segment(workspace),
            segment(app_key)
        )
    }

    /// The workspace's package-signing public key (apps pin it).
    pub async fn signing_key(&self, workspace: &str) -> Result<SigningKey> {
        self.get(&format!(
            "/api/v1/workspaces/{}/signing-key",
            segment(workspace)
        ))
        .await
    }

    /// Uploads a package: `content` is the file (empty with a `store_url`).
    pub async fn upload_package(
        &self,
        workspace: &str,
        app_key: &str,
        request: &UploadPackage,
        content: Vec<u8>,
    ) -> Result<Package> {
        let mut query = vec![
            format!("kind={}", request.kind),
            format!("platform={}", request.platform),
            format!("version={}", segment(&request.version)),
        ];
        query_pair(&mut query, "resource_id", request.resource_id.as_deref());
        query_pair(
            &mut query,
            "for_app_version",
            request.for_app_version.as_deref(),
        );
        query_pair(&mut query, "file_name", request.file_name.as_deref());
        query_pair(&mut query, "store_url", request.store_url.as_deref());
        let path = Self::app_path(
            workspace,
            app_key,
            &format!("/packages?{}", query.join("&")),
        );
        let mut http = self
            .http_client()
            .post(format!("{}{path}", self.base_url()))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            // Large packages take longer than an ordinary call.
            .timeout(std::time::Duration::from_secs(3600))
            .body(content);
        if let Some(token) = self.token() {
            http = http.bearer_auth(token);
        }
        let response = check(http.send().await?).await?;
        let text = response.text().await?;
        serde_json::from_str(&text).map_err(|error| Error::Decode(error.to_string()))
    }

    /// An app's packages, newest first.
    pub async fn packages(
        &self,
        workspace: &str,
        app_key: &str,
        kind: Option<ResourceKind>,
    ) -> Result<Vec<Package>> {
        let rest = match kind {
            Some(kind) => format!("/packages?kind={kind}"),
            None => "/packages".to_owned(),
        };
        self.get(&Self::app_path(workspace, app_key, &rest)).await
    }

    /// An app's releases, most recently changed first.
    pub async fn releases(&self, workspace: &str, app_key: &str) -> Result<Vec<Release>> {
        self.get(&Self::app_path(workspace, app_key, "/releases"))
            .await
    }

    /// One release.
    pub async fn release(&self, workspace: &str, app_key: &str, id: &str) -> Result<Release> {
        let rest = format!("/releases/{}", segment(id));
        self.get(&Self::app_path(workspace, app_key, &rest)).await
    }

    /// Creates a draft release.
    pub async fn create_release(
        &self,
        workspace: &str,
        app_key: &str,
        request: &CreateRelease,
    ) -> Result<Release> {
        let path = Self::app_path(workspace, app_key, "/releases");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// Changes a release's targeting or notes.
    pub async fn update_release(
        &self,
        workspace: &str,
        app_key: &str,
        id: &str,
        request: &UpdateRelease,
    ) -> Result<Release> {
        let path = Self::app_path(workspace, app_key, &format!("/releases/{}", segment(id)));
        self.call(Method::PATCH, &path, Some(request)).await
    }

    /// Moves a release to a stage (and percentage).
    pub async fn promote_release(
        &self,
        workspace: &str,
        app_key: &str,
        id: &str,
        request: &PromoteRelease,
    ) -> Result<Release> {
        let rest = format!("/releases/{}/promote", segment(id));
        let path = Self::app_path(workspace, app_key, &rest);
        self.call(Method::POST, &path, Some(request)).await
    }

    /// Pauses, resumes, ends or rolls back a release.
    pub async fn release_action(
        &self,
        workspace: &str,
        app_key: &str,
        id: &str,
        action: ReleaseAction,
    ) -> Result<Release> {
        let rest = format!("/releases/{}/{action}", segment(id));
        let path = Self::app_path(workspace, app_key, &rest);
        self.call::<(), _>(Method::POST, &path, None).await
    }

    /// A release's counters.
    pub async fn release_stats(
        &self,
        workspace: &str,
        app_key: &str,
        id: &str,
    ) -> Result<ReleaseStats> {
        let rest = format!("/releases/{}/stats", segment(id));
        self.get(&Self::app_path(workspace, app_key, &rest)).await
    }

    /// Which of the given devices a release selects at its stage.
    pub async fn release_audience(
        &self,
        workspace: &str,
        app_key: &str,
        id: &str,
        request: &AudienceRequest,
    ) -> Result<AudienceAnswer> {
        let rest = format!("/releases/{}/audience", segment(id));
        let path = Self::app_path(workspace, app_key, &rest);
        self.call(Method::POST, &path, Some(request)).await
    }

    /// An app's uploaded lists (without ids).
    pub async fn lists(&self, workspace: &str, app_key: &str) -> Result<Vec<TargetList>> {
        self.get(&Self::app_path(workspace, app_key, "/lists"))
            .await
    }

    /// One list with its ids.
    pub async fn list(&self, workspace: &str, app_key: &str, name: &str) -> Result<ListWithIds> {
        let rest = format!("/lists/{}", segment(name));
        self.get(&Self::app_path(workspace, app_key, &rest)).await
    }

    /// Creates or replaces a list.
    pub async fn put_list(
        &self,
        workspace: &str,
        app_key: &str,
        name: &str,
        request: &PutList,
    ) -> Result<TargetList> {
        let path = Self::app_path(workspace, app_key, &format!("/lists/{}", segment(name)));
        self.call(Method::PUT, &path, Some(request)).await
    }

    /// Deletes a list.
    pub async fn delete_list(&self, workspace: &str, app_key: &str, name: &str) -> Result<()> {
        let path = Self::app_path(workspace, app_key, &format!("/lists/{}", segment(name)));
        let _: serde_json::Value = self.call::<(), _>(Method::DELETE, &path, None).await?;
        Ok(())
    }
}
