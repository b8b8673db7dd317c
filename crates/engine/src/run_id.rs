//! Which run of the xtask made a resource: every container and volume carries the run's
//! identity as a label, so a later run can tell leftovers of a dead run from a live one's.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::Context;

use crate::error::Result;

/// The label key on every container and volume a run creates.
pub const LABEL: &str = "xtask.run";

/// A process id with the process's start time (clock ticks since boot, from /proc): a pid
/// the kernel has reused for another process has another start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId {
    /// The process id.
    pub pid: u32,
    /// Its start time, in clock ticks since boot.
    pub start: u64,
}

impl RunId {
    /// This process.
    pub fn current() -> RunId {
        static CURRENT: OnceLock<RunId> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let pid = std::process::id();
            RunId {
                pid,
                start: start_time(pid).unwrap_or(0),
            }
        })
    }

    /// `xtask.run=<pid>-<start>`, for `--label` and `--filter`.
    pub fn label(self) -> String {
        format!("{LABEL}={self}")
    }

    /// Whether the process that made this run still runs.
    pub fn is_alive(self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// hold spaces and parentheses itself, so fields are counted after the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.pid, self.start)
    }
}

impl FromStr for RunId {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<RunId> {
        let (pid, start) = s.split_once('-').context("no `-` in a run id")?;
        Ok(RunId {
            pid: pid.parse().context("pid in a run id")?,
            start: start.parse().context("start time in a run id")?,
        })
    }
}

/// A volume name the user chose (`run --volume`), as docker and podman accept them: a
/// letter or digit, then letters, digits, `_`, `.` or `-`. Such a volume carries no run
/// label, so no sweep ever takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeName(String);

impl FromStr for VolumeName {
    type Err = String;

    fn from_str(s: &str) -> Result<VolumeName, String> {
        let mut chars = s.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.len() >= 2
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(format!(
                "invalid volume name `{s}`: two or more of letters, digits, `_`, `.` and `-`, \
                 starting with a letter or digit"
            ));
        }
        Ok(VolumeName(s.to_owned()))
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_follow_the_engines_rules() {
        for good in ["data", "my-data_1.0", "0x"] {
            assert_eq!(good.parse::<VolumeName>().unwrap().to_string(), good);
        }
        for bad in ["", "a", "-data", "../etc", "a b", "a/b", "ü1"] {
            assert!(bad.parse::<VolumeName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_start_time_is_counted_after_the_command_name() {
        let stat = "26227 (c) a t) R 26223 26223 6708 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 \
                    68197 3133440 381";
        assert_eq!(parse_start_time(stat), Some(68197));
        assert_eq!(parse_start_time("12 (x) R 1 2"), None);
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn run_ids_round_trip_and_this_one_is_alive() {
        let me = RunId::current();
        assert_ne!(me.start, 0);
        assert_eq!(me.to_string().parse::<RunId>().unwrap(), me);
        assert!(me.is_alive());
        assert!(me.label().starts_with("xtask.run="));
        let reused = RunId {
            start: me.start + 1,
            ..me
        };
        assert!(!reused.is_alive(), "same pid, other start: another process");
        assert!("12".parse::<RunId>().is_err());
        assert!("a-1".parse::<RunId>().is_err());
    }
}
