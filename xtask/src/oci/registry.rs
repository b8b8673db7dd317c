//! A registry client for the OCI distribution API: push images and indexes from an OCI
//! layout, pull a base image (one platform) into a cache layout, read manifests and configs.
//!
//! Written on `ureq` (blocking, already a dependency; its `rustls` feature adds HTTPS) rather
//! than `oci-client` 0.18, by measurement. Cold `cargo build -p xtask` on the 2-core build
//! machine, oci-spec in every variant, each variant calling the client, two rounds under the
//! same load: without a registry client 116-132 s, 41 MB debug binary, 79 crates; ureq +
//! rustls (ring) 133 s, 57 MB, 92 crates; oci-client (reqwest 0.13, hyper, tokio, rustls on
//! aws-lc, whose C build dominates) 315-355 s, 115 MB, 174 crates: the xtask would take
//! 2.5 times as long to build from cold. oci-client would save the HTTP calls and the token
//! flow (about 150 lines here); the rest (credentials from docker and podman files, the
//! layout walk, platform choice, mounts, upload accounting, one-line errors) would be needed
//! on top of it all the same.
//!
//! Loopback registries (127.0.0.1, ::1, localhost) are spoken to over plain HTTP, every other
//! one over HTTPS. Authentication follows the registry's `WWW-Authenticate` challenge:
//! none, Basic, or a Bearer token from the registry's token service.
//!
//! Every request has two deadlines ([`Deadlines`]): one to connect, and one for silence (no
//! byte received or sent for that long, whatever the phase), so a registry that stops
//! answering fails in one line that says what it was doing, never a hang.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use oci_spec::distribution::Reference;
use oci_spec::image::{
    Arch, Descriptor, DescriptorBuilder, Digest, ImageConfiguration, ImageIndex, ImageManifest,
    MediaType, Os, Platform, PlatformBuilder,
};
use serde::Deserialize;
use ureq::http::{self, Method, StatusCode};

use crate::oci::blobstore::{BlobStore, sha256_digest};
use crate::oci::layout::ref_name;
use tiny_cross::profile;
use tiny_oci::auth::{Challenge, Credential, Login, Secret};
use tiny_oci::referrers;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest kind we read, for `Accept`.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Blob bytes actually sent to a registry, and the blobs it already had, over one client's
/// life: a push of unchanged images uploads 0 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uploads {
    pub bytes: u64,
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
            crate::report::size(self.bytes),
            self.present,
            self.mounted
        )
    }
}

