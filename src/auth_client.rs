//! The HTTP side of the auth protocol (`shoal::protocol::auth`): auth URL validation, the
//! blocking requests, and the mapping of answers to [`Error`]s.
//!
//! One [`AuthClient`] (a `ureq` agent: connection pool, rustls for `https://`, connect timeout
//! [`CONNECT_TIMEOUT`], whole-request timeout [`REQUEST_TIMEOUT`], no redirects) per
//! [`App`](crate::App). Every call blocks the calling thread.
//!
//! Error mapping: a transport failure (refused, reset, DNS, TLS, timeout) is
//! [`ErrorCode::Io`]; an answer 300–599 is parsed as an RFC 7807 problem whose `code` 601–615
//! gives the auth code, any other problem or body gives [`ErrorCode::Http`] with the status
//! ([`Error::raw_code`]); a 2xx body that is not the expected JSON is [`ErrorCode::Json`].

use crate::error::{Error, ErrorCode, Result};
use crate::protocol::auth::{
    AuthRequest, AuthResponse, ChangePasswordRequest, LookupResponse, PermissionsResponse,
    RevokeRequest,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;
use std::time::Duration;

/// How long establishing a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one whole request (connect, send, answer) may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer body read, in bytes.
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// A validated auth URL: what the caller gave, and the login endpoint derived from it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AuthUrl {
    given: String,
    /// `scheme://authority/.../auth`, no trailing `/`, no query.
    endpoint: String,
    /// `realm://authority` or `realms://authority`.
    sync_origin: String,
}

impl fmt::Debug for AuthUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

impl AuthUrl {
    /// Checks `url`: an absolute `http://` or `https://` URL with a host. The login endpoint
    /// is the URL itself when its path ends with `/auth` (as ROS clients passed it:
    /// `http://host:9080/auth`), else the path with `/auth` appended; a query or fragment is
    /// ignored.
    ///
    /// # Errors
    /// `InvalidArgument` ("Invalid URL ...") for anything else.
    pub(crate) fn parse(url: &str) -> Result<AuthUrl> {
        let invalid = |why: &str| Error::invalid(format!("Invalid URL '{url}': {why}"));
        if url.trim() != url || url.is_empty() {
            return Err(invalid("empty or surrounded by white space"));
        }
        let uri: ureq::http::Uri = url.parse().map_err(|e| invalid(&format!("{e}")))?;
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase) {
            Some(s) if s == "http" || s == "https" => s,
            Some(s) => {
                return Err(invalid(&format!(
                    "the scheme must be http or https, not '{s}'"
                )))
            }
            None => return Err(invalid("not an absolute http:// or https:// URL")),
        };
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user information is not supported"));
        }
        let path = uri.path().trim_end_matches('/');
        let base = if path.ends_with("/auth") {
            path.to_owned()
        } else {
            format!("{path}/auth")
        };
        let sync_scheme = if scheme == "https" { "realms" } else { "realm" };
        Ok(AuthUrl {
            given: url.to_owned(),
            endpoint: format!("{scheme}://{authority}{base}"),
            sync_origin: format!("{sync_scheme}://{authority}"),
        })
    }

    /// The URL as the caller gave it.
    pub(crate) fn as_str(&self) -> &str {
        &self.given
    }

    /// The sync server beside this auth server: `realm://host:port` for `http`,
    /// `realms://host:port` for `https` (ROS served both on one port).
    pub(crate) fn sync_origin(&self) -> &str {
        &self.sync_origin
    }

    /// `POST` here to log in or get an access token.
    pub(crate) fn login(&self) -> &str {
        &self.endpoint
    }

    fn action(&self, action: &str) -> String {
        format!("{}/{action}", self.endpoint)
    }

    fn permissions(&self) -> String {
        format!("{}/permissions", self.endpoint)
    }

    fn lookup(&self, provider: &str, provider_id: &str) -> String {
        format!(
            "{}/users/{}/{}",
            self.endpoint,
            percent_encode(provider),
            percent_encode(provider_id)
        )
    }
}

/// What a path segment percent-encodes: everything but RFC 3986 unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
fn percent_encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// The blocking HTTP client of one app. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub(crate) struct AuthClient {
    agent: ureq::Agent,
}

