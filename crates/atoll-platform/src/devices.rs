//! Device identity: registration, user binding, push tokens, and admin lookups.

use crate::{DeviceCaller, Error, PlatformService, Principal, Result};
use atoll_core::access::Requirement;
use atoll_core::validate;
use atoll_protocol::admin::{AppUser, Device, PushToken};
use atoll_protocol::device::{
    BindingResponse, Platform, PushChannel, PushTokenRequest, RegisterRequest, RegisterResponse,
};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::sync::Arc;

/// A registering device as the store knows it.
enum Prior {
    /// Registered with this description and seen recently: nothing to write.
    Unchanged(RegisterResponse),
    /// Registered, with something to update.
    Changed,
    /// Not registered yet.
    Missing,
}

/// `last_seen_at` is kept to this precision: a device registering again
/// unchanged within it costs no write.
pub const LAST_SEEN_GRANULARITY_MS: i64 = 60_000;

const DEVICE_COLUMNS: &str =
    "d.device_id, d.platform, d.os, d.os_version, d.model, d.app_version, \
     d.channel, d.locale, d.region, d.network, d.user_id, d.first_seen_at, d.last_seen_at";

fn device_row(row: &AnyRow, app_key: &str) -> Result<Device, sqlx::Error> {
    Ok(Device {
        device_id: row.try_get(0)?,
        app_key: app_key.to_owned(),
        platform: row
            .try_get::<Option<String>, _>(1)?
            .as_deref()
            .and_then(Platform::parse),
        os: row.try_get(2)?,
        os_version: row.try_get(3)?,
        model: row.try_get(4)?,
        app_version: row.try_get(5)?,
        channel: row.try_get(6)?,
        locale: row.try_get(7)?,
        region: row.try_get(8)?,
        network: row.try_get(9)?,
        user_id: row.try_get(10)?,
        first_seen_at: row.try_get(11)?,
        last_seen_at: row.try_get(12)?,
        push_tokens: Vec::new(),
    })
}

/// How many devices an app has, and when one was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDeviceCount {
    /// The app key.
    pub app_key: String,
    /// Registered devices.
    pub devices: i64,
    /// The latest activity of any of them.
    pub last_seen_at: Option<i64>,
}

