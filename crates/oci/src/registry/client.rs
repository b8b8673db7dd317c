//! The transport: one registry host, its authentication challenge settled, every request
//! with its deadlines, errors told apart by kind.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::bail;
use crate::error::ensure;
use anyhow::Context;
use oci_spec::distribution::Reference;
use oci_spec::image::{
    Arch, Descriptor, DescriptorBuilder, Digest, ImageConfiguration, ImageIndex, ImageManifest,
    MediaType, Os, Platform, PlatformBuilder,
};
use serde::Deserialize;
use ureq::http::{self, Method, StatusCode};

use crate::Error;
use crate::auth::{Challenge, Credential, Login, Secret};
use crate::blobstore::{BlobStore, sha256_digest};
use crate::progress::{Progress, Quiet, size};
use crate::referrers;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest kind we read, for `Accept`.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Blob bytes actually sent to a registry, and the blobs it already had, over one client's
/// life: a push of unchanged images uploads 0 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uploads {
    /// Bytes of blobs uploaded.
    pub bytes: u64,
    /// Blobs uploaded.
    pub blobs: u64,
    /// Blobs the registry already held in the repository (a HEAD answered 200).
    pub present: u64,
    /// Blobs the registry linked from another repository instead of receiving them.
    pub mounted: u64,
}

impl std::fmt::Display for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "uploaded {} blob(s), {}; {} already in the registry, {} mounted from another repository",
            self.blobs,
            size(self.bytes),
            self.present,
            self.mounted
        )
    }
}

/// How long a registry may keep us waiting: to connect, and with no data moving either
/// way (the idle deadline, renewed by every byte, so a large upload is never cut short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// To connect (and resolve the host).
    pub connect: Duration,
    /// With no byte moving either way.
    pub idle: Duration,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            connect: Duration::from_secs(10),
            idle: Duration::from_secs(30),
        }
    }
}

impl Deadlines {
    /// The defaults, or `XTASK_REGISTRY_CONNECT_TIMEOUT` and `XTASK_REGISTRY_IDLE_TIMEOUT`
    /// (whole seconds) where set.
    pub fn from_env() -> crate::Result<Deadlines> {
        let seconds = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
                    _ => bail!(
                        "{name}={value} is not a number of seconds above 0: e.g. {name}={}",
                        default.as_secs()
                    ),
                },
            }
        };
        let default = Deadlines::default();
        Ok(Deadlines {
            connect: seconds("XTASK_REGISTRY_CONNECT_TIMEOUT", default.connect)?,
            idle: seconds("XTASK_REGISTRY_IDLE_TIMEOUT", default.idle)?,
        })
    }
}

/// Transfers at least this large show their progress.
const SHOW_PROGRESS: u64 = 1 << 20;

/// One registry host, its authentication settled.
pub struct Client {
    agent: ureq::Agent,
    host: String,
    base: String,
    login: Login,
    deadlines: Deadlines,
    scheme: Scheme,
    /// Bearer tokens by the scopes they were granted for.
    tokens: HashMap<String, String>,
    uploads: Uploads,
    progress: Arc<dyn Progress>,
}

#[derive(Debug, Clone)]
enum Scheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// What a request needs from the registry's token service.
#[derive(Debug, Clone, Copy)]
enum Access {
    Pull,
    Push,
}

