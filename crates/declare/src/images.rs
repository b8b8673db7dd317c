use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use camino::Utf8PathBuf;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result, fail};
use crate::size::parse_size;

/// Where an image's binaries are copied to.
pub const BIN_DIR: &str = "/usr/local/bin";
/// The runtime Dockerfile when an image names none.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile.runtime";
/// The alpine base when `base = "alpine"` and no `alpine` reference is given.
pub const DEFAULT_ALPINE: &str = "docker.io/library/alpine:3.20";

const IMAGES: &str = "[workspace.metadata.xtask.images]";
const DEFAULTS: &str = "[workspace.metadata.xtask.image-defaults]";

/// What an image is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    /// Nothing but the image's binaries and the files they need.
    Scratch,
    /// Alpine Linux (the image's `alpine` reference), for a shell.
    Alpine,
}

/// One image, every default applied and every name checked against the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The table's name: the repository name its tags are pushed under.
    pub name: String,
    /// The workspace package whose binaries it ships.
    pub package: String,
    /// Sorted by name.
    pub binaries: Vec<String>,
    /// `ENTRYPOINT` is the program, `CMD` the arguments.
    pub entrypoint: Argv,
    /// A service (with a port) or a job.
    pub role: Role,
    /// The command baked in as `HEALTHCHECK`, if any.
    pub healthcheck: Option<Argv>,
    /// What it is built on by default.
    pub base: Base,
    /// The alpine reference used when it is built on alpine.
    pub alpine: String,
    /// The largest it may be.
    pub size_budget: SizeBudget,
    /// Relative to the workspace root.
    pub dockerfile: Utf8PathBuf,
    /// Environment variables set in the image.
    pub env: BTreeMap<String, String>,
    /// Absolute folders owned by the image's user and declared `VOLUME`.
    pub volumes: Vec<Utf8PathBuf>,
    /// In declaration order.
    pub checks: Vec<Check>,
}

/// What running the image does: serve until stopped, or do one job and exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Serves on a port until it is stopped.
    Service {
        /// The port it listens on.
        port: u16,
        /// Probed over HTTP from the host; answers 200 once the service is live.
        health: String,
        /// The environment variable the service reads its port from.
        port_env: String,
        /// The one it reads its bind address from, if it has one.
        address_env: Option<String>,
        /// The one it reads `address:port` from, if it takes both in one.
        listen_env: Option<String>,
    },
    /// Runs to completion and exits (a migration before a rollout).
    Job,
}

/// A program inside the image and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv {
    /// Absolute: a binary of the image is `/usr/local/bin/<name>`.
    pub program: Utf8PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// The largest the image may be, in bytes; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SizeBudget {
    /// On scratch.
    pub scratch: Option<u64>,
    /// For any other base, the base included.
    pub with_base: Option<u64>,
}

/// A check declared for one image, run by the smoke test after the generic ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A request from the host to the running service.
    Http(HttpCheck),
    /// A command run in a fresh container of the image (its own entrypoint replaced).
    Command(CommandCheck),
}

/// An HTTP request to the running service and the answer expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// Run after a restart on the same volumes, rather than before.
    pub after_restart: bool,
    /// The request method.
    pub method: Method,
    /// With its query, if any: `/messages?limit=0`.
    pub path: String,
    /// The request's headers, by name (`Content-Type`, say): none but the client's own
    /// (`Host`, `Content-Length`) unless declared.
    pub headers: BTreeMap<String, String>,
    /// The request body, if any.
    pub body: Option<String>,
    /// The status expected.
    pub status: u16,
    /// Of the response body.
    pub expect: Option<Expect>,
}

/// A command run in a container of the image and the exit status expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandCheck {
    /// Run after a restart on the same volumes, rather than before.
    pub after_restart: bool,
    /// What runs, in place of the entrypoint.
    pub argv: Argv,
    /// The exit status expected.
    pub exit: u8,
    /// Of its standard output.
    pub expect: Option<Expect>,
}

/// What a response body or standard output must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The whole text (`expect`).
    Exact(String),
    /// A part of it (`expect-contains`).
    Contains(String),
}

/// The methods an HTTP check may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
}

impl Method {
    const ALL: [Method; 7] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
    ];

    /// The method as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = ();

    fn from_str(text: &str) -> Result<Method, ()> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == text)
            .ok_or(())
    }
}

impl Image {
    /// The port of a service; `None` for a job.
    pub fn port(&self) -> Option<u16> {
        match self.role {
            Role::Service { port, .. } => Some(port),
            Role::Job => None,
        }
    }

    /// The environment that makes a service listen on `127.0.0.1:<port>` only (every
    /// variable it declares it reads); none for a job.
    pub fn listen_on_loopback(&self, port: u16) -> Vec<(String, String)> {
        let Role::Service {
            port_env,
            address_env,
            listen_env,
            ..
        } = &self.role
        else {
            return Vec::new();
        };
        let mut env = vec![(port_env.clone(), port.to_string())];
        env.extend(
            address_env
                .iter()
                .map(|a| (a.clone(), "127.0.0.1".to_owned())),
        );
        env.extend(
            listen_env
                .iter()
                .map(|l| (l.clone(), format!("127.0.0.1:{port}"))),
        );
        env
    }

    /// The largest the image may be on `base`, if it has a budget there.
    pub fn size_budget(&self, base: Base) -> Option<u64> {
        match base {
            Base::Scratch => self.size_budget.scratch,
            Base::Alpine => self.size_budget.with_base,
        }
    }
}

impl Argv {
    /// The exec form: program first.
    pub fn to_vec(&self) -> Vec<String> {
        std::iter::once(self.program.to_string())
            .chain(self.args.iter().cloned())
            .collect()
    }
}

impl fmt::Display for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vec().join(" "))
    }
}

impl Expect {
    /// `Err` says what was expected and what came, in one line.
    pub fn check(&self, got: &str) -> Result<(), String> {
        match self {
            Expect::Exact(want) if got == want => Ok(()),
            Expect::Contains(part) if got.contains(part.as_str()) => Ok(()),
            Expect::Exact(want) => Err(format!("expected {want:?}, got {}", excerpt(got))),
            Expect::Contains(part) => Err(format!(
                "expected a text containing {part:?}, got {}",
                excerpt(got)
            )),
        }
    }
}

