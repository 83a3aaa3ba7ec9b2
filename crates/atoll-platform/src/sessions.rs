//! Console users, logins, sessions and the login throttle.

use crate::error::check;
use crate::store::{self, USER_COLUMNS};
use crate::{audit, passwords, Error, PlatformService, Principal, Result};
use atoll_core::clock::Clock;
use atoll_core::{ids, validate};
use atoll_protocol::admin::{LoginResponse, User};
use serde_json::json;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Session bearer tokens start with this prefix; API tokens with `atk_`.
pub const SESSION_PREFIX: &str = "ats";
/// API token secrets start with this prefix.
pub const API_TOKEN_PREFIX: &str = "atk";

/// A console session: the user and the form token that guards against CSRF.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// The logged-in user.
    pub user: User,
    /// The per-session CSRF token every console form must echo.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at: i64,
}

/// Failed logins per email: after 5 failures each further attempt waits
/// 2^(n-5) seconds, up to 15 minutes. The table is capped; when full, the entries
/// whose wait is over are dropped first.
#[derive(Debug)]
pub struct LoginThrottle {
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

const FREE_FAILURES: u32 = 5;
const MAX_WAIT_SECS: i64 = 15 * 60;
const THROTTLE_CAPACITY: usize = 100_000;

impl LoginThrottle {
    /// An empty throttle.
    pub fn new(clock: Arc<dyn Clock>) -> LoginThrottle {
        LoginThrottle {
            clock,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, key: &str) -> Result<()> {
        let failures = self.failures.lock().expect("throttle lock");
        if let Some((_, blocked_until)) = failures.get(key) {
            let now = self.clock.now_ms();
            if *blocked_until > now {
                let retry_after_secs = ((*blocked_until - now) as u64).div_ceil(1000);
                return Err(Error::LoginThrottled { retry_after_secs });
            }
        }
        Ok(())
    }

    fn fail(&self, key: &str) {
        let now = self.clock.now_ms();
        let mut failures = self.failures.lock().expect("throttle lock");
        if failures.len() >= THROTTLE_CAPACITY {
            failures.retain(|_, (_, blocked_until)| *blocked_until > now);
            if failures.len() >= THROTTLE_CAPACITY {
                failures.clear();
            }
        }
        let entry = failures.entry(key.to_owned()).or_insert((0, 0));
        entry.0 += 1;
        if entry.0 >= FREE_FAILURES {
            let wait = (1_i64 << (entry.0 - FREE_FAILURES).min(20)).min(MAX_WAIT_SECS);
            entry.1 = now + wait * 1000;
        }
    }

    fn succeed(&self, key: &str) {
        self.failures.lock().expect("throttle lock").remove(key);
    }
}

impl PlatformService {
    pub(crate) async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.email = $1"
        ))
        .bind(email.trim().to_ascii_lowercase())
        .fetch_optional(self.store().pool())
        .await?;
        row.map(|row| Ok((store::user(&row)?, row.try_get(4)?)))
            .transpose()
    }

    /// A user by email.
    pub async fn find_user(&self, email: &str) -> Result<Option<User>> {
        Ok(self.user_by_email(email).await?.map(|(user, _)| user))
    }

    /// Creates a console user (email unique, argon2id password hash).
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password: &str,
        instance_admin: bool,
    ) -> Result<User> {
        let email = email.trim().to_ascii_lowercase();
        check(validate::email(&email))?;
        check(validate::display_name("name", name, 80))?;
        check(validate::password(password))?;
        let hash = passwords::hash(password.to_owned()).await?;
        let user = User {
            id: ids::new_id("usr"),
            email,
            name: name.trim().to_owned(),
            instance_admin,
        };
        let mut tx = self.store().begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, instance_admin, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(hash)
        .bind(i64::from(instance_admin))
        .bind(self.now())
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "a user {} already exists",
                user.email
            )));
        }
        audit::write(
            &mut tx,
            self.now(),
            audit::AuditRecord {
                workspace_id: None,
                actor: "system".into(),
                action: "user.create",
                object_type: "user",
                object_id: &user.id,
                summary: json!({"after": {"email": user.email, "instance_admin": instance_admin}}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Number of users on the instance (zero before the first start).
    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(self.store().pool())
            .await?
            .try_get(0)?)
    }

    /// Checks an email and password and opens a new session. Each login creates a
    /// fresh session (never reuses one), so a planted session id is worthless.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
    ) -> Result<(LoginResponse, ConsoleSession)> {
        let key = email.trim().to_ascii_lowercase();
        self.inner.login_throttle.check(&key)?;
        let found = self.user_by_email(&key).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), Some(hash)),
            None => (None, None),
        };
        let matches = passwords::verify(password.to_owned(), hash).await?;
        let Some(user) = user.filter(|_| matches) else {
            self.inner.login_throttle.fail(&key);
            metrics::counter!("atoll_login_failures_total").increment(1);
            return Err(Error::InvalidCredentials);
        };
        self.inner.login_throttle.succeed(&key);
        let token = ids::new_secret(SESSION_PREFIX);
        let csrf_token = ids::new_secret("csrf");
        let now = self.now();
        let expires_at = now + self.settings().session_ttl_secs * 1000;
        let mut tx = self.store().begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, token_hash, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(ids::new_id("ses"))
        .bind(&user.id)
        .bind(store::secret_hash(&token))
        .bind(&csrf_token)
        .bind(now)
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
        // Sessions per user are capped: the oldest beyond the cap end now.
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND id NOT IN \
             (SELECT id FROM sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
        )
        .bind(&user.id)
        .bind(i64::from(self.settings().max_sessions_per_user.max(1)))
        .execute(&mut **tx)
        .await?;
        tx.commit().await?;
        Ok((
            LoginResponse {
                token,
                expires_at,
                user: user.clone(),
            },
            ConsoleSession {
                user,
                csrf_token,
                expires_at,
            },
        ))
    }

    /// The session behind a session token.
    pub async fn session(&self, token: &str) -> Result<ConsoleSession> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, s.csrf_token, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2"
        ))
        .bind(store::secret_hash(token))
        .bind(self.now())
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| Error::Unauthenticated("session expired or unknown; log in again".into()))?;
        Ok(ConsoleSession {
            user: store::user(&row)?,
            csrf_token: row.try_get(4)?,
            expires_at: row.try_get(5)?,
        })
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<()> {
        let mut tx = self.store().begin_write().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(store::secret_hash(token))
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes expired sessions and audit entries past their retention (run
    /// periodically); returns how many rows of each went.
    pub async fn purge_expired(&self) -> Result<(u64, u64)> {
        let now = self.now();
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.store().pool())
            .await?
            .rows_affected();
        let cutoff = now - i64::from(self.settings().audit_retention_days) * 86_400_000;
        let audit = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(cutoff)
            .execute(self.store().pool())
            .await?
            .rows_affected();
        Ok((sessions, audit))
    }

    /// Resolves a bearer credential (session or API token) into a principal.
    pub async fn authenticate_bearer(&self, bearer: &str) -> Result<Principal> {
        if bearer.starts_with(&format!("{API_TOKEN_PREFIX}_")) {
            self.principal_for_api_token(bearer).await
        } else if bearer.starts_with(&format!("{SESSION_PREFIX}_")) {
            Ok(Principal::User(self.session(bearer).await?.user))
        } else {
            Err(Error::Unauthenticated("unrecognised bearer token".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_core::clock::FixedClock;

    #[test]
    fn throttle_backs_off_after_five_failures_and_resets_on_success() {
        let clock = Arc::new(FixedClock::new(1_000_000));
        let throttle = LoginThrottle::new(clock.clone());
        for _ in 0..4 {
            throttle.fail("a@b.c");
            assert!(throttle.check("a@b.c").is_ok());
        }
        throttle.fail("a@b.c");
        let Err(Error::LoginThrottled { retry_after_secs }) = throttle.check("a@b.c") else {
            panic!("expected throttling");
        };
        assert_eq!(retry_after_secs, 1);
        clock.advance_ms(1000);
        assert!(throttle.check("a@b.c").is_ok());
        throttle.fail("a@b.c");
        assert!(matches!(
            throttle.check("a@b.c"),
            Err(Error::LoginThrottled {
                retry_after_secs: 2
            })
        ));
        throttle.succeed("a@b.c");
        assert!(throttle.check("a@b.c").is_ok());
        assert!(throttle.check("other@b.c").is_ok());
    }
}
