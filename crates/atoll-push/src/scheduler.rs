//! Background work on tasks: expanding due tasks into deliveries (a broadcast
//! one page per transaction, its position saved with the page), turning
//! recurring tasks into a child task per occurrence, and the sweeper (leases
//! that ran out, expiry, retention). Every step claims its work with a
//! compare-and-set on the task row, so it happens once even with several
//! nodes, and a crash between steps resumes where the store says.

use crate::expand::{self, DeliveryHead};
use crate::send::TaskSpec;
use crate::stats::{Counter, Tally};
use crate::{schedule, Error, PushService, Result};
use atoll_protocol::push::SendKind;
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

const TICK: Duration = Duration::from_secs(1);
const SWEEP_EVERY: u32 = 5;

/// Starts the scheduler loop.
pub(crate) fn spawn(service: &Arc<PushService>) {
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        let mut ticks: u32 = 0;
        loop {
            let Some(service) = weak.upgrade() else { break };
            let _ = tokio::time::timeout(TICK, service.dispatcher.expander_woken()).await;
            if let Err(error) = service.run_due_tasks().await {
                tracing::warn!(%error, "push scheduler failed");
            }
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(SWEEP_EVERY) {
                if let Err(error) = service.sweep().await {
                    tracing::warn!(%error, "push sweep failed");
                }
            }
        }
    });
}

impl PushService {
    /// Starts due recurring occurrences and expands due tasks; returns how
    /// many steps it took. The background loop calls it every second; tests
    /// with a fixed clock call it directly.
    pub async fn run_due_tasks(&self) -> Result<usize> {
        let mut steps = self.start_occurrences().await?;
        let now = self.clock.now_ms();
        let due = sqlx::query(
            "SELECT id FROM push_tasks WHERE state = 'expanding' AND send_at <= $1 ORDER BY send_at LIMIT 100",
        )
        .bind(now)
        .fetch_all(self.store().pool())
        .await?;
        for row in due {
            let task_id: String = row.try_get(0)?;
            // A broadcast expands page by page until done.
            while self.expand_step(&task_id).await? {
                steps += 1;
            }
        }
        Ok(steps)
    }