/// Where a blob's bytes come from when the registry needs them.
pub(super) enum Source<'a> {
    File(&'a Path),
    /// Another repository of the same registry (when it will not mount the blob).
    Repository(&'a str),
    /// Bytes in memory (a small document: a signature payload, a config).
    Bytes(&'a [u8]),
}

enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// A manifest or index as the registry holds it: its exact bytes, their digest and type.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// Its media type, from the document (else the registry's `Content-Type`).
    pub media_type: String,
    /// The digest of its bytes.
    pub digest: Digest,
    /// Its exact bytes.
    pub bytes: Vec<u8>,
}

/// A referrer as a registry lists it: its descriptor, the manifest's bytes, and the
/// manifest parsed.
#[derive(Debug, Clone)]
pub struct ReferrerManifest {
    /// The descriptor the registry lists it with.
    pub descriptor: Descriptor,
    /// The manifest as stored.
    pub raw: RawManifest,
    /// The manifest, parsed.
    pub manifest: ImageManifest,
}

impl RawManifest {
    /// Whether it is an index (OCI or docker manifest list).
    pub fn is_index(&self) -> bool {
        is_index_type(&self.media_type)
    }

    /// Its descriptor: media type, digest, size.
    pub fn descriptor(&self) -> crate::Result<Descriptor> {
        Ok(DescriptorBuilder::default()
            .media_type(MediaType::from(self.media_type.as_str()))
            .digest(self.digest.clone())
            .size(self.bytes.len() as u64)
            .build()?)
    }
}

impl Client {
    /// Connects to the registry of `reference` with `login`'s credential (what the command
    /// line gave, or what the user's credential files and helpers hold for the host), as
    /// the registry's challenge asks. Wrong or missing credentials, an unreachable registry
    /// and one that stops answering are each one line.
    pub fn connect(reference: &Reference, login: Login) -> crate::Result<Client> {
        Ok(Client::connect_within(
            reference,
            login,
            Deadlines::from_env()?,
        )?)
    }

    fn connect_within(
        reference: &Reference,
        login: Login,
        deadlines: Deadlines,
    ) -> anyhow::Result<Client> {
        let host = reference.resolve_registry().to_owned();
        let scheme_name = if is_loopback(&host) { "http" } else { "https" };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(deadlines.connect))
            .timeout_resolve(Some(deadlines.connect))
            .timeout_per_read(Some(deadlines.idle))
            .timeout_per_write(Some(deadlines.idle))
            .build()
            .into();
        let mut client = Client {
            agent,
            base: format!("{scheme_name}://{host}"),
            host,
            login,
            deadlines,
            scheme: Scheme::Anonymous,
            tokens: HashMap::new(),
            uploads: Uploads::default(),
            progress: Arc::new(Quiet),
        };
        client.settle_scheme()?;
        Ok(client)
    }

    /// Another client to the same registry, with the same credentials and tokens and the
    /// same connection pool, for work on another thread; its uploads are counted apart.
    pub fn fork(&self) -> Client {
        Client {
            agent: self.agent.clone(),
            host: self.host.clone(),
            base: self.base.clone(),
            login: self.login.clone(),
            deadlines: self.deadlines,
            scheme: self.scheme.clone(),
            tokens: self.tokens.clone(),
            uploads: Uploads::default(),
            progress: self.progress.clone(),
        }
    }

    /// Reports large transfers to `progress` (by default, nothing is reported).
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Client {
        self.progress = progress;
        self
    }

    /// The registry host (`host[:port]`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// What this client has uploaded so far.
    pub fn uploads(&self) -> Uploads {
        self.uploads
    }

    /// Asks `/v2/` which authentication the registry wants, and checks the credentials
    /// there, so a wrong password fails before any upload.
    fn settle_scheme(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/v2/", self.base);
        let mut response = self.raw(Method::GET, &url, None, &[], &Body::Empty)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            ensure!(
                response.status().is_success(),
                "{} at {url} answered {}: is it an OCI registry?",
                self.host,
                response.status()
            );
            return Ok(());
        }
        let header = header(&response, "www-authenticate").with_context(|| {
            format!(
                "registry {} answered 401 with no WWW-Authenticate challenge",
                self.host
            )
        })?;
        let _ = read_error(&mut response);
        match Challenge::parse(&header)? {
            Challenge::Basic => {
                self.scheme = Scheme::Basic;
                let credential = self.require_credential()?.basic_header()?;
                let mut response =
                    self.raw(Method::GET, &url, Some(&credential), &[], &Body::Empty)?;
                if !response.status().is_success() {
                    let why = read_error(&mut response);
                    return Err(self.refused(&why));
                }
            }
            Challenge::Bearer { realm, service, .. } => {
                self.scheme = Scheme::Bearer { realm, service };
                // docker login's check: a token for no scope proves the credentials.
                if self.login.credential.is_some() {
                    self.token(&[])?;
                }
            }
        }
        Ok(())
    }

    fn require_credential(&self) -> anyhow::Result<&Credential> {
        self.login
            .credential
            .as_ref()
            .ok_or_else(|| Error::Unauthorized(self.login.missing(&self.host)).into())
    }

    fn refused(&self, why: &str) -> anyhow::Error {
        match &self.login.credential {
            Some(c) => Error::Unauthorized(format!(
                "registry {} refused the credentials for {} (from {}): {why}",
                self.host, c.username, c.source
            ))
            .into(),
            None => Error::Unauthorized(self.login.missing(&self.host)).into(),
        }
    }

    /// Checks, before anything is built for it, that `repository` takes pushes from us:
    /// the push token where the registry wants one, then an upload session opened and
    /// cancelled (a registry that stops answering after `/v2/` is found here too).
    pub fn check_push(&mut self, repository: &str) -> crate::Result<()> {
        let url = self.url(repository, "blobs/uploads/");
        let scopes = scopes(repository, Access::Push);
        let mut response = self.send(Method::POST, &url, &scopes, &[], &Body::Empty)?;
        self.expect_success(
            &mut response,
            &format!("opening an upload to {}/{repository}", self.host),
        )?;
        if let Some(location) = header(&response, "location") {
            let location = self.absolute(&location);
            // A session left open expires on its own: the answer does not matter.
            let _ = self.send(Method::DELETE, &location, &scopes, &[], &Body::Empty);
        }
        Ok(())
    }

    /// A bearer token for `scopes` from the registry's token service, cached.
    fn token(&mut self, scopes: &[String]) -> anyhow::Result<String> {
        let key = scopes.join(" ");
        if let Some(token) = self.tokens.get(&key) {
            return Ok(token.clone());
        }
        let Scheme::Bearer { realm, service } = &self.scheme else {
            bail!("registry {} did not ask for a token", self.host);
        };
        let credential = self.login.credential.as_ref();
        let result = match credential.map(|c| &c.secret) {
            // An identity token is exchanged for an access token (OAuth2 refresh).
            Some(Secret::IdentityToken(token)) => {
                let scope = scopes.join(" ");
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", "xtask"),
                ];
                form.extend(service.as_deref().map(|s| ("service", s)));
                if !scope.is_empty() {
                    form.push(("scope", scope.as_str()));
                }
                self.agent.post(realm.as_str()).send_form(form)
            }
            _ => {
                let mut request = self.agent.get(realm.as_str());
                if let Some(service) = service {
                    request = request.query("service", service);
                }
                for scope in scopes {
                    request = request.query("scope", scope);
                }
                if let Some(credential) = credential {
                    request = request.header("Authorization", credential.basic_header()?);
                }
                request.call()
            }
        };
        let mut response = result.map_err(|e| {
            let doing = format!("giving a token at {realm}");
            self.transport_error(e, &doing)
        })?;
        if matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            let why = read_error(&mut response);
            return Err(self.refused(&why));
        }
        ensure!(
            response.status().is_success(),
            "the token service of registry {} at {realm} answered {}: {}",
            self.host,
            response.status(),
            read_error(&mut response)
        );
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = response
            .body_mut()
            .read_to_vec()
            .map_err(|e| self.body_error(e.into(), &format!("giving a token at {realm}")))?;
        let body: TokenResponse = serde_json::from_slice(&body)
            .with_context(|| format!("the token service at {realm} answered no JSON token"))?;
        let token = body
            .token
            .or(body.access_token)
            .with_context(|| format!("the token service at {realm} answered no token"))?;
        self.tokens.insert(key, token.clone());
        Ok(token)
    }

    fn authorization(&mut self, scopes: &[String]) -> anyhow::Result<Option<String>> {
        match self.scheme {
            Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(Some(self.require_credential()?.basic_header()?)),
            Scheme::Bearer { .. } => Ok(Some(format!("Bearer {}", self.token(scopes)?))),
        }
    }

    /// One request with the authorization its scopes need; a 401 on a bearer token (expired,
    /// or scoped too narrowly) gets one fresh token and one retry.
    fn send(
        &mut self,
        method: Method,
        url: &str,
        scopes: &[String],
        headers: &[(&str, &str)],
        body: &Body,
    ) -> anyhow::Result<http::Response<ureq::Body>> {
        tiny_interrupt::check()?;
        let auth = self.authorization(scopes)?;
        let response = self.raw(method.clone(), url, auth.as_deref(), headers, body)?;
        if response.status() != StatusCode::UNAUTHORIZED
            || !matches!(self.scheme, Scheme::Bearer { .. })
        {
            return Ok(response);
        }
        self.tokens.remove(&scopes.join(" "));
        let auth = self.authorization(scopes)?;
        self.raw(method, url, auth.as_deref(), headers, body)
    }

    fn raw(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&str>,
        headers: &[(&str, &str)],
        body: &Body,
    ) -> anyhow::Result<http::Response<ureq::Body>> {
        let doing = doing(&method, url);
        let mut request = http::Request::builder().method(method).uri(url);
        if let Some(auth) = authorization {
            request = request.header("Authorization", auth);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let result = match body {
            Body::Empty => self.agent.run(request.body(())?),
            Body::Bytes(bytes) => self.agent.run(request.body(*bytes)?),
            Body::File(path) => {
                let file =
                    File::open(path).with_context(|| format!("opening {}", path.display()))?;
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                let _progress = (size >= SHOW_PROGRESS).then(|| {
                    self.progress.begin(format!(
                        "{doing} ({}) to {}",
                        crate::progress::size(size),
                        self.host
                    ))
                });
                self.agent.run(request.body(file)?)
            }
        };
        result.map_err(|e| self.transport_error(e, &doing))
    }

    /// One line for a request that failed below HTTP: the registry could not be reached,
    /// or stopped answering while `doing` something (the idle deadline passed).
    fn transport_error(&self, e: ureq::Error, doing: &str) -> anyhow::Error {
        use ureq::Timeout;
        match e {
            ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => Error::Unreachable(format!(
                "registry {} is unreachable at {}: no connection within {} s; is it running, and is the address right?",
                self.host,
                self.base,
                self.deadlines.connect.as_secs()
            ))
            .into(),
            ureq::Error::Timeout(_) => self.stalled(doing),
            ureq::Error::Io(ref io) if is_stall(io) => self.stalled(doing),
            ureq::Error::Io(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
                Error::Unreachable(format!(
                    "registry {} is unreachable at {}: {e}; is it running, and is the address right?",
                    self.host, self.base
                ))
                .into()
            }
            e => anyhow::anyhow!("talking to registry {} while {doing}: {e}", self.host),
        }
    }

    fn stalled(&self, doing: &str) -> anyhow::Error {
        Error::Stalled(format!(
            "registry {} stopped answering while {doing} (no data for {} s; XTASK_REGISTRY_IDLE_TIMEOUT sets how long to wait)",
            self.host,
            self.deadlines.idle.as_secs()
        ))
        .into()
    }

    /// A response body read that failed: the stall line when the idle deadline passed,
    /// else the error with what was being read.
    fn body_error(&self, e: anyhow::Error, doing: &str) -> anyhow::Error {
        let stalled = e.chain().any(|cause| {
            cause
                .downcast_ref::<ureq::Error>()
                .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
                || cause.downcast_ref::<std::io::Error>().is_some_and(is_stall)
        });
        if stalled {
            self.stalled(doing)
        } else {
            e.context(format!("{doing} from registry {}", self.host))
        }
    }

    fn url(&self, repository: &str, rest: &str) -> String {
        format!("{}/v2/{repository}/{rest}", self.base)
    }

    /// Resolves a registry's `Location` header, which may be relative.
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// The manifest or index `reference` (a tag or a digest) names in `repository`, checked
    /// against the digest when one is asked for.
    pub fn manifest(&mut self, repository: &str, reference: &str) -> crate::Result<RawManifest> {
        self.manifest_if_exists(repository, reference)?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{}/{repository}:{reference} does not exist in the registry (manifest unknown)",
                    self.host
                ))
            })
    }

    /// The manifest or index `reference` names, or `None` when the registry has none.
    pub fn manifest_if_exists(
        &mut self,
        repository: &str,
        reference: &str,
    ) -> crate::Result<Option<RawManifest>> {
        let url = self.url(repository, &format!("manifests/{reference}"));
        let scopes = scopes(repository, Access::Pull);
        let mut response = self.send(
            Method::GET,
            &url,
            &scopes,
            &[("Accept", MANIFEST_TYPES)],
            &Body::Empty,
        )?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.expect_success(&mut response, &format!("reading {repository}:{reference}"))?;
        let media_type = header(&response, "content-type").unwrap_or_default();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_vec()
            .map_err(|e| {
                self.body_error(
                    e.into(),
                    &format!("reading the manifest {repository}:{reference}"),
                )
            })?;
        let digest = sha256_digest(&bytes)?;
        if reference.contains(':') {
            ensure!(
                digest.to_string() == reference,
                "registry {} sent a manifest for {reference} that hashes to {digest}: refusing it",
                self.host
            );
        }
        // The media type in the document wins over a registry's generic Content-Type.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Kind {
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        let kind: Kind = serde_json::from_slice(&bytes)
            .with_context(|| format!("the manifest of {repository}:{reference} is not JSON"))?;
        let media_type = match kind.media_type {
            Some(t) => t,
            None if kind.manifests.is_some() => MediaType::ImageIndex.to_string(),
            None if media_type.contains("json") => media_type,
            None => MediaType::ImageManifest.to_string(),
        };
        Ok(Some(RawManifest {
            media_type,
            digest,
            bytes,
        }))
    }

    /// The referrers of `subject` in `repository`, as the referrers API lists them
    /// (`GET /v2/<name>/referrers/<digest>`), or `None` when the registry has no such API
    /// (it answers 404, as distribution 2.8 does).
    fn referrers_api(
        &mut self,
        repository: &str,
        subject: &Digest,
    ) -> anyhow::Result<Option<ImageIndex>> {
        let url = self.url(repository, &format!("referrers/{subject}"));
        let scopes = scopes(repository, Access::Pull);
        let mut response = self.send(
            Method::GET,
            &url,
            &scopes,
            &[("Accept", "application/vnd.oci.image.index.v1+json")],
            &Body::Empty,
        )?;
        if matches!(
            response.status(),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST
        ) {
            let _ = read_error(&mut response);
            return Ok(None);
        }
        self.expect_success(
            &mut response,
            &format!("listing the referrers of {subject}"),
        )?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_vec()
            .map_err(|e| {
                self.body_error(e.into(), &format!("listing the referrers of {subject}"))
            })?;
        Ok(Some(referrers::parse_index(&bytes)?))
    }

    /// What `repository` lists as referrers of `subject`: the referrers API's answer, or
    /// on a registry without it the index under the fallback tag `sha256-<hex>` (none when
    /// there is no such tag).
    pub fn referrers(
        &mut self,
        repository: &str,
        subject: &Digest,
    ) -> crate::Result<Vec<Descriptor>> {
        if let Some(index) = self.referrers_api(repository, subject)? {
            return Ok(index.manifests().clone());
        }
        Ok(self
            .fallback_index(repository, subject)?
            .map(|index| index.manifests().clone())
            .unwrap_or_default())
    }

    /// The referrer manifests of `subject` in `repository` (as `referrers` lists them),
    /// each fetched and parsed. Entries that are not image manifests (another tool's
    /// referrer may be an index) are skipped: nothing here reads or copies them.
    pub fn referrer_manifests(
        &mut self,
        repository: &str,
        subject: &Digest,
    ) -> crate::Result<Vec<ReferrerManifest>> {
        let mut found = Vec::new();
        for descriptor in self.referrers(repository, subject)? {
            if *descriptor.media_type() != MediaType::ImageManifest {
                continue;
            }
            let raw = self.manifest(repository, descriptor.digest().as_ref())?;
            let manifest = ImageManifest::from_reader(raw.bytes.as_slice())
                .with_context(|| format!("the referrer {} of {subject}", descriptor.digest()))?;
            found.push(ReferrerManifest {
                descriptor,
                raw,
                manifest,
            });
        }
        Ok(found)
    }

    /// The index under the fallback tag `sha256-<hex>` of `subject`, if there is one.
    fn fallback_index(
        &mut self,
        repository: &str,
        subject: &Digest,
    ) -> anyhow::Result<Option<ImageIndex>> {
        let tag = referrers::fallback_tag(subject);
        self.manifest_if_exists(repository, &tag)?
            .map(|raw| {
                referrers::parse_index(&raw.bytes)
                    .with_context(|| format!("the referrers tag {repository}:{tag}"))
            })
            .transpose()
    }

    /// Lists `attached` (referrer manifests already in `repository`) as referrers of
    /// `subject`: a registry with the referrers API did so when they were put; on one
    /// without it, they are merged into the fallback tag's index (read, merged as
    /// `referrers::merge` does, put back), which is left alone when nothing changes.
    pub fn list_referrers(
        &mut self,
        repository: &str,
        subject: &Digest,
        attached: &[Descriptor],
    ) -> crate::Result<()> {
        if attached.is_empty() || self.referrers_api(repository, subject)?.is_some() {
            return Ok(());
        }
        // Read, modify, write: the fallback scheme has no compare-and-swap, so two pushers
        // attaching to the same image at once can each drop the other's entry (a limit of
        // the spec's scheme; a registry with the referrers API has no such race).
        let existing = self.fallback_index(repository, subject)?;
        let tag = referrers::fallback_tag(subject);
        if let Some(bytes) = referrers::merge(existing.as_ref(), attached)? {
            let raw = RawManifest {
                media_type: MediaType::ImageIndex.to_string(),
                digest: sha256_digest(&bytes)?,
                bytes,
            };
            self.put_manifest(repository, &tag, &raw)?;
        }
        Ok(())
    }

    /// Puts a manifest or index under `reference` (a tag or its digest); returns its digest.
    pub fn put_manifest(
        &mut self,
        repository: &str,
        reference: &str,
        manifest: &RawManifest,
    ) -> crate::Result<Digest> {
        let url = self.url(repository, &format!("manifests/{reference}"));
        let scopes = scopes(repository, Access::Push);
        let mut response = self.send(
            Method::PUT,
            &url,
            &scopes,
            &[("Content-Type", &manifest.media_type)],
            &Body::Bytes(&manifest.bytes),
        )?;
        self.expect_success(
            &mut response,
            &format!("pushing the manifest {repository}:{reference}"),
        )?;
        if let Some(answered) = header(&response, "docker-content-digest") {
            ensure!(
                answered == manifest.digest.to_string(),
                "registry {} stored {repository}:{reference} as {answered}, not {}",
                self.host,
                manifest.digest
            );
        }
        Ok(manifest.digest.clone())
    }

    /// Whether `repository` holds the blob.
    pub fn has_blob(&mut self, repository: &str, digest: &Digest) -> crate::Result<bool> {
        let url = self.url(repository, &format!("blobs/{digest}"));
        let scopes = scopes(repository, Access::Pull);
        let mut response = self.send(Method::HEAD, &url, &scopes, &[], &Body::Empty)?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => {
                self.expect_success(&mut response, &format!("looking for blob {digest}"))?;
                Ok(false)
            }
        }
    }

    /// Makes the blob present in `repository`: nothing if it is there, a cross-repository
    /// mount from `mount_from` when the registry has it there, an upload of `path` otherwise.
    pub fn ensure_blob(
        &mut self,
        repository: &str,
        digest: &Digest,
        path: &Path,
        mount_from: Option<&str>,
    ) -> crate::Result<()> {
        Ok(self.place_blob(repository, digest, mount_from, Source::File(path))?)
    }

    /// Makes a blob held in memory present in `repository` (uploaded unless it is there);
    /// returns its digest.
    pub fn put_blob(&mut self, repository: &str, data: &[u8]) -> crate::Result<Digest> {
        let digest = sha256_digest(data)?;
        self.place_blob(repository, &digest, None, Source::Bytes(data))?;
        Ok(digest)
    }

    pub(super) fn place_blob(
        &mut self,
        repository: &str,
        digest: &Digest,
        mount_from: Option<&str>,
        source: Source,
    ) -> anyhow::Result<()> {
        if self.has_blob(repository, digest)? {
            self.uploads.present += 1;
            return Ok(());
        }
        let mut url = self.url(repository, "blobs/uploads/");
        let mut scopes = scopes(repository, Access::Push);
        if let Some(from) = mount_from.filter(|from| *from != repository) {
            url = format!("{url}?mount={digest}&from={from}");
            scopes.extend(self::scopes(from, Access::Pull));
        }
        let mut response = self.send(Method::POST, &url, &scopes, &[], &Body::Empty)?;
        if response.status() == StatusCode::CREATED {
            self.uploads.mounted += 1;
            return Ok(());
        }
        // Not mounted: the registry opened an upload session instead.
        self.expect_success(&mut response, &format!("starting the upload of {digest}"))?;
        let location = header(&response, "location").with_context(|| {
            format!("registry {} started an upload with no Location", self.host)
        })?;
        let location = self.absolute(&location);
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let copied;
        let (body, size) = match source {
            Source::File(path) => {
                let size = std::fs::metadata(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .len();
                (Body::File(path), size)
            }
            Source::Repository(from) => {
                copied = self.blob_bytes(from, digest)?;
                (Body::Bytes(&copied), copied.len() as u64)
            }
            Source::Bytes(bytes) => (Body::Bytes(bytes), bytes.len() as u64),
        };
        let mut response = self.send(
            Method::PUT,
            &put,
            &scopes,
            &[("Content-Type", "application/octet-stream")],
            &body,
        )?;
        self.expect_success(&mut response, &format!("uploading blob {digest}"))?;
        self.uploads.bytes += size;
        self.uploads.blobs += 1;
        Ok(())
    }

    /// A blob in memory (a config, or a layer the registry would not mount), checked
    /// against its digest.
    pub fn blob_bytes(&mut self, repository: &str, digest: &Digest) -> crate::Result<Vec<u8>> {
        let url = self.url(repository, &format!("blobs/{digest}"));
        let scopes = scopes(repository, Access::Pull);
        let mut response = self.send(Method::GET, &url, &scopes, &[], &Body::Empty)?;
        self.expect_success(&mut response, &format!("downloading blob {digest}"))?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .map_err(|e| {
                self.body_error(
                    e.into(),
                    &format!("downloading blob {digest} of {repository}"),
                )
            })?;
        let actual = sha256_digest(&bytes)?;
        ensure!(
            actual == *digest,
            "registry {} sent blob {digest} of {repository} hashing to {actual}: refusing it",
            self.host
        );
        Ok(bytes)
    }

    /// Streams a blob into `store`, checking size and digest.
    pub fn fetch_blob(
        &mut self,
        repository: &str,
        descriptor: &Descriptor,
        store: &BlobStore,
    ) -> crate::Result<()> {
        let digest = descriptor.digest();
        let url = self.url(repository, &format!("blobs/{digest}"));
        let scopes = scopes(repository, Access::Pull);
        let mut response = self.send(Method::GET, &url, &scopes, &[], &Body::Empty)?;
        self.expect_success(&mut response, &format!("downloading blob {digest}"))?;
        let doing = format!("downloading blob {digest}");
        let _progress = (descriptor.size() >= SHOW_PROGRESS).then(|| {
            self.progress.begin(format!(
                "{doing} ({}) from {}",
                size(descriptor.size()),
                self.host
            ))
        });
        store
            .write_from(digest, descriptor.size(), response.body_mut().as_reader())
            .map_err(|e| self.body_error(e.into(), &doing).into())
    }

    fn expect_success(
        &self,
        response: &mut http::Response<ureq::Body>,
        doing: &str,
    ) -> anyhow::Result<()> {
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let why = read_error(response);
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(self.refused(&why).context(doing.to_owned()));
        }
        let message = format!("{doing}: registry {} answered {status}: {why}", self.host);
        if status == StatusCode::NOT_FOUND {
            return Err(Error::NotFound(message).into());
        }
        Err(Error::Refused(message).into())
    }
}

