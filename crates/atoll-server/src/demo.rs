//! `atoll demo`: a first run creates an admin, the `demo` workspace and the
//! "Demo Shop" app; every run prints how to reach them. Data is kept between runs.

use anyhow::Context;
use atoll_platform::{PlatformService, Principal};
use atoll_protocol::admin::{App, CreateApp, CreateWorkspace, SdkConfig};
use atoll_protocol::device::Platform;
use std::path::Path;

/// The demo admin's login.
pub const DEMO_EMAIL: &str = "admin@demo.atoll";
const PASSWORD_FILE: &str = "demo-admin-password";

/// What a demo run prints.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    /// The admin's email.
    pub email: String,
    /// The admin's password, when this data folder knows it.
    pub password: Option<String>,
    /// The demo workspace slug.
    pub workspace: String,
    /// The demo app.
    pub app: App,
    /// The app's SDK configuration.
    pub sdk_config: SdkConfig,
}

/// Creates what is missing of the demo, and returns its description.
pub async fn seed(platform: &PlatformService, data_dir: &Path) -> anyhow::Result<DemoInfo> {
    let password_path = data_dir.join(PASSWORD_FILE);
    if platform.count_users().await? == 0 {
        let password = atoll_core::ids::new_secret("demo")
            .chars()
            .take(20)
            .collect::<String>();
        write_private(&password_path, &password)?;
        platform
            .create_user(DEMO_EMAIL, "Demo Admin", &password, true)
            .await
            .context("cannot create the demo admin")?;
    }
    let password = std::fs::read_to_string(&password_path)
        .ok()
        .map(|text| text.trim().to_owned());
    let admin = platform
        .find_user(DEMO_EMAIL)
        .await?
        .context("the demo admin is missing from this data folder")?;
    let principal = Principal::User(admin);
    let workspaces = platform.list_workspaces(&principal).await?;
    if !workspaces.iter().any(|workspace| workspace.slug == "demo") {
        platform
            .create_workspace(
                &principal,
                CreateWorkspace {
                    slug: "demo".into(),
                    name: "Demo".into(),
                },
            )
            .await?;
    }
    let apps = platform.list_apps(&principal, "demo").await?;
    let app = match apps.into_iter().find(|app| app.name == "Demo Shop") {
        Some(app) => app,
        None => {
            platform
                .create_app(
                    &principal,
                    "demo",
                    CreateApp {
                        name: "Demo Shop".into(),
                        platforms: vec![Platform::Android, Platform::Ios],
                    },
                )
                .await?
                .app
        }
    };
    let sdk_config = platform
        .reveal_sdk_config(&principal, "demo", &app.app_key)
        .await?;
    Ok(DemoInfo {
        email: DEMO_EMAIL.into(),
        password,
        workspace: "demo".into(),
        app,
        sdk_config,
    })
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
