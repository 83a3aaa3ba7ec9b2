//! The admin API client, for the CLI, app backends and tests.

use crate::error::check;
use crate::{Error, Result};
use atoll_protocol::admin::*;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A client of `/api/v1` with a bearer token (an API token or a login session).
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

use atoll_protocol::encode_path_segment as segment;

impl AdminClient {
    /// A client of the server at `base_url`, with `token` if already known.
    pub fn new(base_url: &str, token: Option<String>) -> Result<AdminClient> {
        Ok(AdminClient {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The HTTP client, for calls with their own body or timeout.
    pub(crate) fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    /// The server's URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends any request to the API and returns the status and JSON body (or
    /// `null` for an empty one). Errors are returned as values, not `Err`, so
    /// callers can assert on them; only transport failures are `Err`.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|error| Error::Config(error.to_string()))?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        Ok((status, value))
    }

    pub(crate) async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = check(request.send().await?).await?;
        let text = response.text().await?;
        serde_json::from_str(if text.is_empty() { "null" } else { &text }).map_err(|error| {
            Error::Decode(format!(
                "{error}: {}",
                text.chars().take(200).collect::<String>()
            ))
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    /// Logs in with email and password; the client keeps the session token.
    pub async fn login(&mut self, email: &str, password: &str) -> Result<LoginResponse> {
        let response: LoginResponse = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                Some(&LoginRequest {
                    email: email.to_owned(),
                    password: password.to_owned(),
                }),
            )
            .await?;
        self.token = Some(response.token.clone());
        Ok(response)
    }

    /// The token in use.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Who the token belongs to.
    pub async fn me(&self) -> Result<Me> {
        self.get("/api/v1/me").await
    }

    /// Workspaces the caller can see.
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        self.get("/api/v1/workspaces").await
    }

    /// Creates a workspace.
    pub async fn create_workspace(&self, slug: &str, name: &str) -> Result<Workspace> {
        self.call(
            Method::POST,
            "/api/v1/workspaces",
            Some(&CreateWorkspace {
                slug: slug.to_owned(),
                name: name.to_owned(),
            }),
        )
        .await
    }

    /// Apps of a workspace.
    pub async fn list_apps(&self, workspace: &str) -> Result<Vec<App>> {
        self.get(&format!("/api/v1/workspaces/{}/apps", segment(workspace)))
            .await
    }

    /// Creates an app (the answer holds its secret).
    pub async fn create_app(&self, workspace: &str, request: &CreateApp) -> Result<AppWithSecret> {
        self.call(
            Method::POST,
            &format!("/api/v1/workspaces/{}/apps", segment(workspace)),
            Some(request),
        )
        .await
    }

    /// One app.
    pub async fn get_app(&self, workspace: &str, app_key: &str) -> Result<App> {
        self.get(&format!(
            "/api/v1/workspaces/{}/apps/{}",
            segment(workspace),
            segment(app_key)
        ))
        .await
    }

    /// Rotates an app's secret.
    pub async fn rotate_secret(
        &self,
        workspace: &str,
        app_key: &str,
        grace_seconds: Option<u64>,
    ) -> Result<AppWithSecret> {
        self.call(
            Method::POST,
            &format!(
                "/api/v1/workspaces/{}/apps/{}/rotate-secret",
                segment(workspace),
                segment(app_key)
            ),
            Some(&RotateSecret { grace_seconds }),
        )
        .await
    }

    /// An app's SDK configuration with its secret.
    pub async fn sdk_config(&self, workspace: &str, app_key: &str) -> Result<SdkConfig> {
        self.get(&format!(
            "/api/v1/workspaces/{}/apps/{}/sdk-config",
            segment(workspace),
            segment(app_key)
        ))
        .await
    }

    /// Members of a workspace.
    pub async fn list_members(&self, workspace: &str) -> Result<Vec<Member>> {
        self.get(&format!(
            "/api/v1/workspaces/{}/members",
            segment(workspace)
        ))
        .await
    }

    /// Adds a member.
    pub async fn add_member(&self, workspace: &str, request: &AddMember) -> Result<Member> {
        self.call(
            Method::POST,
            &format!("/api/v1/workspaces/{}/members", segment(workspace)),
            Some(request),
        )
        .await
    }

    /// API tokens of a workspace.
    pub async fn list_tokens(&self, workspace: &str) -> Result<Vec<ApiToken>> {
        self.get(&format!("/api/v1/workspaces/{}/tokens", segment(workspace)))
            .await
    }

    /// Creates an API token (the answer holds its secret).
    pub async fn create_token(
        &self,
        workspace: &str,
        request: &CreateToken,
    ) -> Result<TokenWithSecret> {
        self.call(
            Method::POST,
            &format!("/api/v1/workspaces/{}/tokens", segment(workspace)),
            Some(request),
        )
        .await
    }

    /// Revokes an API token.
    pub async fn revoke_token(&self, workspace: &str, token_id: &str) -> Result<()> {
        let _: serde_json::Value = self
            .call::<(), _>(
                Method::DELETE,
                &format!(
                    "/api/v1/workspaces/{}/tokens/{}",
                    segment(workspace),
                    segment(token_id)
                ),
                None,
            )
            .await?;
        Ok(())
    }

    /// One device of an app.
    pub async fn get_device(
        &self,
        workspace: &str,
        app_key: &str,
        device_id: &str,
    ) -> Result<Device> {
        self.get(&format!(
            "/api/v1/workspaces/{}/apps/{}/devices/{}",
            segment(workspace),
            segment(app_key),
            segment(device_id)
        ))
        .await
    }

    /// One user of an app with their devices.
    pub async fn get_app_user(
        &self,
        workspace: &str,
        app_key: &str,
        user_id: &str,
    ) -> Result<AppUser> {
        self.get(&format!(
            "/api/v1/workspaces/{}/apps/{}/users/{}",
            segment(workspace),
            segment(app_key),
            segment(user_id)
        ))
        .await
    }

    /// The newest audit entries of a workspace.
    pub async fn audit_log(&self, workspace: &str, limit: u32) -> Result<Vec<AuditEntry>> {
        self.get(&format!(
            "/api/v1/workspaces/{}/audit?limit={limit}",
            segment(workspace)
        ))
        .await
    }
}