/// What a request to `url` does, in words, for the line that says it stalled.
fn doing(method: &Method, url: &str) -> String {
    let path = url.split_once("/v2/").map_or("", |(_, p)| p);
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(|v| v.replace("%3A", ":"))
    };
    if !url.contains("/v2/") {
        return format!("giving a token at {url}");
    }
    if path.is_empty() {
        return "answering /v2/".to_owned();
    }
    let parts: Vec<&str> = path.split('/').collect();
    let find = |word: &str| parts.iter().rposition(|p| *p == word);
    if let Some(i) = find("uploads").filter(|i| *i > 0 && parts[i - 1] == "blobs") {
        let repository = parts[..i - 1].join("/");
        return match (method.as_str(), param("digest"), param("mount")) {
            ("PUT", Some(digest), _) => format!("uploading blob {digest}"),
            ("POST", _, Some(digest)) => format!("mounting blob {digest} into {repository}"),
            ("DELETE", _, _) => format!("cancelling an upload to {repository}"),
            _ => format!("opening an upload to {repository}"),
        };
    }
    let named = |i: usize| (parts[..i].join("/"), parts[i + 1..].join("/"));
    if let Some(i) = find("blobs") {
        let (repository, digest) = named(i);
        return match method.as_str() {
            "HEAD" => format!("looking for blob {digest} in {repository}"),
            _ => format!("downloading blob {digest} of {repository}"),
        };
    }
    if let Some(i) = find("manifests") {
        let (repository, reference) = named(i);
        return match method.as_str() {
            "PUT" => format!("pushing the manifest {repository}:{reference}"),
            _ => format!("reading the manifest {repository}:{reference}"),
        };
    }
    if let Some(i) = find("referrers") {
        let (_, digest) = named(i);
        return format!("listing the referrers of {digest}");
    }
    format!("{method} /v2/{path}")
}

