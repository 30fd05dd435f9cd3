//! Whether a sign-in failed or succeeded, read from the console's response
//! head: its status, a redirect's `Location`, a header. The body is never
//! read. A login rule's `outcome:` says what a failure (and, optionally, a
//! success) looks like; without one, 401 and 403 are failures.

/// What one response head says of a sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    Failed,
    Succeeded,
    /// Explicit success patterns were given and none matched (nor did a
    /// failure pattern): counted as neither.
    Unknown,
}

impl LoginOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Failed => "failed",
            LoginOutcome::Succeeded => "succeeded",
            LoginOutcome::Unknown => "unknown",
        }
    }
}

/// A rule's `outcome:`, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeSpec {
    pub failure: Patterns,
    /// `None`: everything that is not a failure is a success (only without
    /// `outcome:`, or with neither key). With `failure:` given and
    /// `success:` not, empty patterns: what is not a failure is unknown.
    pub success: Option<Patterns>,
}

impl Default for OutcomeSpec {
    /// RFC 9110 §15.5.2 and §15.5.4: what most consoles answer a wrong
    /// password with.
    fn default() -> Self {
        Self {
            failure: Patterns {
                status: vec![401, 403],
                location: Vec::new(),
                header: None,
            },
            success: None,
        }
    }
}

/// Any one of these matching is a match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patterns {
    pub status: Vec<u16>,
    /// Globs (`*` is any run of characters) on the redirect target's path
    /// and query: `/login?error*`.
    pub location: Vec<String>,
    /// A header (lower-case name) and the value it must have; `None`
    /// value: present at all.
    pub header: Option<(String, Option<String>)>,
}

impl Patterns {
    fn matches<'h>(&self, status: u16, header: &impl Fn(&str) -> Option<&'h [u8]>) -> bool {
        if self.status.contains(&status) {
            return true;
        }
        if !self.location.is_empty()
            && let Some(target) = header("location").and_then(|l| std::str::from_utf8(l).ok())
        {
            let target = path_and_query(target.trim());
            if self.location.iter().any(|g| glob(g, target)) {
                return true;
            }
        }
        match &self.header {
            Some((name, value)) => match header(name) {
                Some(got) => value
                    .as_ref()
                    .is_none_or(|v| got.trim_ascii() == v.as_bytes()),
                None => false,
            },
            None => false,
        }
    }
}

/// `https://console.example.com/login?error=1` → `/login?error=1`; a
/// relative target as it is (RFC 9110 §10.2.2 allows both).
fn path_and_query(target: &str) -> &str {
    match target.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        _ => target,
    }
}

/// `*` matches any run of characters (none included); everything else
/// itself. Iterative, with one backtrack point: linear in practice, never
/// exponential on hostile input.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// What `spec` says of a response with `status` and headers found by
/// `header` (lower-case name → the first value).
pub fn classify<'h>(
    spec: &OutcomeSpec,
    status: u16,
    header: impl Fn(&str) -> Option<&'h [u8]>,
) -> LoginOutcome {
    if spec.failure.matches(status, &header) {
        return LoginOutcome::Failed;
    }
    match &spec.success {
        None => LoginOutcome::Succeeded,
        Some(p) if p.matches(status, &header) => LoginOutcome::Succeeded,
        Some(_) => LoginOutcome::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<'a>(headers: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a [u8]> {
        move |name| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        }
    }

    #[test]
    fn by_default_401_and_403_are_failures_and_the_rest_successes() {
        let d = OutcomeSpec::default();
        assert_eq!(classify(&d, 401, with(&[])), LoginOutcome::Failed);
        assert_eq!(classify(&d, 403, with(&[])), LoginOutcome::Failed);
        assert_eq!(classify(&d, 200, with(&[])), LoginOutcome::Succeeded);
        assert_eq!(
            classify(&d, 302, with(&[("location", "/home")])),
            LoginOutcome::Succeeded
        );
    }

    #[test]
    fn a_redirect_back_to_the_form_with_an_error_is_a_failure() {
        let spec = OutcomeSpec {
            failure: Patterns {
                status: vec![401],
                location: vec!["/login?error*".into()],
                header: None,
            },
            success: None,
        };
        for target in [
            "/login?error=1",
            "/login?error",
            "https://console.example.com/login?error=bad_password",
        ] {
            assert_eq!(
                classify(&spec, 302, with(&[("location", target)])),
                LoginOutcome::Failed,
                "{target}"
            );
        }
        for target in [
            "/dashboard",
            "/login",
            "/login?next=/error",
            "/x/login?error=1",
        ] {
            assert_eq!(
                classify(&spec, 302, with(&[("location", target)])),
                LoginOutcome::Succeeded,
                "{target}"
            );
        }
    }

    #[test]
    fn a_header_with_or_without_a_value_and_explicit_successes() {
        let spec = OutcomeSpec {
            failure: Patterns {
                status: vec![],
                location: vec![],
                header: Some(("x-login-result".into(), Some("failed".into()))),
            },
            success: Some(Patterns {
                status: vec![],
                location: vec![],
                header: Some(("set-cookie".into(), None)),
            }),
        };
        assert_eq!(
            classify(&spec, 200, with(&[("X-Login-Result", " failed ")])),
            LoginOutcome::Failed
        );
        assert_eq!(
            classify(&spec, 200, with(&[("set-cookie", "session=1")])),
            LoginOutcome::Succeeded
        );
        // Neither pattern: with explicit successes, unknown.
        assert_eq!(classify(&spec, 200, with(&[])), LoginOutcome::Unknown);
        assert_eq!(
            classify(&spec, 200, with(&[("x-login-result", "ok")])),
            LoginOutcome::Unknown
        );
    }

    #[test]
    fn globs() {
        assert!(glob("/login?error*", "/login?error=1"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("/a", "/a"));
        assert!(!glob("/a", "/ab"));
        // Hostile: many stars against a long near-miss stays fast.
        let text = "a".repeat(10_000);
        assert!(!glob("*a*a*a*a*a*a*a*a*b", &text));
    }
}
