//! The image recipe: `Dockerfile.runtime` parsed into typed values, with its ARGs
//! substituted. Every engine renders this one description: the builtin engine writes it as
//! an OCI image, docker and podman build the Dockerfile it came from, and a test holds them
//! to the same result.
//!
//! Parsing is `parse-dockerfile`'s (continuations, comments, JSON and shell forms, flags);
//! this module adds what it leaves to the builder: the `${VAR}` substitution and quoting of
//! the shell-like words, ARG scoping, and the rules of each instruction. Only the subset an
//! image needs without running anything is accepted: what needs a running container is
//! refused with one line that names the engines that can build it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;

use crate::error::bail;
use parse_dockerfile::{
    Command, CopyInstruction, Flag, HealthcheckArguments, Instruction, JsonOrStringArray, Source,
};

/// How an instruction the builtin engine cannot carry out is refused.
const NEEDS_ENGINE: &str = "needs a running container, which the builtin engine does not have: \
    build with --engine docker|podman";

/// An image as `Dockerfile.runtime` describes it: a base, files copied in, and how it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// `FROM`: `scratch` or an image reference.
    pub base: Base,
    /// `COPY` (and local `ADD`) steps, in order: one layer each.
    pub copies: Vec<CopyStep>,
    /// How a container of the image runs.
    pub config: RunConfig,
    /// Build arguments given but not declared by any `ARG` (docker warns about them).
    pub unused_args: Vec<String>,
}

/// What an image starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// An empty image (`FROM scratch`).
    Scratch,
    /// Another image, by reference.
    Image(String),
}

/// One `COPY <sources...> <dest>`: sources relative to the build context, `dest` absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    /// The paths copied, relative to the build context.
    pub sources: Vec<String>,
    /// Where they go in the image.
    pub dest: String,
    /// `--chown=uid[:gid]` (numeric: there is no passwd file to look names up in).
    pub owner: Option<Owner>,
    /// `--chmod=<octal>`.
    pub mode: Option<u32>,
    /// The instruction as written, for the image's history.
    pub text: String,
    /// Its line in the Dockerfile.
    pub line: usize,
}

/// A numeric owner of copied files (`COPY --chown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The user id.
    pub uid: u64,
    /// The group id.
    pub gid: u64,
}

/// What the image runs with: the OCI config's `config` section, plus docker's healthcheck.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// `USER`.
    pub user: Option<String>,
    /// `ENV`, in order of first definition; a later definition replaces the value.
    pub env: Vec<(String, String)>,
    /// `WORKDIR`.
    pub workdir: Option<String>,
    /// `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// `VOLUME`s.
    pub volumes: Vec<String>,
    /// `LABEL`s.
    pub labels: BTreeMap<String, String>,
    /// `HEALTHCHECK`.
    pub healthcheck: Option<Healthcheck>,
    /// `ENTRYPOINT`, in exec form.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`, in exec form.
    pub cmd: Option<Vec<String>>,
    /// Whether this recipe set `ENTRYPOINT` without `CMD` after it: a base's `CMD` is then
    /// dropped, as docker does.
    pub entrypoint_resets_cmd: bool,
    /// `STOPSIGNAL`.
    pub stop_signal: Option<String>,
}

/// `HEALTHCHECK`, as docker stores it (`NONE` is `test: ["NONE"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["CMD", args...]`, `["CMD-SHELL", command]` or `["NONE"]`.
    pub test: Vec<String>,
    /// `--interval`.
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u64>,
}