/// How long a registry may keep us waiting: to connect, and with no data moving either
/// way (the idle deadline, renewed by every byte, so a large upload is never cut short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub connect: Duration,
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
    pub fn from_env() -> anyhow::Result<Deadlines> {
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
enum Source<'a> {
    File(&'a Path),
    /// Another repository of the same registry (when it will not mount the blob).
    Repository(&'a str),
}

enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// A manifest or index as the registry holds it: its exact bytes, their digest and type.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

/// A referrer as a registry lists it: its descriptor, the manifest's bytes, and the
/// manifest parsed.
#[derive(Debug, Clone)]
pub struct ReferrerManifest {
    pub descriptor: Descriptor,
    pub raw: RawManifest,
    pub manifest: ImageManifest,
}

impl RawManifest {
    pub fn is_index(&self) -> bool {
        is_index_type(&self.media_type)
    }

    pub fn descriptor(&self) -> anyhow::Result<Descriptor> {
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
    pub fn connect(reference: &Reference, login: Login) -> anyhow::Result<Client> {
        Client::connect_within(reference, login, Deadlines::from_env()?)
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
        };
        client.settle_scheme()?;
        Ok(client)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

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
            .with_context(|| self.login.missing(&self.host))
    }

    fn refused(&self, why: &str) -> anyhow::Error {
        match &self.login.credential {
            Some(c) => anyhow::anyhow!(
                "registry {} refused the credentials for {} (from {}): {why}",
                self.host,
                c.username,
                c.source
            ),
            None => anyhow::anyhow!("{}", self.login.missing(&self.host)),
        }
    }

    /// Checks, before anything is built for it, that `repository` takes pushes from us:
    /// the push token where the registry wants one, then an upload session opened and
    /// cancelled (a registry that stops answering after `/v2/` is found here too).
    pub fn check_push(&mut self, repository: &str) -> anyhow::Result<()> {
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
        crate::interrupt::check()?;
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
                    crate::report::ticking(format!(
                        "{doing} ({}) to {}",
                        crate::report::size(size),
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
            ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => anyhow::anyhow!(
                "registry {} is unreachable at {}: no connection within {} s; is it running, and is the address right?",
                self.host,
                self.base,
                self.deadlines.connect.as_secs()
            ),
            ureq::Error::Timeout(_) => self.stalled(doing),
            ureq::Error::Io(ref io) if is_stall(io) => self.stalled(doing),
            ureq::Error::Io(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
                anyhow::anyhow!(
                    "registry {} is unreachable at {}: {e}; is it running, and is the address right?",
                    self.host,
                    self.base
                )
            }
            e => anyhow::anyhow!("talking to registry {} while {doing}: {e}", self.host),
        }
    }

    fn stalled(&self, doing: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "registry {} stopped answering while {doing} (no data for {} s; XTASK_REGISTRY_IDLE_TIMEOUT sets how long to wait)",
            self.host,
            self.deadlines.idle.as_secs()
        )
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
    pub fn manifest(&mut self, repository: &str, reference: &str) -> anyhow::Result<RawManifest> {
        self.manifest_if_exists(repository, reference)?
            .with_context(|| {
                format!(
                    "{}/{repository}:{reference} does not exist in the registry (manifest unknown)",
                    self.host
                )
            })
    }

    /// The manifest or index `reference` names, or `None` when the registry has none.
    pub fn manifest_if_exists(
        &mut self,
        repository: &str,
        reference: &str,
    ) -> anyhow::Result<Option<RawManifest>> {
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
    ) -> anyhow::Result<Vec<Descriptor>> {
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
    ) -> anyhow::Result<Vec<ReferrerManifest>> {
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
    ) -> anyhow::Result<()> {
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
    ) -> anyhow::Result<Digest> {
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
    pub fn has_blob(&mut self, repository: &str, digest: &Digest) -> anyhow::Result<bool> {
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
    ) -> anyhow::Result<()> {
        self.place_blob(repository, digest, mount_from, Source::File(path))
    }

    fn place_blob(
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
    pub fn blob_bytes(&mut self, repository: &str, digest: &Digest) -> anyhow::Result<Vec<u8>> {
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
    ) -> anyhow::Result<()> {
        let digest = descriptor.digest();
        let url = self.url(repository, &format!("blobs/{digest}"));
        let scopes = scopes(repository, Access::Pull);
        let mut response = self.send(Method::GET, &url, &scopes, &[], &Body::Empty)?;
        self.expect_success(&mut response, &format!("downloading blob {digest}"))?;
        let doing = format!("downloading blob {digest}");
        let _progress = (descriptor.size() >= SHOW_PROGRESS).then(|| {
            crate::report::ticking(format!(
                "{doing} ({}) from {}",
                crate::report::size(descriptor.size()),
                self.host
            ))
        });
        store
            .write_from(digest, descriptor.size(), response.body_mut().as_reader())
            .map_err(|e| self.body_error(e, &doing))
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
            bail!("{doing}: {}", self.refused(&why));
        }
        bail!("{doing}: registry {} answered {status}: {why}", self.host)
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

fn is_index_type(media_type: &str) -> bool {
    media_type == MediaType::ImageIndex.to_string() || media_type == DOCKER_MANIFEST_LIST
}

fn is_manifest_type(media_type: &str) -> bool {
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
pub fn parse_platform(text: &str) -> anyhow::Result<Platform> {
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
fn platform_of_config(config: &ImageConfiguration) -> anyhow::Result<Platform> {
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
fn platform_matches(entry: &Platform, wanted: &Platform) -> bool {
    entry.os() == wanted.os()
        && entry.architecture() == wanted.architecture()
        && match (entry.variant(), wanted.variant()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

/// One architecture's image as pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// `linux/amd64`.
    pub platform: String,
    /// `<registry>/<name>:<tag>-<arch>`.
    pub reference: Reference,
    pub digest: Digest,
    /// The documents attached to it (referrers) that were pushed with it.
    pub referrers: usize,
}

/// What `push_layout` did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub images: Vec<PushedImage>,
    /// `<registry>/<name>:<tag>` and the index's digest; none when what was pushed is one
    /// platform's image (or images the layout lists without an index): `<tag>` is left as
    /// it was.
    pub index: Option<(Reference, Digest)>,
    pub uploads: Uploads,
    /// One line each about what was pushed all the same (`--allow-dirty`).
    pub warnings: Vec<String>,
}

/// What `push_layout` pushes despite its labels.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    /// Images labelled as dev-image builds (`image --fast`).
    pub dev: bool,
    /// Images whose revision label ends in `-dirty` (built from uncommitted changes).
    pub dirty: bool,
}

/// Pushes the images of the OCI layout at `layout` to `target`'s repository: each
/// architecture's manifest as `<tag>-<arch>`, then, when what is pushed is a
/// multi-architecture index, the index as `<tag>` (only after all its manifests; the
/// layout's own index blob, so its digest is kept). What is pushed is `name` (a ref name in
/// the layout: an index, or one image) when given, else [`pick`]'s choice. A single image
/// never writes `<tag>`: a tag names the platforms asked for, never fewer. Blobs the
/// registry already has are not sent again (HEAD first); a layer of a base image on the
/// same registry, named by the manifest's `org.opencontainers.image.base.name` annotation,
/// is mounted from the base's repository. `login` holds the credential (from
/// `--username`/`--password-stdin`, or stored for the registry), or where none was found. Dev images and images built from uncommitted changes are refused unless
/// `allow` says otherwise. `Pushed::uploads` counts the blob bytes actually uploaded.
pub fn push_layout(
    layout: &Path,
    name: Option<&str>,
    target: &Reference,
    login: Login,
    allow: Allow,
) -> anyhow::Result<Pushed> {
    let tag = target
        .tag()
        .filter(|_| target.digest().is_none())
        .with_context(|| format!("push to a tag, not a digest: {target}"))?;
    let store = BlobStore::open(layout)?;
    let (index, manifests) = layout_images(&store, name, tag)?;
    let warnings = check_labels(&store, &manifests, allow)?;
    let mut client = Client::connect(target, login)?;
    let repository = target.repository();
    let mut images = Vec::new();
    for descriptor in &manifests {
        let bytes = store.read(descriptor.digest())?;
        let manifest = ImageManifest::from_reader(bytes.as_slice())
            .with_context(|| format!("manifest {} in the layout", descriptor.digest()))?;
        let platform = match descriptor.platform() {
            Some(p) => p.clone(),
            None => platform_of_config(&ImageConfiguration::from_reader(
                store.read(manifest.config().digest())?.as_slice(),
            )?)?,
        };
        let mount_from = base_repository(&manifest, client.host());
        for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
            client.ensure_blob(
                repository,
                blob.digest(),
                &store.blob_path(blob.digest()),
                mount_from.as_deref(),
            )?;
        }
        let arch_tag = format!("{tag}-{}", platform.architecture());
        let raw = RawManifest {
            media_type: descriptor.media_type().to_string(),
            digest: descriptor.digest().clone(),
            bytes,
        };
        let digest = client.put_manifest(repository, &arch_tag, &raw)?;
        let attached = push_referrers(&mut client, &store, repository, &digest)?;
        images.push(PushedImage {
            referrers: attached,
            platform: platform_name(&platform),
            reference: Reference::with_tag(
                target.registry().to_owned(),
                repository.to_owned(),
                arch_tag,
            ),
            digest,
        });
    }
    let index = match index {
        Some(index) => Some((
            target.clone(),
            client.put_manifest(repository, tag, &index)?,
        )),
        None => None,
    };
    Ok(Pushed {
        images,
        index,
        uploads: client.uploads(),
        warnings,
    })
}

/// Pushes the referrers the layout lists for `subject` (their blobs, then each manifest by
/// digest) and lists them for it (the fallback tag where the registry has no referrers
/// API). Returns how many.
fn push_referrers(
    client: &mut Client,
    store: &BlobStore,
    repository: &str,
    subject: &Digest,
) -> anyhow::Result<usize> {
    let found = referrers::find(store.index()?.manifests(), subject, |d| store.read(d))?;
    let mut attached = Vec::new();
    for (entry, manifest) in found {
        for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
            client.ensure_blob(
                repository,
                blob.digest(),
                &store.blob_path(blob.digest()),
                None,
            )?;
        }
        let raw = RawManifest {
            media_type: entry.media_type().to_string(),
            digest: entry.digest().clone(),
            bytes: store.read(entry.digest())?,
        };
        client.put_manifest(repository, entry.digest().as_ref(), &raw)?;
        attached.push(entry);
    }
    client.list_referrers(repository, subject, &attached)?;
    Ok(attached.len())
}

/// Copies the referrers of `subject` from repository `from` to `to` of the same registry
/// (blobs mounted or copied, manifests put by digest) and lists them there.
fn copy_referrers(
    client: &mut Client,
    subject: &Digest,
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    let mut listed = Vec::new();
    for found in client.referrer_manifests(from, subject)? {
        let manifest = &found.manifest;
        for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
            client.place_blob(to, blob.digest(), Some(from), Source::Repository(from))?;
        }
        client.put_manifest(to, found.descriptor.digest().as_ref(), &found.raw)?;
        listed.push(found.descriptor);
    }
    client.list_referrers(to, subject, &listed)
}

/// The label `image` writes the source revision in (`-dirty` when the tree had changes).
const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// Fails on the first image labelled as built with a profile other than release
/// (`image --fast`: for local iteration, not for a registry), or from uncommitted changes
/// (no commit rebuilds it), unless `allow` lets them through; returns a warning line for
/// each such image let through.
fn check_labels(
    store: &BlobStore,
    manifests: &[Descriptor],
    allow: Allow,
) -> anyhow::Result<Vec<String>> {
    let mut warnings = Vec::new();
    for descriptor in manifests {
        let manifest = ImageManifest::from_reader(store.read(descriptor.digest())?.as_slice())
            .with_context(|| format!("manifest {} in the layout", descriptor.digest()))?;
        let config =
            ImageConfiguration::from_reader(store.read(manifest.config().digest())?.as_slice())
                .with_context(|| format!("config {} in the layout", manifest.config().digest()))?;
        let labels = config.config().as_ref().and_then(|c| c.labels().as_ref());
        let label = |name: &str| labels.and_then(|l| l.get(name)).map(String::as_str);
        let profile = label(profile::LABEL);
        if !allow.dev && !profile::is_release(profile) {
            bail!(
                "refusing to push a dev image ({}={}, from `image --fast`): rebuild without --fast to ship, or add --allow-dev to push it all the same",
                profile::LABEL,
                profile.unwrap_or_default()
            );
        }
        if let Some(revision) = label(REVISION_LABEL).filter(|r| is_dirty_revision(r)) {
            if !allow.dirty {
                bail!("{}", dirty_refusal(revision));
            }
            warnings.push(format!(
                "warning: pushing {} built from uncommitted changes ({REVISION_LABEL}={revision}): no commit rebuilds it and `verify` cannot check it",
                descriptor.digest()
            ));
        }
    }
    Ok(warnings)
}

/// Whether a revision (`git describe`-like, as `image` labels it) names uncommitted changes.
pub fn is_dirty_revision(revision: &str) -> bool {
    revision.ends_with("-dirty")
}

/// The one line refusing to push a build of uncommitted changes.
pub fn dirty_refusal(revision: &str) -> String {
    format!(
        "refusing to push an image built from uncommitted changes ({REVISION_LABEL}={revision}): no commit rebuilds it; commit and build again, or add --allow-dirty to push it all the same"
    )
}

/// What to push from a layout's `index.json`, when no ref name is given: the index named
/// like the tag; else the images named `<tag>-<arch>` (a single-platform build's); else
/// the one index the layout holds; else, with no index at all, the images it lists. More
/// than one index and none named like the tag is refused, naming them and `--ref`.
fn pick(top: &ImageIndex, tag: &str) -> anyhow::Result<Pick> {
    let indexes: Vec<&Descriptor> = top
        .manifests()
        .iter()
        .filter(|d| is_index_type(d.media_type().as_ref()))
        .collect();
    if let Some(index) = indexes.iter().find(|d| ref_name(d) == Some(tag)) {
        return Ok(Pick::Index(Box::new((*index).clone())));
    }
    let images: Vec<&Descriptor> = top
        .manifests()
        .iter()
        // Documents attached to the images are pushed with them, not as images.
        .filter(|d| is_manifest_type(d.media_type().as_ref()) && d.artifact_type().is_none())
        .collect();
    let per_platform: Vec<Descriptor> = images
        .iter()
        .filter(|d| {
            let arch = d.platform().as_ref().map(|p| p.architecture().to_string());
            arch.is_some_and(|a| ref_name(d) == Some(&format!("{tag}-{a}")))
        })
        .map(|d| (*d).clone())
        .collect();
    if !per_platform.is_empty() {
        return Ok(Pick::Images(per_platform));
    }
    match indexes.as_slice() {
        [one] => Ok(Pick::Index(Box::new((*one).clone()))),
        [] => Ok(Pick::Images(images.into_iter().cloned().collect())),
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|d| match ref_name(d) {
                    Some(n) => format!("`{n}`"),
                    None => d.digest().to_string(),
                })
                .collect();
            bail!(
                "the OCI layout lists {} image indexes ({}) and none is named `{tag}` like the tag: pick one with --ref <name>",
                several.len(),
                names.join(", ")
            )
        }
    }
}

/// What [`pick`] chose.
#[derive(Debug)]
enum Pick {
    Index(Box<Descriptor>),
    Images(Vec<Descriptor>),
}

/// The index to push (if any) and the image manifests to push, from a layout's
/// `index.json`: `name` when given, else [`pick`]'s choice.
fn layout_images(
    store: &BlobStore,
    name: Option<&str>,
    tag: &str,
) -> anyhow::Result<(Option<RawManifest>, Vec<Descriptor>)> {
    let top = store.index()?;
    let root = store.root().display();
    let picked = match name {
        Some(name) => {
            let found = top.manifests().iter().find(|d| ref_name(d) == Some(name));
            match found {
                Some(d) if is_index_type(d.media_type().as_ref()) => {
                    Pick::Index(Box::new(d.clone()))
                }
                Some(d) if is_manifest_type(d.media_type().as_ref()) => {
                    Pick::Images(vec![d.clone()])
                }
                Some(d) => bail!(
                    "`{name}` in the OCI layout {root} is a {}, not an image or an index",
                    d.media_type()
                ),
                None => {
                    let known: Vec<&str> = top.manifests().iter().filter_map(ref_name).collect();
                    bail!(
                        "the OCI layout {root} names nothing `{name}` (it has: {}): build it with `cargo xtask image`",
                        known.join(", ")
                    )
                }
            }
        }
        None => pick(&top, tag).with_context(|| format!("pushing the OCI layout {root}"))?,
    };
    let (index, manifests) = match picked {
        Pick::Index(one) => {
            let bytes = store.read(one.digest())?;
            let index = ImageIndex::from_reader(bytes.as_slice())
                .with_context(|| format!("image index {} in the layout", one.digest()))?;
            let raw = RawManifest {
                media_type: one.media_type().to_string(),
                digest: one.digest().clone(),
                bytes,
            };
            (Some(raw), index.manifests().clone())
        }
        Pick::Images(images) => (None, images),
    };
    ensure!(
        !manifests.is_empty(),
        "the OCI layout {root} holds no image: build one first"
    );
    for d in &manifests {
        ensure!(
            is_manifest_type(d.media_type().as_ref()),
            "the layout's index lists {} of type {}: only image manifests can be pushed under an index",
            d.digest(),
            d.media_type()
        );
    }
    if index.is_none() {
        // Each goes to `<tag>-<arch>`: two of one platform would overwrite each other.
        let mut seen: Vec<(String, &str)> = Vec::new();
        for d in &manifests {
            let platform = match d.platform() {
                Some(p) => platform_name(p),
                None => {
                    let manifest = ImageManifest::from_reader(store.read(d.digest())?.as_slice())?;
                    let config = ImageConfiguration::from_reader(
                        store.read(manifest.config().digest())?.as_slice(),
                    )?;
                    platform_name(&platform_of_config(&config)?)
                }
            };
            let name = ref_name(d).unwrap_or("(unnamed)");
            if let Some((_, other)) = seen.iter().find(|(p, _)| *p == platform) {
                bail!(
                    "the OCI layout {root} lists two {platform} images (`{other}`, `{name}`): pick one with --ref <name>"
                );
            }
            seen.push((platform, name));
        }
    }
    Ok((index, manifests))
}

/// The multi-architecture index over `manifests`, written once by the one index writer
/// (the bytes `image` writes for the same manifests): these bytes are what is pushed.
pub fn index_document(manifests: Vec<Descriptor>) -> anyhow::Result<RawManifest> {
    let bytes = tiny_oci::json::image_index(manifests)?;
    Ok(RawManifest {
        media_type: MediaType::ImageIndex.to_string(),
        digest: sha256_digest(&bytes)?,
        bytes,
    })
}

/// The repository of the manifest's base image when it lives on `host` (for mounts).
fn base_repository(manifest: &ImageManifest, host: &str) -> Option<String> {
    let name = manifest
        .annotations()
        .as_ref()?
        .get("org.opencontainers.image.base.name")?;
    let base = Reference::from_str(name).ok()?;
    (base.resolve_registry() == host).then(|| base.repository().to_owned())
}

/// A base image pulled for one platform into the cache layout.
#[derive(Debug, Clone)]
pub struct PulledBase {
    /// The manifest's descriptor in the cache layout (with its platform).
    pub descriptor: Descriptor,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
}

/// The name under which a pulled base is listed in the cache's `index.json`
/// (`org.opencontainers.image.ref.name`): the reference as asked for, and the platform.
pub fn cache_name(reference: &Reference, platform: &Platform) -> String {
    format!("{reference}+{}", platform_name(platform).replace('/', "-"))
}

/// Pulls `reference` for `platform` into the OCI layout `cache` (created if missing): the
/// manifest (chosen from the index when the reference names one), its config and its layers,
/// each checked against its digest. A reference pinned by digest that is already in the
/// cache is served from it without asking the registry. `login` is as for a push. The manifest is listed in the cache's `index.json` under [`cache_name`].
pub fn pull_base(
    reference: &Reference,
    platform: &Platform,
    cache: &Path,
    login: Login,
) -> anyhow::Result<PulledBase> {
    let name = cache_name(reference, platform);
    if reference.digest().is_some()
        && cache.join("index.json").exists()
        && let Some(pulled) = cached_base(&BlobStore::create(cache)?, &name)?
    {
        return Ok(pulled);
    }
    // The registry first: one that cannot be reached leaves no cache behind.
    let mut client = Client::connect(reference, login)?;
    let store = BlobStore::create(cache)?;
    let repository = reference.repository();
    let asked = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_owned();
    let mut raw = client.manifest(repository, &asked)?;
    if raw.is_index() {
        let index = ImageIndex::from_reader(raw.bytes.as_slice())
            .with_context(|| format!("the index of {reference}"))?;
        let entry = index
            .manifests()
            .iter()
            .find(|d| {
                d.platform()
                    .as_ref()
                    .is_some_and(|p| platform_matches(p, platform))
            })
            .with_context(|| {
                let offered: Vec<String> = index
                    .manifests()
                    .iter()
                    .filter_map(|d| d.platform().as_ref().map(platform_name))
                    .collect();
                format!(
                    "{reference} has no image for {}: it offers {}",
                    platform_name(platform),
                    offered.join(", ")
                )
            })?;
        raw = client.manifest(repository, entry.digest().as_ref())?;
    }
    ensure!(
        is_manifest_type(&raw.media_type),
        "{reference} is a {}, not an image manifest or index",
        raw.media_type
    );
    let manifest = ImageManifest::from_reader(raw.bytes.as_slice())
        .with_context(|| format!("the manifest of {reference}"))?;
    for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
        if !store.has(blob.digest(), blob.size()) {
            client.fetch_blob(repository, blob, &store)?;
        }
    }
    let config =
        ImageConfiguration::from_reader(store.read(manifest.config().digest())?.as_slice())
            .with_context(|| format!("the config of {reference}"))?;
    let actual = platform_of_config(&config)?;
    ensure!(
        platform_matches(&actual, platform),
        "{reference} is built for {}, not {}",
        platform_name(&actual),
        platform_name(platform)
    );
    store.write(&raw.bytes)?;
    let mut descriptor = raw.descriptor()?;
    descriptor.set_platform(Some(actual));
    descriptor.set_annotations(Some(HashMap::from([(
        "org.opencontainers.image.ref.name".to_owned(),
        name.clone(),
    )])));
    let mut index = store.index()?;
    let mut listed = index.manifests().clone();
    listed.retain(|d| ref_name(d) != Some(name.as_str()));
    listed.push(descriptor.clone());
    index.set_manifests(listed);
    store.set_index(&index)?;
    Ok(PulledBase {
        descriptor,
        manifest,
        config,
    })
}

/// A base already in the cache, every blob present and checked.
fn cached_base(store: &BlobStore, name: &str) -> anyhow::Result<Option<PulledBase>> {
    let index = store.index()?;
    let Some(descriptor) = index.manifests().iter().find(|d| ref_name(d) == Some(name)) else {
        return Ok(None);
    };
    let Ok(bytes) = store.read(descriptor.digest()) else {
        return Ok(None);
    };
    let manifest = ImageManifest::from_reader(bytes.as_slice())?;
    let complete = std::iter::once(manifest.config())
        .chain(manifest.layers())
        .all(|b| store.has(b.digest(), b.size()));
    if !complete {
        return Ok(None);
    }
    let config =
        ImageConfiguration::from_reader(store.read(manifest.config().digest())?.as_slice())?;
    Ok(Some(PulledBase {
        descriptor: descriptor.clone(),
        manifest,
        config,
    }))
}

/// One image in the registry, ready to be listed in an index.
#[derive(Debug, Clone)]
pub struct Member {
    pub reference: Reference,
    pub manifest: RawManifest,
    pub platform: Platform,
    pub blobs: Vec<Digest>,
}

/// Reads a single-platform image: its manifest and, from its config, its platform. An index
/// is refused: a member must be one architecture's image.
pub fn read_member(client: &mut Client, reference: &Reference) -> anyhow::Result<Member> {
    let asked = reference.digest().or(reference.tag()).unwrap_or("latest");
    let manifest = client.manifest(reference.repository(), asked)?;
    ensure!(
        !manifest.is_index(),
        "{reference} is itself an index: name each architecture's image (e.g. <tag>-amd64)"
    );
    let parsed = ImageManifest::from_reader(manifest.bytes.as_slice())
        .with_context(|| format!("the manifest of {reference}"))?;
    let bytes = client.blob_bytes(reference.repository(), parsed.config().digest())?;
    let config = ImageConfiguration::from_reader(bytes.as_slice())
        .with_context(|| format!("the config of {reference}"))?;
    let blobs = std::iter::once(parsed.config())
        .chain(parsed.layers())
        .map(|d| d.digest().clone())
        .collect();
    Ok(Member {
        reference: reference.clone(),
        manifest,
        platform: platform_of_config(&config)?,
        blobs,
    })
}

/// Makes `member` present in `repository` (blobs mounted from the member's repository, or
/// copied when the registry will not mount them, then its manifest put by digest) when it
/// lives in another repository of the registry.
pub fn copy_member(client: &mut Client, member: &Member, repository: &str) -> anyhow::Result<()> {
    let from = member.reference.repository();
    if from == repository {
        return Ok(());
    }
    for digest in &member.blobs {
        client.place_blob(repository, digest, Some(from), Source::Repository(from))?;
    }
    client.put_manifest(
        repository,
        member.manifest.digest.as_ref(),
        &member.manifest,
    )?;
    copy_referrers(client, &member.manifest.digest, from, repository)
}

/// The index `merge_index` pushed.
#[derive(Debug, Clone)]
pub struct MergedIndex {
    pub index: Reference,
    pub digest: Digest,
    /// Each member with the platform its config declares, in the index's order.
    pub members: Vec<(Reference, String, Digest)>,
    /// Blobs of members in other repositories, mounted or copied into the index's.
    pub uploads: Uploads,
}

/// Pushes to `target` (a tag) an OCI image index over `members`, images already in the
/// same registry, one per platform: the cross-machine merge, after each CI runner pushed its
/// own architecture. Each platform (os, architecture, variant) is read from the member's
/// config. Refused, each in one line: a member that is itself an index, two members with
/// the same platform, a member on another registry. Members in another repository of the
/// registry are mounted into the target's first. The entries are ordered by platform, so
/// the index digest does not depend on the order the members are given in.
pub fn merge_index(
    target: &Reference,
    members: &[Reference],
    login: Login,
) -> anyhow::Result<MergedIndex> {
    let tag = target
        .tag()
        .filter(|_| target.digest().is_none())
        .with_context(|| format!("the index needs a tag, not a digest: {target}"))?;
    for member in members {
        ensure!(
            member.resolve_registry() == target.resolve_registry(),
            "{member} is not on {}, the registry of {target}: push each architecture's image there first",
            target.registry()
        );
    }
    let mut client = Client::connect(target, login)?;
    let mut read = Vec::new();
    for reference in members {
        let member = read_member(&mut client, reference)?;
        if let Some(other) = read
            .iter()
            .find(|m: &&Member| m.platform == member.platform)
        {
            bail!(
                "{} and {reference} are both {}: give one image per platform",
                other.reference,
                platform_name(&member.platform)
            );
        }
        read.push(member);
    }
    read.sort_by_key(|m| platform_name(&m.platform));
    let mut entries = Vec::new();
    for member in &read {
        copy_member(&mut client, member, target.repository())?;
        let mut entry = member.manifest.descriptor()?;
        entry.set_platform(Some(member.platform.clone()));
        entries.push(entry);
    }
    let index = index_document(entries)?;
    let digest = client.put_manifest(target.repository(), tag, &index)?;
    Ok(MergedIndex {
        index: target.clone(),
        digest,
        uploads: client.uploads(),
        members: read
            .into_iter()
            .map(|m| {
                let platform = platform_name(&m.platform);
                (m.reference, platform, m.manifest.digest)
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A registry that answers `/v2/` and then never answers anything else.
    fn stalling_registry() -> String {
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
                if request.starts_with("GET /v2/ ") {
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                    );
                } else {
                    held.push(stream);
                }
            }
        });
        host
    }

    #[test]
    fn a_registry_that_stops_answering_fails_at_the_idle_deadline_saying_what_it_was_doing() {
        let host = stalling_registry();
        let reference: Reference = format!("{host}/a/b:1").parse().unwrap();
        let deadlines = Deadlines {
            connect: Duration::from_secs(1),
            idle: Duration::from_secs(1),
        };
        let mut client = Client::connect_within(&reference, Login::default(), deadlines).unwrap();
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

    /// A registry that opens upload sessions and then reads nothing of the blob sent.
    fn registry_that_stops_reading_uploads() -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
                let request = lines.next().unwrap().unwrap();
                if request.starts_with("PUT ") {
                    held.push(stream);
                    continue;
                }
                lines
                    .map_while(Result::ok)
                    .take_while(|l| !l.is_empty())
                    .for_each(drop);
                let answer = match request.split(' ').next() {
                    Some("HEAD") => "404 Not Found\r\nContent-Length: 0",
                    Some("POST") => {
                        "202 Accepted\r\nLocation: /v2/a/b/blobs/uploads/u1\r\nContent-Length: 0"
                    }
                    _ => "200 OK\r\nContent-Length: 0",
                };
                let _ = write!(stream, "HTTP/1.1 {answer}\r\nConnection: close\r\n\r\n");
            }
        });
        host
    }

    #[test]
    fn an_upload_the_registry_stops_reading_fails_at_the_idle_deadline() {
        let host = registry_that_stops_reading_uploads();
        let reference: Reference = format!("{host}/a/b:1").parse().unwrap();
        let deadlines = Deadlines {
            connect: Duration::from_secs(1),
            idle: Duration::from_secs(1),
        };
        let mut client = Client::connect_within(&reference, Login::default(), deadlines).unwrap();
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

    #[test]
    fn an_index_document_is_stable_and_names_its_type() {
        let d = Descriptor::new(
            MediaType::ImageManifest,
            7,
            Digest::from_str(&format!("sha256:{}", "a".repeat(64))).unwrap(),
        );
        let one = index_document(vec![d.clone()]).unwrap();
        let two = index_document(vec![d]).unwrap();
        assert_eq!(one.digest, two.digest);
        assert!(one.is_index());
        let text = String::from_utf8(one.bytes).unwrap();
        assert!(
            text.contains(r#""mediaType":"application/vnd.oci.image.index.v1+json""#),
            "{text}"
        );
    }

    #[test]
    fn layers_of_a_base_on_the_same_registry_are_mounted_from_its_repository() {
        let manifest = |base: &str| -> ImageManifest {
            serde_json::from_value(serde_json::json!({
                "schemaVersion": 2,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": format!("sha256:{}", "b".repeat(64)),
                    "size": 2
                },
                "layers": [],
                "annotations": {"org.opencontainers.image.base.name": base}
            }))
            .unwrap()
        };
        let same = manifest("127.0.0.1:5000/library/alpine:3.20");
        assert_eq!(
            base_repository(&same, "127.0.0.1:5000").as_deref(),
            Some("library/alpine")
        );
        assert_eq!(base_repository(&same, "127.0.0.1:5001"), None);
        assert_eq!(
            base_repository(&manifest("not a reference"), "127.0.0.1:5000"),
            None
        );
    }

    #[test]
    fn dev_and_dirty_images_are_refused_unless_allowed_and_release_or_unlabelled_ones_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::create(dir.path()).unwrap();
        let image = |labels: serde_json::Value| -> Descriptor {
            let config = serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": []}
            });
            let config = serde_json::to_vec(&config).unwrap();
            let config_digest = store.write(&config).unwrap();
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest.to_string(),
                    "size": config.len()
                },
                "layers": []
            }))
            .unwrap();
            let digest = store.write(&manifest).unwrap();
            serde_json::from_value(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest.to_string(),
                "size": manifest.len()
            }))
            .unwrap()
        };
        let release = image(serde_json::json!({"xtask.profile": "release"}));
        let unlabelled = image(serde_json::json!({"org.opencontainers.image.title": "t"}));
        let dev = image(serde_json::json!({"xtask.profile": "dev-image"}));
        let dirty = image(serde_json::json!({REVISION_LABEL: "abc123-dirty"}));
        let none = Allow::default();
        let warnings = check_labels(&store, &[release.clone(), unlabelled], none).unwrap();
        assert!(warnings.is_empty());
        let err = check_labels(&store, &[release.clone(), dev.clone()], none)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("refusing to push a dev image (xtask.profile=dev-image")
                && err.contains("--allow-dev")
                && !err.contains('\n'),
            "{err}"
        );
        let dev_ok = Allow {
            dev: true,
            dirty: false,
        };
        assert!(check_labels(&store, &[dev], dev_ok).unwrap().is_empty());
        let err = check_labels(&store, &[release, dirty.clone()], none)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("refusing to push an image built from uncommitted changes (org.opencontainers.image.revision=abc123-dirty)")
                && err.contains("--allow-dirty")
                && !err.contains('\n'),
            "{err}"
        );
        let dirty_ok = Allow {
            dev: false,
            dirty: true,
        };
        let warnings = check_labels(&store, &[dirty], dirty_ok).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("warning: pushing sha256:")
                && warnings[0].contains("abc123-dirty"),
            "{warnings:?}"
        );
    }

    #[test]
    fn push_picks_the_index_named_like_the_tag_else_its_per_platform_images_else_the_only_index() {
        let entry = |digest: char, media: MediaType, name: &str, arch: Option<&str>| {
            let mut d = Descriptor::new(
                media,
                1,
                Digest::from_str(&format!("sha256:{}", digest.to_string().repeat(64))).unwrap(),
            );
            d.set_annotations(Some(
                [(
                    oci_spec::image::ANNOTATION_REF_NAME.to_owned(),
                    name.to_owned(),
                )]
                .into(),
            ));
            if let Some(arch) = arch {
                d.set_platform(Some(parse_platform(&format!("linux/{arch}")).unwrap()));
            }
            d
        };
        let release = entry('a', MediaType::ImageIndex, "0.1.0", None);
        let ci = entry('b', MediaType::ImageIndex, "ci", None);
        let amd = entry('c', MediaType::ImageManifest, "0.1.0-amd64", Some("amd64"));
        let ci_arm = entry('d', MediaType::ImageManifest, "pr-arm64", Some("arm64"));
        let top = |entries: Vec<Descriptor>| tiny_oci::json::empty_index(entries).unwrap();
        let both = top(vec![
            release.clone(),
            ci.clone(),
            amd.clone(),
            ci_arm.clone(),
        ]);
        let digest = |p: Pick| match p {
            Pick::Index(d) => vec![d.digest().to_string()],
            Pick::Images(list) => list.iter().map(|d| d.digest().to_string()).collect(),
        };
        assert_eq!(
            digest(pick(&both, "ci").unwrap()),
            [ci.digest().to_string()]
        );
        assert_eq!(
            digest(pick(&both, "pr").unwrap()),
            [ci_arm.digest().to_string()],
            "a single-platform build's image, alone"
        );
        let err = pick(&both, "prod").unwrap_err().to_string();
        assert_eq!(
            err,
            "the OCI layout lists 2 image indexes (`0.1.0`, `ci`) and none is named `prod` like the tag: pick one with --ref <name>"
        );
        let one = top(vec![release.clone(), amd.clone()]);
        assert_eq!(
            digest(pick(&one, "prod").unwrap()),
            [release.digest().to_string()]
        );
        let none = top(vec![amd.clone()]);
        assert_eq!(
            digest(pick(&none, "prod").unwrap()),
            [amd.digest().to_string()]
        );
    }

    #[test]
    fn cache_names_carry_the_platform() {
        let r: Reference = "127.0.0.1:5000/alpine:3.20".parse().unwrap();
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(
            cache_name(&r, &p),
            "127.0.0.1:5000/alpine:3.20+linux-arm64-v8"
        );
    }
}