/// `text` quoted for a one-line report: its start, and how long it is when that is not all
/// of it (a whole HTML page would fill the terminal).
///
/// ```
/// assert_eq!(tiny_declare::excerpt("ready"), "\"ready\"");
/// let page = "<p>".repeat(200);
/// assert!(tiny_declare::excerpt(&page).ends_with("… (600 bytes)"));
/// ```
pub fn excerpt(text: &str) -> String {
    const SHOWN: usize = 160;
    match text.char_indices().nth(SHOWN) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &text[..end], text.len()),
    }
}

impl Check {
    /// Whether it runs after the restart on the same volumes, rather than before.
    pub fn after_restart(&self) -> bool {
        match self {
            Check::Http(c) => c.after_restart,
            Check::Command(c) => c.after_restart,
        }
    }
}

impl fmt::Display for Check {
    /// What a report row calls the check: `POST /checksum -> 200`, `notectl verify -> exit 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Http(c) => write!(f, "{} {} -> {}", c.method, c.path, c.status)?,
            Check::Command(c) => write!(f, "{} -> exit {}", c.argv, c.exit)?,
        }
        if self.after_restart() {
            f.write_str(" (after restart)")?;
        }
        Ok(())
    }
}

/// The workspace's packages and their binaries, as cargo reports them.
#[derive(Debug, Clone, Default)]
pub struct Members(BTreeMap<String, Vec<String>>);

impl Members {
    /// Packages and their binaries, in any order.
    pub fn new(packages: impl IntoIterator<Item = (String, Vec<String>)>) -> Members {
        Members(
            packages
                .into_iter()
                .map(|(name, mut bins)| {
                    bins.sort();
                    (name, bins)
                })
                .collect(),
        )
    }
}

/// The image tables as written, checked for their shape but not yet against the workspace.
#[derive(Debug, Clone)]
pub struct Declarations {
    defaults: Declared,
    images: BTreeMap<String, Declared>,
}

/// One table as written: every key optional, so the defaults have the same shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Declared {
    package: Option<String>,
    binaries: Option<Vec<String>>,
    entrypoint: Option<String>,
    args: Option<Vec<String>>,
    port: Option<u16>,
    port_env: Option<String>,
    address_env: Option<String>,
    listen_env: Option<String>,
    health: Option<String>,
    healthcheck: Option<Vec<String>>,
    base: Option<Base>,
    alpine: Option<String>,
    size_budget: Option<DeclaredBudget>,
    dockerfile: Option<Utf8PathBuf>,
    env: Option<BTreeMap<String, String>>,
    volumes: Option<Vec<Utf8PathBuf>>,
    checks: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct DeclaredBudget {
    scratch: Option<String>,
    with_base: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct DeclaredCheck {
    http: Option<String>,
    command: Option<Vec<String>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    status: Option<u16>,
    exit: Option<u8>,
    expect: Option<String>,
    expect_contains: Option<String>,
    #[serde(default)]
    after_restart: bool,
}

/// The settings an image may take from the defaults, each checked where it was written.
#[derive(Debug, Clone, Default)]
struct Shared {
    package: Option<String>,
    base: Option<Base>,
    alpine: Option<String>,
    scratch_budget: Option<u64>,
    with_base_budget: Option<u64>,
    dockerfile: Option<Utf8PathBuf>,
    env: Option<BTreeMap<String, String>>,
    volumes: Option<Vec<Utf8PathBuf>>,
}

impl Declarations {
    /// Reads `images` and `image-defaults` from the `[workspace.metadata.xtask]` table (the
    /// JSON cargo metadata gives for it); its other keys are left to their own readers.
    pub fn parse(xtask: &Value) -> Result<Declarations> {
        if xtask.get("package").is_some() {
            fail!(
                "[workspace.metadata.xtask] package: each image names its package now: move it to \
                 {DEFAULTS} package (or to one [workspace.metadata.xtask.images.<name>] table)"
            );
        }
        if xtask.get("image").is_some() {
            fail!(
                "[workspace.metadata.xtask.image] is replaced by one \
                 [workspace.metadata.xtask.images.<name>] table per image (the image name is the \
                 table's: drop `name`; `port` goes there) and {DEFAULTS} for what they share \
                 (base, alpine, size-budget)"
            );
        }
        let defaults = match xtask.get("image-defaults") {
            None => Declared::default(),
            Some(value) => {
                let defaults = declared(DEFAULTS, value)?;
                for (key, set) in [
                    ("binaries", defaults.binaries.is_some()),
                    ("entrypoint", defaults.entrypoint.is_some()),
                    ("args", defaults.args.is_some()),
                    ("port", defaults.port.is_some()),
                    ("port-env", defaults.port_env.is_some()),
                    ("address-env", defaults.address_env.is_some()),
                    ("listen-env", defaults.listen_env.is_some()),
                    ("health", defaults.health.is_some()),
                    ("healthcheck", defaults.healthcheck.is_some()),
                    ("checks", defaults.checks.is_some()),
                ] {
                    if set {
                        fail!(
                            "{DEFAULTS} {key}: says what one image is: set it in \
                             [workspace.metadata.xtask.images.<name>] instead"
                        );
                    }
                }
                defaults
            }
        };
        let Some(tables) = xtask.get("images") else {
            fail!(
                "{IMAGES} is missing: declare each image as \
                 [workspace.metadata.xtask.images.<name>] with at least `package`"
            );
        };
        let Some(tables) = tables.as_object().filter(|t| !t.is_empty()) else {
            fail!(
                "{IMAGES} declares no image: declare each as \
                 [workspace.metadata.xtask.images.<name>] with at least `package`"
            );
        };
        let mut images = BTreeMap::new();
        for (name, value) in tables {
            let ctx = table(name);
            check_name(&ctx, name)?;
            images.insert(name.clone(), declared(&ctx, value)?);
        }
        Ok(Declarations { defaults, images })
    }

    /// The declared image names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.images.keys().map(String::as_str)
    }

    /// Every image, sorted by name, its defaults applied and checked against `members`.
    pub fn resolve(&self, members: &Members) -> Result<Vec<Image>> {
        let defaults = shared(DEFAULTS, &self.defaults)?;
        self.images
            .iter()
            .map(|(name, own)| resolve(name, own, &defaults, members))
            .collect()
    }
}

