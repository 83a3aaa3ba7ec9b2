//! Templates: create, change, list, delete (audited). A send renders a
//! template once per target with [`crate::content::fill_template`].

use crate::content::{check_template, template_placeholders};
use crate::{Error, PushService, Result};
use atoll_core::access::Requirement;
use atoll_platform::Principal;
use atoll_protocol::push::{Template, TemplateSpec};
use serde_json::json;
use sqlx::Row;

/// Templates an app may have.
const MAX_TEMPLATES: i64 = 1_000;

fn template_from_row(row: &sqlx::any::AnyRow) -> Result<Template> {
    let spec = TemplateSpec {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        url: row.try_get("url")?,
    };
    Ok(Template {
        placeholders: template_placeholders(&spec),
        spec,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const COLUMNS: &str = "name, description, title, body, url, created_at, updated_at";

impl PushService {
    /// The app's templates, by name.
    pub async fn list_templates(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<Vec<Template>> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM push_templates WHERE app_id = $1 ORDER BY name"
        ))
        .bind(&access.app_id)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter().map(template_from_row).collect()
    }

    /// One template.
    pub async fn get_template(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
    ) -> Result<Template> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::READ)
            .await?;
        self.template(&access.app_id, name).await
    }

    /// A template by the app's internal id (for sends).
    pub(crate) async fn template(&self, app_id: &str, name: &str) -> Result<Template> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM push_templates WHERE app_id = $1 AND name = $2"
        ))
        .bind(app_id)
        .bind(name)
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| Error::NotFound(format!("template '{name}'")))?;
        template_from_row(&row)
    }

    /// Creates a template; the name is unique per app (mPaaS `ALREADY_EXIST`).
    pub async fn create_template(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        spec: TemplateSpec,
    ) -> Result<Template> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        check_template(&spec)?;
        let now = self.clock.now_ms();
        let mut tx = self.store().begin_write().await?;
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM push_templates WHERE app_id = $1")
            .bind(&access.app_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        if count >= MAX_TEMPLATES {
            return Err(Error::Invalid(format!(
                "an app has at most {MAX_TEMPLATES} templates"
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO push_templates (app_id, name, description, title, body, url, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&access.app_id)
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(&spec.title)
        .bind(&spec.body)
        .bind(&spec.url)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(Error::Conflict(format!(
                "a template '{}' already exists",
                spec.name
            )));
        }
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "push.template.create",
                "push_template",
                &format!("{app_key}/{}", spec.name),
                json!({ "placeholders": template_placeholders(&spec) }),
            )
            .await?;
        Ok(Template {
            placeholders: template_placeholders(&spec),
            spec,
            created_at: now,
            updated_at: now,
        })
    }

    /// Replaces a template's texts (the name in the path wins).
    pub async fn update_template(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
        mut spec: TemplateSpec,
    ) -> Result<Template> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        spec.name = name.to_owned();
        check_template(&spec)?;
        let now = self.clock.now_ms();
        let mut tx = self.store().begin_write().await?;
        let created_at: i64 =
            sqlx::query("SELECT created_at FROM push_templates WHERE app_id = $1 AND name = $2")
                .bind(&access.app_id)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or_else(|| Error::NotFound(format!("template '{name}'")))?
                .try_get(0)?;
        sqlx::query(
            "UPDATE push_templates SET description = $3, title = $4, body = $5, url = $6, updated_at = $7 \
             WHERE app_id = $1 AND name = $2",
        )
        .bind(&access.app_id)
        .bind(name)
        .bind(&spec.description)
        .bind(&spec.title)
        .bind(&spec.body)
        .bind(&spec.url)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "push.template.update",
                "push_template",
                &format!("{app_key}/{name}"),
                json!({ "placeholders": template_placeholders(&spec) }),
            )
            .await?;
        Ok(Template {
            placeholders: template_placeholders(&spec),
            spec,
            created_at,
            updated_at: now,
        })
    }

    /// Deletes a template (sent messages keep their rendered texts).
    pub async fn delete_template(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        name: &str,
    ) -> Result<()> {
        let access = self
            .platform
            .authorize_app(principal, slug, app_key, Requirement::WRITE)
            .await?;
        let mut tx = self.store().begin_write().await?;
        let deleted = sqlx::query("DELETE FROM push_templates WHERE app_id = $1 AND name = $2")
            .bind(&access.app_id)
            .bind(name)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound(format!("template '{name}'")));
        }
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "push.template.delete",
                "push_template",
                &format!("{app_key}/{name}"),
                json!({}),
            )
            .await?;
        Ok(())
    }
}