impl Recipe {
    /// Parses `text` (a Dockerfile) with the build arguments `args`, as `docker build
    /// --build-arg` would take them.
    pub fn parse(text: &str, args: &[(String, String)]) -> crate::Result<Recipe> {
        let file = parse_dockerfile::parse(text).map_err(|e| {
            anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or("syntax error"))
        })?;
        let mut scope = Scope::new(args);
        let mut base = None;
        let mut copies = Vec::new();
        let mut config = RunConfig::default();
        let mut shell = vec!["/bin/sh".to_owned(), "-c".to_owned()];
        for instruction in &file.instructions {
            let line = line_of(text, instruction);
            let at = |what: &str| format!("{what} at line {line}");
            let step = (|| -> crate::Result<()> {
                match instruction {
                    Instruction::Arg(arg) => scope.declare(&arg.arguments.value, base.is_none())?,
                    Instruction::From(from) => {
                        if base.is_some() {
                            bail!("a second FROM (a multi-stage build) {NEEDS_ENGINE}");
                        }
                        if let Some(flag) = from.options.first() {
                            bail!("FROM --{} is not supported", flag.name.value);
                        }
                        let image = scope.expand(&from.image.value)?;
                        base = Some(if image == "scratch" {
                            Base::Scratch
                        } else {
                            Base::Image(image)
                        });
                        scope.enter_stage();
                    }
                    Instruction::Copy(copy) => copies.push(CopyStep {
                        line,
                        ..copy_step(copy, &scope, config.workdir.as_deref(), text)?
                    }),
                    Instruction::Add(add) => {
                        let sources = source_paths(&add.src)?;
                        if let Some(remote) = sources.iter().find(|s| s.contains("://")) {
                            bail!("ADD of a remote source ({remote}) {NEEDS_ENGINE}");
                        }
                        if let Some(archive) = sources.iter().find(|s| is_archive(s)) {
                            bail!(
                                "ADD of an archive ({archive}) unpacks it, which the builtin \
                                 engine does not do: use COPY, or --engine docker|podman"
                            );
                        }
                        let copy = copy_parts(
                            &add.options,
                            sources,
                            &add.dest.value,
                            &scope,
                            config.workdir.as_deref(),
                        )?;
                        copies.push(CopyStep {
                            text: span_text(text, add.add.span.start, &add.dest.span),
                            line,
                            ..copy
                        });
                    }
                    Instruction::Run(_) => bail!("RUN {NEEDS_ENGINE}"),
                    Instruction::Onbuild(_) => bail!("ONBUILD {NEEDS_ENGINE}"),
                    Instruction::Env(env) => {
                        for (key, value) in pairs(&env.arguments.value, &scope, "ENV")? {
                            scope.set_env(&key, &value);
                            match config.env.iter_mut().find(|(k, _)| *k == key) {
                                Some(entry) => entry.1 = value,
                                None => config.env.push((key, value)),
                            }
                        }
                    }
                    Instruction::Label(label) => {
                        config
                            .labels
                            .extend(pairs(&label.arguments.value, &scope, "LABEL")?);
                    }
                    Instruction::User(user) => {
                        config.user = Some(scope.expand(&user.arguments.value)?)
                    }
                    Instruction::Workdir(dir) => {
                        let dir = scope.expand(&dir.arguments.value)?;
                        config.workdir = Some(absolute(&dir, config.workdir.as_deref()));
                    }
                    Instruction::Expose(expose) => {
                        for port in &expose.arguments {
                            for port in scope.words(&port.value)? {
                                let port = if port.contains('/') {
                                    port
                                } else {
                                    format!("{port}/tcp")
                                };
                                if !config.exposed_ports.contains(&port) {
                                    config.exposed_ports.push(port);
                                }
                            }
                        }
                    }
                    Instruction::Volume(volume) => {
                        let items = match &volume.arguments {
                            JsonOrStringArray::Json(json) => json.value.as_slice(),
                            JsonOrStringArray::String(words) => words.as_slice(),
                        };
                        for item in items {
                            let path = scope.expand(&item.value)?;
                            if !config.volumes.contains(&path) {
                                config.volumes.push(path);
                            }
                        }
                    }
                    Instruction::Healthcheck(check) => {
                        config.healthcheck = Some(healthcheck(check, &scope)?)
                    }
                    Instruction::Entrypoint(entrypoint) => {
                        config.entrypoint = Some(command(&entrypoint.arguments, &shell)?);
                        // ENTRYPOINT drops a CMD set before it (here or in the base).
                        config.cmd = None;
                        config.entrypoint_resets_cmd = true;
                    }
                    Instruction::Cmd(cmd) => {
                        config.cmd = Some(command(&cmd.arguments, &shell)?);
                        config.entrypoint_resets_cmd = false;
                    }
                    Instruction::Shell(new) => {
                        shell = new.arguments.iter().map(|s| s.value.to_string()).collect()
                    }
                    Instruction::Stopsignal(signal) => {
                        config.stop_signal = Some(scope.expand(&signal.arguments.value)?)
                    }
                    // Deprecated and carried by no image field the engines agree on.
                    Instruction::Maintainer(_) => {}
                    _ => bail!("this instruction is not supported"),
                }
                Ok(())
            })();
            step.with_context(|| at(keyword(text, instruction)))?;
        }
        let base = base.context("no FROM: the Dockerfile names no base image")?;
        Ok(Recipe {
            base,
            copies,
            config,
            unused_args: scope.unused(),
        })
    }
}