/// Every image declared in `[workspace.metadata.xtask]`, checked against the workspace.
pub fn images(xtask: &Value, members: &Members) -> Result<Vec<Image>> {
    Declarations::parse(xtask)?.resolve(members)
}

fn table(name: &str) -> String {
    format!("[workspace.metadata.xtask.images.{name}]")
}

fn declared(ctx: &str, value: &Value) -> Result<Declared> {
    if !value.is_object() {
        fail!("{ctx} must be a table of settings, not `{value}`");
    }
    Declared::deserialize(value).map_err(|e| Error::new(format!("{ctx} {e}")))
}

/// An image name is one repository path component of the distribution grammar, so that
/// `<registry>/<name>:<tag>` is a valid reference.
fn check_name(ctx: &str, name: &str) -> Result<()> {
    let grammar = oci_spec::distribution::Reference::from_str(name).is_ok();
    if !grammar || name.contains(['/', ':', '@']) {
        fail!(
            "{ctx}: `{name}` cannot be an image name: use lower-case letters, digits and \
             single `.`, `_` or `-` between them (for example `tiny-service`)"
        );
    }
    Ok(())
}

fn shared(ctx: &str, declared: &Declared) -> Result<Shared> {
    let budget = declared.size_budget.clone().unwrap_or_default();
    let size = |key: &str, text: &Option<String>| -> Result<Option<u64>> {
        text.as_deref()
            .map(|t| parse_size(t).map_err(|e| Error::new(format!("{ctx} {key}: {e}"))))
            .transpose()
    };
    if let Some(dockerfile) = &declared.dockerfile
        && (dockerfile.as_str().is_empty() || dockerfile.is_absolute())
    {
        fail!(
            "{ctx} dockerfile: `{dockerfile}` must be a file path relative to the workspace root"
        );
    }
    if let Some(alpine) = &declared.alpine
        && oci_spec::distribution::Reference::from_str(alpine).is_err()
    {
        fail!(
            "{ctx} alpine: `{alpine}` is not an image reference (for example `docker.io/library/alpine:3.20@sha256:<digest>`)"
        );
    }
    for key in declared.env.iter().flat_map(|env| env.keys()) {
        check_variable(ctx, "env", key)?;
    }
    let volumes = declared.volumes.as_deref().unwrap_or_default();
    for (i, volume) in volumes.iter().enumerate() {
        if !volume.is_absolute() {
            fail!(
                "{ctx} volumes: `{volume}` must be an absolute path in the image (for example `/data`)"
            );
        }
        if volumes[..i].contains(volume) {
            fail!("{ctx} volumes: `{volume}` is listed twice");
        }
    }
    Ok(Shared {
        package: declared.package.clone(),
        base: declared.base,
        alpine: declared.alpine.clone(),
        scratch_budget: size("size-budget.scratch", &budget.scratch)?,
        with_base_budget: size("size-budget.with-base", &budget.with_base)?,
        dockerfile: declared.dockerfile.clone(),
        env: declared.env.clone(),
        volumes: declared.volumes.clone(),
    })
}

fn check_variable(ctx: &str, key: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['=', '\0']) || name.contains(char::is_whitespace) {
        fail!("{ctx} {key}: `{name}` is not a variable name");
    }
    Ok(())
}

fn resolve(name: &str, own: &Declared, defaults: &Shared, members: &Members) -> Result<Image> {
    let ctx = table(name);
    let mine = shared(&ctx, own)?;
    let Some(package) = mine.package.or_else(|| defaults.package.clone()) else {
        fail!(
            "{ctx} package: missing: name the package whose binaries the image ships (here, or \
             once for every image in {DEFAULTS})"
        );
    };
    let Some(available) = members.0.get(&package) else {
        fail!(
            "{ctx} package: `{package}` is not a package of this workspace (it has: {})",
            list(members.0.keys())
        );
    };
    if available.is_empty() {
        fail!("{ctx} package: `{package}` has no binary to ship");
    }
    let binaries = match &own.binaries {
        None => available.clone(),
        Some(listed) => {
            if listed.is_empty() {
                fail!(
                    "{ctx} binaries: empty: list the binaries of package `{package}` to ship (it has: {}), or remove the key to ship all",
                    list(available)
                );
            }
            let mut binaries = Vec::new();
            for bin in listed {
                if !available.contains(bin) {
                    fail!(
                        "{ctx} binaries: `{bin}` is not a binary of package `{package}` (it has: {})",
                        list(available)
                    );
                }
                if binaries.contains(bin) {
                    fail!("{ctx} binaries: `{bin}` is listed twice");
                }
                binaries.push(bin.clone());
            }
            binaries.sort();
            binaries
        }
    };
    let program = match &own.entrypoint {
        Some(entrypoint) => program(&ctx, "entrypoint", entrypoint, &binaries)?,
        None if binaries.contains(&package) => Utf8PathBuf::from(BIN_DIR).join(&package),
        None if binaries.len() == 1 => Utf8PathBuf::from(BIN_DIR).join(&binaries[0]),
        None => fail!(
            "{ctx} entrypoint: missing: the image ships {} and none is named like package \
             `{package}`: say which one starts",
            list(&binaries)
        ),
    };
    let entrypoint = Argv {
        program,
        args: own.args.clone().unwrap_or_default(),
    };
    let role = match (own.port, &own.health) {
        (Some(0), _) => fail!("{ctx} port: 0 is not a port the service can be reached on"),
        (Some(_), None) => fail!(
            "{ctx} health: missing: the path that answers 200 once the service is live (for \
             example \"/healthz\"), or remove `port` for a job that runs and exits"
        ),
        (Some(_), Some(health)) if !health.starts_with('/') => {
            fail!("{ctx} health: `{health}` must be a path starting with `/`")
        }
        (Some(port), Some(health)) => {
            let port_env = own.port_env.clone().unwrap_or_else(|| "PORT".to_owned());
            check_variable(&ctx, "port-env", &port_env)?;
            if let Some(address_env) = &own.address_env {
                check_variable(&ctx, "address-env", address_env)?;
            }
            if let Some(listen_env) = &own.listen_env {
                check_variable(&ctx, "listen-env", listen_env)?;
            }
            Role::Service {
                port,
                health: health.clone(),
                port_env,
                address_env: own.address_env.clone(),
                listen_env: own.listen_env.clone(),
            }
        }
        (None, Some(_)) => fail!(
            "{ctx} health: the image has no `port`, so nothing answers it: set `port`, or remove \
             `health` for a job"
        ),
        (None, None) => {
            for (key, set) in [
                ("port-env", own.port_env.is_some()),
                ("address-env", own.address_env.is_some()),
                ("listen-env", own.listen_env.is_some()),
            ] {
                if set {
                    fail!(
                        "{ctx} {key}: the image has no `port`: set `port`, or remove `{key}` for a job"
                    );
                }
            }
            Role::Job
        }
    };
    let healthcheck = match &own.healthcheck {
        None => None,
        Some(_) if role == Role::Job => fail!(
            "{ctx} healthcheck: a job (no `port`) is not probed while it runs: remove it, or set \
             `port` and `health`"
        ),
        Some(argv) => Some(command(&ctx, "healthcheck", argv, &binaries)?),
    };
    let checks = own
        .checks
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, value)| {
            let ctx = format!("{ctx} checks[{}]", i + 1);
            check(&ctx, value, &role, &binaries, !mine_volumes(own, defaults))
        })
        .collect::<Result<_>>()?;
    Ok(Image {
        name: name.to_owned(),
        package,
        binaries,
        entrypoint,
        role,
        healthcheck,
        base: mine.base.or(defaults.base).unwrap_or(Base::Scratch),
        alpine: mine
            .alpine
            .or_else(|| defaults.alpine.clone())
            .unwrap_or_else(|| DEFAULT_ALPINE.to_owned()),
        // The table replaces the default's whole, as any other key does.
        size_budget: if own.size_budget.is_some() {
            SizeBudget {
                scratch: mine.scratch_budget,
                with_base: mine.with_base_budget,
            }
        } else {
            SizeBudget {
                scratch: defaults.scratch_budget,
                with_base: defaults.with_base_budget,
            }
        },
        dockerfile: mine
            .dockerfile
            .or_else(|| defaults.dockerfile.clone())
            .unwrap_or_else(|| DEFAULT_DOCKERFILE.into()),
        env: mine
            .env
            .or_else(|| defaults.env.clone())
            .unwrap_or_default(),
        volumes: mine
            .volumes
            .or_else(|| defaults.volumes.clone())
            .unwrap_or_default(),
        checks,
    })
}

