//! A real registry (Debian's `docker-registry`, distribution 2.8) on a free loopback port,
//! optionally behind htpasswd basic auth; stopped and its storage removed on drop.

// Shared by several test binaries, each using a part.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Anyone may pull and push.
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// Only `user` with `password` may pull or push (basic auth, bcrypt htpasswd file).
    pub fn with_basic_auth(user: &str, password: &str) -> Registry {
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect(
                "htpasswd (Debian's apache2-utils package) must be installed: see .ci/provision",
            );
        assert!(out.status.success(), "htpasswd failed");
        Registry::start_with(Some(out.stdout))
    }

    fn start_with(htpasswd: Option<Vec<u8>>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let auth = match htpasswd {
            None => String::new(),
            Some(users) => {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, users).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: xtask-test\n    path: {}\n",
                    path.display()
                )
            }
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's docker-registry package) must be installed: see .ci/provision");
        let host = format!("127.0.0.1:{port}");
        // Any HTTP answer (a 401 too) means it is serving.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.get(format!("http://{host}/v2/")).call().is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry {
            child,
            host,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