impl AuthClient {
    /// A client trusting the public roots, or only `trusted` when given.
    pub(crate) fn new(trusted: Option<&crate::tls::TrustedRoots>) -> AuthClient {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(trusted) = trusted {
            tls = tls.root_certs(trusted.ureq_roots());
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!("shoal/{}", crate::VERSION))
            .build()
            .into();
        AuthClient { agent }
    }

    /// `POST /auth`: a login (answer with a refresh token) or an access token request.
    pub(crate) fn authenticate(
        &self,
        url: &AuthUrl,
        request: &AuthRequest,
    ) -> Result<AuthResponse> {
        let body = self.post(url.login(), None, request)?;
        serde_json::from_str(&body).map_err(|e| {
            Error::new(
                ErrorCode::Json,
                format!("the auth server's answer is not valid: {e}"),
            )
        })
    }

    /// `POST /auth/revoke` with `token` in the body and as `Authorization`.
    pub(crate) fn revoke(&self, url: &AuthUrl, token: &str) -> Result<()> {
        let request = RevokeRequest {
            token: token.to_owned(),
        };
        self.post(&url.action("revoke"), Some(token), &request)
            .map(drop)
    }

    /// `PUT /auth/password` as the holder of `refresh_token`.
    pub(crate) fn change_password(
        &self,
        url: &AuthUrl,
        refresh_token: &str,
        request: &ChangePasswordRequest,
    ) -> Result<()> {
        let body = to_json(request)?;
        let response = self
            .agent
            .put(&url.action("password"))
            .header("Accept", "application/json")
            .header("Authorization", refresh_token)
            .content_type("application/json")
            .send(&body[..]);
        answer(response).map(drop)
    }

    /// `GET /auth/users/:provider/:provider_id` as the (admin) holder of `refresh_token`.
    pub(crate) fn lookup(
        &self,
        url: &AuthUrl,
        refresh_token: &str,
        provider: &str,
        provider_id: &str,
    ) -> Result<LookupResponse> {
        self.get(&url.lookup(provider, provider_id), refresh_token, "lookup")
    }

    /// `GET /auth/permissions` as the holder of `refresh_token`: the realms shared with it.
    pub(crate) fn permissions(
        &self,
        url: &AuthUrl,
        refresh_token: &str,
    ) -> Result<PermissionsResponse> {
        self.get(&url.permissions(), refresh_token, "permissions")
    }

    /// A `GET` authorized by `refresh_token` whose answer is the JSON of `T`.
    fn get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        refresh_token: &str,
        what: &str,
    ) -> Result<T> {
        let response = self
            .agent
            .get(endpoint)
            .header("Accept", "application/json")
            .header("Authorization", refresh_token)
            .call();
        let body = answer(response)?;
        serde_json::from_str(&body).map_err(|e| {
            Error::new(
                ErrorCode::Json,
                format!("the auth server's {what} answer is not valid: {e}"),
            )
        })
    }

    fn post(
        &self,
        endpoint: &str,
        authorization: Option<&str>,
        body: &impl serde::Serialize,
    ) -> Result<String> {
        let body = to_json(body)?;
        let mut request = self
            .agent
            .post(endpoint)
            .header("Accept", "application/json");
        if let Some(token) = authorization {
            request = request.header("Authorization", token);
        }
        answer(request.content_type("application/json").send(&body[..]))
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("request to JSON: {e}")))
}

