//! Remote URL forms Keelson accepts, split into what git is given and what may be printed.
//!
//! Credentials embedded in a URL (`https://user:token@host/...`) are lifted out here, so that neither libgit2
//! (which would echo the URL in its errors) nor any message Keelson prints ever carries them.

use super::SourceError;

/// The transport a remote URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A path on this machine, given as a path or as `file://`.
    Local,
    Git,
    Http,
    Https,
    /// `ssh://` or scp-like `user@host:path`.
    Ssh,
}

/// A parsed remote URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub transport: Transport,
    /// The URL handed to git: credentials removed, scp-like form kept as written.
    pub git_url: String,
    /// The URL as Keelson prints it: no password, and for HTTP(S) no user either (a token often is the user).
    pub display: String,
    /// Host name for network transports (without brackets for IPv6 literals).
    pub host: Option<String>,
    /// Explicit port, when the URL names one.
    pub port: Option<u16>,
    /// User named in the URL.
    pub username: Option<String>,
    /// Password named in the URL (percent-decoded).
    pub password: Option<String>,
}

impl std::fmt::Debug for RemoteUrl {
    // The derived Debug would print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteUrl")
            .field("transport", &self.transport)
            .field("url", &self.display)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl std::fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl RemoteUrl {
    /// Parses a remote given on the command line or in configuration.
    pub fn parse(input: &str) -> Result<Self, SourceError> {
        let invalid = |reason: &str| SourceError::InvalidUrl {
            url: redact_url(input),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(invalid("empty"));
        }
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("contains whitespace or control characters"));
        }
        if let Some((scheme, rest)) = input.split_once("://") {
            let transport = match scheme.to_ascii_lowercase().as_str() {
                "file" => Transport::Local,
                "git" => Transport::Git,
                "http" => Transport::Http,
                "https" => Transport::Https,
                "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
                _ => {
                    return Err(invalid(
                        "unsupported scheme (use a path, file, git, http, https or ssh)",
                    ));
                }
            };
            if transport == Transport::Local {
                if rest.is_empty() || !rest.starts_with('/') {
                    return Err(invalid("file:// needs an absolute path"));
                }
                return Ok(Self {
                    transport,
                    git_url: input.to_string(),
                    display: input.to_string(),
                    host: None,
                    port: None,
                    username: None,
                    password: None,
                });
            }
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if path.len() <= 1 {
                return Err(invalid("no repository path"));
            }
            let (userinfo, hostport) = match authority.rfind('@') {
                Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
                None => (None, authority),
            };
            let (host, port) = split_host_port(hostport).ok_or_else(|| invalid("bad host or port"))?;
            let (username, password) = match userinfo {
                Some(info) => {
                    let (user, pass) = match info.split_once(':') {
                        Some((u, p)) => (u, Some(p)),
                        None => (info, None),
                    };
                    let user = percent_decode(user).ok_or_else(|| invalid("bad percent-encoding in user"))?;
                    let pass = match pass {
                        Some(p) => Some(percent_decode(p).ok_or_else(|| invalid("bad percent-encoding"))?),
                        None => None,
                    };
                    (Some(user).filter(|u| !u.is_empty()), pass)
                }
                None => (None, None),
            };
            let scheme = scheme.to_ascii_lowercase();
            let bare = format!("{scheme}://{hostport}{path}");
            // ssh carries the user in the URL (it is not a secret and the server needs it); http(s) users
            // are passed through the credential callback instead.
            let git_url = match (&username, transport) {
                (Some(user), Transport::Ssh) => {
                    format!("{scheme}://{}@{hostport}{path}", percent_encode_user(user))
                }
                _ => bare.clone(),
            };
            let display = match transport {
                Transport::Ssh => git_url.clone(),
                _ => bare,
            };
            return Ok(Self {
                transport,
                git_url,
                display,
                host: Some(host),
                port,
                username,
                password,
            });
        }
        if let Some((user, host, _path)) = scp_like(input) {
            return Ok(Self {
                transport: Transport::Ssh,
                git_url: input.to_string(),
                display: input.to_string(),
                host: Some(host.to_string()),
                port: None,
                username: user.map(str::to_string),
                password: None,
            });
        }
        Ok(Self {
            transport: Transport::Local,
            git_url: input.to_string(),
            display: input.to_string(),
            host: None,
            port: None,
            username: None,
            password: None,
        })
    }

    /// A repository given as a plain path (not `file://`), which Keelson reads in place.
    pub fn direct_path(&self) -> Option<std::path::PathBuf> {
        (self.transport == Transport::Local && !self.git_url.starts_with("file://"))
            .then(|| std::path::PathBuf::from(&self.git_url))
    }

    /// Whether the remote is a repository on this machine (a path or `file://`).
    pub fn local_path(&self) -> Option<std::path::PathBuf> {
        if self.transport != Transport::Local {
            return None;
        }
        let raw = self.git_url.strip_prefix("file://").unwrap_or(&self.git_url);
        Some(std::path::PathBuf::from(raw))
    }
}

/// `[user@]host:path` as git understands it: a colon before any slash, and more than one character before it.
fn scp_like(input: &str) -> Option<(Option<&str>, &str, &str)> {
    let colon = input.find(':')?;
    if input[..colon].contains('/') {
        return None;
    }
    let (before, path) = (&input[..colon], &input[colon + 1..]);
    if path.is_empty() {
        return None;
    }
    let (user, host) = match before.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, before),
    };
    // A single letter before the colon is a Windows drive, which git treats as a path too.
    if host.len() < 2 || user.is_some_and(str::is_empty) {
        return None;
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((user, host, path))
}

