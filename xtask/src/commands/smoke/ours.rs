//! This project's own smoke checks, written in Rust and registered by image name: what the
//! declared HTTP probes and commands in Cargo.toml cannot say (a websocket round trip, the
//! message log, the limits). An adopter adds theirs the same way: one arm per image.

use std::net::SocketAddr;

use crate::tools::probe::{self, messages_contain, websocket_echo};

/// What a check of the running service is given.
pub struct Running<'a> {
    pub addr: SocketAddr,
    /// A text unique to this run (the message it stores and finds again).
    pub token: &'a str,
}

/// A check of the running service; its `Ok` is the row's detail.
pub struct Own {
    pub name: &'static str,
    /// Run after the service was stopped and started again on the same volumes.
    pub after_restart: bool,
    pub run: fn(&Running<'_>) -> anyhow::Result<String>,
}

/// The checks registered for the declared image `image`.
pub fn checks(image: &str) -> Vec<Own> {
    match image {
        "tiny-service" => vec![
            Own {
                name: "websocket",
                after_restart: false,
                run: |s| websocket_echo(s.addr, s.token),
            },
            Own {
                name: "messages",
                after_restart: false,
                run: |s| messages_contain(s.addr, s.token),
            },
            Own {
                name: "message limit",
                after_restart: false,
                run: |s| {
                    let (big, detail) = probe::websocket_limit(s.addr, s.token)?;
                    messages_contain(s.addr, &big)?;
                    Ok(format!("{detail}; the big one is listed"))
                },
            },
            Own {
                name: "body limit",
                after_restart: false,
                run: |s| probe::body_limit(s.addr),
            },
            Own {
                name: "messages kept",
                after_restart: true,
                run: |s| {
                    messages_contain(s.addr, s.token)?;
                    Ok("the message survived on the volume".into())
                },
            },
        ],
        _ => Vec::new(),
    }
}