/// The variables in scope: ARGs (from the build arguments or their defaults) and ENVs.
struct Scope {
    given: Vec<(String, String)>,
    /// ARGs declared before FROM: usable in FROM, and inside the stage once re-declared.
    global: BTreeMap<String, String>,
    stage: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    used: Vec<String>,
}

impl Scope {
    fn new(args: &[(String, String)]) -> Scope {
        Scope {
            given: args.to_vec(),
            global: BTreeMap::new(),
            stage: BTreeMap::new(),
            env: BTreeMap::new(),
            used: Vec::new(),
        }
    }

    /// `ARG NAME[=default] ...`.
    fn declare(&mut self, text: &str, global: bool) -> crate::Result<()> {
        for word in split_words(text)? {
            let (name, default) = match word.split_once('=') {
                Some((name, default)) => (name.to_owned(), Some(self.expand(default)?)),
                None => (word.clone(), None),
            };
            let given = self.given.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
            if given.is_some() {
                self.used.push(name.clone());
            }
            let value = given
                .cloned()
                .or(default)
                .or_else(|| self.global.get(&name).cloned());
            let scope = if global {
                &mut self.global
            } else {
                &mut self.stage
            };
            // A declared ARG with no value anywhere is unset, as in docker.
            if let Some(value) = value {
                scope.insert(name, value);
            }
        }
        Ok(())
    }

    fn enter_stage(&mut self) {
        self.stage.clear();
    }

    fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_owned(), value.to_owned());
    }

    /// ENV wins over ARG; global ARGs are only visible where the stage has none yet (FROM).
    fn get(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .or_else(|| self.stage.get(name))
            .map(String::as_str)
    }

    fn unused(&self) -> Vec<String> {
        self.given
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !self.used.contains(k))
            .collect()
    }

    /// One word with quotes removed, escapes resolved and variables substituted.
    fn expand(&self, raw: &str) -> crate::Result<String> {
        let global = self.stage.is_empty() && self.env.is_empty();
        expand(raw, &|name| {
            self.get(name)
                .or_else(|| global.then(|| self.global.get(name).map(String::as_str))?)
                .map(str::to_owned)
        })
    }

    /// Whitespace-separated words, each expanded.
    fn words(&self, raw: &str) -> crate::Result<Vec<String>> {
        split_words(raw)?.iter().map(|w| self.expand(w)).collect()
    }
}