/// A program of the image: one of its binaries by name, or an absolute path.
fn program(ctx: &str, key: &str, text: &str, binaries: &[String]) -> Result<Utf8PathBuf> {
    if text.starts_with('/') {
        return Ok(text.into());
    }
    if let Some((program, _)) = text.split_once(char::is_whitespace) {
        fail!(
            "{ctx} {key}: `{text}` is one program and its arguments: write \
             {key} = \"{program}\" and put the rest in `args`"
        );
    }
    if !binaries.iter().any(|b| b == text) {
        fail!(
            "{ctx} {key}: `{text}` is not a binary of the image (it ships: {}): name one of them, \
             or give an absolute path",
            list(binaries)
        );
    }
    Ok(Utf8PathBuf::from(BIN_DIR).join(text))
}

fn command(ctx: &str, key: &str, argv: &[String], binaries: &[String]) -> Result<Argv> {
    let Some((first, args)) = argv.split_first() else {
        fail!(
            "{ctx} {key}: empty: give the program and its arguments, for example [\"{}\", \"--help\"]",
            binaries[0]
        );
    };
    Ok(Argv {
        program: program(ctx, key, first, binaries)?,
        args: args.to_vec(),
    })
}

/// Whether the image keeps anything across a restart.
fn mine_volumes(own: &Declared, defaults: &Shared) -> bool {
    let volumes = own.volumes.as_ref().or(defaults.volumes.as_ref());
    volumes.is_some_and(|v| !v.is_empty())
}

fn check(
    ctx: &str,
    value: &Value,
    role: &Role,
    binaries: &[String],
    no_volumes: bool,
) -> Result<Check> {
    if !value.is_object() {
        fail!("{ctx} must be a table with `http` or `command`, not `{value}`");
    }
    let declared =
        DeclaredCheck::deserialize(value).map_err(|e| Error::new(format!("{ctx} {e}")))?;
    let after_restart = declared.after_restart;
    if after_restart && no_volumes {
        fail!(
            "{ctx} after-restart: the image declares no `volumes`, so a restart keeps nothing: \
             add the folder its data lives in to `volumes`"
        );
    }
    let expect = match (declared.expect, declared.expect_contains) {
        (Some(_), Some(_)) => {
            fail!("{ctx}: both `expect` and `expect-contains` are set: keep one")
        }
        (Some(text), None) => Some(Expect::Exact(text)),
        (None, Some(text)) => Some(Expect::Contains(text)),
        (None, None) => None,
    };
    match (declared.http, declared.command) {
        (Some(_), Some(_)) => fail!(
            "{ctx}: both `http` and `command` are set: one check is either a request or a command"
        ),
        (None, None) => fail!(
            "{ctx}: says neither `http = \"GET /path\"` nor `command = [\"binary\", \"arg\"]`"
        ),
        (Some(request), None) => {
            if let Some(exit) = declared.exit {
                fail!("{ctx} exit: {exit} is for command checks; an HTTP check expects a `status`");
            }
            let (method, path) = match request.split_once(' ') {
                Some((method, path)) => (method, path.trim()),
                None => ("GET", request.as_str()),
            };
            let Ok(method) = method.parse::<Method>() else {
                fail!(
                    "{ctx} http: `{method}` is not a method (use one of {})",
                    list(Method::ALL.iter().map(|m| m.as_str()))
                );
            };
            if !path.starts_with('/') || path.contains(char::is_whitespace) {
                fail!(
                    "{ctx} http: `{request}` must be `METHOD /path`, for example \"GET /status\""
                );
            }
            if *role == Role::Job {
                fail!(
                    "{ctx} http: the image has no `port`, so nothing answers `{method} {path}`: set \
                     `port`, or make it a command check"
                );
            }
            let status = declared.status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                fail!("{ctx} status: {status} is not an HTTP status (100 to 599)");
            }
            for (name, value) in &declared.headers {
                // RFC 9110's token characters for names; no line breaks in values.
                let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if name.is_empty() || !name.chars().all(token) {
                    fail!("{ctx} headers: `{name}` is not a header name (letters, digits, `-`)");
                }
                if value.contains(['\r', '\n']) {
                    fail!("{ctx} headers: the value of `{name}` spans lines: keep it on one");
                }
            }
            Ok(Check::Http(HttpCheck {
                after_restart,
                method,
                path: path.to_owned(),
                headers: declared.headers,
                body: declared.body,
                status,
                expect,
            }))
        }
        (None, Some(argv)) => {
            if let Some(status) = declared.status {
                fail!(
                    "{ctx} status: {status} is for HTTP checks; a command check expects an `exit`"
                );
            }
            if declared.body.is_some() {
                fail!(
                    "{ctx} body: is sent by HTTP checks only; a command takes `command` arguments"
                );
            }
            if !declared.headers.is_empty() {
                fail!("{ctx} headers: are sent by HTTP checks only");
            }
            Ok(Check::Command(CommandCheck {
                after_restart,
                argv: command(ctx, "command", &argv, binaries)?,
                exit: declared.exit.unwrap_or(0),
                expect,
            }))
        }
    }
}

