//! Registry credentials: where a user keeps them, read in the order docker and podman
//! document (containers-auth.json(5), docker's `config.json` with its credential helpers),
//! or `--username` with the password on stdin; and how a registry's `WWW-Authenticate`
//! challenge asks for them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::bail;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

/// What proves who a user is to a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A password or personal access token.
    Password(String),
    /// An OAuth2 refresh token (`identitytoken` in docker's files, or a helper's answer for
    /// the user `<token>`), exchanged at the registry's token service.
    IdentityToken(String),
}

/// A user and their secret for one registry, and where they came from (for messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub username: String,
    /// The password or identity token.
    pub secret: Secret,
    /// A file, a credential helper and the file that names it, or the command line.
    pub source: String,
}

// The secret never reaches a log line or an error.
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
    pub fn from_stdin(username: &str) -> crate::Result<Credential> {
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
            secret: Secret::Password(password.to_owned()),
            source: "--username and --password-stdin".to_owned(),
        })
    }

    /// The `Authorization: Basic ...` header value; an identity token has none.
    pub fn basic_header(&self) -> crate::Result<String> {
        match &self.secret {
            Secret::Password(password) => {
                let pair = format!("{}:{password}", self.username);
                Ok(format!("Basic {}", BASE64.encode(pair)))
            }
            Secret::IdentityToken(_) => bail!(
                "the credentials from {} are an identity token, which only a registry with a token service takes: log in with a password",
                self.source
            ),
        }
    }
}

/// The credential to use for one registry, or where none was found (for the message a
/// registry that asks for credentials gets).
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// The credential, when one was found.
    pub credential: Option<Credential>,
    /// Every file and helper asked, in order, when none had credentials.
    pub searched: Vec<String>,
    /// The login commands that write where we read, and where each writes.
    pub writers: Vec<(&'static str, String)>,
}

impl Login {
    /// A login with `credential`, given by the user rather than found in a file.
    pub fn given(credential: Credential) -> Login {
        Login {
            credential: Some(credential),
            ..Login::default()
        }
    }

    /// One line for a registry `host` that asks for credentials we do not have.
    pub fn missing(&self, host: &str) -> String {
        let looked = match self.searched.as_slice() {
            [] => String::new(),
            places => format!(" (looked in {})", places.join(", ")),
        };
        let logins = match self.writers.as_slice() {
            [] => format!("`docker login {host}` or `podman login {host}`"),
            [(one, to), (other, same)] if to == same => {
                format!("`{one} {host}` or `{other} {host}` (both write {to})")
            }
            writers => writers
                .iter()
                .map(|(command, to)| format!("`{command} {host}` (writes {to})"))
                .collect::<Vec<_>>()
                .join(" or "),
        };
        format!(
            "registry {host} requires credentials and none are stored for it{looked}: {logins}, or pass --username with --password-stdin"
        )
    }
}

/// The output of one credential helper run (`docker-credential-<name> get`).
#[derive(Debug, Clone)]
pub struct HelperRun {
    /// Whether the helper exited successfully.
    pub success: bool,
    /// What it wrote on stdout.
    pub stdout: String,
    /// What it wrote on stderr.
    pub stderr: String,
}

/// Runs credential helpers: the caller's way of starting a process.
pub trait RunHelper {
    /// Runs `program get` with `server` on stdin; `None` when `program` is not installed.
    fn get(&self, program: &str, server: &str) -> crate::Result<Option<HelperRun>>;
}

impl<F> RunHelper for F
where
    F: Fn(&str, &str) -> crate::Result<Option<HelperRun>>,
{
    fn get(&self, program: &str, server: &str) -> crate::Result<Option<HelperRun>> {
        self(program, server)
    }
}

