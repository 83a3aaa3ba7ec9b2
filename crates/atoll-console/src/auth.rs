//! Login, logout, the session extractor and the two CSRF checks.
//!
//! - Logged-in forms echo the session's CSRF token (kept server-side with the
//!   session) in a hidden `csrf_token` field; [`Authed::check_csrf`] compares it in
//!   constant time. A cross-site page can make the browser send our cookie, but
//!   cannot read the token, so it cannot forge the field.
//! - The login form comes before any session, so it uses a double-submit token: a
//!   random `atoll_login_csrf` cookie and the same value in a hidden field. A
//!   cross-site form cannot set or read our cookie, so it cannot make the two
//!   match; this stops "login CSRF" (logging a victim into an attacker's account).

use crate::time::format_wait;
use crate::view::{self, asset_version};
use crate::{ConsoleState, SESSION_COOKIE};
use askama::Template;
use atoll_platform::{ConsoleSession, Error, Principal};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Cookie of the login form's double-submit CSRF token.
pub const LOGIN_CSRF_COOKIE: &str = "atoll_login_csrf";

/// Constant-time equality, so the time a comparison takes does not tell an
/// attacker how many leading characters of a guessed token were right. Lengths
/// are public (every token has the same length), so a length mismatch may return
/// early. An empty expected value never matches.
pub fn tokens_match(sent: &str, expected: &str) -> bool {
    !expected.is_empty()
        && sent.len() == expected.len()
        && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// The value of one cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the browser reached us over https: directly, or through a
/// TLS-terminating proxy that says so. Cookies get `Secure` only then, because a
/// `Secure` cookie set over plain http (e.g. `atoll demo` on localhost) would never
/// be sent back and login would silently loop.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>, https: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/");
    if let Some(max_age) = max_age {
        cookie.push_str(&format!("; Max-Age={max_age}"));
    }
    if https {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("cookie values are base64url")
}

/// Only local paths may be a post-login destination: an absolute or
/// scheme-relative URL there would make the login page an open redirect.
pub fn safe_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= 2000;
    local.then_some(next)
}

/// A logged-in console user (extracted from the session cookie; pages without
/// one redirect to the login form).
#[derive(Debug, Clone)]
pub struct Authed {
    /// The session (user and CSRF token).
    pub session: ConsoleSession,
}

impl Authed {
    /// The platform principal the console acts as.
    pub fn principal(&self) -> Principal {
        Principal::User(self.session.user.clone())
    }

    /// Checks a form's `csrf_token` field; a mismatch answers the 403 page.
    #[allow(clippy::result_large_err)] // a Response is the natural early-exit of a handler
    pub fn check_csrf(&self, sent: &str) -> Result<(), Response> {
        if tokens_match(sent, &self.session.csrf_token) {
            Ok(())
        } else {
            tracing::warn!(user = %self.session.user.email, "console form failed its CSRF check");
            Err(view::csrf_failed())
        }
    }
}