fn list<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own two images, as the root `Cargo.toml` declares them.
    const OURS: &str = r#"
[workspace.metadata.xtask]
targets = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]
zig = "0.13.0"

# What both images share.
[workspace.metadata.xtask.image-defaults]
package = "service"
alpine = "docker.io/library/alpine:3.20@sha256:d9e853e87e55526f6b2917df91a2115c36dd7c696a35be12163d44e6e2a4b6bc"
size-budget = { scratch = "10 MiB", with-base = "24 MiB" }
env = { DATABASE_PATH = "/data/service.db" }
volumes = ["/data"]

# The web service, with the migration tool beside it (every binary of `service`).
[workspace.metadata.xtask.images.tiny-service]
port = 8080
address-env = "BIND_ADDRESS"
health = "/healthz"
healthcheck = ["service", "healthcheck"]

[[workspace.metadata.xtask.images.tiny-service.checks]]
http = "GET /hello"
expect = "hello"

[[workspace.metadata.xtask.images.tiny-service.checks]]
http = "/readyz"
expect = "ready"

[[workspace.metadata.xtask.images.tiny-service.checks]]
http = "GET /messages?limit=0"
status = 400
expect-contains = "limit must be a whole number"

[[workspace.metadata.xtask.images.tiny-service.checks]]
command = ["migrate", "up"]

# Migrations as a job before a rollout: `migrate up` on the /data volume, then exit.
[workspace.metadata.xtask.images.tiny-service-migrate]
binaries = ["migrate"]
entrypoint = "migrate"
args = ["up"]

