//! A service as a client sees it: free ports and HTTP on loopback.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Context;

use crate::error::{Result, bail, ensure};

/// A port of 127.0.0.1 that nothing listens on now (8080 if none can be found).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(8080, |a| a.port())
}

/// Checks, before anything is built, that a service as [`crate::Resources`] starts it (host network, a
/// non-root user without capabilities) can listen on `port` of 127.0.0.1.
pub fn servable_port(port: u16) -> Result<()> {
    let fix = "give another --port, or leave it out for a free one";
    ensure!(port != 0, "--port 0 is not a port to serve on: {fix}");
    // Binding below this needs CAP_NET_BIND_SERVICE, which the container does not have,
    // whoever runs the xtask.
    let unprivileged = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    ensure!(
        port >= unprivileged,
        "port {port} is privileged (below {unprivileged}) and the service runs as a non-root \
         user without capabilities: {fix} ({unprivileged} or above)"
    );
    if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
        bail!("port {port} on 127.0.0.1 is taken ({e}): {fix}");
    }
    Ok(())
}

/// The HTTP client of every probe: 5 s for a whole request, and any status an answer (a
/// check decides what it expects).
pub fn agent() -> ureq::Agent {
    agent_following(10)
}

/// [`agent`], following at most `redirects` redirects.
fn agent_following(redirects: u32) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .max_redirects(redirects)
        .build()
        .into()
}

/// `GET path`: the body of a 2xx answer; any other status is an error with the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut response = agent().get(format!("http://{addr}{path}")).call()?;
    let body = response.body_mut().read_to_string()?;
    ensure!(
        response.status().is_success(),
        "{path} answered {}: {body}",
        response.status()
    );
    Ok(body)
}

/// What a service answered: the status, the headers and the body as text, whatever the
/// status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case, in the order they came.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `method path` (with `headers` and `body`, if any) and the answer, whatever its status.
/// The body goes with no `Content-Type` unless `headers` has one. A redirect is the answer
/// (`302`, say), not followed: a check says what this request gets.
pub fn http<'a>(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Option<&str>,
) -> Result<Answer> {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(body.unwrap_or_default().to_owned())
        .with_context(|| format!("{method} {path} is not a request"))?;
    let mut response = agent_following(0).run(request)?;
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(Answer {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().read_to_string()?,
    })
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use super::*;

    /// Answers one request with `answer`, and returns what it was sent (head and body).
    fn serve_once(answer: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                reader.read_line(&mut head).unwrap();
            }
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .map_or(0, |n| n.trim().parse().unwrap());
            let mut body = vec![0; length];
            std::io::Read::read_exact(&mut reader, &mut body).unwrap();
            reader.get_mut().write_all(answer.as_bytes()).unwrap();
            head + &String::from_utf8(body).unwrap()
        });
        (addr, served)
    }

    #[test]
    fn a_check_sends_its_headers_and_body_and_takes_a_redirect_as_the_answer() {
        let (addr, served) = serve_once(
            "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 5\r\n\r\nmoved",
        );
        let headers = [("Content-Type", "application/json")];
        let answer = http(addr, "POST", "/notes", headers, Some("{}")).unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (302, "moved"));
        assert_eq!(answer.header("LOCATION"), Some("/elsewhere"));
        let sent = served.join().unwrap().to_ascii_lowercase();
        assert!(sent.starts_with("post /notes http/1.1\r\n"), "{sent}");
        assert!(
            sent.contains("\r\ncontent-type: application/json\r\n"),
            "{sent}"
        );
        assert!(sent.ends_with("\r\n\r\n{}"), "{sent}");
    }

    #[test]
    fn a_taken_privileged_or_zero_port_is_refused_and_a_free_one_accepted() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let err = servable_port(port).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("port {port} on 127.0.0.1 is taken")),
            "{err}"
        );
        assert!(err.contains("--port"), "{err}");
        drop(held);
        servable_port(port).unwrap();
        let err = servable_port(80).unwrap_err().to_string();
        assert!(err.starts_with("port 80 is privileged"), "{err}");
        assert!(servable_port(0).is_err());
    }
}
