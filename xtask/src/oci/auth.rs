//! Registry credentials: where a user keeps them (docker's `config.json`, podman's
//! `auth.json`, or `--username` with the password on stdin), and how a registry's
//! `WWW-Authenticate` challenge asks for them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

/// A user name and password for one registry, and where they came from (for messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub source: String,
}

// The password never reaches a log line or an error.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// `--username` with the password read from stdin (`--password-stdin`), as `docker
    /// login` takes it: one trailing newline is dropped.
    pub fn from_stdin(username: &str) -> anyhow::Result<Credential> {
        let mut password = String::new();
        std::io::stdin()
            .read_to_string(&mut password)
            .context("reading the password from stdin (--password-stdin)")?;
        let password = password
            .strip_suffix('\n')
            .map(|p| p.strip_suffix('\r').unwrap_or(p))
            .unwrap_or(&password);
        if password.is_empty() {
            bail!(
                "--password-stdin read an empty password: pipe it in, e.g. `echo \"$PASSWORD\" | cargo xtask ... --password-stdin`"
            );
        }
        Ok(Credential {
            username: username.to_owned(),
            password: password.to_owned(),
            source: "--username and --password-stdin".to_owned(),
        })
    }

    /// The `Authorization: Basic ...` header value.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", BASE64.encode(pair))
    }
}

/// The environment the credential files are found through, read once so tests can give
/// their own.
#[derive(Debug, Clone, Default)]
pub struct AuthFiles {
    pub registry_auth_file: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub docker_config: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl AuthFiles {
    pub fn from_env() -> AuthFiles {
        let path = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        AuthFiles {
            registry_auth_file: path("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: path("XDG_RUNTIME_DIR"),
            docker_config: path("DOCKER_CONFIG"),
            home: path("HOME"),
        }
    }

    /// The files to look in, in podman's order: `REGISTRY_AUTH_FILE`, podman's
    /// `auth.json`, then docker's `config.json`. Whether each one must exist.
    fn candidates(&self) -> Vec<(PathBuf, bool)> {
        let mut files = Vec::new();
        if let Some(file) = &self.registry_auth_file {
            files.push((file.clone(), true));
        }
        if let Some(dir) = &self.xdg_runtime_dir {
            files.push((dir.join("containers/auth.json"), false));
        }
        match (&self.docker_config, &self.home) {
            (Some(dir), _) => files.push((dir.join("config.json"), false)),
            (None, Some(home)) => files.push((home.join(".docker/config.json"), false)),
            (None, None) => {}
        }
        files
    }

    /// The first credential stored for `host`, or `None` (anonymous access).
    pub fn lookup(&self, host: &str) -> anyhow::Result<Option<Credential>> {
        for (file, required) in self.candidates() {
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
                Err(e) => bail!(
                    "cannot read the registry credentials in {}: {e}; fix the file or unset REGISTRY_AUTH_FILE",
                    file.display()
                ),
            };
            if let Some(credential) = lookup_in(&text, host, &file)? {
                return Ok(Some(credential));
            }
        }
        Ok(None)
    }
}

/// docker's `config.json` and podman's `auth.json` share this part.
#[derive(Debug, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Debug, Deserialize)]
struct AuthEntry {
    /// base64 of `user:password`; absent when a credential helper keeps the secret.
    auth: Option<String>,
}

fn lookup_in(text: &str, host: &str, file: &Path) -> anyhow::Result<Option<Credential>> {
    let parsed: AuthFile = serde_json::from_str(text).with_context(|| {
        format!(
            "{} is not a registry credentials file (JSON with `auths`)",
            file.display()
        )
    })?;
    let wanted = canonical_host(host);
    let Some(auth) = parsed
        .auths
        .iter()
        .filter(|(key, _)| canonical_host(key) == wanted)
        .find_map(|(_, entry)| entry.auth.as_deref())
    else {
        return Ok(None);
    };
    let bad = || {
        format!(
            "the credentials for {host} in {} are not base64 of `user:password`: log in again",
            file.display()
        )
    };
    let decoded = BASE64.decode(auth.trim()).with_context(bad)?;
    let decoded = String::from_utf8(decoded).with_context(bad)?;
    let Some((username, password)) = decoded.split_once(':') else {
        bail!("{}", bad());
    };
    Ok(Some(Credential {
        username: username.to_owned(),
        password: password.to_owned(),
        source: file.display().to_string(),
    }))
}

/// The registry host a credentials key names: keys may carry a scheme and a path
/// (`https://index.docker.io/v1/`), and Docker Hub goes by several names.
fn canonical_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        host => host,
    }
}

