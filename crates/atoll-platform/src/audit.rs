//! The audit log: one entry per mutation, written in the mutation's transaction.

use crate::{PlatformService, Principal, Result, WorkspaceContext};
use atoll_core::access::Requirement;
use atoll_protocol::admin::AuditEntry;
use atoll_store::WriteTx;
use sqlx::Row;

/// What one mutation did.
pub(crate) struct AuditRecord<'a> {
    pub workspace_id: Option<&'a str>,
    pub actor: String,
    pub action: &'a str,
    pub object_type: &'a str,
    pub object_id: &'a str,
    pub summary: serde_json::Value,
}

pub(crate) async fn write(tx: &mut WriteTx, at: i64, record: AuditRecord<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (workspace_id, at, actor, action, object_type, object_id, summary) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(record.workspace_id.map(str::to_owned))
    .bind(at)
    .bind(record.actor)
    .bind(record.action)
    .bind(record.object_type)
    .bind(record.object_id)
    .bind(record.summary.to_string())
    .execute(&mut ***tx)
    .await?;
    Ok(())
}

impl PlatformService {
    /// Records a mutation made in `ctx`'s workspace and commits it with the change:
    /// the entry exists exactly when the change does. Module services call it for
    /// their own mutations.
    pub async fn commit_audited(
        &self,
        mut tx: WriteTx,
        ctx: &WorkspaceContext,
        action: &str,
        object_type: &str,
        object_id: &str,
        summary: serde_json::Value,
    ) -> Result<()> {
        write(
            &mut tx,
            self.now(),
            AuditRecord {
                workspace_id: Some(&ctx.workspace_id),
                actor: ctx.principal.actor(),
                action,
                object_type,
                object_id,
                summary,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest audit entries of a workspace, before entry `before` when paging.
    pub async fn audit_log(
        &self,
        principal: &Principal,
        slug: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let ctx = self.authorize(principal, slug, Requirement::READ).await?;
        let rows = sqlx::query(
            "SELECT id, at, actor, action, object_type, object_id, summary FROM audit_log \
             WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(&ctx.workspace_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get(0)?,
                    at: row.try_get(1)?,
                    actor: row.try_get(2)?,
                    action: row.try_get(3)?,
                    object_type: row.try_get(4)?,
                    object_id: row.try_get(5)?,
                    summary: serde_json::from_str(&row.try_get::<String, _>(6)?)
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}