/// The environment the credential files are found through, read once so tests can give
/// their own.
#[derive(Debug, Clone, Default)]
pub struct AuthFiles {
    /// `REGISTRY_AUTH_FILE` (podman, skopeo).
    pub registry_auth_file: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR` (podman's per-session auth.json).
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `XDG_CONFIG_HOME` (podman's persistent auth.json).
    pub xdg_config_home: Option<PathBuf>,
    /// `DOCKER_CONFIG` (docker's config folder).
    pub docker_config: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// For podman's per-user file when `XDG_RUNTIME_DIR` is unset (root in CI).
    pub uid: u32,
}

/// The two formats: `{"auths": {...}, "credHelpers": {...}, "credsStore": ...}`, and
/// docker's legacy `~/.dockercfg`, which is the `auths` map alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Config,
    Legacy,
}

#[derive(Debug, Clone)]
struct Candidate {
    path: PathBuf,
    format: Format,
    /// `REGISTRY_AUTH_FILE`: the user named it, so it must be readable.
    required: bool,
}

impl AuthFiles {
    /// The files named by this process's environment.
    pub fn from_env() -> AuthFiles {
        let path = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        AuthFiles {
            registry_auth_file: path("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: path("XDG_RUNTIME_DIR"),
            xdg_config_home: path("XDG_CONFIG_HOME"),
            docker_config: path("DOCKER_CONFIG"),
            home: path("HOME"),
            uid: nix::unistd::getuid().as_raw(),
        }
    }

    /// The file `podman login` writes: `REGISTRY_AUTH_FILE`, else (podman 4)
    /// `$DOCKER_CONFIG/config.json`, else the file podman reads first.
    fn podman_writes(&self) -> PathBuf {
        match (&self.registry_auth_file, &self.docker_config) {
            (None, Some(dir)) => dir.join("config.json"),
            _ => self.podman_file(),
        }
    }

    /// The file podman reads first: `REGISTRY_AUTH_FILE`, else
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, else `/run/containers/<uid>/auth.json`.
    fn podman_file(&self) -> PathBuf {
        match (&self.registry_auth_file, &self.xdg_runtime_dir) {
            (Some(file), _) => file.clone(),
            (None, Some(dir)) => dir.join("containers/auth.json"),
            (None, None) => PathBuf::from(format!("/run/containers/{}/auth.json", self.uid)),
        }
    }

    /// The file `docker login` writes: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    fn docker_file(&self) -> Option<PathBuf> {
        match (&self.docker_config, &self.home) {
            (Some(dir), _) => Some(dir.join("config.json")),
            (None, Some(home)) => Some(home.join(".docker/config.json")),
            (None, None) => None,
        }
    }

    /// The files to look in, in containers-auth.json(5)'s order: podman's own file, then
    /// `$XDG_CONFIG_HOME/containers/auth.json`, docker's `config.json`, docker's legacy
    /// `~/.dockercfg`.
    fn candidates(&self) -> Vec<Candidate> {
        let mut files = vec![Candidate {
            path: self.podman_file(),
            format: Format::Config,
            required: self.registry_auth_file.is_some(),
        }];
        let config_home = match (&self.xdg_config_home, &self.home) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(home)) => Some(home.join(".config")),
            (None, None) => None,
        };
        let optional = |path: PathBuf, format| Candidate {
            path,
            format,
            required: false,
        };
        files.extend(config_home.map(|d| optional(d.join("containers/auth.json"), Format::Config)));
        files.extend(self.docker_file().map(|f| optional(f, Format::Config)));
        files.extend(
            self.home
                .as_ref()
                .map(|h| optional(h.join(".dockercfg"), Format::Legacy)),
        );
        files
    }

    /// The first credential stored for `host`: per file, its `credHelpers` entry for the
    /// host, its `credsStore`, then its `auths` entry. `Login::searched` lists the places
    /// asked when none had one.
    pub fn lookup(&self, host: &str, helpers: &dyn RunHelper) -> crate::Result<Login> {
        let mut searched = Vec::new();
        let mut docker_store = None;
        for candidate in self.candidates() {
            let file = &candidate.path;
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !candidate.required => {
                    searched.push(file.display().to_string());
                    continue;
                }
                Err(e) => bail!(
                    "cannot read the registry credentials in {}: {e}; fix the file or unset REGISTRY_AUTH_FILE",
                    file.display()
                ),
            };
            let parsed = parse(&text, candidate.format, file)?;
            if Some(file) == self.docker_file().as_ref() {
                docker_store = parsed.creds_store.clone();
            }
            if let Some(credential) = lookup_in(&parsed, host, file, helpers, &mut searched)? {
                return Ok(Login::given(credential));
            }
        }
        let docker_writes = match (docker_store, self.docker_file()) {
            (Some(store), _) => format!("docker-credential-{store}"),
            (None, Some(file)) => file.display().to_string(),
            (None, None) => "~/.docker/config.json".to_owned(),
        };
        Ok(Login {
            credential: None,
            searched,
            writers: vec![
                ("podman login", self.podman_writes().display().to_string()),
                ("docker login", docker_writes),
            ],
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AuthEntry {
    /// base64 of `user:password`; absent when a credential helper keeps the secret.
    auth: Option<String>,
    identitytoken: Option<String>,
}

fn parse(text: &str, format: Format, file: &Path) -> crate::Result<AuthFile> {
    let not_credentials = || {
        format!(
            "{} is not a registry credentials file (JSON with `auths`): fix or remove it",
            file.display()
        )
    };
    Ok(match format {
        Format::Config => serde_json::from_str(text).with_context(not_credentials)?,
        Format::Legacy => AuthFile {
            auths: serde_json::from_str(text).with_context(not_credentials)?,
            ..AuthFile::default()
        },
    })
}

fn lookup_in(
    parsed: &AuthFile,
    host: &str,
    file: &Path,
    helpers: &dyn RunHelper,
    searched: &mut Vec<String>,
) -> crate::Result<Option<Credential>> {
    let wanted = canonical_host(host);
    let helper = parsed
        .cred_helpers
        .iter()
        .find(|(key, _)| canonical_host(key) == wanted)
        .map(|(_, name)| (name, "credHelpers"))
        .or(parsed.creds_store.as_ref().map(|name| (name, "credsStore")));
    if let Some((name, key)) = helper.filter(|(name, _)| !name.is_empty()) {
        let named_by = format!("{key} in {}", file.display());
        if let Some(credential) = run_helper(name, host, &named_by, helpers)? {
            return Ok(Some(credential));
        }
        searched.push(format!("docker-credential-{name} ({named_by})"));
    }
    let entry = parsed
        .auths
        .iter()
        .find(|(key, _)| key.as_str() == host)
        .or_else(|| {
            parsed
                .auths
                .iter()
                .find(|(key, _)| canonical_host(key) == wanted)
        })
        .map(|(_, entry)| entry);
    let Some(entry) = entry.filter(|e| e.auth.is_some() || e.identitytoken.is_some()) else {
        searched.push(file.display().to_string());
        return Ok(None);
    };
    let bad = || {
        format!(
            "the credentials for {host} in {} are not base64 of `user:password`: log in again",
            file.display()
        )
    };
    let (username, password) = match entry.auth.as_deref().filter(|a| !a.trim().is_empty()) {
        Some(auth) => {
            let decoded = BASE64.decode(auth.trim()).with_context(bad)?;
            let decoded = String::from_utf8(decoded).with_context(bad)?;
            let (user, password) = decoded.split_once(':').with_context(bad)?;
            (user.to_owned(), password.to_owned())
        }
        None => ("<token>".to_owned(), String::new()),
    };
    let secret = match entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => Secret::IdentityToken(token.to_owned()),
        None => Secret::Password(password),
    };
    Ok(Some(Credential {
        username,
        secret,
        source: file.display().to_string(),
    }))
}

/// Asks `docker-credential-<name>` for `host`'s credentials, as docker does: the server on
/// stdin, `{"Username", "Secret"}` on stdout; "credentials not found" means none.
fn run_helper(
    name: &str,
    host: &str,
    named_by: &str,
    helpers: &dyn RunHelper,
) -> crate::Result<Option<Credential>> {
    let program = format!("docker-credential-{name}");
    // Docker Hub's credentials are stored under its v1 URL.
    let server = match canonical_host(host) {
        "docker.io" => "https://index.docker.io/v1/",
        _ => host,
    };
    let run = helpers.get(&program, server)?.with_context(|| {
        format!(
            "the credential helper {program} ({named_by}) is not installed: put it on PATH, or remove that entry"
        )
    })?;
    let said = format!("{} {}", run.stdout, run.stderr);
    if said.to_ascii_lowercase().contains("credentials not found") {
        return Ok(None);
    }
    if !run.success {
        let why = said.split_whitespace().collect::<Vec<_>>().join(" ");
        bail!("{program} ({named_by}) failed to give the credentials for {server}: {why}");
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    let answer: Answer = serde_json::from_str(&run.stdout).with_context(|| {
        format!("{program} ({named_by}) answered no JSON with Username and Secret for {server}")
    })?;
    let secret = match answer.username.as_str() {
        "<token>" => Secret::IdentityToken(answer.secret),
        _ => Secret::Password(answer.secret),
    };
    Ok(Some(Credential {
        username: answer.username,
        secret,
        source: format!("{program}, {named_by}"),
    }))
}

/// The registry host a credentials key names, normalised as docker and podman do: keys may
/// carry a scheme and a path (`https://index.docker.io/v1/`), and Docker Hub goes by
/// several names.
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
    /// HTTP Basic authentication on every request.
    Basic,
    /// Get a token from `realm` (the registry's token flow), then send it as a bearer.
    Bearer {
        /// The token service's URL.
        realm: String,
        /// The service to ask a token for.
        service: Option<String>,
        /// The scope to ask for, as the registry gave it.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`.
    pub fn parse(header: &str) -> crate::Result<Challenge> {
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

    /// No helper is installed.
    fn no_helpers(_: &str, _: &str) -> crate::Result<Option<HelperRun>> {
        Ok(None)
    }

    /// `docker-credential-pass` knows `r.io` as carol; every other helper is not installed.
    fn pass(program: &str, server: &str) -> crate::Result<Option<HelperRun>> {
        if program != "docker-credential-pass" {
            return Ok(None);
        }
        let (success, stdout) = match server {
            "r.io" => (
                true,
                r#"{"ServerURL":"r.io","Username":"carol","Secret":"pw"}"#.to_owned(),
            ),
            "https://index.docker.io/v1/" => (
                true,
                r#"{"ServerURL":"","Username":"<token>","Secret":"refresh"}"#.to_owned(),
            ),
            "broken.io" => (false, "pass store is locked".to_owned()),
            _ => (false, "credentials not found in native keychain".to_owned()),
        };
        Ok(Some(HelperRun {
            success,
            stdout,
            stderr: String::new(),
        }))
    }

    fn password(login: &Login) -> (&str, &str) {
        let c = login.credential.as_ref().unwrap();
        match &c.secret {
            Secret::Password(p) => (c.username.as_str(), p.as_str()),
            Secret::IdentityToken(_) => panic!("a token"),
        }
    }

    #[test]
    fn docker_config_entries_match_by_host_whatever_their_spelling() {
        let dir = tempfile::tempdir().unwrap();
        fixture(
            dir.path(),
            "docker/config.json",
            &format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{ALICE}"}},
                    "http://127.0.0.1:5000/v2/": {{"auth": "{BOB}"}}, "helper.io": {{}}}}}}"#
            ),
        );
        let files = AuthFiles {
            docker_config: Some(dir.path().join("docker")),
            xdg_runtime_dir: Some(dir.path().join("run")),
            home: Some(dir.path().join("home")),
            ..AuthFiles::default()
        };
        let hub = files.lookup("docker.io", &no_helpers).unwrap();
        assert_eq!(password(&hub), ("alice", "s3cr:et"));
        let source = &hub.credential.as_ref().unwrap().source;
        assert!(source.ends_with("docker/config.json"), "{source}");
        let also_hub = files.lookup("registry-1.docker.io", &no_helpers).unwrap();
        assert_eq!(password(&also_hub).0, "alice");
        let local = files.lookup("127.0.0.1:5000", &no_helpers).unwrap();
        assert_eq!(password(&local), ("bob", "pw"));
        assert!(!format!("{local:?}").contains("pw"));
        assert!(
            files
                .lookup("helper.io", &no_helpers)
                .unwrap()
                .credential
                .is_none()
        );
        let none = files.lookup("127.0.0.1:5001", &no_helpers).unwrap();
        assert!(none.credential.is_none());
        assert_eq!(none.searched.len(), 4, "{:?}", none.searched);
    }

    #[test]
    fn files_are_read_in_podmans_order_and_root_without_a_runtime_dir_reads_run_containers() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |auth: &str| format!(r#"{{"auths": {{"r.io": {{"auth": "{auth}"}}}}}}"#);
        let mut files = AuthFiles {
            home: Some(dir.path().join("home")),
            uid: 4321,
            ..AuthFiles::default()
        };
        fixture(
            dir.path(),
            "home/.dockercfg",
            &format!(r#"{{"r.io": {{"auth": "{ALICE}"}}}}"#),
        );
        assert_eq!(
            password(&files.lookup("r.io", &no_helpers).unwrap()).0,
            "alice"
        );
        fixture(dir.path(), "home/.docker/config.json", &entry(BOB));
        assert_eq!(
            password(&files.lookup("r.io", &no_helpers).unwrap()).0,
            "bob"
        );
        fixture(
            dir.path(),
            "home/.config/containers/auth.json",
            &entry(ALICE),
        );
        assert_eq!(
            password(&files.lookup("r.io", &no_helpers).unwrap()).0,
            "alice"
        );
        fixture(dir.path(), "config/containers/auth.json", &entry(BOB));
        files.xdg_config_home = Some(dir.path().join("config"));
        assert_eq!(
            password(&files.lookup("r.io", &no_helpers).unwrap()).0,
            "bob"
        );
        fixture(dir.path(), "run/containers/auth.json", &entry(ALICE));
        files.xdg_runtime_dir = Some(dir.path().join("run"));
        assert_eq!(
            password(&files.lookup("r.io", &no_helpers).unwrap()).0,
            "alice"
        );
        let explicit = fixture(dir.path(), "explicit.json", &entry(BOB));
        files.registry_auth_file = Some(explicit);
        assert_eq!(
            password(&files.lookup("r.io", &no_helpers).unwrap()).0,
            "bob"
        );

        // Without XDG_RUNTIME_DIR, podman's file is per user under /run/containers.
        let files = AuthFiles {
            home: Some(dir.path().join("nobody")),
            uid: 4321,
            ..AuthFiles::default()
        };
        let none = files.lookup("r.io", &no_helpers).unwrap();
        assert_eq!(none.searched[0], "/run/containers/4321/auth.json");
        let message = none.missing("r.io");
        assert!(
            message.contains("`podman login r.io` (writes /run/containers/4321/auth.json)")
                && message.contains("`docker login r.io` (writes ")
                && message.contains("nobody/.docker/config.json")
                && message.contains("--password-stdin"),
            "{message}"
        );
    }

    #[test]
    fn helpers_named_by_cred_helpers_or_creds_store_are_asked_first() {
        let dir = tempfile::tempdir().unwrap();
        let config = fixture(
            dir.path(),
            "docker/config.json",
            &format!(
                r#"{{"auths": {{"r.io": {{"auth": "{BOB}"}}, "other.io": {{"auth": "{BOB}"}}}},
                    "credHelpers": {{"https://r.io": "pass", "gone.io": "nosuch", "broken.io": "pass"}},
                    "credsStore": "pass"}}"#
            ),
        );
        let files = AuthFiles {
            docker_config: Some(dir.path().join("docker")),
            xdg_runtime_dir: Some(dir.path().join("run")),
            ..AuthFiles::default()
        };
        let carol = files.lookup("r.io", &pass).unwrap();
        assert_eq!(password(&carol), ("carol", "pw"));
        assert_eq!(
            carol.credential.unwrap().source,
            format!(
                "docker-credential-pass, credHelpers in {}",
                config.display()
            )
        );
        // The store has none for other.io: the file's own entry is next.
        let other = files.lookup("other.io", &pass).unwrap();
        assert_eq!(password(&other).0, "bob");
        // Docker Hub is asked for under its v1 URL; `<token>` means an identity token.
        let hub = files
            .lookup("docker.io", &pass)
            .unwrap()
            .credential
            .unwrap();
        assert!(hub.secret == Secret::IdentityToken("refresh".into()));
        assert!(hub.basic_header().is_err());

        let err = files.lookup("gone.io", &pass).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "the credential helper docker-credential-nosuch (credHelpers in {}) is not installed: put it on PATH, or remove that entry",
                config.display()
            )
        );
        let err = files.lookup("broken.io", &pass).unwrap_err().to_string();
        assert!(
            err.ends_with("failed to give the credentials for broken.io: pass store is locked"),
            "{err}"
        );

        let nowhere = files.lookup("nowhere.io", &pass).unwrap();
        assert!(nowhere.credential.is_none());
        assert!(
            nowhere.searched.contains(&format!(
                "docker-credential-pass (credsStore in {})",
                config.display()
            )),
            "{:?}",
            nowhere.searched
        );
        assert!(
            nowhere
                .missing("nowhere.io")
                .contains("`docker login nowhere.io` (writes docker-credential-pass)"),
        );
    }

    #[test]
    fn identity_tokens_in_files_are_kept_as_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let file = fixture(
            dir.path(),
            "a.json",
            r#"{"auths": {"r.io": {"auth": "", "identitytoken": "refresh"}}}"#,
        );
        let files = AuthFiles {
            registry_auth_file: Some(file),
            ..AuthFiles::default()
        };
        let c = files
            .lookup("r.io", &no_helpers)
            .unwrap()
            .credential
            .unwrap();
        assert!(c.secret == Secret::IdentityToken("refresh".into()));
    }

    #[test]
    fn broken_files_are_named_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = AuthFiles {
            registry_auth_file: Some(dir.path().join("missing.json")),
            ..AuthFiles::default()
        };
        let err = files.lookup("r.io", &no_helpers).unwrap_err().to_string();
        assert!(err.contains("missing.json") && !err.contains('\n'), "{err}");
        let garbled = fixture(
            dir.path(),
            "a.json",
            r#"{"auths": {"r.io": {"auth": "!!"}}}"#,
        );
        files.registry_auth_file = Some(garbled);
        let err = format!("{:#}", files.lookup("r.io", &no_helpers).unwrap_err());
        assert!(err.contains("not base64"), "{err}");
        let not_json = fixture(dir.path(), "b.json", "auths");
        files.registry_auth_file = Some(not_json);
        assert!(files.lookup("r.io", &no_helpers).is_err());
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
            secret: Secret::Password("pw".into()),
            source: "test".into(),
        };
        assert_eq!(c.basic_header().unwrap(), format!("Basic {BOB}"));
    }
}
