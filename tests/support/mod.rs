//! Helpers for integration tests: run the real `netwarden` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netwarden"))
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs the binary with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

/// [`run`] with environment variables set.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out: Output = bin()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("netwarden runs");
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`run`], killed (and the test failed) if it has not exited within
/// `limit`: for inputs that used to hang.
pub fn run_within(args: &[&str], limit: std::time::Duration) -> (i32, String, String) {
    use std::io::Read;
    let mut child = bin()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("netwarden runs");
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("netwarden {args:?} did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    let _ = child.stdout.take().expect("piped").read_to_string(&mut out);
    let _ = child.stderr.take().expect("piped").read_to_string(&mut err);
    (
        status.code().expect("exited, not killed by a signal"),
        out,
        err,
    )
}

/// Runs `serve` on `policy` (loopback ports of its own) where it is meant
/// to fail at startup: its exit code and stderr, within `limit`.
pub async fn serve_exits(policy: &Path, limit: std::time::Duration) -> (i32, String) {
    let p = policy.to_str().expect("utf-8 path").to_string();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        run_within(
            &[
                "serve",
                "--policy",
                &p,
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
            ],
            limit,
        )
    })
    .await
    .expect("serve ran");
    (code, err)
}

pub mod console;
pub mod dns;
pub mod proxy;
pub mod publisher;

/// A temporary directory with a development CA (`ca.pem`), a certificate
/// for localhost it signed (`cert.pem`) and its key (`key.pem`), made by
/// `netwarden certs dev`.
pub fn dev_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().to_str().expect("utf-8 path");
    let (code, _, err) = run(&["certs", "dev", "--out", out]);
    assert_eq!(code, 0, "certs dev failed: {err}");
    dir
}

#[path = "../../testdata/geo/fixtures.rs"]
pub mod fixtures;
pub mod jwt;
#[path = "../../testdata/geo/mmdb_writer.rs"]
pub mod mmdb_writer;
pub mod receiver;
pub mod redis;
pub mod sign_in;