impl FromRequestParts<ConsoleState> for Authed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || {
            // Come back here after logging in, when "here" is a page (GET).
            let next = parts
                .uri
                .path_and_query()
                .map(|path| path.as_str())
                .filter(|_| parts.method == axum::http::Method::GET)
                .filter(|path| *path != "/");
            let target = match next {
                Some(next) => format!("/login?next={}", view::encode_query(next)),
                None => "/login".to_owned(),
            };
            Redirect::to(&target).into_response()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        match state.platform.session(token).await {
            Ok(session) => Ok(Authed { session }),
            Err(Error::Unauthenticated(_)) => {
                let mut response = to_login();
                response.headers_mut().append(
                    header::SET_COOKIE,
                    set_cookie(SESSION_COOKIE, "", Some(0), over_https(&parts.headers)),
                );
                Err(response)
            }
            Err(error) => Err(view::bare_error(&error)),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    asset_version: &'static str,
    csrf_token: String,
    next: String,
    email: String,
    error: Option<String>,
}

/// Renders the login form with a fresh double-submit token in field and cookie.
fn login_form(
    status: StatusCode,
    headers: &HeaderMap,
    next: &str,
    email: &str,
    error: Option<String>,
) -> Response {
    let csrf_token = atoll_core::ids::new_secret("lcsrf");
    let page = LoginPage {
        asset_version: asset_version(),
        csrf_token: csrf_token.clone(),
        next: safe_next(next).unwrap_or_default().to_owned(),
        email: email.to_owned(),
        error,
    };
    let mut response = view::render(status, &page);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, &csrf_token, None, over_https(headers)),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

/// `GET /login`.
pub async fn login_page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    // Already logged in: nothing to do here.
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if state.platform.session(token).await.is_ok() {
            return Redirect::to(safe_next(&query.next).unwrap_or("/")).into_response();
        }
    }
    login_form(StatusCode::OK, &headers, &query.next, "", None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`.
pub async fn login(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let cookie_token = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !tokens_match(&form.csrf_token, cookie_token) {
        return login_form(
            StatusCode::FORBIDDEN,
            &headers,
            &form.next,
            &form.email,
            Some(
                "This login form expired or was not opened here (cookies must be enabled). \
                 Please try again."
                    .into(),
            ),
        );
    }
    match state.platform.login(&form.email, &form.password).await {
        Ok((login, _session)) => {
            let https = over_https(&headers);
            let mut response = Redirect::to(safe_next(&form.next).unwrap_or("/")).into_response();
            let cookies = response.headers_mut();
            cookies.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &login.token, None, https),
            );
            cookies.append(
                header::SET_COOKIE,
                set_cookie(LOGIN_CSRF_COOKIE, "", Some(0), https),
            );
            response
        }
        Err(Error::LoginThrottled { retry_after_secs }) => {
            let mut response = login_form(
                StatusCode::TOO_MANY_REQUESTS,
                &headers,
                &form.next,
                &form.email,
                Some(format!(
                    "Too many failed logins for this account. Wait {} before trying again.",
                    format_wait(retry_after_secs)
                )),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Err(error) => {
            let status = view::status_of(&error);
            login_form(
                status,
                &headers,
                &form.next,
                &form.email,
                Some(match error {
                    Error::InvalidCredentials => "Wrong email or password.".to_owned(),
                    other => view::message_of(&other),
                }),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /logout`: ends the session server-side, then forgets the cookie.
pub async fn logout(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    authed: Authed,
    Form(form): Form<LogoutForm>,
) -> Response {
    // CSRF-checked, or any site could log our users out.
    if let Err(response) = authed.check_csrf(&form.csrf_token) {
        return response;
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Err(error) = state.platform.logout(token).await {
            return view::bare_error(&error);
        }
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), over_https(&headers)),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal_and_present() {
        assert!(tokens_match("csrf_abc", "csrf_abc"));
        assert!(!tokens_match("csrf_abd", "csrf_abc"));
        assert!(!tokens_match("csrf_ab", "csrf_abc"));
        assert!(!tokens_match("", "csrf_abc"));
        // A missing cookie (empty expectation) must not be matched by an empty field.
        assert!(!tokens_match("", ""));
    }

    #[test]
    fn reads_one_cookie_among_several() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; atoll_session=ats_x"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("atoll_login_csrf=lc"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("ats_x"));
        assert_eq!(cookie(&headers, LOGIN_CSRF_COOKIE), Some("lc"));
        assert_eq!(cookie(&headers, "atoll"), None);
    }

    #[test]
    fn only_local_paths_are_login_destinations() {
        assert_eq!(safe_next("/w/demo/apps?x=1"), Some("/w/demo/apps?x=1"));
        assert_eq!(safe_next("//evil.example/"), None);
        assert_eq!(safe_next("/\\evil.example"), None);
        assert_eq!(safe_next("https://evil.example/"), None);
        assert_eq!(safe_next(""), None);
    }

    #[test]
    fn secure_flag_only_over_https() {
        let plain = set_cookie(SESSION_COOKIE, "ats_x", None, false);
        assert_eq!(plain, "atoll_session=ats_x; HttpOnly; SameSite=Lax; Path=/");
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_https(&headers));
        let secure = set_cookie(SESSION_COOKIE, "", Some(0), true);
        assert!(secure.to_str().unwrap().ends_with("; Max-Age=0; Secure"));
    }
}