/// What a registry's `WWW-Authenticate` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    /// Get a token from `realm` (the registry's token flow), then send it as a bearer.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`.
    pub fn parse(header: &str) -> anyhow::Result<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(rest);
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if scheme.eq_ignore_ascii_case("basic") {
            Ok(Challenge::Basic)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let realm = param("realm").with_context(|| {
                format!("the registry's bearer challenge has no realm: {header}")
            })?;
            Ok(Challenge::Bearer {
                realm,
                service: param("service"),
                scope: param("scope"),
            })
        } else {
            bail!(
                "the registry asks for `{scheme}` authentication, which is not supported (only Basic and Bearer are)"
            )
        }
    }
}

/// `key="value", key=value` pairs; quoted values may hold commas and escaped quotes.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return params;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(dir: &Path, name: &str, text: &str) -> PathBuf {
        let file = dir.join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        file
    }

    // base64("alice:s3cr:et") and base64("bob:pw").
    const ALICE: &str = "YWxpY2U6czNjcjpldA==";
    const BOB: &str = "Ym9iOnB3";

    #[test]
    fn docker_config_entries_match_by_host_whatever_their_spelling() {
        let dir = tempfile::tempdir().unwrap();
        fixture(
            dir.path(),
            "docker/config.json",
            &format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{ALICE}"}},
                    "127.0.0.1:5000": {{"auth": "{BOB}"}}, "helper.io": {{}}}},
                    "credsStore": "desktop"}}"#
            ),
        );
        let files = AuthFiles {
            docker_config: Some(dir.path().join("docker")),
            home: Some(dir.path().join("home")),
            ..AuthFiles::default()
        };
        let hub = files.lookup("docker.io").unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("alice", "s3cr:et")
        );
        assert!(hub.source.ends_with("docker/config.json"), "{}", hub.source);
        let local = files.lookup("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(local.username, "bob");
        assert_eq!(files.lookup("helper.io").unwrap(), None);
        assert_eq!(files.lookup("127.0.0.1:5001").unwrap(), None);
        assert!(!format!("{local:?}").contains("pw"));
    }

    #[test]
    fn podman_files_come_before_docker_and_home_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |auth: &str| format!(r#"{{"auths": {{"r.io": {{"auth": "{auth}"}}}}}}"#);
        fixture(dir.path(), "home/.docker/config.json", &entry(BOB));
        let mut files = AuthFiles {
            home: Some(dir.path().join("home")),
            ..AuthFiles::default()
        };
        assert_eq!(files.lookup("r.io").unwrap().unwrap().username, "bob");
        fixture(dir.path(), "run/containers/auth.json", &entry(ALICE));
        files.xdg_runtime_dir = Some(dir.path().join("run"));
        assert_eq!(files.lookup("r.io").unwrap().unwrap().username, "alice");
        let explicit = fixture(dir.path(), "explicit.json", &entry(BOB));
        files.registry_auth_file = Some(explicit);
        assert_eq!(files.lookup("r.io").unwrap().unwrap().username, "bob");
    }

    #[test]
    fn broken_files_are_named_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = AuthFiles {
            registry_auth_file: Some(dir.path().join("missing.json")),
            ..AuthFiles::default()
        };
        let err = files.lookup("r.io").unwrap_err().to_string();
        assert!(err.contains("missing.json") && !err.contains('\n'), "{err}");
        let garbled = fixture(
            dir.path(),
            "a.json",
            r#"{"auths": {"r.io": {"auth": "!!"}}}"#,
        );
        files.registry_auth_file = Some(garbled);
        let err = format!("{:#}", files.lookup("r.io").unwrap_err());
        assert!(err.contains("not base64"), "{err}");
        let not_json = fixture(dir.path(), "b.json", "auths");
        files.registry_auth_file = Some(not_json);
        assert!(files.lookup("r.io").is_err());
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap(),
            Challenge::Basic
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.io/token",service="registry.io",scope="repository:a/b:pull,push""#
            )
            .unwrap(),
            Challenge::Bearer {
                realm: "https://auth.io/token".into(),
                service: Some("registry.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            Challenge::parse(r#"bearer realm=http://127.0.0.1:1/t, service="a \"q\"""#).unwrap(),
            Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("a \"q\"".into()),
                scope: None,
            }
        );
        assert!(Challenge::parse("Bearer service=x").is_err());
        assert!(Challenge::parse("Negotiate abc").is_err());
    }

    #[test]
    fn basic_header() {
        let c = Credential {
            username: "bob".into(),
            password: "pw".into(),
            source: "test".into(),
        };
        assert_eq!(c.basic_header(), format!("Basic {BOB}"));
    }
}