/// The body of a 2xx answer, or the error the answer stands for.
fn answer(
    response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<String> {
    let mut response = response.map_err(transport_error)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string();
    if (200..300).contains(&status) {
        return body.map_err(transport_error);
    }
    Err(problem_error(status, body.ok().as_deref()))
}

fn transport_error(e: ureq::Error) -> Error {
    match e {
        ureq::Error::BadUri(uri) => Error::invalid(format!("Invalid URL '{uri}'")),
        other => Error::new(
            ErrorCode::Io,
            format!("cannot reach the auth server: {other}"),
        ),
    }
}

/// Turns a non-2xx answer into an error: the problem's `code` (601–615) if it has one, else
/// the HTTP status. The message is `title: hint` (or what is known).
pub(crate) fn problem_error(status: u16, body: Option<&str>) -> Error {
    let problem = body.and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok());
    let field = |name: &str| {
        problem
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let message = match (field("title"), field("hint")) {
        (Some(title), Some(hint)) => format!("{title}: {hint}"),
        (Some(title), None) => title.to_owned(),
        (None, Some(hint)) => hint.to_owned(),
        (None, None) => format!("the auth server answered HTTP {status}"),
    };
    let code = problem
        .as_ref()
        .and_then(|p| p.get("code"))
        .and_then(serde_json::Value::as_i64)
        .and_then(|c| i32::try_from(c).ok());
    match code.and_then(ErrorCode::from_auth_code) {
        Some(code) => Error::new(code, message),
        None => Error::http(status, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded_but_unreserved_characters() {
        for (segment, encoded) in [
            ("", ""),
            ("AZaz09-._~", "AZaz09-._~"),
            ("a b/c?d#e", "a%20b%2Fc%3Fd%23e"),
            (
                "%+&=:@!$'()*,;",
                "%25%2B%26%3D%3A%40%21%24%27%28%29%2A%2C%3B",
            ),
            (
                "\0\u{7f}\"<>[]{}|^`",
                "%00%7F%22%3C%3E%5B%5D%7B%7D%7C%5E%60",
            ),
            ("jürgen@example.com", "j%C3%BCrgen%40example.com"),
            ("€𝄞😀", "%E2%82%AC%F0%9D%84%9E%F0%9F%98%80"),
            ("..", ".."),
        ] {
            assert_eq!(percent_encode(segment), encoded, "{segment:?}");
        }
    }

    #[test]
    fn auth_urls_are_validated_and_the_endpoint_derived() {
        for (given, endpoint) in [
            ("http://127.0.0.1:9080/auth", "http://127.0.0.1:9080/auth"),
            ("http://127.0.0.1:9080/auth/", "http://127.0.0.1:9080/auth"),
            ("http://127.0.0.1:9080", "http://127.0.0.1:9080/auth"),
            ("http://127.0.0.1:9080/", "http://127.0.0.1:9080/auth"),
            ("https://example.com/ros", "https://example.com/ros/auth"),
            (
                "HTTPS://example.com/x/auth?a=1",
                "https://example.com/x/auth",
            ),
            ("http://[::1]:9080/auth", "http://[::1]:9080/auth"),
        ] {
            let url = AuthUrl::parse(given).unwrap();
            assert_eq!((url.as_str(), url.login()), (given, endpoint));
        }
        let url = AuthUrl::parse("http://h/auth").unwrap();
        assert_eq!(url.action("revoke"), "http://h/auth/revoke");
        assert_eq!(
            url.lookup("password", "a b/é"),
            "http://h/auth/users/password/a%20b%2F%C3%A9"
        );
        for bad in [
            "",
            "not a url",
            "/auth",
            "127.0.0.1:9080/auth",
            "http://",
            "http:///auth",
            "ftp://h/auth",
            "realm://h/auth",
            "http://user:pw@h/auth",
            " http://h/auth",
            "http://h h/auth",
        ] {
            let e = AuthUrl::parse(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}");
            assert!(e.message().starts_with("Invalid URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn problems_map_to_auth_codes_and_other_statuses_pass_through() {
        let body = r#"{"type":"https://realm.io/docs/object-server/problems/invalid-credentials",
            "title":"The provided credentials are invalid.","status":401,"code":611,"hint":"nope"}"#;
        let e = problem_error(401, Some(body));
        assert_eq!(e.code(), ErrorCode::InvalidCredentials);
        assert_eq!(e.message(), "The provided credentials are invalid.: nope");
        let plain = r#"{"type":"about:blank","title":"Not Found","status":404,"code":404}"#;
        let e = problem_error(404, Some(plain));
        assert_eq!((e.code(), e.raw_code()), (ErrorCode::Http, 404));
        let e = problem_error(502, Some("<html>bad gateway</html>"));
        assert_eq!((e.code(), e.raw_code()), (ErrorCode::Http, 502));
        let e = problem_error(503, None);
        assert_eq!(e.raw_code(), 503);
        assert!(e.message().contains("503"));
        // A throttled login: HTTP 429 with the server's hint (when to retry), never retried
        // here.
        let throttled = r#"{"type":"about:blank","title":"Too Many Requests","status":429,
            "code":429,"hint":"too many failed logins for this account; retry in 4 s"}"#;
        let e = problem_error(429, Some(throttled));
        assert_eq!((e.code(), e.raw_code()), (ErrorCode::Http, 429));
        assert!(e.message().contains("retry in 4 s"), "{e}");
    }
}
