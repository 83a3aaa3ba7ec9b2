//! Workspaces, apps, members and API tokens, each operation authorised here.

use crate::error::check;
use crate::principal::AppAccess;
use crate::store::{self, AppRow, APP_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS, WORKSPACE_COLUMNS};
use crate::{Error, PlatformService, Principal, Result, WorkspaceContext};
use atoll_core::access::{grants, may_assign, Requirement, Role, Standing};
use atoll_core::{ids, validate};
use atoll_protocol::admin::{
    AddMember, ApiToken, App, AppWithSecret, CreateApp, CreateToken, CreateWorkspace, Member,
    RotateSecret, SdkConfig, TokenWithSecret, UpdateApp, UpdateMember, UpdateWorkspace, Workspace,
    SCOPES,
};
use serde_json::json;
use sqlx::Row;

/// Longest grace period of an app secret rotation: 30 days.
const MAX_SECRET_GRACE_SECS: u64 = 30 * 24 * 3600;

impl PlatformService {
    /// Authorises `principal` for `requirement` in the workspace `slug`.
    ///
    /// A caller with no standing in the workspace gets `not_found`, exactly as for a
    /// workspace that does not exist, so tenants cannot probe each other's names.
    pub async fn authorize(
        &self,
        principal: &Principal,
        slug: &str,
        requirement: Requirement,
    ) -> Result<WorkspaceContext> {
        let row = sqlx::query("SELECT id FROM workspaces WHERE slug = $1")
            .bind(slug)
            .fetch_optional(self.store().pool())
            .await?;
        let not_found = || Error::NotFound(format!("workspace '{slug}'"));
        let workspace_id: String = row.ok_or_else(not_found)?.try_get(0)?;
        let standing = match principal {
            Principal::User(user) if user.instance_admin => Standing::Role(Role::Owner),
            Principal::User(user) => {
                let role = sqlx::query(
                    "SELECT role FROM members WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(&workspace_id)
                .bind(&user.id)
                .fetch_optional(self.store().pool())
                .await?
                .ok_or_else(not_found)?;
                Standing::Role(store::parse_role(&role.try_get::<String, _>(0)?)?)
            }
            Principal::Token {
                token,
                workspace_id: token_workspace,
            } => {
                if *token_workspace != workspace_id {
                    return Err(not_found());
                }
                Standing::Scopes(token.scopes.clone())
            }
        };
        if !grants(&standing, requirement) {
            return Err(Error::Forbidden(format!(
                "this needs {:?} access{}",
                requirement.access,
                requirement
                    .scope
                    .map(|scope| format!(" or the '{scope}' scope"))
                    .unwrap_or_default()
            )));
        }
        Ok(WorkspaceContext {
            workspace_id,
            workspace_slug: slug.to_owned(),
            principal: principal.clone(),
            standing,
        })
    }

    /// Workspaces the caller can see.
    pub async fn list_workspaces(&self, principal: &Principal) -> Result<Vec<Workspace>> {
        let pool = self.store().pool();
        let rows = match principal {
            Principal::User(user) if user.instance_admin => {
                sqlx::query(&format!(
                    "SELECT {WORKSPACE_COLUMNS}, 'owner' FROM workspaces w ORDER BY w.slug"
                ))
                .fetch_all(pool)
                .await?
            }
            Principal::User(user) => {
                sqlx::query(&format!(
                    "SELECT {WORKSPACE_COLUMNS}, m.role FROM workspaces w \
                     JOIN members m ON m.workspace_id = w.id WHERE m.user_id = $1 ORDER BY w.slug"
                ))
                .bind(&user.id)
                .fetch_all(pool)
                .await?
            }
            Principal::Token { workspace_id, .. } => {
                sqlx::query(&format!(
                    "SELECT {WORKSPACE_COLUMNS}, NULL FROM workspaces w WHERE w.id = $1"
                ))
                .bind(workspace_id)
                .fetch_all(pool)
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                let role = row
                    .try_get::<Option<String>, _>(4)?
                    .as_deref()
                    .map(store::parse_role)
                    .transpose()?;
                Ok(store::workspace(row, role)?)
            })
            .collect()
    }

    /// Creates a workspace; the creating user becomes its owner. Tokens cannot
    /// create workspaces: they live inside one.
    pub async fn create_workspace(
        &self,
        principal: &Principal,
        request: CreateWorkspace,
    ) -> Result<Workspace> {
        let Some(user) = principal.user() else {
            return Err(Error::Forbidden(
                "API tokens cannot create workspaces".into(),
            ));
        };
        check(validate::slug(&request.slug))?;
        check(validate::display_name("name", &request.name, 80))?;
        let now = self.now();
        let workspace = Workspace {
            id: ids::new_id("ws"),
            slug: request.slug,
            name: request.name.trim().to_owned(),
            created_at: now,
            role: Some(Role::Owner),
        };
        let mut tx = self.store().begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (slug) DO NOTHING",
        )
        .bind(&workspace.id)
        .bind(&workspace.slug)
        .bind(&workspace.name)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "a workspace named '{}' already exists",
                workspace.slug
            )));
        }
        sqlx::query(
            "INSERT INTO members (workspace_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&workspace.id)
        .bind(&user.id)
        .bind(Role::Owner.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let ctx = WorkspaceContext {
            workspace_id: workspace.id.clone(),
            workspace_slug: workspace.slug.clone(),
            principal: principal.clone(),
            standing: Standing::Role(Role::Owner),
        };
        self.commit_audited(
            tx,
            &ctx,
            "workspace.create",
            "workspace",
            &workspace.slug,
            json!({"after": {"slug": workspace.slug, "name": workspace.name}}),
        )
        .await?;
        Ok(workspace)
    }

    /// One workspace.
    pub async fn get_workspace(&self, principal: &Principal, slug: &str) -> Result<Workspace> {
        let ctx = self.authorize(principal, slug, Requirement::READ).await?;
        self.workspace_of(&ctx).await
    }

    async fn workspace_of(&self, ctx: &WorkspaceContext) -> Result<Workspace> {
        let row = sqlx::query(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces w WHERE w.id = $1"
        ))
        .bind(&ctx.workspace_id)
        .fetch_one(self.store().pool())
        .await?;
        let role = match &ctx.standing {
            Standing::Role(role) => Some(*role),
            Standing::Scopes(_) => None,
        };
        Ok(store::workspace(&row, role)?)
    }

    /// Renames a workspace.
    pub async fn update_workspace(
        &self,
        principal: &Principal,
        slug: &str,
        request: UpdateWorkspace,
    ) -> Result<Workspace> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        check(validate::display_name("name", &request.name, 80))?;
        let before = self.workspace_of(&ctx).await?;
        let mut tx = self.store().begin_write().await?;
        sqlx::query("UPDATE workspaces SET name = $1 WHERE id = $2")
            .bind(request.name.trim())
            .bind(&ctx.workspace_id)
            .execute(&mut **tx)
            .await?;
        self.commit_audited(
            tx,
            &ctx,
            "workspace.update",
            "workspace",
            slug,
            json!({"before": {"name": before.name}, "after": {"name": request.name.trim()}}),
        )
        .await?;
        self.workspace_of(&ctx).await
    }

    /// Deletes a workspace and everything in it (owners only).
    pub async fn delete_workspace(&self, principal: &Principal, slug: &str) -> Result<()> {
        let ctx = self.authorize(principal, slug, Requirement::OWNER).await?;
        let apps = self.list_apps(principal, slug).await?;
        let mut tx = self.store().begin_write().await?;
        sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(&ctx.workspace_id)
            .execute(&mut **tx)
            .await?;
        // The entry outlives the workspace's own log: keep it instance-wide.
        crate::audit::write(
            &mut tx,
            self.now(),
            crate::audit::AuditRecord {
                workspace_id: None,
                actor: ctx.principal.actor(),
                action: "workspace.delete",
                object_type: "workspace",
                object_id: slug,
                summary: json!({"before": {"slug": slug, "apps": apps.len()}}),
            },
        )
        .await?;
        tx.commit().await?;
        for app in apps {
            self.verifier().forget_app(&app.app_key);
        }
        Ok(())
    }

    // ---- apps ----

    /// Apps of a workspace.
    pub async fn list_apps(&self, principal: &Principal, slug: &str) -> Result<Vec<App>> {
        let ctx = self.authorize(principal, slug, Requirement::READ).await?;
        let rows = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM apps a JOIN workspaces w ON w.id = a.workspace_id \
             WHERE a.workspace_id = $1 ORDER BY a.name, a.app_key"
        ))
        .bind(&ctx.workspace_id)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|row| Ok(store::app_row(row)?.app))
            .collect()
    }

    /// Authorises `principal` for `requirement` in a workspace and resolves one of
    /// its apps: the entry point of every app-scoped operation of a module service.
    pub async fn authorize_app(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        requirement: Requirement,
    ) -> Result<AppAccess> {
        let ctx = self.authorize(principal, slug, requirement).await?;
        let row = self.app_in(&ctx, app_key).await?;
        Ok(AppAccess {
            ctx,
            app_id: row.id,
            app: row.app,
        })
    }

    pub(crate) async fn app_in(&self, ctx: &WorkspaceContext, app_key: &str) -> Result<AppRow> {
        let row = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM apps a JOIN workspaces w ON w.id = a.workspace_id \
             WHERE a.app_key = $1 AND a.workspace_id = $2"
        ))
        .bind(app_key)
        .bind(&ctx.workspace_id)
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| Error::NotFound(format!("app '{app_key}'")))?;
        Ok(store::app_row(&row)?)
    }

    /// One app.
    pub async fn get_app(&self, principal: &Principal, slug: &str, app_key: &str) -> Result<App> {
        let ctx = self.authorize(principal, slug, Requirement::READ).await?;
        Ok(self.app_in(&ctx, app_key).await?.app)
    }

    /// The SDK configuration of an app, without the secret.
    pub fn sdk_config(&self, app: &App, secret: Option<String>) -> SdkConfig {
        SdkConfig {
            server_url: self.settings().public_url.clone(),
            app_key: app.app_key.clone(),
            app_secret: secret,
        }
    }

    /// Creates an app; the answer is the only time its secret is shown.
    pub async fn create_app(
        &self,
        principal: &Principal,
        slug: &str,
        request: CreateApp,
    ) -> Result<AppWithSecret> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        check(validate::display_name("name", &request.name, 80))?;
        let platforms = normalise_platforms(request.platforms)?;
        let now = self.now();
        let secret = ids::new_secret("as");
        let app = App {
            app_key: ids::new_app_key(),
            name: request.name.trim().to_owned(),
            platforms,
            workspace: ctx.workspace_slug.clone(),
            created_at: now,
            secret_rotated_at: now,
        };
        let mut tx = self.store().begin_write().await?;
        sqlx::query(
            "INSERT INTO apps (id, workspace_id, app_key, name, platforms, secret, secret_rotated_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(ids::new_id("app"))
        .bind(&ctx.workspace_id)
        .bind(&app.app_key)
        .bind(&app.name)
        .bind(store::join_platforms(&app.platforms))
        .bind(&secret)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        self.commit_audited(
            tx,
            &ctx,
            "app.create",
            "app",
            &app.app_key,
            json!({"after": {"name": app.name, "platforms": app.platforms}}),
        )
        .await?;
        Ok(AppWithSecret {
            sdk_config: self.sdk_config(&app, Some(secret)),
            app,
            previous_secret_valid_until: None,
        })
    }

    /// Renames an app or changes its platforms.
    pub async fn update_app(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: UpdateApp,
    ) -> Result<App> {
        let ctx = self.authorize(principal, slug, Requirement::WRITE).await?;
        let before = self.app_in(&ctx, app_key).await?;
        let name = match request.name {
            Some(name) => {
                check(validate::display_name("name", &name, 80))?;
                name.trim().to_owned()
            }
            None => before.app.name.clone(),
        };
        let platforms = match request.platforms {
            Some(platforms) => normalise_platforms(platforms)?,
            None => before.app.platforms.clone(),
        };
        let mut tx = self.store().begin_write().await?;
        sqlx::query("UPDATE apps SET name = $1, platforms = $2 WHERE id = $3")
            .bind(&name)
            .bind(store::join_platforms(&platforms))
            .bind(&before.id)
            .execute(&mut **tx)
            .await?;
        self.commit_audited(
            tx,
            &ctx,
            "app.update",
            "app",
            app_key,
            json!({
                "before": {"name": before.app.name, "platforms": before.app.platforms},
                "after": {"name": name, "platforms": platforms},
            }),
        )
        .await?;
        Ok(App {
            name,
            platforms,
            ..before.app
        })
    }

    /// Deletes an app and its devices.
    pub async fn delete_app(&self, principal: &Principal, slug: &str, app_key: &str) -> Result<()> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        let before = self.app_in(&ctx, app_key).await?;
        let mut tx = self.store().begin_write().await?;
        sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(&before.id)
            .execute(&mut **tx)
            .await?;
        self.commit_audited(
            tx,
            &ctx,
            "app.delete",
            "app",
            app_key,
            json!({"before": {"name": before.app.name}}),
        )
        .await?;
        self.verifier().forget_app(app_key);
        Ok(())
    }

    /// Issues a new app secret. The old one keeps working for `grace_seconds`.
    pub async fn rotate_app_secret(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: RotateSecret,
    ) -> Result<AppWithSecret> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        let grace_secs = request.grace_seconds.unwrap_or(0);
        if grace_secs > MAX_SECRET_GRACE_SECS {
            return Err(Error::Validation(format!(
                "grace_seconds: at most {MAX_SECRET_GRACE_SECS}"
            )));
        }
        let before = self.app_in(&ctx, app_key).await?;
        let now = self.now();
        let secret = ids::new_secret("as");
        let previous_until = (grace_secs > 0).then(|| now + grace_secs as i64 * 1000);
        let mut tx = self.store().begin_write().await?;
        sqlx::query(
            "UPDATE apps SET secret = $1, previous_secret = $2, previous_secret_until = $3, \
             secret_rotated_at = $4 WHERE id = $5",
        )
        .bind(&secret)
        .bind(previous_until.map(|_| before.secret.clone()))
        .bind(previous_until)
        .bind(now)
        .bind(&before.id)
        .execute(&mut **tx)
        .await?;
        self.commit_audited(
            tx,
            &ctx,
            "app.rotate_secret",
            "app",
            app_key,
            json!({"after": {"grace_seconds": grace_secs}}),
        )
        .await?;
        self.verifier().forget_app(app_key);
        let app = App {
            secret_rotated_at: now,
            ..before.app
        };
        Ok(AppWithSecret {
            sdk_config: self.sdk_config(&app, Some(secret)),
            app,
            previous_secret_valid_until: previous_until,
        })
    }

    /// The app's SDK configuration with its current secret, for the console's
    /// "copy config" panel (admins only: the secret is sensitive).
    pub async fn reveal_sdk_config(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<SdkConfig> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        let row = self.app_in(&ctx, app_key).await?;
        Ok(self.sdk_config(&row.app, Some(row.secret)))
    }

    // ---- members ----

    /// Members of a workspace.
    pub async fn list_members(&self, principal: &Principal, slug: &str) -> Result<Vec<Member>> {
        let ctx = self.authorize(principal, slug, Requirement::READ).await?;
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, m.role, m.added_at FROM members m JOIN users u ON u.id = m.user_id \
             WHERE m.workspace_id = $1 ORDER BY u.email"
        ))
        .bind(&ctx.workspace_id)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Member {
                    user: store::user(row)?,
                    role: store::parse_role(&row.try_get::<String, _>(4)?)?,
                    added_at: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// Adds a user to a workspace, creating the user when the email is new.
    pub async fn add_member(
        &self,
        principal: &Principal,
        slug: &str,
        request: AddMember,
    ) -> Result<Member> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        if !may_assign(&ctx.standing, request.role) {
            return Err(Error::Forbidden(format!(
                "you cannot grant the {} role",
                request.role
            )));
        }
        let email = request.email.trim().to_ascii_lowercase();
        check(validate::email(&email))?;
        let user = match self.user_by_email(&email).await? {
            Some((user, _)) => user,
            None => {
                let password = request.password.ok_or_else(|| {
                    Error::Validation("password: required to create a new user".into())
                })?;
                let name = request.name.unwrap_or_else(|| email.clone());
                self.create_user(&email, &name, &password, false).await?
            }
        };
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO members (workspace_id, user_id, role, added_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace_id, user_id) DO NOTHING",
        )
        .bind(&ctx.workspace_id)
        .bind(&user.id)
        .bind(request.role.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::Conflict(format!("{email} is already a member")));
        }
        self.commit_audited(
            tx,
            &ctx,
            "member.add",
            "member",
            &user.id,
            json!({"after": {"email": email, "role": request.role}}),
        )
        .await?;
        Ok(Member {
            user,
            role: request.role,
            added_at: now,
        })
    }

    async fn member_role(&self, ctx: &WorkspaceContext, user_id: &str) -> Result<Role> {
        let row = sqlx::query("SELECT role FROM members WHERE workspace_id = $1 AND user_id = $2")
            .bind(&ctx.workspace_id)
            .bind(user_id)
            .fetch_optional(self.store().pool())
            .await?
            .ok_or_else(|| Error::NotFound(format!("member '{user_id}'")))?;
        Ok(store::parse_role(&row.try_get::<String, _>(0)?)?)
    }

    async fn ensure_another_owner(&self, ctx: &WorkspaceContext, leaving: Role) -> Result<()> {
        if leaving != Role::Owner {
            return Ok(());
        }
        let owners: i64 =
            sqlx::query("SELECT COUNT(*) FROM members WHERE workspace_id = $1 AND role = 'owner'")
                .bind(&ctx.workspace_id)
                .fetch_one(self.store().pool())
                .await?
                .try_get(0)?;
        if owners <= 1 {
            return Err(Error::Conflict(
                "a workspace keeps at least one owner".into(),
            ));
        }
        Ok(())
    }

    /// Changes a member's role.
    pub async fn update_member(
        &self,
        principal: &Principal,
        slug: &str,
        user_id: &str,
        request: UpdateMember,
    ) -> Result<Member> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        let current = self.member_role(&ctx, user_id).await?;
        if !may_assign(&ctx.standing, current) || !may_assign(&ctx.standing, request.role) {
            return Err(Error::Forbidden(format!(
                "you cannot change a {current} into a {}",
                request.role
            )));
        }
        if request.role != Role::Owner {
            self.ensure_another_owner(&ctx, current).await?;
        }
        let mut tx = self.store().begin_write().await?;
        sqlx::query("UPDATE members SET role = $1 WHERE workspace_id = $2 AND user_id = $3")
            .bind(request.role.as_str())
            .bind(&ctx.workspace_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        self.commit_audited(
            tx,
            &ctx,
            "member.update",
            "member",
            user_id,
            json!({"before": {"role": current}, "after": {"role": request.role}}),
        )
        .await?;
        self.list_members(principal, slug)
            .await?
            .into_iter()
            .find(|member| member.user.id == user_id)
            .ok_or_else(|| Error::NotFound(format!("member '{user_id}'")))
    }

    /// Removes a member from a workspace.
    pub async fn remove_member(
        &self,
        principal: &Principal,
        slug: &str,
        user_id: &str,
    ) -> Result<()> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        let current = self.member_role(&ctx, user_id).await?;
        if !may_assign(&ctx.standing, current) {
            return Err(Error::Forbidden(format!("you cannot remove a {current}")));
        }
        self.ensure_another_owner(&ctx, current).await?;
        let mut tx = self.store().begin_write().await?;
        sqlx::query("DELETE FROM members WHERE workspace_id = $1 AND user_id = $2")
            .bind(&ctx.workspace_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        self.commit_audited(
            tx,
            &ctx,
            "member.remove",
            "member",
            user_id,
            json!({"before": {"role": current}}),
        )
        .await?;
        Ok(())
    }

    // ---- API tokens ----

    /// API tokens of a workspace (never their secrets).
    pub async fn list_tokens(&self, principal: &Principal, slug: &str) -> Result<Vec<ApiToken>> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id \
             WHERE t.workspace_id = $1 AND t.revoked_at IS NULL ORDER BY t.created_at DESC"
        ))
        .bind(&ctx.workspace_id)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter().map(|row| Ok(store::token(row)?.0)).collect()
    }

    /// Creates an API token; the answer is the only time its secret is shown.
    pub async fn create_token(
        &self,
        principal: &Principal,
        slug: &str,
        request: CreateToken,
    ) -> Result<TokenWithSecret> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        check(validate::display_name("name", &request.name, 80))?;
        let mut scopes = request.scopes;
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(Error::Validation("scopes: at least one".into()));
        }
        if let Some(unknown) = scopes
            .iter()
            .find(|scope| !SCOPES.contains(&scope.as_str()))
        {
            return Err(Error::Validation(format!(
                "scopes: unknown scope '{unknown}' (known: {})",
                SCOPES.join(", ")
            )));
        }
        // A token never holds more than its creator: scoped tokens cannot mint admin ones.
        if let Standing::Scopes(own) = &ctx.standing {
            if !own.iter().any(|scope| scope == "admin") {
                return Err(Error::Forbidden("only admin tokens create tokens".into()));
            }
        }
        let now = self.now();
        let expires_at = request
            .expires_in_days
            .map(|days| now + i64::from(days.clamp(1, 3650)) * 86_400_000);
        let secret = ids::new_secret("atk");
        let token = ApiToken {
            id: ids::new_id("tok"),
            name: request.name.trim().to_owned(),
            workspace: ctx.workspace_slug.clone(),
            scopes,
            prefix: secret.chars().take(10).collect(),
            created_at: now,
            expires_at,
            last_used_at: None,
        };
        let mut tx = self.store().begin_write().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, workspace_id, name, token_hash, prefix, scopes, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&token.id)
        .bind(&ctx.workspace_id)
        .bind(&token.name)
        .bind(store::secret_hash(&secret))
        .bind(&token.prefix)
        .bind(token.scopes.join(","))
        .bind(ctx.principal.actor())
        .bind(now)
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
        self.commit_audited(tx, &ctx,
            "token.create",
            "token",
            &token.id,
            json!({"after": {"name": token.name, "scopes": token.scopes, "expires_at": expires_at}})).await?;
        Ok(TokenWithSecret { token, secret })
    }

    /// Revokes an API token at once.
    pub async fn revoke_token(
        &self,
        principal: &Principal,
        slug: &str,
        token_id: &str,
    ) -> Result<()> {
        let ctx = self.authorize(principal, slug, Requirement::ADMIN).await?;
        let mut tx = self.store().begin_write().await?;
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND workspace_id = $3 AND revoked_at IS NULL",
        )
        .bind(self.now())
        .bind(token_id)
        .bind(&ctx.workspace_id)
        .execute(&mut **tx)
        .await?;
        if revoked.rows_affected() == 0 {
            return Err(Error::NotFound(format!("token '{token_id}'")));
        }
        self.commit_audited(tx, &ctx, "token.revoke", "token", token_id, json!({}))
            .await?;
        Ok(())
    }

    /// Resolves an API token secret into its principal.
    pub(crate) async fn principal_for_api_token(&self, secret: &str) -> Result<Principal> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
        ))
        .bind(store::secret_hash(secret))
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| Error::Unauthenticated("unknown or revoked token".into()))?;
        let (token, workspace_id) = store::token(&row)?;
        let now = self.now();
        if token.expires_at.is_some_and(|expiry| expiry <= now) {
            return Err(Error::Unauthenticated("token expired".into()));
        }
        // Record use at most once a minute: a write per request would cost an fsync.
        if token.last_used_at.is_none_or(|last| now - last > 60_000) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&token.id)
                .execute(self.store().pool())
                .await?;
        }
        Ok(Principal::Token {
            token,
            workspace_id,
        })
    }
}

fn normalise_platforms(
    mut platforms: Vec<atoll_protocol::device::Platform>,
) -> Result<Vec<atoll_protocol::device::Platform>> {
    platforms.sort();
    platforms.dedup();
    if platforms.is_empty() {
        return Err(Error::Validation("platforms: at least one".into()));
    }
    Ok(platforms)
}