/// `KEY=value ...` pairs of ENV and LABEL (or the legacy `KEY value` form).
fn pairs(raw: &str, scope: &Scope, what: &str) -> crate::Result<Vec<(String, String)>> {
    let words = split_words(raw)?;
    let legacy = words.first().is_some_and(|w| !w.contains('='));
    if legacy {
        let (key, value) = raw
            .trim()
            .split_once(char::is_whitespace)
            .with_context(|| format!("{what} {raw}: expected KEY=value"))?;
        return Ok(vec![(key.to_owned(), scope.expand(value.trim())?)]);
    }
    words
        .iter()
        .map(|w| {
            let expanded = scope.expand(w)?;
            let (key, value) = expanded
                .split_once('=')
                .with_context(|| format!("{what} {w}: expected KEY=value"))?;
            if key.is_empty() {
                bail!("{what} {w}: the key is empty");
            }
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

fn copy_step(
    copy: &CopyInstruction<'_>,
    scope: &Scope,
    workdir: Option<&str>,
    text: &str,
) -> crate::Result<CopyStep> {
    let sources = source_paths(&copy.src)?;
    let step = copy_parts(&copy.options, sources, &copy.dest.value, scope, workdir)?;
    Ok(CopyStep {
        text: span_text(text, copy.copy.span.start, &copy.dest.span),
        ..step
    })
}

fn copy_parts(
    flags: &[Flag<'_>],
    sources: Vec<String>,
    dest: &str,
    scope: &Scope,
    workdir: Option<&str>,
) -> crate::Result<CopyStep> {
    let mut owner = None;
    let mut mode = None;
    for flag in flags {
        let value = match &flag.value {
            Some(v) => scope.expand(&v.value)?,
            None => String::new(),
        };
        match &*flag.name.value {
            "from" => bail!("COPY --from {NEEDS_ENGINE}"),
            "chown" => owner = Some(parse_owner(&value)?),
            "chmod" => {
                mode = Some(
                    u32::from_str_radix(&value, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .with_context(|| {
                            format!("--chmod={value}: expected an octal mode such as 0755")
                        })?,
                )
            }
            // Layers are always independent of what lies below them here.
            "link" => {}
            other => bail!("--{other} is not supported: use --engine docker|podman"),
        }
    }
    let sources = sources
        .iter()
        .map(|s| scope.expand(s))
        .collect::<crate::Result<Vec<_>>>()?;
    if let Some(glob) = sources.iter().find(|s| s.contains(['*', '?', '['])) {
        bail!("wildcards ({glob}) are not supported: name the files or their folder");
    }
    if let Some(outside) = sources
        .iter()
        .find(|s| s.starts_with('/') || s.split('/').any(|c| c == ".."))
    {
        bail!("{outside} is outside the build context");
    }
    let dest = scope.expand(dest)?;
    let dest = absolute(&dest, workdir);
    Ok(CopyStep {
        sources,
        dest,
        owner,
        mode,
        text: String::new(),
        line: 0,
    })
}

fn source_paths(sources: &[Source<'_>]) -> crate::Result<Vec<String>> {
    sources
        .iter()
        .map(|s| match s {
            Source::Path(path) => Ok(path.value.to_string()),
            _ => bail!("here-documents are not supported: put the file in the build context"),
        })
        .collect()
}

/// `uid[:gid]`; a lone uid is also the gid, as in docker.
fn parse_owner(value: &str) -> crate::Result<Owner> {
    let (user, group) = value.split_once(':').unwrap_or((value, value));
    let number = |s: &str| {
        s.parse::<u64>().with_context(|| {
            format!(
                "--chown={value}: give numeric ids (uid:gid); names need the image's passwd file"
            )
        })
    };
    Ok(Owner {
        uid: number(user)?,
        gid: number(group)?,
    })
}

fn healthcheck(
    check: &parse_dockerfile::HealthcheckInstruction<'_>,
    scope: &Scope,
) -> crate::Result<Healthcheck> {
    let mut hc = Healthcheck {
        test: vec!["NONE".to_owned()],
        interval: None,
        timeout: None,
        start_period: None,
        retries: None,
    };
    match &check.arguments {
        HealthcheckArguments::Cmd { arguments, .. } => {
            hc.test = match arguments {
                Command::Exec(args) => std::iter::once("CMD".to_owned())
                    .chain(args.value.iter().map(|a| a.value.to_string()))
                    .collect(),
                // Docker stores the shell form as CMD-SHELL whatever SHELL says.
                Command::Shell(cmd) => vec!["CMD-SHELL".to_owned(), cmd.value.trim().to_owned()],
                _ => bail!("unknown HEALTHCHECK command form"),
            };
        }
        HealthcheckArguments::None { .. } => return Ok(hc),
        _ => bail!("unknown HEALTHCHECK form"),
    }
    for flag in &check.options {
        let value = match &flag.value {
            Some(v) => scope.expand(&v.value)?,
            None => bail!("--{} needs a value", flag.name.value),
        };
        let duration = || {
            humantime::parse_duration(&value).with_context(|| {
                format!(
                    "--{}={value}: expected a duration such as 10s",
                    flag.name.value
                )
            })
        };
        match &*flag.name.value {
            "interval" => hc.interval = Some(duration()?),
            "timeout" => hc.timeout = Some(duration()?),
            "start-period" => hc.start_period = Some(duration()?),
            "retries" => {
                hc.retries = Some(
                    value
                        .parse()
                        .with_context(|| format!("--retries={value}: expected a whole number"))?,
                )
            }
            other => bail!("HEALTHCHECK --{other} is not supported"),
        }
    }
    Ok(hc)
}

/// The exec form as written; the shell form wrapped in the shell, as docker stores it.
fn command(command: &Command<'_>, shell: &[String]) -> crate::Result<Vec<String>> {
    Ok(match command {
        Command::Exec(args) => args.value.iter().map(|a| a.value.to_string()).collect(),
        Command::Shell(text) => shell
            .iter()
            .cloned()
            .chain([text.value.trim().to_owned()])
            .collect(),
        _ => bail!("unknown command form"),
    })
}

fn absolute(path: &str, workdir: Option<&str>) -> String {
    if path.starts_with('/') {
        return path.to_owned();
    }
    let base = workdir.unwrap_or("/").trim_end_matches('/');
    format!("{base}/{path}")
}

fn is_archive(source: &str) -> bool {
    [
        ".tar", ".tgz", ".gz", ".xz", ".bz2", ".zst", ".txz", ".tbz2",
    ]
    .iter()
    .any(|ext| source.ends_with(ext))
}

/// The instruction's first word, for error messages.
fn keyword<'t>(text: &'t str, instruction: &Instruction<'_>) -> &'t str {
    let start = start_of(instruction);
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("instruction")
}

fn line_of(text: &str, instruction: &Instruction<'_>) -> usize {
    text[..start_of(instruction)].matches('\n').count() + 1
}

fn start_of(instruction: &Instruction<'_>) -> usize {
    match instruction {
        Instruction::Add(i) => i.add.span.start,
        Instruction::Arg(i) => i.arg.span.start,
        Instruction::Cmd(i) => i.cmd.span.start,
        Instruction::Copy(i) => i.copy.span.start,
        Instruction::Entrypoint(i) => i.entrypoint.span.start,
        Instruction::Env(i) => i.env.span.start,
        Instruction::Expose(i) => i.expose.span.start,
        Instruction::From(i) => i.from.span.start,
        Instruction::Healthcheck(i) => i.healthcheck.span.start,
        Instruction::Label(i) => i.label.span.start,
        Instruction::Maintainer(i) => i.maintainer.span.start,
        Instruction::Onbuild(i) => i.onbuild.span.start,
        Instruction::Run(i) => i.run.span.start,
        Instruction::Shell(i) => i.shell.span.start,
        Instruction::Stopsignal(i) => i.stopsignal.span.start,
        Instruction::User(i) => i.user.span.start,
        Instruction::Volume(i) => i.volume.span.start,
        Instruction::Workdir(i) => i.workdir.span.start,
        _ => 0,
    }
}

/// The source text from `start` to the end of `last`, on one line.
fn span_text(text: &str, start: usize, last: &std::ops::Range<usize>) -> String {
    text.get(start..last.end)
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| *w != "\\")
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits on whitespace outside quotes, keeping each word's quotes and escapes for
/// [`expand`].
fn split_words(raw: &str) -> crate::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                word.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                word.push(c);
            }
            (None | Some('"'), '\\') => {
                word.push(c);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (_, c) => word.push(c),
        }
    }
    if quote.is_some() {
        bail!("unterminated quote in `{raw}`");
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

/// Docker's word processing: quotes removed (nothing expands inside single quotes),
/// backslash escapes, `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}`.
fn expand(raw: &str, lookup: &dyn Fn(&str) -> Option<String>) -> crate::Result<String> {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => out.push(c),
            (_, '\\') => match chars.next() {
                // Inside double quotes a backslash only escapes `"`, `$` and `\`.
                Some(n) if quote.is_none() || matches!(n, '"' | '$' | '\\') => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            (_, '$') => match chars.peek() {
                Some('{') => {
                    chars.next();
                    let mut inner = String::new();
                    let mut depth = 0;
                    loop {
                        match chars.next() {
                            Some('}') if depth == 0 => break,
                            Some(c) => {
                                depth += usize::from(c == '{');
                                depth -= usize::from(c == '}');
                                inner.push(c);
                            }
                            None => bail!("missing `}}` in `{raw}`"),
                        }
                    }
                    out.push_str(&substitute(&inner, lookup, raw)?);
                }
                Some(c) if c.is_ascii_alphanumeric() || *c == '_' => {
                    let mut name = String::new();
                    while let Some(c) = chars
                        .peek()
                        .filter(|c| c.is_ascii_alphanumeric() || **c == '_')
                    {
                        name.push(*c);
                        chars.next();
                    }
                    out.push_str(&lookup(&name).unwrap_or_default());
                }
                _ => out.push('$'),
            },
            (_, c) => out.push(c),
        }
    }
    if quote.is_some() {
        bail!("unterminated quote in `{raw}`");
    }
    Ok(out)
}

fn substitute(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    raw: &str,
) -> crate::Result<String> {
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_end);
    if name.is_empty() {
        bail!("bad substitution `${{{inner}}}` in `{raw}`");
    }
    let value = lookup(name).filter(|v| !v.is_empty());
    Ok(match rest {
        "" => value.unwrap_or_default(),
        _ if rest.starts_with(":-") => match value {
            Some(v) => v,
            None => expand(&rest[2..], lookup)?,
        },
        _ if rest.starts_with(":+") => match value {
            Some(_) => expand(&rest[2..], lookup)?,
            None => String::new(),
        },
        _ => bail!(
            "unsupported substitution `${{{inner}}}` in `{raw}`: use ${{VAR}}, ${{VAR:-default}} or ${{VAR:+alternative}}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(text: &str) -> Recipe {
        Recipe::parse(text, &[]).unwrap()
    }

    fn refused(text: &str) -> String {
        let err = format!("{:#}", Recipe::parse(text, &[]).unwrap_err());
        assert!(!err.contains('\n'), "one line: {err}");
        err
    }

    #[test]
    fn the_whole_subset() {
        let text = r#"
# a comment
ARG BASE=scratch
FROM ${BASE}
ARG PORT=8080
ARG NAME
LABEL a="x y" \
      b=${NAME:-anon} c='$PORT'
COPY rootfs/ /
COPY --chown=10:20 --chmod=0640 a.txt b.txt etc/
WORKDIR /srv
COPY --chown=7 data ./data
ENV PORT=${PORT} HOME=/srv
ENV GREETING hello world
USER 65532:65532
EXPOSE $PORT 9000/udp
VOLUME ["/data", "/cache"]
VOLUME /tmp
HEALTHCHECK --interval=10s --timeout=3s --start-period=1m30s --retries=3 \
    CMD ["/bin/check", "--fast"]
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/service"]
CMD serve --port ${PORT}
"#;
        let r = Recipe::parse(text, &args(&[("PORT", "9090"), ("EXTRA", "1")])).unwrap();
        assert_eq!(r.base, Base::Scratch);
        assert_eq!(r.unused_args, ["EXTRA"]);
        assert_eq!(r.copies.len(), 3);
        assert_eq!(r.copies[0].sources, ["rootfs/"]);
        assert_eq!(r.copies[0].dest, "/");
        assert_eq!(r.copies[0].owner, None);
        assert_eq!(r.copies[1].sources, ["a.txt", "b.txt"]);
        assert_eq!(r.copies[1].dest, "/etc/");
        assert_eq!(r.copies[1].owner, Some(Owner { uid: 10, gid: 20 }));
        assert_eq!(r.copies[1].mode, Some(0o640));
        assert_eq!(
            r.copies[1].text,
            "COPY --chown=10:20 --chmod=0640 a.txt b.txt etc/"
        );
        assert_eq!(r.copies[2].dest, "/srv/./data");
        assert_eq!(r.copies[2].owner, Some(Owner { uid: 7, gid: 7 }));
        let c = &r.config;
        assert_eq!(c.labels["a"], "x y");
        assert_eq!(c.labels["b"], "anon");
        assert_eq!(c.labels["c"], "$PORT");
        assert_eq!(
            c.env,
            [
                ("PORT".into(), "9090".into()),
                ("HOME".into(), "/srv".into()),
                ("GREETING".into(), "hello world".into())
            ]
        );
        assert_eq!(c.user.as_deref(), Some("65532:65532"));
        assert_eq!(c.workdir.as_deref(), Some("/srv"));
        assert_eq!(c.exposed_ports, ["9090/tcp", "9000/udp"]);
        assert_eq!(c.volumes, ["/data", "/cache", "/tmp"]);
        let hc = c.healthcheck.as_ref().unwrap();
        assert_eq!(hc.test, ["CMD", "/bin/check", "--fast"]);
        assert_eq!(hc.interval, Some(Duration::from_secs(10)));
        assert_eq!(hc.timeout, Some(Duration::from_secs(3)));
        assert_eq!(hc.start_period, Some(Duration::from_secs(90)));
        assert_eq!(hc.retries, Some(3));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.entrypoint.as_ref().unwrap(), &["/usr/local/bin/service"]);
        // The shell form is kept as written, wrapped in the shell (no substitution: the
        // shell does it at run time).
        assert_eq!(
            c.cmd.as_ref().unwrap(),
            &["/bin/sh", "-c", "serve --port ${PORT}"]
        );
        assert!(!c.entrypoint_resets_cmd);
    }

    #[test]
    fn global_args_reach_from_and_only_redeclared_ones_the_stage() {
        let text = "ARG BASE=alpine:3\nARG V=1\nFROM $BASE\nARG V\nLABEL v=$V base=${BASE}\n";
        let r = parse(text);
        assert_eq!(r.base, Base::Image("alpine:3".into()));
        assert_eq!(r.config.labels["v"], "1");
        assert_eq!(r.config.labels["base"], "");
        let r = Recipe::parse(text, &args(&[("BASE", "scratch"), ("V", "2")])).unwrap();
        assert_eq!(r.base, Base::Scratch);
        assert_eq!(r.config.labels["v"], "2");
    }

    #[test]
    fn env_wins_over_arg_and_entrypoint_drops_an_earlier_cmd() {
        let r = parse(
            "FROM scratch\nARG X=arg\nENV X=env\nLABEL x=$X\nCMD [\"a\"]\nENTRYPOINT [\"b\"]\n",
        );
        assert_eq!(r.config.labels["x"], "env");
        assert_eq!(r.config.cmd, None);
        assert!(r.config.entrypoint_resets_cmd);
    }

    #[test]
    fn what_needs_a_container_is_refused_naming_the_engines() {
        for (text, what) in [
            ("FROM scratch\nRUN echo hi\n", "RUN at line 2"),
            (
                "FROM scratch\nADD https://example.com/x /x\n",
                "ADD at line 2",
            ),
            ("FROM scratch\nCOPY --from=build /a /a\n", "COPY at line 2"),
            ("FROM a AS build\nFROM scratch\n", "FROM at line 2"),
        ] {
            let err = refused(text);
            assert!(err.starts_with(what), "{err}");
            assert!(err.contains("--engine docker|podman"), "{err}");
        }
    }

    #[test]
    fn mistakes_are_one_line_errors() {
        for (text, needle) in [
            ("COPY a /\n", "expected FROM"),
            ("ARG X=1\n", "at least one FROM"),
            ("FROM scratch\nCOPY --chown=app a /\n", "numeric ids"),
            ("FROM scratch\nCOPY --chmod=999 a /\n", "octal"),
            ("FROM scratch\nCOPY ../a /\n", "outside the build context"),
            ("FROM scratch\nCOPY *.txt /\n", "wildcards"),
            ("FROM scratch\nLABEL a=\"x\n", "unterminated quote"),
            ("FROM scratch\nLABEL a=${X#y}\n", "unsupported substitution"),
            (
                "FROM scratch\nHEALTHCHECK --interval=soon CMD x\n",
                "duration",
            ),
        ] {
            let err = refused(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn words_split_outside_quotes_and_expand_like_docker() {
        let words = split_words(r#"a="x y" b=\"z 'c d'"#).unwrap();
        assert_eq!(words, [r#"a="x y""#, r#"b=\"z"#, "'c d'"]);
        let lookup = |name: &str| (name == "A").then(|| "1".to_owned());
        assert_eq!(
            expand(r#""$A-${A}" '$A' \$A"#, &lookup).unwrap(),
            "1-1 $A $A"
        );
        assert_eq!(
            expand("${B:-d${A}}${A:+set}${B:+x}", &lookup).unwrap(),
            "d1set"
        );
    }
}
