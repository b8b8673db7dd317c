//! `cargo xtask run` for real: the arm64 image under qemu serves on loopback, Ctrl-C stops
//! it with status 130 (as every interrupted command) and leaves no container or volume.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{XTASK, root, run};

mod support;

const TAG: &str = "xtask-test/run:1";

/// Removes the test's image tags, also when an assertion failed.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        for arch in ["amd64", "arm64"] {
            let _ = Command::new("docker")
                .args(["rmi", &format!("{TAG}-{arch}")])
                .output();
        }
    }
}

/// `cargo xtask run <args>` in a process group of its own (a terminal's foreground job),
/// and the URL it prints once the service answers.
fn start(args: &[&str]) -> (Child, String) {
    use std::os::unix::process::CommandExt;
    eprintln!("$ cargo xtask run {}", args.join(" "));
    let mut child = Command::new(XTASK)
        .arg("run")
        .args(args)
        .current_dir(root())
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line, url) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let _ = line.send(l.unwrap());
        }
    });
    // Building, assembling and starting under qemu: minutes at worst on a cold build.
    let url = url
        .recv_timeout(Duration::from_secs(900))
        .expect("no URL printed");
    (child, url)
}

fn healthz(url: &str) -> bool {
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let Ok(mut stream) = TcpStream::connect(&host) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /healthz HTTP/1.0\r\nHost: {host}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}

/// Containers and volumes labelled as made by the run with process id `pid`.
fn left_by(pid: u32) -> Vec<String> {
    let prefix = format!("{pid}-");
    let label = "{{.Names}} {{.Label \"xtask.run\"}}";
    let containers = run(
        "docker",
        &[
            "ps",
            "--all",
            "--filter",
            "label=xtask.run",
            "--format",
            label,
        ],
    );
    let label = "{{.Name}} {{.Label \"xtask.run\"}}";
    let volumes = run(
        "docker",
        &[
            "volume",
            "ls",
            "--filter",
            "label=xtask.run",
            "--format",
            label,
        ],
    );
    containers
        .lines()
        .chain(volumes.lines())
        .filter(|l| {
            l.split_once(' ')
                .is_some_and(|(_, run)| run.starts_with(&prefix))
        })
        .map(str::to_owned)
        .collect()
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn interrupt(child: &mut Child, signal: &str) -> (std::process::ExitStatus, Duration) {
    let group = format!("-{}", child.id());
    let target = if signal == "INT" {
        group
    } else {
        child.id().to_string()
    };
    let signalled = Instant::now();
    run("kill", &[&format!("-{signal}"), "--", &target]);
    let status = wait_for_exit(child, Duration::from_secs(30));
    (status, signalled.elapsed())
}

#[test]
fn run_serves_on_loopback_and_ctrl_c_leaves_nothing() {
    // One run at a time: both build into the same OCI layout.
    let _turn = support::engine_turn();
    let _cleanup = Cleanup;
    let (mut child, url) = start(&["--target", "arm64", "--tag", TAG, "--engine", "docker"]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // Printed once /healthz answered; it answers on loopback still.
    assert!(healthz(&url), "{url}/healthz does not answer");
    let pid = child.id();
    assert!(
        !left_by(pid).is_empty(),
        "the run's container carries its label"
    );
    let (status, after) = interrupt(&mut child, "INT");
    eprintln!(
        "run, Ctrl-C: status {:?} after {:.2}s",
        status.code(),
        after.as_secs_f64()
    );
    assert_eq!(status.code(), Some(130));
    assert!(after <= Duration::from_secs(5), "{after:?}");
    assert_eq!(left_by(pid), Vec::<String>::new(), "left behind");
    assert!(!healthz(&url), "still serving");
}

#[test]
fn a_named_volume_outlives_the_run_and_keeps_the_data() {
    let _turn = support::engine_turn();
    let _cleanup = Cleanup;
    let volume = format!("xtask-test-run-{}", std::process::id());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let args = [
        "--target", "amd64", "--tag", TAG, "--engine", "docker", "--volume", &volume, "--port",
        &port,
    ];
    let (mut child, url) = start(&args);
    assert_eq!(url, format!("http://127.0.0.1:{port}/"));
    let pid = child.id();
    let (status, _) = interrupt(&mut child, "TERM");
    assert_eq!(status.code(), Some(130));
    assert_eq!(left_by(pid), Vec::<String>::new(), "left behind");
    let kept = run(
        "docker",
        &[
            "volume",
            "ls",
            "--quiet",
            "--filter",
            &format!("name={volume}"),
        ],
    );
    let _ = Command::new("docker")
        .args(["volume", "rm", &volume])
        .output();
    assert_eq!(kept.trim(), volume, "the named volume went");
}