/// An I/O error that is a deadline passing (a socket timeout), not a refusal.
fn is_stall(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) || e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

fn scopes(repository: &str, access: Access) -> Vec<String> {
    let actions = match access {
        Access::Pull => "pull",
        Access::Push => "pull,push",
    };
    vec![format!("repository:{repository}:{actions}")]
}

fn header(response: &http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The registry's error body as one line: `CODE: message` for each error it lists.
fn read_error(response: &mut http::Response<ureq::Body>) -> String {
    let status = response.status();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Error>,
    }
    #[derive(Deserialize)]
    struct Error {
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<Errors>(&text) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => {
            let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if line.is_empty() {
                status.to_string()
            } else {
                line.chars().take(200).collect()
            }
        }
    }
}

fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

pub(super) fn is_index_type(media_type: &str) -> bool {
    media_type == MediaType::ImageIndex.to_string() || media_type == DOCKER_MANIFEST_LIST
}

pub(super) fn is_manifest_type(media_type: &str) -> bool {
    media_type == MediaType::ImageManifest.to_string() || media_type == DOCKER_MANIFEST
}

/// `linux/arm64/v8`, as docker writes a platform.
pub fn platform_name(platform: &Platform) -> String {
    let mut name = format!("{}/{}", platform.os(), platform.architecture());
    if let Some(variant) = platform.variant() {
        name = format!("{name}/{variant}");
    }
    name
}

