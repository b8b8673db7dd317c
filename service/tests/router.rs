//! Handlers through the router, without a socket.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use rusqlite::Connection;
use service::db::{self, Db};
use service::{AppState, app};
use tower::ServiceExt;

fn state() -> AppState {
    let mut conn = Connection::open_in_memory().unwrap();
    db::migrations().to_latest(&mut conn).unwrap();
    db::insert_message(&conn, "first").unwrap();
    db::insert_message(&conn, "second").unwrap();
    let (_tx, shutdown) = tokio::sync::watch::channel(false);
    AppState {
        db: Db::new(conn),
        shutdown,
    }
}

async fn get(uri: &str) -> (StatusCode, String) {
    let response = app(state())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn hello_says_hello() {
    assert_eq!(get("/hello").await, (StatusCode::OK, "hello".into()));
}

#[tokio::test]
async fn probes_answer() {
    assert_eq!(get("/healthz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(get("/readyz").await, (StatusCode::OK, "ready".into()));
}

#[tokio::test]
async fn home_page_opens_the_websocket() {
    let (status, body) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("new WebSocket("), "{body}");
    assert!(body.contains("/ws`"), "{body}");
}

#[tokio::test]
async fn messages_are_listed_newest_first_with_a_limit() {
    let (status, body) = get("/messages?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["body"], "second");
    assert_eq!(list[0]["id"], 2);
    assert!(list[0]["received_at"].as_str().unwrap().ends_with('Z'));

    let (_, body) = get("/messages").await;
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_limits_are_refused() {
    for uri in [
        "/messages?limit=0",
        "/messages?limit=abc",
        "/messages?limit=1001",
    ] {
        let (status, body) = get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body, "limit must be a whole number from 1 to 1000", "{uri}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404() {
    assert_eq!(get("/nope").await.0, StatusCode::NOT_FOUND);
}
