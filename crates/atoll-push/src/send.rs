//! The send API: simple, template, multiple and broadcast pushes become a task
//! and its messages in one transaction. Business message ids make a send
//! idempotent per target; an immediate targeted send also gets its
//! deliveries in that transaction, so the answer means "durable and queued".

use crate::content::{self, Content};
use crate::expand::{self, Audience, DeliveryHead};
use crate::{schedule, Error, PushService, Result, SEND_SCOPE};
use atoll_core::access::Requirement;
use atoll_platform::{AppAccess, Principal};
use atoll_protocol::push::{
    limits, BroadcastPush, ClickAction, MessageResult, MultiplePush, Recurrence, SendKind,
    SendOptions, SendResult, SimplePush, TargetType, TemplatePush,
};
use atoll_protocol::sync::{DUPLICATED_BIZ_ID, RESULT_OK};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

/// What a task stores besides its columns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Title of the first message (for lists).
    pub title: String,
    /// Body of the first message.
    pub body: String,
    /// Whom the targets name.
    #[serde(default)]
    pub target_type: TargetType,
    /// A broadcast's audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
    /// A recurring task's schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// Validity of each send (ms).
    pub expires_in_ms: i64,
}

/// One planned message.
struct Planned {
    target: String,
    msg_key: Option<String>,
    content: Content,
}

/// A send before it is stored.
struct Plan {
    kind: SendKind,
    target_type: TargetType,
    options: SendOptions,
    messages: Vec<Planned>,
    audience: Option<Audience>,
}

fn check_targets(count: usize, max: usize, kind: SendKind) -> Result<()> {
    if count == 0 {
        return Err(Error::Invalid("at least one target is needed".into()));
    }
    if count > max {
        return Err(Error::TooManyTargets(format!(
            "a {} push has at most {max} targets; got {count}",
            kind.as_str()
        )));
    }
    Ok(())
}

fn check_target_id(target: &str) -> Result<()> {
    if target.is_empty() || target.len() > 128 || target.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "target '{target}' must be 1 to 128 bytes without control characters"
        )));
    }
    Ok(())
}

/// A template's URL becomes the click action unless the send sets one.
fn with_template_url(mut options: SendOptions, url: Option<String>) -> SendOptions {
    if options.click.is_none() {
        if let Some(url) = url {
            options.click = Some(
                if url.starts_with("http://") || url.starts_with("https://") {
                    ClickAction::Url(url)
                } else {
                    ClickAction::DeepLink(url)
                },
            );
        }
    }
    options
}

/// One message per target, all saying the same.
fn same_content(targets: Vec<atoll_protocol::push::PushTarget>, content: &Content) -> Vec<Planned> {
    targets
        .into_iter()
        .map(|t| Planned {
            target: t.target,
            msg_key: t.msg_key,
            content: content.clone(),
        })
        .collect()
}

pub(crate) fn new_msg_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

impl PushService {
    async fn authorize_send(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
    ) -> Result<AppAccess> {
        Ok(self
            .platform
            .authorize_app(
                principal,
                slug,
                app_key,
                Requirement::write_with_scope(SEND_SCOPE),
            )
            .await?)
    }

    /// A simple push (`push:send`).
    pub async fn send_simple(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        push: SimplePush,
    ) -> Result<SendResult> {
        let access = self.authorize_send(principal, slug, app_key).await?;
        check_targets(
            push.targets.len(),
            limits::MAX_SIMPLE_TARGETS,
            SendKind::Simple,
        )?;
        let content = Content::new(push.title, push.body, &push.options);
        let messages = same_content(push.targets, &content);
        self.accept(
            &access,
            Plan {
                kind: SendKind::Simple,
                target_type: push.target_type,
                options: push.options,
                messages,
                audience: None,
            },
        )
        .await
    }

    /// A template push (`push:send`).
    pub async fn send_template(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        push: TemplatePush,
    ) -> Result<SendResult> {
        let access = self.authorize_send(principal, slug, app_key).await?;
        check_targets(
            push.targets.len(),
            limits::MAX_SIMPLE_TARGETS,
            SendKind::Template,
        )?;
        let template = self.template(&access.app_id, &push.template).await?;
        let (title, body, url) = content::fill_template(&template.spec, &push.values)?;
        let options = with_template_url(push.options, url);
        let content = Content::new(title, body, &options);
        let messages = same_content(push.targets, &content);
        self.accept(
            &access,
            Plan {
                kind: SendKind::Template,
                target_type: push.target_type,
                options,
                messages,
                audience: None,
            },
        )
        .await
    }