/// Parses `linux/amd64` or `linux/arm64/v8`.
pub fn parse_platform(text: &str) -> crate::Result<Platform> {
    let mut parts = text.split('/');
    let (Some(os), Some(arch)) = (parts.next(), parts.next()) else {
        bail!("`{text}` is not a platform: write os/arch, e.g. linux/arm64");
    };
    let mut builder = PlatformBuilder::default()
        .os(Os::from(os))
        .architecture(Arch::from(arch));
    if let Some(variant) = parts.next() {
        builder = builder.variant(variant.to_owned());
    }
    Ok(builder.build()?)
}

/// The platform an image's config declares.
pub(super) fn platform_of_config(config: &ImageConfiguration) -> anyhow::Result<Platform> {
    let mut builder = PlatformBuilder::default()
        .os(config.os().clone())
        .architecture(config.architecture().clone());
    if let Some(variant) = config.variant() {
        builder = builder.variant(variant.clone());
    }
    Ok(builder.build()?)
}

/// Whether an index entry's platform serves `wanted`: os and architecture equal, and the
/// variant equal when both name one (`arm64` and `arm64/v8` are the same machine).
pub(super) fn platform_matches(entry: &Platform, wanted: &Platform) -> bool {
    entry.os() == wanted.os()
        && entry.architecture() == wanted.architecture()
        && match (entry.variant(), wanted.variant()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// A registry that wants a bearer token from its token service (both served here, on
    /// loopback): the token costs `alice:pw` and opens `a/b` for reading.
    fn token_registry() -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let realm = format!("http://{host}/token");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
                let request = lines.next().unwrap().unwrap();
                let auth = lines
                    .map_while(Result::ok)
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| l.strip_prefix("authorization: ").map(str::to_owned))
                    .unwrap_or_default();
                let challenge =
                    format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\n");
                let (status, headers, body) = if request.starts_with("GET /token?service=fake") {
                    if auth == "Basic YWxpY2U6cHc=" {
                        let token = if request.contains("scope=repository%3Aa%2Fb%3Apull") {
                            "T-ab"
                        } else {
                            "T-none"
                        };
                        ("200 OK", String::new(), format!(r#"{{"token":"{token}"}}"#))
                    } else {
                        let e = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad password"}]}"#;
                        ("401 Unauthorized", String::new(), e.to_owned())
                    }
                } else if request.starts_with("GET /v2/a/b/manifests/1 ") && auth == "Bearer T-ab" {
                    let m = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
                    ("200 OK", String::new(), m.to_owned())
                } else {
                    ("401 Unauthorized", challenge, String::new())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        host
    }

    fn credential(password: &str) -> Credential {
        Credential {
            username: "alice".into(),
            secret: Secret::Password(password.into()),
            source: "a test".into(),
        }
    }

    #[test]
    fn the_token_flow_gets_a_scoped_token_and_wrong_credentials_are_one_line() {
        let host = token_registry();
        let reference: Reference = format!("{host}/a/b:1").parse().unwrap();
        let mut client = Client::connect(&reference, Login::given(credential("pw"))).unwrap();
        let manifest = client.manifest("a/b", "1").unwrap();
        assert!(!manifest.is_index());
        assert_eq!(
            manifest.media_type,
            "application/vnd.oci.image.manifest.v1+json"
        );

        let err = Client::connect(&reference, Login::given(credential("nope")))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            format!(
                "registry {host} refused the credentials for alice (from a test): UNAUTHORIZED: bad password"
            )
        );
    }

    /// A registry on 127.0.0.1 that reads each request's first line and headers, then
    /// answers with what `answer` gives (status line and headers, body), or, for `None`,
    /// holds the connection open and never answers.
    fn fake_registry(answer: fn(&str) -> Option<(&'static str, &'static str)>) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let Some((status, body)) = answer(&request) else {
                    held.push(stream);
                    continue;
                };
                reader
                    .lines()
                    .map_while(Result::ok)
                    .take_while(|l| !l.is_empty())
                    .for_each(drop);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nConnection: close\r\n\r\n{body}"
                );
            }
        });
        host
    }

    /// A client of `host` whose deadlines are one second each.
    fn impatient_client(host: &str) -> Client {
        let reference: Reference = format!("{host}/a/b:1").parse().unwrap();
        let deadlines = Deadlines {
            connect: Duration::from_secs(1),
            idle: Duration::from_secs(1),
        };
        Client::connect_within(&reference, Login::default(), deadlines).unwrap()
    }

    #[test]
    fn a_registry_that_stops_answering_fails_at_the_idle_deadline_saying_what_it_was_doing() {
        // Answers `/v2/` and then nothing else.
        let host = fake_registry(|request| {
            request
                .starts_with("GET /v2/ ")
                .then_some(("200 OK\r\nContent-Length: 2", "{}"))
        });
        let mut client = impatient_client(&host);
        let started = std::time::Instant::now();
        let err = client.check_push("a/b").unwrap_err().to_string();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err,
            format!(
                "registry {host} stopped answering while opening an upload to a/b (no data for 1 s; XTASK_REGISTRY_IDLE_TIMEOUT sets how long to wait)"
            )
        );
    }

    #[test]
    fn an_upload_the_registry_stops_reading_fails_at_the_idle_deadline() {
        // Opens upload sessions and then reads nothing of the blob sent.
        let host = fake_registry(|request| match request.split(' ').next() {
            Some("PUT") => None,
            Some("HEAD") => Some(("404 Not Found\r\nContent-Length: 0", "")),
            Some("POST") => Some((
                "202 Accepted\r\nLocation: /v2/a/b/blobs/uploads/u1\r\nContent-Length: 0",
                "",
            )),
            _ => Some(("200 OK\r\nContent-Length: 0", "")),
        });
        let mut client = impatient_client(&host);
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("layer");
        // More than the socket buffers on both sides hold.
        std::fs::write(&blob, vec![7u8; 64 << 20]).unwrap();
        let digest = Digest::from_str(&format!("sha256:{}", "c".repeat(64))).unwrap();
        let started = std::time::Instant::now();
        let err = client
            .ensure_blob("a/b", &digest, &blob, None)
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err,
            format!(
                "registry {host} stopped answering while uploading blob {digest} (no data for 1 s; XTASK_REGISTRY_IDLE_TIMEOUT sets how long to wait)"
            )
        );
    }

    #[test]
    fn requests_are_described_by_what_they_do() {
        let base = "http://r:5000/v2";
        let d = format!("sha256:{}", "a".repeat(64));
        for (method, url, says) in [
            (Method::GET, format!("{base}/"), "answering /v2/".to_owned()),
            (
                Method::PUT,
                format!("{base}/team/app/blobs/uploads/u-1?_state=x&digest={d}"),
                format!("uploading blob {d}"),
            ),
            (
                Method::POST,
                format!("{base}/team/app/blobs/uploads/?mount={d}&from=base"),
                format!("mounting blob {d} into team/app"),
            ),
            (
                Method::POST,
                format!("{base}/team/app/blobs/uploads/"),
                "opening an upload to team/app".to_owned(),
            ),
            (
                Method::HEAD,
                format!("{base}/app/blobs/{d}"),
                format!("looking for blob {d} in app"),
            ),
            (
                Method::PUT,
                format!("{base}/app/manifests/1.0-amd64"),
                "pushing the manifest app:1.0-amd64".to_owned(),
            ),
            (
                Method::GET,
                format!("{base}/app/referrers/{d}"),
                format!("listing the referrers of {d}"),
            ),
            (
                Method::GET,
                "https://auth.io/token".to_owned(),
                "giving a token at https://auth.io/token".to_owned(),
            ),
        ] {
            assert_eq!(doing(&method, &url), says, "{method} {url}");
        }
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        for host in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.0.0.1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn platforms_parse_print_and_match() {
        let arm = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(platform_name(&arm), "linux/arm64/v8");
        let bare = parse_platform("linux/arm64").unwrap();
        assert!(platform_matches(&arm, &bare) && platform_matches(&bare, &arm));
        let v7 = parse_platform("linux/arm/v7").unwrap();
        let v6 = parse_platform("linux/arm/v6").unwrap();
        assert!(!platform_matches(&v7, &v6));
        assert!(!platform_matches(
            &parse_platform("linux/amd64").unwrap(),
            &bare
        ));
        assert!(parse_platform("linux").is_err());
    }
}
