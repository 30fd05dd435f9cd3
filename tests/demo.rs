//! The README's main command, `netwarden demo`, run for real: a blocked
//! sign-in is refused and its alert reaches the demo's built-in webhook,
//! whose HMAC check passes.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Instant;

use support::proxy::{WAIT, connect_from, exchange, get};

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

/// `netwarden demo` on a free port, and its stderr line by line.
fn start_demo() -> (std::process::Child, mpsc::Receiver<String>) {
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
    (child, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_blocks_a_sign_in_from_home_and_alerts_its_webhook() {
    let (mut child, rx) = start_demo();
    let line = wait_line(&rx, "netwarden guards it on http://");
    let v6_served = line.contains("and http://[::1]:");
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
    let admin_line = wait_line(&rx, "admin listener is http://");
    let admin: std::net::SocketAddr = admin_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("admin address")
        .parse()
        .expect("socket address");
    // The banner's reload-guard step: `cp <edit> <policy>`.
    let cp_line = wait_line(&rx, " cp ");
    let cp: Vec<String> = cp_line
        .split_whitespace()
        .skip_while(|w| *w != "cp")
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(cp.len(), 2, "{cp_line}");
    let office = |from: &'static str| async move {
        let body = "username=yamada&password=right";
        let req = format!(
            "POST /login HTTP/1.1\r\nHost: demo\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        exchange(connect_from(from, addr).await, req.as_bytes())
            .await
            .status
    };
    // The banner's sign-ins (curl -d 'username=yamada&password=right').
    assert_eq!(office("127.0.0.1").await, 200);
    assert_eq!(office("127.0.0.2").await, 403);
    // Password guessing from another desk in the office, as the banner
    // shows it: three wrong passwords for alice (401 from the console),
    // then 429, and an alert says so; bob still signs in.
    let sign_in = |body: &str| {
        format!(
            "POST /login HTTP/1.1\r\nHost: demo\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let wrong = &sign_in("username=alice&password=wrong");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            exchange(connect_from("127.0.0.4", addr).await, wrong)
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    let bob = sign_in("username=bob&password=right");
    assert_eq!(
        exchange(connect_from("127.0.0.4", addr).await, &bob)
            .await
            .status,
        200
    );
    // "Why am I blocked?", as the banner shows it.
    let me = get("127.0.0.2", addr, "/.well-known/netwarden/whoami", &[]).await;
    let me: serde_json::Value = serde_json::from_str(me.body.trim()).expect("json");
    assert_eq!(
        (me["client_ip"].as_str(), me["sign_in"].as_str()),
        (Some("127.0.0.2"), Some("blocked"))
    );
    // The reload guard refuses the banner's "VPN only" edit: the office
    // signed in above, and would be locked out.
    std::fs::copy(&cp[0], &cp[1]).expect("the banner's cp");
    let refused = exchange(
        connect_from("127.0.0.1", admin).await,
        b"POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body.contains("rule 'login' (policy.yaml:"),
        "{}",
        refused.body
    );
    assert_eq!(office("127.0.0.1").await, 200);
    // The printed admin address serves the metrics.
    let m = get("127.0.0.1", admin, "/metrics", &[]).await;
    assert_eq!(m.status, 200);
    assert!(m.body.contains("netwarden_decisions_total"), "{}", m.body);
    // ::1 is the demo's VPN: served when the machine has it.
    if v6_served {
        let v6 = std::net::SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port());
        assert_eq!(get("::1", v6, "/customers/1042", &[]).await.status, 200);
    }
    // Both alerts, in whichever order they arrive.
    let (alert, lockout) = tokio::task::spawn_blocking(move || {
        let (mut alert, mut lockout) = (None, None);
        while alert.is_none() || lockout.is_none() {
            let line = wait_line(&rx, ">>> ALERT received by the demo's webhook");
            if line.contains("locked out") {
                lockout = Some(line);
            } else {
                alert = Some(line);
            }
        }
        (alert.unwrap_or_default(), lockout.unwrap_or_default())
    })
    .await
    .expect("joined");
    assert!(
        alert.contains("(signature verified): Blocked login attempt from 127.0.0.2 (rule login)"),
        "{alert}"
    );
    assert!(
        lockout.contains("(signature verified): Account ")
            && lockout.contains(
                " from 127.0.0.0/24 locked out for 30 seconds after 3 failed sign-ins (rule login, last from 127.0.0.4)"
            )
            && !lockout.contains("alice"),
        "{lockout}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_taken_port_is_exit_1_with_a_hint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, _, err) = support::run(&["demo", "--listen", &addr]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("netwarden demo --listen"), "{err}");
}

/// Issue 23: the banner's commands, run in the order it prints them, as
/// a newcomer pastes them (`sh -c`, real curl): each does what its comment
/// says, the reload guard's 409 included (a "VPN only" edit used to be
/// applied once the banner's VPN request had made `::1` an admin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_followed_top_to_bottom_does_what_it_says() {
    let (mut child, rx) = start_demo();
    let _ = wait_line(&rx, "In another terminal, try");
    let mut commands = Vec::new();
    loop {
        let line = rx.recv_timeout(WAIT).expect("the banner goes on");
        if line.contains("Ctrl-C stops it") {
            break;
        }
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            commands.push(line.to_string());
        }
    }
    let proxy: std::net::SocketAddr = commands
        .iter()
        .find_map(|c| c.split("http://127.0.0.1:").nth(1))
        .and_then(|rest| rest.split('/').next())
        .map(|port| format!("127.0.0.1:{port}"))
        .expect("the proxy's address in a command")
        .parse()
        .expect("address");
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(proxy).await.is_err() {
        assert!(Instant::now() < deadline, "demo proxy never listened");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(commands.len() >= 14, "{commands:#?}");
    let mut outputs = Vec::new();
    for c in &commands {
        let c2 = c.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("timeout")
                .args(["20", "sh", "-c", &c2])
                .output()
                .expect("sh runs")
        })
        .await
        .expect("joined");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        outputs.push((c.clone(), text));
    }
    let find = |needle: &str| -> &str {
        outputs
            .iter()
            .find(|(c, _)| c.contains(needle))
            .map(|(_, o)| o.as_str())
            .unwrap_or_else(|| panic!("no command with {needle:?}: {commands:#?}"))
    };
    let office = outputs
        .iter()
        .find(|(c, _)| c.contains("username=yamada") && !c.contains("--interface"))
        .map(|(_, o)| o.as_str())
        .expect("the office sign-in");
    assert!(office.starts_with("HTTP/1.1 200"), "{office}");
    if let Some((_, vpn)) = outputs.iter().find(|(c, _)| c.contains("[::1]")) {
        assert!(vpn.starts_with("HTTP/1.1 200"), "{vpn}");
    }
    let home = find("--interface 127.0.0.2 -d 'username=yamada");
    assert!(home.starts_with("HTTP/1.1 403"), "{home}");
    assert!(find("Accept: text/html").contains("<html"));
    assert!(find("X-Forwarded-For: 127.0.0.1' http").starts_with("HTTP/1.1"));
    let lb_office = outputs
        .iter()
        .find(|(c, _)| c.contains("127.0.0.3 -H 'X-Forwarded-For: 127.0.0.1'"))
        .map(|(_, o)| o.as_str())
        .expect("the load balancer's office client");
    assert!(lb_office.starts_with("HTTP/1.1 200"), "{lb_office}");
    assert!(find("X-Forwarded-For: 198.51.100.7").starts_with("HTTP/1.1 403"));
    let spoof = outputs
        .iter()
        .find(|(c, _)| c.contains("127.0.0.2 -H 'X-Forwarded-For: 127.0.0.1'"))
        .map(|(_, o)| o.as_str())
        .expect("the spoof");
    assert!(spoof.starts_with("HTTP/1.1 403"), "{spoof}");
    assert_eq!(
        find("username=alice&password=wrong")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["401", "401", "401", "429"]
    );
    assert_eq!(find("username=bob&password=right").trim(), "200");
    assert!(find("%2e%2e").starts_with("HTTP/1.1 403"));
    assert!(find("%2F..%2F").starts_with("HTTP/1.1 400"));
    assert!(find("whoami").contains("\"sign_in\":\"blocked\""));
    let reload = find("/reload");
    assert!(reload.contains("\"outcome\":\"refused\""), "{reload}");
    let _ = child.kill();
    let _ = child.wait();
}
