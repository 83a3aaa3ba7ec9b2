//! Revoke (within 7 days of the send): deliveries not yet sent are recalled;
//! sent ones are withdrawn where the channel can — a `push_revoke` frame on
//! Atoll's connection, a replacement through APNs or HMS — and counted as not
//! revocable where it cannot (FCM, or a device offline on Atoll's channel).
//! Also the device side: reports of arrival, open and dismissal.

use crate::dispatch::notification;
use crate::expand::OWN_CHANNEL;
use crate::stats::{Counter, Tally};
use crate::{Error, PushService, Result, SEND_SCOPE};
use atoll_core::access::Requirement;
use atoll_platform::Principal;
use atoll_protocol::device::PushChannel;
use atoll_protocol::push::{limits, PushReport, RevokeRequest, RevokeResult};
use atoll_protocol::sync::ServerFrame;
use atoll_push_vendors::SendOutcome;
use sqlx::Row;
use std::sync::Arc;

impl PushService {
    /// Revokes one message (by id or business id) or every message of a task.
    pub async fn revoke(
        self: &Arc<Self>,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        request: RevokeRequest,
    ) -> Result<RevokeResult> {
        let access = self
            .platform
            .authorize_app(
                principal,
                slug,
                app_key,
                Requirement::write_with_scope(SEND_SCOPE),
            )
            .await?;
        let (column, value) = match (&request.msg_id, &request.msg_key, &request.task_id) {
            (Some(id), None, None) => ("id", id),
            (None, Some(key), None) => ("msg_key", key),
            (None, None, Some(task)) => ("task_id", task),
            _ => {
                return Err(Error::Invalid(
                    "give exactly one of msg_id, msg_key and task_id".into(),
                ))
            }
        };
        let messages = sqlx::query(&format!(
            "SELECT id, created_at, content, expires_at FROM push_messages WHERE app_id = $1 AND {column} = $2"
        ))
        .bind(&access.app_id)
        .bind(value)
        .fetch_all(self.store().pool())
        .await?;
        if messages.is_empty() {
            return Err(Error::NotFound(format!("push message or task '{value}'")));
        }
        let now = self.clock.now_ms();
        let mut result = RevokeResult {
            recalled: 0,
            withdrawn: 0,
            not_revocable: 0,
        };
        for message in &messages {
            let created_at: i64 = message.try_get(1)?;
            if now - created_at > limits::REVOKE_WINDOW_MS {
                return Err(Error::RevokeWindow(format!(
                    "'{value}' was sent more than 7 days ago and can no longer be revoked"
                )));
            }
        }
        let mut withdrawals = Vec::new();
        let mut tx = self.store().begin_write().await?;
        let mut tally = Tally::default();
        for message in &messages {
            let msg_id: String = message.try_get(0)?;
            let rows = sqlx::query(
                "SELECT device_id, state, channel, token, platform, kind FROM push_deliveries WHERE msg_id = $1 \
                 AND state IN ('pending', 'waiting', 'sending', 'sent', 'arrived')",
            )
            .bind(&msg_id)
            .fetch_all(&mut **tx)
            .await?;
            for row in &rows {
                let device_id: String = row.try_get(0)?;
                let state: String = row.try_get(1)?;
                let channel: String = row.try_get(2)?;
                let token: Option<String> = row.try_get(3)?;
                // Claimed for Atoll's channel but the device is not connected
                // here: it can only have been headed for `waiting`.
                let unsent = matches!(state.as_str(), "pending" | "waiting")
                    || (state == "sending"
                        && channel == OWN_CHANNEL
                        && self
                            .sync
                            .hub
                            .connection(&access.app_id, &device_id)
                            .is_none());
                if unsent {
                    result.recalled += 1;
                } else {
                    withdrawals.push((msg_id.clone(), device_id.clone(), channel.clone(), token));
                }
                tally.add(
                    &access.app_id,
                    now,
                    &row.try_get::<String, _>(4)?,
                    &channel,
                    &row.try_get::<String, _>(5)?,
                    Counter::Revoked,
                    1,
                );
            }
            sqlx::query(
                "UPDATE push_deliveries SET state = 'revoked', reason = 'revoked', updated_at = $2 \
                 WHERE msg_id = $1 AND state IN ('pending', 'waiting', 'sending', 'sent', 'arrived')",
            )
            .bind(&msg_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        tally.write(&mut tx).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "push.revoke",
                "push_message",
                value,
                serde_json::json!({ "by": column, "messages": messages.len() }),
            )
            .await?;
        // Withdraw what was sent: the connection now, vendors in the background.
        let contents: std::collections::HashMap<String, (crate::content::Content, i64)> = messages
            .iter()
            .map(|m| {
                Ok((
                    m.try_get::<String, _>(0)?,
                    (
                        Self::parse_content(&m.try_get::<String, _>(2)?)?,
                        m.try_get::<i64, _>(3)?,
                    ),
                ))
            })
            .collect::<Result<_>>()?;
        let mut vendor_jobs = Vec::new();
        for (msg_id, device_id, channel, token) in withdrawals {
            if channel == OWN_CHANNEL {
                match self.sync.hub.connection(&access.app_id, &device_id) {
                    Some(conn) => {
                        conn.push(atoll_sync::hub::encode_frame(&ServerFrame::PushRevoke {
                            msg_id,
                        }));
                        result.withdrawn += 1;
                    }
                    None => result.not_revocable += 1,
                }
                continue;
            }
            let vendor = PushChannel::parse(&channel);
            let has_collapse = contents
                .get(&msg_id)
                .is_some_and(|(content, _)| content.collapse_key.is_some());
            match (vendor, token) {
                (Some(PushChannel::Apns | PushChannel::Hms), Some(token)) if has_collapse => {
                    result.withdrawn += 1;
                    vendor_jobs.push((msg_id, vendor.expect("matched"), token));
                }
                _ => result.not_revocable += 1,
            }
        }
        if !vendor_jobs.is_empty() {
            let service = self.clone();
            let app_id = access.app_id.clone();
            tokio::spawn(async move {
                for (msg_id, channel, token) in vendor_jobs {
                    let Some(lane) = service.lane(&app_id, channel).await else {
                        continue;
                    };
                    let Some((content, expires_at)) = contents.get(&msg_id) else {
                        continue;
                    };
                    let Ok(_permit) = lane.permits.clone().acquire_owned().await else {
                        continue;
                    };
                    lane.rate().await;
                    let outcome = lane
                        .provider
                        .revoke(
                            &notification(&msg_id, *expires_at, content),
                            &token,
                            service.clock.now_ms(),
                        )
                        .await;
                    if !matches!(outcome, SendOutcome::Accepted { .. }) {
                        tracing::info!(?outcome, msg_id, "a vendor revoke did not go through");
                    }
                }
            });
        }
        Ok(result)
    }

    /// A device reports arrival (through a vendor), open or dismissal of its
    /// own messages (≤ 100 per report); durable before the answer.
    pub async fn report(&self, app_id: &str, device_id: &str, report: PushReport) -> Result<()> {
        if report.msg_ids.is_empty() || report.msg_ids.len() > 100 {
            return Err(Error::Invalid("report 1 to 100 msg_ids".into()));
        }
        if report
            .msg_ids
            .iter()
            .any(|id| id.is_empty() || id.len() > 64)
        {
            return Err(Error::Invalid("a msg_id is 1 to 64 bytes".into()));
        }
        let now = self.clock.now_ms();
        let mut tally = Tally::default();
        let mut receipts = Vec::new();
        let mut tx = self.store().begin_write().await?;
        crate::dispatch::apply_report(
            &mut tx,
            &mut tally,
            &mut receipts,
            app_id,
            device_id,
            &report.msg_ids,
            report.event,
            now,
        )
        .await?;
        tally.write(&mut tx).await?;
        tx.commit().await?;
        self.emit_receipts(receipts).await;
        Ok(())
    }
}
