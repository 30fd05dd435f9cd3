//! A console that really speaks h2c: `console.py` under hypercorn, in a
//! Python virtual environment that the tests make themselves (under
//! `target/tmp`, from `tests/requirements.txt`), so `cargo test` needs
//! nothing installed by hand but Python 3 and the package registry.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// pip's install, bounded: a registry that does not answer fails the test.
const INSTALL_LIMIT: Duration = Duration::from_secs(600);

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The virtual environment's interpreter, made once per requirements file
/// (its content names the directory) and shared by every test binary.
/// Made in a directory of its own and renamed into place, so test binaries
/// running at once never see half an environment.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let reqs = std::fs::read_to_string(manifest("tests/requirements.txt"))
            .expect("tests/requirements.txt");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in reqs.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join(format!("pyenv-{h:016x}"));
        let py = dir.join("bin/python");
        if py.exists() {
            return py;
        }
        let tmp = root.join(format!("pyenv-{h:016x}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&tmp)
            .status()
            .expect("python3 runs (the h2c console needs Python 3)")
            .success();
        assert!(ok, "python3 -m venv failed");
        let mut pip = Command::new(tmp.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(manifest("tests/requirements.txt"))
            .spawn()
            .expect("pip runs");
        let deadline = Instant::now() + INSTALL_LIMIT;
        let status = loop {
            if let Some(s) = pip.try_wait().expect("pip status") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = pip.kill();
                panic!("pip install -r tests/requirements.txt took over {INSTALL_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "pip install -r tests/requirements.txt failed"
        );
        // Another test binary may have finished first: use its copy.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(py.exists(), "{} missing", py.display());
        py
    })
    .clone()
}

/// hypercorn serving `console.py` on 127.0.0.1, recording every request.
pub struct H2cConsole {
    child: Child,
    pub addr: std::net::SocketAddr,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

impl H2cConsole {
    pub fn start() -> Self {
        let py = python();
        let dir = tempfile::tempdir().expect("temp dir");
        let port_file = dir.path().join("port");
        let record = dir.path().join("record.jsonl");
        let mut child = Command::new(py)
            .arg(manifest("tests/support/console.py"))
            .arg(&port_file)
            .arg(&record)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("console.py starts");
        let deadline = Instant::now() + super::proxy::WAIT;
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                panic!("console.py did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // Serving once the port file exists; wait until it accepts.
        let deadline = Instant::now() + super::proxy::WAIT;
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "console.py does not accept");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            addr,
            record,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request the console received, as console.py wrote it.
    pub fn seen(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("console.py writes JSON lines"))
            .collect()
    }
}

impl Drop for H2cConsole {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
