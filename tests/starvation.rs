//! One address must not be able to starve the guard: each test holds a
//! resource from 127.0.0.2 and checks that netwarden stays cheap and that
//! an operator at 127.0.0.1 is still served. Loops are bounded in count and
//! time; the bounds on CPU are generous (a busy loop costs whole seconds,
//! waiting costs milliseconds): correctness, not speed.

mod support;

use std::time::Duration;

use support::proxy::{Netwarden, Upstream, connect_from, get};
use tokio::io::AsyncWriteExt;

const POLICY: &str = "version: 1
networks:
  office: [127.0.0.1]
  lb: [127.0.0.3]
client_ip: { trusted_proxies: [lb] }
rules:
  - { name: console, paths: [\"/**\"], allow_from: [office] }
";

/// User plus system CPU time of a process so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    // Linux reports clock ticks of 1/100 s (USER_HZ) in /proc.
    let hz = 100.0;
    ticks / hz
}

#[tokio::test]
async fn a_stalled_proxy_signature_costs_nothing_while_it_waits() {
    let up = Upstream::start().await;
    let nw = Netwarden::start(
        POLICY,
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--proxy-protocol",
            "--upstream",
            &up.url(),
        ],
    );
    let addr = nw.addr("http");
    // 500 peers send the first bytes of a v1 or v2 signature and stop.
    let mut held = Vec::with_capacity(500);
    for i in 0..500 {
        let mut s = connect_from("127.0.0.2", addr).await;
        let part: &[u8] = if i % 2 == 0 { b"PROX" } else { b"\r\n\r\n\0" };
        s.write_all(part).await.expect("send");
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_seconds(nw.pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spent = cpu_seconds(nw.pid()) - before;
    // Re-peeking every 5 ms cost about a core here; waiting for the socket
    // to become readable costs nothing.
    assert!(
        spent < 0.3,
        "{spent:.2} s of CPU in 3 s for 500 stalled connections"
    );
    // And an operator is served meanwhile.
    let r = get("127.0.0.1", addr, "/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    drop(held);
}