fn split_host_port(hostport: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| matches!(c, '/' | '@' | '?' | '#')) {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        Some(_) => None,
        None => None,
    };
    Some((host.to_string(), port))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode_user(user: &str) -> String {
    user.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Removes credentials from any URL-looking string before it is printed: the password always, and for
/// http(s) the user too, since tokens are commonly passed as the user.
pub fn redact_url(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        return input.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..end];
    let Some(at) = authority.rfind('@') else {
        return input.to_string();
    };
    let userinfo = &authority[..at];
    let keep_user = scheme.eq_ignore_ascii_case("ssh") && !userinfo.contains(':');
    if keep_user {
        return input.to_string();
    }
    let user = userinfo.split(':').next().unwrap_or("");
    let shown = if scheme.to_ascii_lowercase().starts_with("http") || user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("{scheme}://{shown}{}", &rest[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_url_form() {
        // (input, transport, git_url, display, host, port, user, password)
        type Row = (
            &'static str,
            Transport,
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<u16>,
            Option<&'static str>,
            Option<&'static str>,
        );
        let rows: &[Row] = &[
            (
                "/srv/repo",
                Transport::Local,
                "/srv/repo",
                "/srv/repo",
                None,
                None,
                None,
                None,
            ),
            (
                "./my-topology",
                Transport::Local,
                "./my-topology",
                "./my-topology",
                None,
                None,
                None,
                None,
            ),
            (
                "file:///srv/repo.git",
                Transport::Local,
                "file:///srv/repo.git",
                "file:///srv/repo.git",
                None,
                None,
                None,
                None,
            ),
            (
                "git://127.0.0.1:9418/r.git",
                Transport::Git,
                "git://127.0.0.1:9418/r.git",
                "git://127.0.0.1:9418/r.git",
                Some("127.0.0.1"),
                Some(9418),
                None,
                None,
            ),
            (
                "https://github.com/o/r.git",
                Transport::Https,
                "https://github.com/o/r.git",
                "https://github.com/o/r.git",
                Some("github.com"),
                None,
                None,
                None,
            ),
            (
                "https://bob:s%40cret@git.example/o/r",
                Transport::Https,
                "https://git.example/o/r",
                "https://git.example/o/r",
                Some("git.example"),
                None,
                Some("bob"),
                Some("s@cret"),
            ),
            (
                "http://tok3n@127.0.0.1:8080/r",
                Transport::Http,
                "http://127.0.0.1:8080/r",
                "http://127.0.0.1:8080/r",
                Some("127.0.0.1"),
                Some(8080),
                Some("tok3n"),
                None,
            ),
            (
                "ssh://git@host:2222/o/r.git",
                Transport::Ssh,
                "ssh://git@host:2222/o/r.git",
                "ssh://git@host:2222/o/r.git",
                Some("host"),
                Some(2222),
                Some("git"),
                None,
            ),
            (
                "ssh://git:pw@host/o/r.git",
                Transport::Ssh,
                "ssh://git@host/o/r.git",
                "ssh://git@host/o/r.git",
                Some("host"),
                None,
                Some("git"),
                Some("pw"),
            ),
            (
                "ssh://[::1]:22/r",
                Transport::Ssh,
                "ssh://[::1]:22/r",
                "ssh://[::1]:22/r",
                Some("::1"),
                Some(22),
                None,
                None,
            ),
            (
                "git@github.com:org/repo.git",
                Transport::Ssh,
                "git@github.com:org/repo.git",
                "git@github.com:org/repo.git",
                Some("github.com"),
                None,
                Some("git"),
                None,
            ),
            (
                "host.example:repo",
                Transport::Ssh,
                "host.example:repo",
                "host.example:repo",
                Some("host.example"),
                None,
                None,
                None,
            ),
            (
                "C:/repo",
                Transport::Local,
                "C:/repo",
                "C:/repo",
                None,
                None,
                None,
                None,
            ),
        ];
        for (input, transport, git_url, display, host, port, user, password) in rows {
            let url = RemoteUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(url.transport, *transport, "{input}");
            assert_eq!(url.git_url, *git_url, "{input}");
            assert_eq!(url.display, *display, "{input}");
            assert_eq!(url.host.as_deref(), *host, "{input}");
            assert_eq!(url.port, *port, "{input}");
            assert_eq!(url.username.as_deref(), *user, "{input}");
            assert_eq!(url.password.as_deref(), *password, "{input}");
            assert!(!format!("{url:?}").contains("cret"), "{input}");
        }
    }

    #[test]
    fn rejects_bad_urls_without_echoing_secrets() {
        for input in [
            "",
            "ftp://host/r",
            "https://host",
            "https://host/",
            "https://host:99999/r",
            "https://host:0/r",
            "https://a b/r",
            "file://relative",
            "https://user:hunter2@:80/r",
        ] {
            let err = RemoteUrl::parse(input).expect_err(input).to_string();
            assert!(!err.contains("hunter2"), "{input}: {err}");
        }
    }

    #[test]
    fn redacts_credentials() {
        let rows = [
            ("https://user:pw@host/r", "https://host/r"),
            ("https://ghp_token@host/r", "https://host/r"),
            ("ssh://git:pw@host/r", "ssh://git@host/r"),
            ("ssh://git@host/r", "ssh://git@host/r"),
            ("git://host/r", "git://host/r"),
            ("git@host:r", "git@host:r"),
            ("/path/with@at", "/path/with@at"),
        ];
        for (input, want) in rows {
            assert_eq!(redact_url(input), want, "{input}");
        }
    }
}
