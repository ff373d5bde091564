//! Signing in to the console with an API token. The token is checked like any bearer token
//! and kept in an `HttpOnly`, `SameSite=Strict` cookie, which the access guard reads when a
//! request carries no `Authorization` header. A write authenticated by the cookie must also
//! come from the console's own origin (`Origin` equal to the request's host): a page on
//! another site cannot make the browser approve an action.

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    Form,
};
use maud::html;
use serde::Deserialize;

use super::{layout, ConsoleState};
use crate::domain::access::{AccessError, Role};

/// The cookie that carries the signed-in token.
pub const COOKIE: &str = "vigil_token";
/// How long a sign-in lasts in the browser (the token itself may be revoked sooner: every
/// request checks it again).
const MAX_AGE_SECS: u64 = 12 * 3600;

/// The token in the request's `vigil_token` cookie, if any.
pub fn cookie_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether a request's `Origin` names the host it was sent to: what a cookie-authenticated
/// write must show (browsers send `Origin` with every POST).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o == host)
}

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a console page, never another site, a stream, an asset or
/// the sign-in itself (and only text a `Location` header can carry).
fn next_page(next: Option<&str>) -> String {
    const NOT_PAGES: [&str; 4] = [
        "/console/login",
        "/console/logout",
        "/console/live/",
        "/console/assets/",
    ];
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && !NOT_PAGES.iter().any(|p| n.starts_with(p))
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/console".to_string(),
    }
}

/// A sign-in or sign-out posted from another site (login CSRF: being signed in as someone
/// else's token) is refused. A request without `Origin` (a script, curl) is not a browser's.
fn foreign(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) && !same_origin(headers)
}

fn form(next: &str, error: Option<&str>) -> maud::Markup {
    layout::bare(
        "Vigil: sign in",
        html! {
            main.login {
                h1 { "Vigil" }
                p { "Sign in with an API token (" code { "vigil tokens issue" } " or the admin token beside the store)." }
                form method="post" action="/console/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "API token" }
                    input #token type="password" name="token" autocomplete="off" autofocus required;
                    button type="submit" { "Sign in" }
                }
                @if let Some(e) = error { p.flash.bad #login-error { (e) } }
            }
        },
    )
}

pub async fn login_page(Query(n): Query<Next>) -> Html<String> {
    Html(form(&next_page(n.next.as_deref()), None).into_string())
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
    next: Option<String>,
}

pub async fn login(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let next = next_page(f.next.as_deref());
    if foreign(&headers) {
        return (
            StatusCode::FORBIDDEN,
            Html(
                form(
                    &next,
                    Some("a sign-in must come from this console's own page"),
                )
                .into_string(),
            ),
        )
            .into_response();
    }
    let secret = f.token.trim().to_string();
    let access = s.access.clone();
    let checked = {
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || access.authorize(Some(&secret), Role::Viewer)).await
    };
    let refused = |status: StatusCode, message: String| {
        (status, Html(form(&next, Some(&message)).into_string())).into_response()
    };
    match checked {
        Ok(Ok(_)) => {}
        Ok(Err(AccessError::Denied(d))) => return refused(StatusCode::UNAUTHORIZED, d.to_string()),
        Ok(Err(e)) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                vigil_config_file::error_chain(&e),
            )
        }
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    // A token is URL-safe text (see `token_file::new_secret`); anything else cannot be a
    // cookie value and was refused above as unknown.
    // Served over TLS, the cookie is never sent over plaintext.
    let secure = if s.secure_cookies { "; Secure" } else { "" };
    let Ok(cookie) = HeaderValue::from_str(&format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_SECS}{secure}"
    )) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "the token is not valid text".into(),
        );
    };
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

pub async fn logout(headers: HeaderMap) -> Response {
    if foreign(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "a sign-out must come from this console's own page",
        )
            .into_response();
    }
    let mut response = Redirect::to("/console/login").into_response();
    if let Ok(clear) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others_and_an_empty_one_is_none() {
        let h = headers(&[(header::COOKIE, "a=1; vigil_token=vigil_abc ; b=2")]);
        assert_eq!(cookie_secret(&h).as_deref(), Some("vigil_abc"));
        assert_eq!(
            cookie_secret(&headers(&[(header::COOKIE, "vigil_token=")])),
            None
        );
        assert_eq!(
            cookie_secret(&headers(&[(header::COOKIE, "vigil_tokenx=1")])),
            None
        );
    }

    #[test]
    fn a_write_from_another_site_or_without_origin_is_not_same_origin() {
        let host = (header::HOST, "127.0.0.1:8080");
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "null")
        ])));
        assert!(!same_origin(&headers(&[host])));
    }

    #[test]
    fn sign_in_only_returns_to_console_pages() {
        assert_eq!(
            next_page(Some("/console/incidents/3")),
            "/console/incidents/3"
        );
        assert_eq!(next_page(Some("https://evil.example/")), "/console");
        assert_eq!(next_page(Some("//evil.example")), "/console");
        assert_eq!(next_page(Some("/console/login?next=x")), "/console");
        assert_eq!(next_page(Some("/console/live/incidents")), "/console");
        assert_eq!(next_page(Some("/console/logout")), "/console");
        assert_eq!(next_page(Some("/consoles")), "/console");
        assert_eq!(
            next_page(Some("/console?status=open")),
            "/console?status=open"
        );
        assert_eq!(
            next_page(Some("/console/incidents/ü")),
            "/console",
            "not header text"
        );
        assert_eq!(next_page(None), "/console");
    }
}