impl PlatformService {
    /// Device counts of every app of a workspace, in one query.
    pub async fn device_counts(
        &self,
        principal: &Principal,
        slug: &str,
    ) -> Result<Vec<AppDeviceCount>> {
        let ctx = self.authorize(principal, slug, Requirement::READ).await?;
        let rows = sqlx::query(
            "SELECT a.app_key, COUNT(d.device_id), MAX(d.last_seen_at) FROM apps a \
             LEFT JOIN devices d ON d.app_id = a.id WHERE a.workspace_id = $1 GROUP BY a.app_key",
        )
        .bind(&ctx.workspace_id)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AppDeviceCount {
                    app_key: row.try_get(0)?,
                    devices: row.try_get(1)?,
                    last_seen_at: row.try_get(2)?,
                })
            })
            .collect()
    }

    /// Registers a device, or updates its description if it exists.
    pub async fn register_device(
        &self,
        caller: &DeviceCaller,
        request: RegisterRequest,
    ) -> Result<RegisterResponse> {
        for (field, value) in [
            ("os", &request.os),
            ("os_version", &request.os_version),
            ("model", &request.model),
            ("app_version", &request.app_version),
            ("channel", &request.channel),
            ("locale", &request.locale),
            ("region", &request.region),
            ("network", &request.network),
        ] {
            validate::attribute(field, value.as_deref()).map_err(Error::Validation)?;
        }
        let now = self.now();
        // Apps register on every launch, nearly always with the same description:
        // then a read answers, with no write, no writer lock and no fsync.
        let existed = match self.prior_registration(caller, &request, now).await? {
            Prior::Unchanged(answer) => {
                metrics::counter!("atoll_device_registrations_total", "write" => "false")
                    .increment(1);
                return Ok(answer);
            }
            Prior::Changed => true,
            Prior::Missing => false,
        };
        // One statement writes and reads back what the answer needs (two first
        // registrations racing may both say `created`; the row is still one).
        let mut tx = self.store().begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO devices (app_id, device_id, platform, os, os_version, model, app_version, channel, \
             locale, region, network, first_seen_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
             ON CONFLICT (app_id, device_id) DO UPDATE SET platform = excluded.platform, os = excluded.os, \
             os_version = excluded.os_version, model = excluded.model, app_version = excluded.app_version, \
             channel = excluded.channel, locale = excluded.locale, region = excluded.region, \
             network = excluded.network, last_seen_at = excluded.last_seen_at \
             RETURNING first_seen_at, user_id",
        )
        .bind(&caller.app_id)
        .bind(&caller.device_id)
        .bind(request.platform.map(|platform| platform.as_str()))
        .bind(request.os)
        .bind(request.os_version)
        .bind(request.model)
        .bind(request.app_version)
        .bind(request.channel)
        .bind(request.locale)
        .bind(request.region)
        .bind(request.network)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        let first_seen_at: i64 = row.try_get(0)?;
        if let Some(user_id) = row.try_get::<Option<String>, _>(1)? {
            self.touch_app_user(&mut tx, caller, &user_id, now).await?;
        }
        tx.commit().await?;
        self.profiles().forget(&caller.app_id, &caller.device_id);
        metrics::counter!("atoll_device_registrations_total", "write" => "true").increment(1);
        let created = !existed;
        Ok(RegisterResponse {
            device_id: caller.device_id.clone(),
            created,
            first_seen_at,
            server_time: now,
        })
    }

    /// What the store holds of a registering device: the same description seen
    /// within [`LAST_SEEN_GRANULARITY_MS`] (then this read is the whole answer),
    /// something to update, or nothing yet.
    async fn prior_registration(
        &self,
        caller: &DeviceCaller,
        request: &RegisterRequest,
        now: i64,
    ) -> Result<Prior> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.app_id = $1 AND d.device_id = $2"
        ))
        .bind(&caller.app_id)
        .bind(&caller.device_id)
        .fetch_optional(self.store().pool())
        .await?
        else {
            return Ok(Prior::Missing);
        };
        let stored = device_row(&row, &caller.app_key)?;
        let same = stored.platform == request.platform
            && stored.os == request.os
            && stored.os_version == request.os_version
            && stored.model == request.model
            && stored.app_version == request.app_version
            && stored.channel == request.channel
            && stored.locale == request.locale
            && stored.region == request.region
            && stored.network == request.network;
        let fresh = now - stored.last_seen_at < LAST_SEEN_GRANULARITY_MS;
        Ok(if same && fresh {
            Prior::Unchanged(RegisterResponse {
                device_id: caller.device_id.clone(),
                created: false,
                first_seen_at: stored.first_seen_at,
                server_time: now,
            })
        } else {
            Prior::Changed
        })
    }

    async fn touch_app_user(
        &self,
        tx: &mut atoll_store::WriteTx,
        caller: &DeviceCaller,
        user_id: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_users (app_id, user_id, most_recent_device, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app_id, user_id) DO UPDATE SET most_recent_device = excluded.most_recent_device, \
             updated_at = excluded.updated_at",
        )
        .bind(&caller.app_id)
        .bind(user_id)
        .bind(&caller.device_id)
        .bind(now)
        .execute(&mut ***tx)
        .await?;
        Ok(())
    }

    async fn require_device(
        &self,
        tx: &mut atoll_store::WriteTx,
        caller: &DeviceCaller,
    ) -> Result<Option<String>> {
        let row = sqlx::query(&format!(
            "SELECT user_id FROM devices WHERE app_id = $1 AND device_id = $2{}",
            self.store().lock_rows_clause()
        ))
        .bind(&caller.app_id)
        .bind(&caller.device_id)
        .fetch_optional(&mut ***tx)
        .await?
        .ok_or(Error::UnknownDevice)?;
        Ok(row.try_get(0)?)
    }

    /// Binds the app's user to this device; the device becomes the user's most recent.
    pub async fn bind_user(&self, caller: &DeviceCaller, user_id: &str) -> Result<BindingResponse> {
        validate::device_text_id("user_id", user_id).map_err(Error::Validation)?;
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let previous = self.require_device(&mut tx, caller).await?;
        sqlx::query(
            "UPDATE devices SET user_id = $1, bound_at = $2, last_seen_at = $2 WHERE app_id = $3 AND device_id = $4",
        )
        .bind(user_id)
        .bind(now)
        .bind(&caller.app_id)
        .bind(&caller.device_id)
        .execute(&mut **tx)
        .await?;
        if let Some(previous) = previous.filter(|previous| previous != user_id) {
            self.forget_most_recent(&mut tx, caller, &previous).await?;
        }
        self.touch_app_user(&mut tx, caller, user_id, now).await?;
        tx.commit().await?;
        self.profiles().forget(&caller.app_id, &caller.device_id);
        Ok(BindingResponse {
            device_id: caller.device_id.clone(),
            user_id: Some(user_id.to_owned()),
        })
    }

    /// Unbinds whatever user is bound to this device.
    pub async fn unbind_user(&self, caller: &DeviceCaller) -> Result<BindingResponse> {
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let previous = self.require_device(&mut tx, caller).await?;
        sqlx::query(
            "UPDATE devices SET user_id = NULL, bound_at = NULL, last_seen_at = $1 WHERE app_id = $2 AND device_id = $3",
        )
        .bind(now)
        .bind(&caller.app_id)
        .bind(&caller.device_id)
        .execute(&mut **tx)
        .await?;
        if let Some(previous) = previous {
            self.forget_most_recent(&mut tx, caller, &previous).await?;
        }
        tx.commit().await?;
        self.profiles().forget(&caller.app_id, &caller.device_id);
        Ok(BindingResponse {
            device_id: caller.device_id.clone(),
            user_id: None,
        })
    }

    /// After `user_id` left this device, points its "most recent device" at the
    /// device it was bound to most recently among those still bound.
    async fn forget_most_recent(
        &self,
        tx: &mut atoll_store::WriteTx,
        caller: &DeviceCaller,
        user_id: &str,
    ) -> Result<()> {
        let next: Option<String> = sqlx::query(
            "SELECT device_id FROM devices WHERE app_id = $1 AND user_id = $2 \
             ORDER BY bound_at DESC, device_id LIMIT 1",
        )
        .bind(&caller.app_id)
        .bind(user_id)
        .fetch_optional(&mut ***tx)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        sqlx::query("UPDATE app_users SET most_recent_device = $1, updated_at = $2 WHERE app_id = $3 AND user_id = $4")
            .bind(next)
            .bind(self.now())
            .bind(&caller.app_id)
            .bind(user_id)
            .execute(&mut ***tx)
            .await?;
        Ok(())
    }

    /// Stores this device's token for one push channel.
    pub async fn set_push_token(
        &self,
        caller: &DeviceCaller,
        request: PushTokenRequest,
    ) -> Result<()> {
        if request.token.is_empty() || request.token.len() > 4096 || !request.token.is_ascii() {
            return Err(Error::Validation("token: 1-4096 ASCII characters".into()));
        }
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        self.require_device(&mut tx, caller).await?;
        sqlx::query(
            "INSERT INTO device_push_tokens (app_id, device_id, channel, token, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, device_id, channel) DO UPDATE SET token = excluded.token, updated_at = excluded.updated_at",
        )
        .bind(&caller.app_id)
        .bind(&caller.device_id)
        .bind(request.channel.as_str())
        .bind(&request.token)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn push_tokens(&self, app_id: &str, device_id: &str) -> Result<Vec<PushToken>> {
        let rows = sqlx::query(
            "SELECT channel, token, updated_at FROM device_push_tokens WHERE app_id = $1 AND device_id = $2 ORDER BY channel",
        )
        .bind(app_id)
        .bind(device_id)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .filter_map(|row| {
                let channel = row
                    .try_get::<String, _>(0)
                    .ok()
                    .and_then(|c| PushChannel::parse(&c))?;
                Some(Ok(PushToken {
                    channel,
                    token: row.try_get(1).ok()?,
                    updated_at: row.try_get(2).ok()?,
                }))
            })
            .collect()
    }

    /// A device as its own signed requests see it (the signature already proved
    /// who is asking), without push tokens: modules use it to add context.
    /// Cached (see `profiles`): a change on this node is seen at once, one on
    /// another node within 30 s; `last_seen_at` may be that old.
    pub async fn device_profile(&self, caller: &DeviceCaller) -> Result<Option<Arc<Device>>> {
        if let Some(profile) = self.profiles().get(&caller.app_id, &caller.device_id) {
            return Ok(profile);
        }
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.app_id = $1 AND d.device_id = $2"
        ))
        .bind(&caller.app_id)
        .bind(&caller.device_id)
        .fetch_optional(self.store().pool())
        .await?;
        let profile = row
            .map(|row| device_row(&row, &caller.app_key))
            .transpose()?
            .map(Arc::new);
        self.profiles()
            .put(&caller.app_id, &caller.device_id, profile.clone());
        Ok(profile)
    }

    /// One device of an app, with its push tokens.
    pub async fn get_device(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        device_id: &str,
    ) -> Result<Device> {
        let ctx = self.authorize(principal, slug, Requirement::READ).await?;
        let app = self.app_in(&ctx, app_key).await?;
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.app_id = $1 AND d.device_id = $2"
        ))
        .bind(&app.id)
        .bind(device_id)
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| Error::NotFound(format!("device '{device_id}'")))?;
        let mut device = device_row(&row, app_key)?;
        device.push_tokens = self.push_tokens(&app.id, device_id).await?;
        Ok(device)
    }

    /// A user of an app with the devices bound to them.
    pub async fn get_app_user(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        user_id: &str,
    ) -> Result<AppUser> {
        let ctx = self.authorize(principal, slug, Requirement::READ).await?;
        let app = self.app_in(&ctx, app_key).await?;
        let most_recent_device: Option<String> = sqlx::query(
            "SELECT most_recent_device FROM app_users WHERE app_id = $1 AND user_id = $2",
        )
        .bind(&app.id)
        .bind(user_id)
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| Error::NotFound(format!("user '{user_id}'")))?
        .try_get(0)?;
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.app_id = $1 AND d.user_id = $2 \
             ORDER BY d.bound_at DESC LIMIT 100"
        ))
        .bind(&app.id)
        .bind(user_id)
        .fetch_all(self.store().pool())
        .await?;
        let mut devices = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut device = device_row(row, app_key)?;
            device.push_tokens = self.push_tokens(&app.id, &device.device_id).await?;
            devices.push(device);
        }
        Ok(AppUser {
            user_id: user_id.to_owned(),
            most_recent_device,
            devices,
        })
    }

    /// The most recently seen devices of an app (for the console's device list).
    pub async fn recent_devices(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        limit: u32,
    ) -> Result<Vec<Device>> {
        let ctx = self.authorize(principal, slug, Requirement::READ).await?;
        let app = self.app_in(&ctx, app_key).await?;
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.app_id = $1 ORDER BY d.last_seen_at DESC LIMIT $2"
        ))
        .bind(&app.id)
        .bind(i64::from(limit.clamp(1, 200)))
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|row| Ok(device_row(row, app_key)?))
            .collect()
    }
}