    /// A multiple push: one template, values per target (`push:send`).
    pub async fn send_multiple(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        push: MultiplePush,
    ) -> Result<SendResult> {
        let access = self.authorize_send(principal, slug, app_key).await?;
        check_targets(
            push.targets.len(),
            limits::MAX_MULTIPLE_TARGETS,
            SendKind::Multiple,
        )?;
        let template = self.template(&access.app_id, &push.template).await?;
        let mut messages = Vec::with_capacity(push.targets.len());
        for (index, target) in push.targets.into_iter().enumerate() {
            let (title, body, url) = content::fill_template(&template.spec, &target.values)
                .map_err(|error| match error {
                    Error::TemplateValues(detail) => {
                        Error::TemplateValues(format!("targets[{index}]: {detail}"))
                    }
                    other => other,
                })?;
            let options = with_template_url(push.options.clone(), url);
            let mut content = Content::new(title, body, &options);
            content.extras.extend(target.extras);
            messages.push(Planned {
                target: target.target,
                msg_key: target.msg_key,
                content,
            });
        }
        self.accept(
            &access,
            Plan {
                kind: SendKind::Multiple,
                target_type: push.target_type,
                options: push.options,
                messages,
                audience: None,
            },
        )
        .await
    }

    /// A broadcast to every matching device of the app (`push:send`). The
    /// devices are expanded in the background, a page at a time.
    pub async fn send_broadcast(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        push: BroadcastPush,
    ) -> Result<SendResult> {
        let access = self.authorize_send(principal, slug, app_key).await?;
        let (title, body, options) = match &push.template {
            Some(name) => {
                let template = self.template(&access.app_id, name).await?;
                let (title, body, url) = content::fill_template(&template.spec, &push.values)?;
                (title, body, with_template_url(push.options, url))
            }
            None => (push.title, push.body, push.options),
        };
        // Checked now so that a bad rule fails the request, not the task.
        expand::compile_rule(push.rule.as_deref(), "check")?;
        let content = Content::new(title, body, &options);
        self.accept(
            &access,
            Plan {
                kind: SendKind::Broadcast,
                target_type: TargetType::Device,
                options,
                messages: vec![Planned {
                    target: String::new(),
                    msg_key: push.msg_key,
                    content,
                }],
                audience: Some(Audience {
                    platform: push.platform.map(|p| p.as_str().to_owned()),
                    binding: push.binding,
                    rule: push.rule,
                }),
            },
        )
        .await
    }

