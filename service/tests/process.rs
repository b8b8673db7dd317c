//! The built binaries as a user runs them: startup refusal, migrations, healthcheck, SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVICE: &str = env!("CARGO_BIN_EXE_service");
const MIGRATE: &str = env!("CARGO_BIN_EXE_migrate");

fn migrate(db: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(MIGRATE)
        .args(args)
        .env("DATABASE_PATH", db)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

/// Starts the service on an ephemeral port and returns it with the port it logged.
fn start(db: &Path) -> (Child, u16) {
    let mut child = Command::new(SERVICE)
        .env("PORT", "0")
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("DATABASE_PATH", db)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let port = line
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("unexpected first log line: {line}"))
        .parse()
        .unwrap();
    // Keep draining the log so the service never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, port)
}

#[test]
fn refuses_to_start_on_an_unmigrated_database_and_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(SERVICE)
        .env("DATABASE_PATH", dir.path().join("s.db"))
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("2 pending migration(s)") && stderr.contains("`migrate up`"),
        "{stderr}"
    );
}

#[test]
fn migrate_up_status_down() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let (code, out) = migrate(&db, &["status"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 pending"), "{out}");

    assert_eq!(migrate(&db, &["up", "--to", "1"]).0, 0);
    assert_eq!(migrate(&db, &["version"]), (0, "1\n".into()));
    assert_eq!(migrate(&db, &["up"]).0, 0);
    let (code, out) = migrate(&db, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("up to date at version 2"), "{out}");

    assert_eq!(migrate(&db, &["down"]).0, 0);
    assert_eq!(migrate(&db, &["version"]), (0, "1\n".into()));
    let (code, _) = migrate(&db, &["up", "--to", "0"]);
    assert_eq!(code, 2, "going up to an older version is refused");
}

#[test]
fn migrate_on_start_then_healthcheck_then_sigterm_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let mut child = Command::new(SERVICE)
        .env("MIGRATE_ON_START", "true")
        .env("DATABASE_PATH", &db)
        .env("PORT", "0")
        .env("BIND_ADDRESS", "127.0.0.1")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Migrated on start: wait for the file to reach the latest version.
    let deadline = Instant::now() + Duration::from_secs(10);
    while migrate(&db, &["status"]).0 != 0 {
        assert!(
            Instant::now() < deadline,
            "MIGRATE_ON_START did not migrate"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, port) = start(&db);
    let health = Command::new(SERVICE)
        .arg("healthcheck")
        .env("PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .status()
        .unwrap();
    assert!(health.success());

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no exit within 2 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(SERVICE)
        .arg("healthcheck")
        .env("PORT", free.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("cannot connect")
    );
}
