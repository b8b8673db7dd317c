//! `service healthcheck`: a probe for images without curl or a shell. Exit 0 when the
//! running service's `/healthz` answers 200 within the timeout.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub const TIMEOUT: Duration = Duration::from_secs(3);

pub async fn check(addr: SocketAddr) -> anyhow::Result<()> {
    tokio::time::timeout(TIMEOUT, get_healthz(addr))
        .await
        .with_context(|| format!("no answer from http://{addr}/healthz within {TIMEOUT:?}"))?
}

async fn get_healthz(addr: SocketAddr) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::get("/healthz")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        bail!("http://{addr}/healthz answered {}", response.status());
    }
    Ok(())
}
