//! The README's main command, `netwarden demo`, run for real: a blocked
//! sign-in is refused and its alert reaches the demo's built-in webhook,
//! whose HMAC check passes.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Instant;

use support::proxy::{WAIT, post};

/// Waits (bounded) for a stderr line containing `needle`.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("demo never printed {needle:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_blocks_a_sign_in_from_home_and_alerts_its_webhook() {
    let mut child = support::bin()
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = wait_line(&rx, "netwarden guards it on http://");
    let addr: std::net::SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("address")
        .parse()
        .expect("socket address");
    // The proxy binds after printing its instructions: retry connecting.
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "demo proxy never listened");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(post("127.0.0.1", addr, "/login", &[]).await.status, 200);
    assert_eq!(post("127.0.0.2", addr, "/login", &[]).await.status, 403);
    let alert = tokio::task::spawn_blocking(move || {
        wait_line(&rx, ">>> ALERT received by the demo's webhook")
    })
    .await
    .expect("joined");
    assert!(
        alert.contains("(signature verified): Blocked login attempt from 127.0.0.2 (rule login)"),
        "{alert}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