    async fn accept(&self, access: &AppAccess, plan: Plan) -> Result<SendResult> {
        let now = self.clock.now_ms();
        let expires_in_ms = content::expiry_ms(&plan.options)?;
        for message in &plan.messages {
            if plan.audience.is_none() {
                check_target_id(&message.target)?;
            }
            if let Some(key) = &message.msg_key {
                content::check_msg_key(key)?;
            }
            message.content.check()?;
        }
        let mut keys: Vec<&str> = plan
            .messages
            .iter()
            .filter_map(|m| m.msg_key.as_deref())
            .collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Invalid(
                "msg_key values repeat within the request".into(),
            ));
        }
        let send_at = match plan.options.send_at_ms {
            Some(at) if at < now - 60_000 => {
                return Err(Error::Invalid("send_at_ms is in the past".into()))
            }
            Some(at) if at > now + limits::MAX_SCHEDULE_AHEAD_DAYS * 86_400_000 => {
                return Err(Error::Invalid(format!(
                    "send_at_ms is at most {} days ahead",
                    limits::MAX_SCHEDULE_AHEAD_DAYS
                )))
            }
            Some(at) => at.max(now),
            None => now,
        };
        if let Some(recurrence) = &plan.options.recurrence {
            if plan.options.send_at_ms.is_some() {
                return Err(Error::Invalid(
                    "give either send_at_ms or recurrence, not both".into(),
                ));
            }
            schedule::check(recurrence, now)?;
        }
        let (state, next_run) = match &plan.options.recurrence {
            Some(recurrence) => ("recurring", schedule::next_after(recurrence, now - 1)),
            None if plan.audience.is_some() || send_at > now => ("expanding", None),
            None => ("sending", None),
        };
        let task_id = atoll_core::ids::new_id("pt");
        let expires_at = send_at + expires_in_ms;
        let first = &plan.messages[0].content;
        let spec = TaskSpec {
            title: first.title.clone(),
            body: first.body.clone(),
            target_type: plan.target_type,
            audience: plan.audience.clone(),
            recurrence: plan.options.recurrence.clone(),
            expires_in_ms,
        };
        let name = plan
            .options
            .task_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("{} push", plan.kind.as_str()));
        if name.chars().count() > 200 {
            return Err(Error::Invalid("task_name is at most 200 characters".into()));
        }

        let mut tx = self.store().begin_write().await?;
        let existing = existing_keys(&mut tx, &access.app_id, &keys).await?;
        let mut results = Vec::with_capacity(plan.messages.len());
        let mut fresh = Vec::new();
        for message in &plan.messages {
            match message
                .msg_key
                .as_ref()
                .and_then(|k| existing.iter().find(|e| &e.0 == k))
            {
                Some((_, msg_id)) => results.push(MessageResult {
                    target: message.target.clone(),
                    msg_key: message.msg_key.clone(),
                    msg_id: msg_id.clone(),
                    devices: 0,
                    result_code: DUPLICATED_BIZ_ID.into(),
                }),
                None => {
                    fresh.push(results.len());
                    results.push(MessageResult {
                        target: message.target.clone(),
                        msg_key: message.msg_key.clone(),
                        msg_id: new_msg_id(),
                        devices: 0,
                        result_code: RESULT_OK.into(),
                    });
                }
            }
        }
        if fresh.is_empty() {
            // Every message was sent before: answer with the first send's task.
            let task_id = first_task_of(&mut tx, &results[0].msg_id).await?;
            return Ok(SendResult {
                task_id,
                state: "duplicate".into(),
                messages: results,
            });
        }
        sqlx::query(
            "INSERT INTO push_tasks (id, app_id, kind, name, state, spec, parent_id, created_at, send_at, \
             expires_at, next_run, expand_after, updated_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9, $10, NULL, $7)",
        )
        .bind(&task_id)
        .bind(&access.app_id)
        .bind(plan.kind.as_str())
        .bind(&name)
        .bind(state)
        .bind(serde_json::to_string(&spec).map_err(|e| Error::Internal(e.to_string()))?)
        .bind(now)
        .bind(send_at)
        .bind(expires_at)
        .bind(next_run)
        .execute(&mut **tx)
        .await?;
        for &index in &fresh {
            let message = &plan.messages[index];
            let msg_id = results[index].msg_id.clone();
            let inserted = sqlx::query(
                "INSERT INTO push_messages (id, app_id, task_id, msg_key, target_type, target, content, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(&msg_id)
            .bind(&access.app_id)
            .bind(&task_id)
            .bind(&message.msg_key)
            .bind(plan.target_type.as_str())
            .bind(&message.target)
            .bind(serde_json::to_string(&message.content).map_err(|e| Error::Internal(e.to_string()))?)
            .bind(now)
            .bind(expires_at)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                // A concurrent send with the same business id committed first
                // (PostgreSQL): answer with its message.
                let key = message.msg_key.as_deref().unwrap_or_default();
                let found = existing_keys(&mut tx, &access.app_id, &[key]).await?;
                let (_, first) = found
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::Internal("a message vanished".into()))?;
                results[index].msg_id = first;
                results[index].result_code = DUPLICATED_BIZ_ID.into();
                continue;
            }
            if state == "sending" {
                let devices = expand::devices_of_target(
                    &mut tx,
                    &access.app_id,
                    plan.target_type,
                    &message.target,
                )
                .await?;
                results[index].devices = expand::insert_deliveries(
                    &mut tx,
                    &DeliveryHead {
                        app_id: &access.app_id,
                        task_id: &task_id,
                        kind: plan.kind,
                        msg_id: &msg_id,
                        collapse_key: message.content.collapse_key.as_deref(),
                        notify: !message.content.silent,
                        now,
                        expires_at,
                    },
                    &devices,
                )
                .await?;
            }
        }
        tx.commit().await?;
        let targeted: u64 = results.iter().map(|r| r.devices).sum();
        metrics::counter!("atoll_push_sends_total", "kind" => plan.kind.as_str()).increment(1);
        if targeted > 0 {
            self.dispatcher.wake();
        }
        if state != "sending" {
            self.dispatcher.wake_expander();
        }
        let shown = match state {
            "expanding" if send_at > now => "scheduled",
            other => other,
        };
        Ok(SendResult {
            task_id,
            state: shown.into(),
            messages: results,
        })
    }
}

/// The messages already sent with these business ids: (key, msg id).
async fn existing_keys(
    conn: &mut AnyConnection,
    app_id: &str,
    keys: &[&str],
) -> Result<Vec<(String, String)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT msg_key, id FROM push_messages WHERE app_id = $1 AND msg_key IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(app_id);
    for key in keys {
        query = query.bind(*key);
    }
    query
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

async fn first_task_of(conn: &mut AnyConnection, msg_id: &str) -> Result<String> {
    Ok(
        sqlx::query("SELECT task_id FROM push_messages WHERE id = $1")
            .bind(msg_id)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?,
    )
}