    /// One expansion step of a task; `true` while there is more to do.
    async fn expand_step(&self, task_id: &str) -> Result<bool> {
        let started = std::time::Instant::now();
        let now = self.clock.now_ms();
        let mut tx = self.store().begin_write().await?;
        let Some(row) = sqlx::query(&format!(
            "SELECT app_id, kind, spec, expires_at, expand_after FROM push_tasks \
             WHERE id = $1 AND state = 'expanding'{}",
            self.store().lock_rows_clause()
        ))
        .bind(task_id)
        .fetch_optional(&mut **tx)
        .await?
        else {
            return Ok(false);
        };
        let app_id: String = row.try_get(0)?;
        let kind = SendKind::parse(&row.try_get::<String, _>(1)?)
            .ok_or_else(|| Error::Internal("stored task kind".into()))?;
        let spec: TaskSpec = serde_json::from_str(&row.try_get::<String, _>(2)?)
            .map_err(|error| Error::Internal(error.to_string()))?;
        let expires_at: i64 = row.try_get(3)?;
        let after: Option<String> = row.try_get(4)?;
        let messages = sqlx::query(
            "SELECT id, target, content FROM push_messages WHERE task_id = $1 ORDER BY id",
        )
        .bind(task_id)
        .fetch_all(&mut **tx)
        .await?;
        let mut inserted = 0;
        let more = match &spec.audience {
            Some(audience) => {
                let Some(message) = messages.first() else {
                    return Err(Error::Internal(format!(
                        "broadcast {task_id} has no message"
                    )));
                };
                let msg_id: String = message.try_get(0)?;
                let content = Self::parse_content(&message.try_get::<String, _>(2)?)?;
                let rule = expand::compile_rule(audience.rule.as_deref(), task_id)?;
                let locked = started.elapsed();
                let (devices, last) = expand::broadcast_page(
                    &mut tx,
                    &app_id,
                    audience,
                    rule.as_ref(),
                    after.as_deref().unwrap_or(""),
                )
                .await?;
                let read = started.elapsed();
                inserted += expand::insert_deliveries(
                    &mut tx,
                    &DeliveryHead {
                        app_id: &app_id,
                        task_id,
                        kind,
                        msg_id: &msg_id,
                        collapse_key: content.collapse_key.as_deref(),
                        notify: !content.silent,
                        now,
                        expires_at,
                    },
                    &devices,
                )
                .await?;
                tracing::debug!(?locked, ?read, inserted_at = ?started.elapsed(), "push page");
                match last {
                    Some(last) => {
                        sqlx::query("UPDATE push_tasks SET expand_after = $2, updated_at = $3 WHERE id = $1")
                            .bind(task_id)
                            .bind(&last)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        true
                    }
                    None => false,
                }
            }
            None => {
                for message in &messages {
                    let msg_id: String = message.try_get(0)?;
                    let target: String = message.try_get(1)?;
                    let content = Self::parse_content(&message.try_get::<String, _>(2)?)?;
                    let devices =
                        expand::devices_of_target(&mut tx, &app_id, spec.target_type, &target)
                            .await?;
                    inserted += expand::insert_deliveries(
                        &mut tx,
                        &DeliveryHead {
                            app_id: &app_id,
                            task_id,
                            kind,
                            msg_id: &msg_id,
                            collapse_key: content.collapse_key.as_deref(),
                            notify: !content.silent,
                            now,
                            expires_at,
                        },
                        &devices,
                    )
                    .await?;
                }
                false
            }
        };
        if !more {
            sqlx::query("UPDATE push_tasks SET state = 'sending', updated_at = $2 WHERE id = $1")
                .bind(task_id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
        }
        let written = started.elapsed();
        tx.commit().await?;
        tracing::debug!(task_id, inserted, more, ?written, total = ?started.elapsed(), "push expansion step");
        if inserted > 0 {
            self.dispatcher.wake();
        }
        Ok(more)
    }

    /// Makes a child task for every due occurrence of a recurring task.
    async fn start_occurrences(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        let due = sqlx::query(
            "SELECT id FROM push_tasks WHERE state = 'recurring' AND next_run <= $1 LIMIT 100",
        )
        .bind(now)
        .fetch_all(self.store().pool())
        .await?;
        let mut started = 0;
        for row in due {
            let parent_id: String = row.try_get(0)?;
            if self.start_occurrence(&parent_id, now).await? {
                started += 1;
            }
        }
        Ok(started)
    }

    async fn start_occurrence(&self, parent_id: &str, now: i64) -> Result<bool> {
        let mut tx = self.store().begin_write().await?;
        let Some(row) = sqlx::query(&format!(
            "SELECT app_id, kind, name, spec, next_run FROM push_tasks WHERE id = $1 AND state = 'recurring' \
             AND next_run <= $2{}",
            self.store().lock_rows_clause()
        ))
        .bind(parent_id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?
        else {
            return Ok(false);
        };
        let app_id: String = row.try_get(0)?;
        let kind: String = row.try_get(1)?;
        let name: String = row.try_get(2)?;
        let spec: TaskSpec = serde_json::from_str(&row.try_get::<String, _>(3)?)
            .map_err(|error| Error::Internal(error.to_string()))?;
        let run: i64 = row.try_get(4)?;
        let recurrence = spec.recurrence.clone().ok_or_else(|| {
            Error::Internal(format!("recurring task {parent_id} has no schedule"))
        })?;
        // Occurrences missed while the server was down are not sent late in
        // a burst: the next one is the first after now.
        let next = schedule::next_after(&recurrence, run.max(now));
        sqlx::query(
            "UPDATE push_tasks SET next_run = $2, state = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(parent_id)
        .bind(next)
        .bind(if next.is_some() { "recurring" } else { "done" })
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let child_id = atoll_core::ids::new_id("pt");
        let expires_at = now + spec.expires_in_ms;
        let child_spec = TaskSpec {
            recurrence: None,
            ..spec.clone()
        };
        sqlx::query(
            "INSERT INTO push_tasks (id, app_id, kind, name, state, spec, parent_id, created_at, send_at, \
             expires_at, next_run, expand_after, updated_at) VALUES ($1, $2, $3, $4, 'expanding', $5, $6, $7, $7, $8, NULL, NULL, $7)",
        )
        .bind(&child_id)
        .bind(&app_id)
        .bind(&kind)
        .bind(&name)
        .bind(serde_json::to_string(&child_spec).map_err(|e| Error::Internal(e.to_string()))?)
        .bind(parent_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
        let messages = sqlx::query(
            "SELECT target_type, target, content FROM push_messages WHERE task_id = $1 ORDER BY id",
        )
        .bind(parent_id)
        .fetch_all(&mut **tx)
        .await?;
        for message in messages {
            sqlx::query(
                "INSERT INTO push_messages (id, app_id, task_id, msg_key, target_type, target, content, created_at, expires_at) \
                 VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8)",
            )
            .bind(crate::send::new_msg_id())
            .bind(&app_id)
            .bind(&child_id)
            .bind(message.try_get::<String, _>(0)?)
            .bind(message.try_get::<String, _>(1)?)
            .bind(message.try_get::<String, _>(2)?)
            .bind(now)
            .bind(expires_at)
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        self.dispatcher.wake_expander();
        Ok(true)
    }

    /// Cancels a scheduled or recurring task before it sends.
    pub async fn cancel_task(
        &self,
        principal: &atoll_platform::Principal,
        slug: &str,
        app_key: &str,
        task_id: &str,
    ) -> Result<()> {
        let access = self
            .platform
            .authorize_app(
                principal,
                slug,
                app_key,
                atoll_core::access::Requirement::write_with_scope(crate::SEND_SCOPE),
            )
            .await?;
        let now = self.clock.now_ms();
        let mut tx = self.store().begin_write().await?;
        let cancelled = sqlx::query(
            "UPDATE push_tasks SET state = 'cancelled', updated_at = $3 WHERE app_id = $1 AND id = $2 \
             AND (state = 'recurring' OR (state = 'expanding' AND send_at > $3))",
        )
        .bind(&access.app_id)
        .bind(task_id)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if cancelled == 0 {
            return Err(Error::Conflict(format!(
                "task '{task_id}' is not scheduled (unknown, or already sending)"
            )));
        }
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "push.task.cancel",
                "push_task",
                task_id,
                serde_json::json!({}),
            )
            .await?;
        Ok(())
    }

    /// Leases that ran out become due again; undelivered messages past their
    /// expiry become `expired`; tasks past the retention go.
    pub async fn sweep(&self) -> Result<()> {
        let now = self.clock.now_ms();
        let mut tx = self.store().begin_write().await?;
        let reclaimed = sqlx::query(
            "UPDATE push_deliveries SET state = 'pending', updated_at = $1 WHERE state = 'sending' AND due_at < $1",
        )
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        let groups = sqlx::query(
            "SELECT app_id, platform, channel, kind, COUNT(*) FROM push_deliveries \
             WHERE state IN ('pending', 'waiting') AND expires_at <= $1 GROUP BY app_id, platform, channel, kind",
        )
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
        let mut tally = Tally::default();
        for row in &groups {
            tally.add(
                &row.try_get::<String, _>(0)?,
                now,
                &row.try_get::<String, _>(1)?,
                &row.try_get::<String, _>(2)?,
                &row.try_get::<String, _>(3)?,
                Counter::Expired,
                row.try_get::<i64, _>(4)?,
            );
        }
        sqlx::query(
            "UPDATE push_deliveries SET state = 'expired', updated_at = $1 \
             WHERE state IN ('pending', 'waiting') AND expires_at <= $1",
        )
        .bind(now)
        .execute(&mut **tx)
        .await?;
        tally.write(&mut tx).await?;
        let horizon = now - self.config.retention_days as i64 * 86_400_000;
        sqlx::query(
            "DELETE FROM push_deliveries WHERE task_id IN (SELECT id FROM push_tasks WHERE created_at < $1 \
             AND state NOT IN ('recurring', 'expanding'))",
        )
        .bind(horizon)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "DELETE FROM push_tasks WHERE created_at < $1 AND state NOT IN ('recurring', 'expanding')",
        )
        .bind(horizon)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        if reclaimed > 0 {
            self.dispatcher.wake();
        }
        Ok(())
    }
}