[[workspace.metadata.xtask.images.tiny-service-migrate.checks]]
command = ["migrate", "status"]
exit = 1
expect-contains = "pending"
"#;

    fn ours() -> Members {
        Members::new([
            ("service".into(), vec!["service".into(), "migrate".into()]),
            ("xtask".into(), vec!["xtask".into()]),
        ])
    }

    /// `[workspace.metadata.xtask]` of a `Cargo.toml`, as cargo metadata hands it over.
    fn xtask_table(manifest: &str) -> Value {
        let manifest: Value = toml::from_str(manifest).unwrap();
        manifest["workspace"]["metadata"]["xtask"].clone()
    }

    fn parse(manifest: &str, members: &Members) -> Result<Vec<Image>> {
        images(&xtask_table(manifest), members)
    }

    fn bin(name: &str) -> Utf8PathBuf {
        Utf8PathBuf::from(BIN_DIR).join(name)
    }

    #[test]
    fn our_two_images() {
        let images = parse(OURS, &ours()).unwrap();
        let [service, migrate] = &images[..] else {
            panic!("{images:?}")
        };
        let mib = |n: u64| Some(n << 20);
        let shared_env = BTreeMap::from([("DATABASE_PATH".into(), "/data/service.db".into())]);
        assert_eq!(service.name, "tiny-service");
        assert_eq!(service.package, "service");
        assert_eq!(service.binaries, ["migrate", "service"]);
        assert_eq!(service.entrypoint.to_vec(), ["/usr/local/bin/service"]);
        assert_eq!(
            service.role,
            Role::Service {
                port: 8080,
                health: "/healthz".into(),
                port_env: "PORT".into(),
                address_env: Some("BIND_ADDRESS".into()),
                listen_env: None,
            }
        );
        assert_eq!(
            service.healthcheck.as_ref().map(Argv::to_vec),
            Some(vec!["/usr/local/bin/service".into(), "healthcheck".into()])
        );
        assert_eq!(service.base, Base::Scratch);
        assert!(
            service.alpine.ends_with(
                "@sha256:d9e853e87e55526f6b2917df91a2115c36dd7c696a35be12163d44e6e2a4b6bc"
            )
        );
        assert_eq!(service.size_budget(Base::Scratch), mib(10));
        assert_eq!(service.size_budget(Base::Alpine), mib(24));
        assert_eq!(service.dockerfile, "Dockerfile.runtime");
        assert_eq!(service.env, shared_env);
        assert_eq!(service.volumes, [Utf8PathBuf::from("/data")]);
        let rows: Vec<String> = service.checks.iter().map(Check::to_string).collect();
        assert_eq!(
            rows,
            [
                "GET /hello -> 200",
                "GET /readyz -> 200",
                "GET /messages?limit=0 -> 400",
                "/usr/local/bin/migrate up -> exit 0"
            ]
        );
        let Check::Http(limit) = &service.checks[2] else {
            panic!()
        };
        assert_eq!(
            limit.expect,
            Some(Expect::Contains("limit must be a whole number".into()))
        );

        assert_eq!(migrate.name, "tiny-service-migrate");
        assert_eq!(migrate.binaries, ["migrate"]);
        assert_eq!(migrate.entrypoint.program, bin("migrate"));
        assert_eq!(migrate.entrypoint.args, ["up"]);
        assert_eq!(migrate.role, Role::Job);
        assert_eq!(migrate.port(), None);
        assert_eq!(migrate.healthcheck, None);
        assert_eq!(migrate.size_budget(Base::Scratch), mib(10));
        assert_eq!(migrate.env, shared_env);
        assert_eq!(
            migrate.checks,
            [Check::Command(CommandCheck {
                argv: Argv {
                    program: bin("migrate"),
                    args: vec!["status".into()]
                },
                after_restart: false,
                exit: 1,
                expect: Some(Expect::Contains("pending".into())),
            })]
        );
    }

    #[test]
    fn the_adopter_fixture_declares_two_images() {
        let manifest = include_str!("../../../fixtures/adopter/Cargo.toml");
        let members = Members::new([("notes".into(), vec!["notes".into(), "notectl".into()])]);
        let images = parse(manifest, &members).unwrap();
        let [notes, verify] = &images[..] else {
            panic!("{images:?}")
        };
        assert_eq!(notes.name, "notes");
        assert_eq!(notes.binaries, ["notectl", "notes"]);
        // Named like the package.
        assert_eq!(notes.entrypoint.to_vec(), ["/usr/local/bin/notes"]);
        assert_eq!(notes.port(), Some(3000));
        assert_eq!(notes.size_budget(Base::Scratch), Some(4 << 20));
        assert_eq!(notes.volumes, [Utf8PathBuf::from("/var/lib/notes")]);
        assert_eq!(
            notes.role,
            Role::Service {
                port: 3000,
                health: "/status/live".into(),
                port_env: "LISTEN_PORT".into(),
                address_env: Some("LISTEN_ADDR".into()),
                listen_env: None,
            }
        );
        let after: Vec<String> = notes
            .checks
            .iter()
            .filter(|c| c.after_restart())
            .map(Check::to_string)
            .collect();
        assert_eq!(after, ["GET /notes/1 -> 200 (after restart)"]);
        assert_eq!(notes.checks.len(), 6);
        let typed: Vec<_> = notes
            .checks
            .iter()
            .filter_map(|c| match c {
                Check::Http(h) if !h.headers.is_empty() => Some((h.path.as_str(), &h.headers)),
                _ => None,
            })
            .collect();
        assert_eq!(
            typed,
            [(
                "/notes",
                &BTreeMap::from([("Content-Type".to_owned(), "text/plain".to_owned())])
            )]
        );
        assert_eq!(
            notes.checks[1],
            Check::Http(HttpCheck {
                after_restart: false,
                method: Method::Post,
                path: "/checksum".into(),
                headers: BTreeMap::new(),
                body: Some("hello".into()),
                status: 200,
                expect: Some(Expect::Exact("adler32:062c0215 words:1\n".into())),
            })
        );
        assert_eq!(verify.name, "notes-verify");
        assert_eq!(verify.role, Role::Job);
        assert_eq!(
            verify.entrypoint.to_string(),
            "/usr/local/bin/notectl verify"
        );
    }

    #[test]
    fn defaults_fill_in_and_an_image_replaces_them() {
        let manifest = r#"
[workspace.metadata.xtask.image-defaults]
package = "api"
base = "alpine"
dockerfile = "deploy/Dockerfile.runtime"
size-budget = { scratch = "4 MiB", with-base = "12 MiB" }

[workspace.metadata.xtask.images.api]
port = 9000
health = "/"

[workspace.metadata.xtask.images.api-small]
base = "scratch"
size-budget = { scratch = "2 MiB" }
port = 9000
health = "/"
"#;
        let members = Members::new([("api".into(), vec!["api".into()])]);
        let images = parse(manifest, &members).unwrap();
        assert_eq!(images[0].base, Base::Alpine);
        assert_eq!(images[0].dockerfile, "deploy/Dockerfile.runtime");
        assert_eq!(images[0].alpine, DEFAULT_ALPINE);
        assert_eq!(images[0].size_budget.with_base, Some(12 << 20));
        assert_eq!(images[1].base, Base::Scratch);
        assert_eq!(
            images[1].size_budget,
            SizeBudget {
                scratch: Some(2 << 20),
                with_base: None
            }
        );
        // The only binary starts when none is named like the package.
        let members = Members::new([("api".into(), vec!["server".into()])]);
        let images = parse(manifest, &members).unwrap();
        assert_eq!(images[0].entrypoint.program, bin("server"));
    }

    #[test]
    fn expectations_say_what_came() {
        assert_eq!(Expect::Exact("ok".into()).check("ok"), Ok(()));
        assert_eq!(Expect::Contains("k".into()).check("ok"), Ok(()));
        assert_eq!(
            Expect::Exact("ok".into()).check("ok\n"),
            Err("expected \"ok\", got \"ok\\n\"".into())
        );
    }

    /// Each mistake, written into our own declarations, and the one line that names the fix.
    #[test]
    fn mistakes_name_the_key_to_fix() {
        let m = "[workspace.metadata.xtask.images.tiny-service-migrate]";
        let s = "[workspace.metadata.xtask.images.tiny-service]";
        let d = "[workspace.metadata.xtask.image-defaults]";
        let cases: &[(&str, &str, String)] = &[
            (
                "binaries = [\"migrate\"]",
                "binaries = [\"migrat\"]",
                format!("{m} binaries: `migrat` is not a binary of package `service` (it has: migrate, service)"),
            ),
            (
                "binaries = [\"migrate\"]",
                "binaries = []",
                format!("{m} binaries: empty: list the binaries of package `service` to ship (it has: migrate, service), or remove the key to ship all"),
            ),
            (
                "binaries = [\"migrate\"]",
                "binaries = [\"migrate\", \"migrate\"]",
                format!("{m} binaries: `migrate` is listed twice"),
            ),
            (
                "binaries = [\"migrate\"]\nentrypoint = \"migrate\"",
                "binaries = [\"migrate\"]\nentrypoint = \"service\"",
                format!("{m} entrypoint: `service` is not a binary of the image (it ships: migrate): name one of them, or give an absolute path"),
            ),
            (
                "entrypoint = \"migrate\"\nargs = [\"up\"]",
                "entrypoint = \"migrate up\"",
                format!("{m} entrypoint: `migrate up` is one program and its arguments: write entrypoint = \"migrate\" and put the rest in `args`"),
            ),
            (
                "binaries = [\"migrate\"]\nentrypoint = \"migrate\"",
                "entrypoint = \"migrate\"",
                String::new(), // every binary, migrate starts: fine
            ),
            (
                "binaries = [\"migrate\"]\nentrypoint = \"migrate\"\nargs = [\"up\"]",
                "",
                String::new(), // `service` is named like the package: it starts
            ),
            (
                "port = 8080",
                "prot = 8080",
                format!("{s} unknown field `prot`, expected one of `package`, `binaries`, `entrypoint`, `args`, `port`, `port-env`, `address-env`, `listen-env`, `health`, `healthcheck`, `base`, `alpine`, `size-budget`, `dockerfile`, `env`, `volumes`, `checks`"),
            ),
            (
                "port = 8080",
                "port = \"8080\"",
                format!("{s} invalid type: string \"8080\", expected u16"),
            ),
            (
                "port = 8080",
                "port = 0",
                format!("{s} port: 0 is not a port the service can be reached on"),
            ),
            (
                "health = \"/healthz\"",
                "",
                format!("{s} health: missing: the path that answers 200 once the service is live (for example \"/healthz\"), or remove `port` for a job that runs and exits"),
            ),
            (
                "health = \"/healthz\"",
                "health = \"healthz\"",
                format!("{s} health: `healthz` must be a path starting with `/`"),
            ),
            (
                "args = [\"up\"]",
                "args = [\"up\"]\nhealth = \"/healthz\"",
                format!("{m} health: the image has no `port`, so nothing answers it: set `port`, or remove `health` for a job"),
            ),
            (
                "args = [\"up\"]",
                "args = [\"up\"]\nhealthcheck = [\"migrate\", \"status\"]",
                format!("{m} healthcheck: a job (no `port`) is not probed while it runs: remove it, or set `port` and `health`"),
            ),
            (
                "healthcheck = [\"service\", \"healthcheck\"]",
                "healthcheck = []",
                format!("{s} healthcheck: empty: give the program and its arguments, for example [\"migrate\", \"--help\"]"),
            ),
            (
                "healthcheck = [\"service\", \"healthcheck\"]",
                "healthcheck = [\"curl\", \"-f\", \"localhost\"]",
                format!("{s} healthcheck: `curl` is not a binary of the image (it ships: migrate, service): name one of them, or give an absolute path"),
            ),
            (
                "command = [\"migrate\", \"status\"]\nexit = 1",
                "http = \"GET /messages\"",
                format!("{m} checks[1] http: the image has no `port`, so nothing answers `GET /messages`: set `port`, or make it a command check"),
            ),
            (
                "command = [\"migrate\", \"status\"]",
                "command = [\"migrate\", \"status\"]\nstatus = 200",
                format!("{m} checks[1] status: 200 is for HTTP checks; a command check expects an `exit`"),
            ),
            (
                "command = [\"migrate\", \"status\"]",
                "command = [\"migrate\", \"status\"]\nbody = \"x\"",
                format!("{m} checks[1] body: is sent by HTTP checks only; a command takes `command` arguments"),
            ),
            (
                "exit = 1",
                "exit = 256",
                format!("{m} checks[1] invalid value: integer `256`, expected u8"),
            ),
            (
                "command = [\"migrate\", \"status\"]",
                "command = [\"migrate\", \"status\"]\nexpect = \"\"",
                format!("{m} checks[1]: both `expect` and `expect-contains` are set: keep one"),
            ),
            (
                "command = [\"migrate\", \"status\"]",
                "",
                format!("{m} checks[1]: says neither `http = \"GET /path\"` nor `command = [\"binary\", \"arg\"]`"),
            ),
            (
                "command = [\"migrate\", \"status\"]",
                "command = [\"migrate\"]\nhttp = \"/\"",
                format!("{m} checks[1]: both `http` and `command` are set: one check is either a request or a command"),
            ),
            (
                "command = [\"migrate\", \"status\"]",
                "command = [\"migrate\", \"status\"]\nexpects = \"x\"",
                format!("{m} checks[1] unknown field `expects`, expected one of `http`, `command`, `headers`, `body`, `status`, `exit`, `expect`, `expect-contains`, `after-restart`"),
            ),
            (
                "http = \"GET /hello\"",
                "http = \"GET /hello\"\nheaders = { \"Content Type\" = \"text/plain\" }",
                format!("{s} checks[1] headers: `Content Type` is not a header name (letters, digits, `-`)"),
            ),
            (
                "http = \"GET /hello\"",
                "http = \"GET /hello\"\nheaders = { X-Note = \"a\\nb\" }",
                format!("{s} checks[1] headers: the value of `X-Note` spans lines: keep it on one"),
            ),
            (
                "command = [\"migrate\", \"status\"]",
                "command = [\"migrate\", \"status\"]\nheaders = { Accept = \"text/plain\" }",
                format!("{m} checks[1] headers: are sent by HTTP checks only"),
            ),
            (
                "http = \"GET /hello\"",
                "http = \"FETCH /hello\"",
                format!("{s} checks[1] http: `FETCH` is not a method (use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)"),
            ),
            (
                "http = \"GET /hello\"",
                "http = \"GET hello\"",
                format!("{s} checks[1] http: `GET hello` must be `METHOD /path`, for example \"GET /status\""),
            ),
            (
                "args = [\"up\"]",
                "args = [\"up\"]\nport-env = \"PORT\"",
                format!("{m} port-env: the image has no `port`: set `port`, or remove `port-env` for a job"),
            ),
            (
                "address-env = \"BIND_ADDRESS\"",
                "address-env = \"BIND ADDRESS\"",
                format!("{s} address-env: `BIND ADDRESS` is not a variable name"),
            ),
            (
                "volumes = [\"/data\"]",
                "volumes = []",
                String::new(), // nothing after a restart is checked
            ),
            (
                "expect-contains = \"pending\"",
                "expect-contains = \"pending\"\nafter-restart = true",
                String::new(), // /data is kept across the restart
            ),
            (
                "status = 400",
                "status = 40",
                format!("{s} checks[3] status: 40 is not an HTTP status (100 to 599)"),
            ),
            (
                "package = \"service\"",
                "package = \"servise\"",
                format!("{s} package: `servise` is not a package of this workspace (it has: service, xtask)"),
            ),
            (
                "package = \"service\"",
                "",
                format!("{s} package: missing: name the package whose binaries the image ships (here, or once for every image in {d})"),
            ),
            (
                "volumes = [\"/data\"]",
                "volumes = [\"data\"]",
                format!("{d} volumes: `data` must be an absolute path in the image (for example `/data`)"),
            ),
            (
                "size-budget = { scratch = \"10 MiB\", with-base = \"24 MiB\" }",
                "size-budget = { scratch = \"10 MiB\", with-base = \"big\" }",
                format!("{d} size-budget.with-base: `big` is not a size (for example `8 MiB` or `900 KB`)"),
            ),
            (
                "size-budget = { scratch = \"10 MiB\", with-base = \"24 MiB\" }",
                "size-budget = { scratch = \"10 MiB\", alpine = \"24 MiB\" }",
                format!("{d} unknown field `alpine`, expected `scratch` or `with-base`"),
            ),
            (
                "volumes = [\"/data\"]",
                "volumes = [\"/data\"]\nport = 8080",
                format!("{d} port: says what one image is: set it in [workspace.metadata.xtask.images.<name>] instead"),
            ),
            (
                "env = { DATABASE_PATH = \"/data/service.db\" }",
                "env = { \"DATABASE PATH\" = \"/data/service.db\" }",
                format!("{d} env: `DATABASE PATH` is not a variable name"),
            ),
            (
                "alpine:3.20@",
                "alpine 3.20@",
                format!("{d} alpine: `docker.io/library/alpine 3.20@sha256:d9e853e87e55526f6b2917df91a2115c36dd7c696a35be12163d44e6e2a4b6bc` is not an image reference (for example `docker.io/library/alpine:3.20@sha256:<digest>`)"),
            ),
            (
                "[workspace.metadata.xtask.images.tiny-service]",
                "[workspace.metadata.xtask.images.Tiny-Service]",
                "[workspace.metadata.xtask.images.Tiny-Service]: `Tiny-Service` cannot be an image name: use lower-case letters, digits and single `.`, `_` or `-` between them (for example `tiny-service`)".into(),
            ),
            (
                "zig = \"0.13.0\"",
                "zig = \"0.13.0\"\npackage = \"service\"",
                format!("[workspace.metadata.xtask] package: each image names its package now: move it to {d} package (or to one [workspace.metadata.xtask.images.<name>] table)"),
            ),
            (
                "# What both images share.",
                "[workspace.metadata.xtask.image]\nname = \"tiny-service\"\nport = 8080",
                format!("[workspace.metadata.xtask.image] is replaced by one [workspace.metadata.xtask.images.<name>] table per image (the image name is the table's: drop `name`; `port` goes there) and {d} for what they share (base, alpine, size-budget)"),
            ),
        ];
        let mut wrong = Vec::new();
        for (from, to, want) in cases {
            let (before, after) = around(OURS, from);
            let manifest = format!("{before}{to}{after}");
            let got = match parse(&manifest, &ours()) {
                Ok(_) => String::new(),
                Err(e) => format!("{e:#}"),
            };
            if &got != want {
                wrong.push(format!(
                    "replacing {from:?} with {to:?}\n  got:  {got}\n  want: {want}"
                ));
            }
            assert!(!got.contains('\n'), "{got}");
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Splits `text` around the last occurrence of `pattern` (so a key both images have is
    /// replaced in the table declared last, the migration job's).
    fn around<'a>(text: &'a str, pattern: &str) -> (&'a str, &'a str) {
        let at = text
            .rfind(pattern)
            .unwrap_or_else(|| panic!("{pattern:?} not in the fixture"));
        (&text[..at], &text[at + pattern.len()..])
    }

    #[test]
    fn no_images_or_a_broken_table() {
        let members = ours();
        let cases = [
            (
                "[workspace.metadata.xtask]\nzig = \"0.13.0\"",
                "[workspace.metadata.xtask.images] is missing: declare each image as [workspace.metadata.xtask.images.<name>] with at least `package`",
            ),
            (
                "[workspace.metadata.xtask.images]",
                "[workspace.metadata.xtask.images] declares no image: declare each as [workspace.metadata.xtask.images.<name>] with at least `package`",
            ),
            (
                "[workspace.metadata.xtask]\nimages = { tiny-service = 8080 }",
                "[workspace.metadata.xtask.images.tiny-service] must be a table of settings, not `8080`",
            ),
        ];
        for (manifest, want) in cases {
            let err = parse(manifest, &members).unwrap_err();
            assert_eq!(format!("{err:#}"), want);
        }
        let no_volume = "[workspace.metadata.xtask.images.api]\npackage = \"service\"\nport = 80\n\
                         health = \"/\"\nchecks = [{ http = \"/\" }, { http = \"/\", after-restart = true }]";
        assert_eq!(
            format!("{:#}", parse(no_volume, &members).unwrap_err()),
            "[workspace.metadata.xtask.images.api] checks[2] after-restart: the image declares no \
             `volumes`, so a restart keeps nothing: add the folder its data lives in to `volumes`"
        );
        // Two tables of one name never reach us: TOML itself refuses them.
        let twice = "[workspace.metadata.xtask.images.a]\n[workspace.metadata.xtask.images.a]\n";
        assert!(toml::from_str::<Value>(twice).is_err());
    }

    #[test]
    fn a_service_that_takes_address_and_port_in_one_variable_is_put_on_loopback() {
        let manifest = r#"
[workspace.metadata.xtask.images.bin]
package = "bin"
port = 8088
health = "/"
listen-env = "BIN_ADDRESS_PORT"
"#;
        let members = Members::new([("bin".into(), vec!["bin".into()])]);
        let images = parse(manifest, &members).unwrap();
        let env = images[0].listen_on_loopback(40123);
        assert_eq!(
            env,
            [
                ("PORT".to_owned(), "40123".to_owned()),
                ("BIN_ADDRESS_PORT".to_owned(), "127.0.0.1:40123".to_owned())
            ]
        );
        let job = "[workspace.metadata.xtask.images.bin]\npackage = \"bin\"\nlisten-env = \"A\"\n";
        let err = parse(job, &members).unwrap_err().to_string();
        assert!(err.contains("listen-env: the image has no `port`"), "{err}");
    }
}
