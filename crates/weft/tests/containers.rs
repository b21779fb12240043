//! weft in containers, against a real Docker engine: each test starts its
//! own `dockerd` (Debian's `docker.io`, which `compat/install.sh` installs)
//! on a private socket, data and exec root, with no bridge network and no
//! iptables changes, and stops it afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// A Docker engine of the test's own.
struct Engine {
    dir: tempfile::TempDir,
    daemon: Child,
}

impl Engine {
    /// Starts `dockerd`; None (after saying why) where the machine cannot
    /// run an engine at all (not root).
    fn start() -> Option<Engine> {
        if !Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        {
            eprintln!("skipped: dockerd needs root, and these tests do not run as root");
            return None;
        }
        // Short: a unix socket path has at most 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("dk")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let root = dir.path();
        let log = std::fs::File::create(root.join("dockerd.log")).expect("log");
        let daemon = Command::new("dockerd")
            .arg("-H")
            .arg(format!("unix://{}", root.join("docker.sock").display()))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("dockerd (Debian docker.io; compat/install.sh installs it): {e}")
            });
        let engine = Engine { dir, daemon };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer:\n{}",
                std::fs::read_to_string(engine.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        Some(engine)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .stdin(Stdio::null())
            .output()
            .expect("docker (the client)")
    }

    fn weft(&self, args: &[&str]) -> Output {
        Command::new(WEFT)
            .args(args)
            .env("DOCKER_HOST", self.host())
            .stdin(Stdio::null())
            .output()
            .expect("weft")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.daemon.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Layers are mounted under the data root until dockerd has stopped.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("exec"))
            .stderr(Stdio::null())
            .status();
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `weft image build` builds an image `FROM scratch` that runs weft as a
/// non-root user able to write its working directory.
#[test]
fn the_weft_image_runs_weft_as_a_non_root_user() {
    let Some(engine) = Engine::start() else {
        return;
    };
    let built = engine.weft(&["image", "build", "--tag", "weft:test"]);
    assert!(built.status.success(), "{}", text(&built));
    let said = text(&built);
    assert!(said.contains("built weft:test (sha256:"), "{said}");

    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none", "weft:test"];
        all.extend_from_slice(args);
        engine.docker(&all)
    };
    let version = run(&["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("weft {}", env!("CARGO_PKG_VERSION"))
    );
    // Crypto material written into /var/weft by uid 10001.
    let cryptogen = run(&["cryptogen", "--output", "/var/weft/organizations"]);
    assert!(cryptogen.status.success(), "{}", text(&cryptogen));
    assert!(
        text(&cryptogen).contains("crypto material in /var/weft/organizations"),
        "{}",
        text(&cryptogen)
    );
    let inspected = engine.docker(&[
        "inspect",
        "-f",
        "{{.Config.User}} {{.Config.WorkingDir}} {{index .Config.Labels \"org.opencontainers.image.version\"}}",
        "weft:test",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&inspected.stdout).trim(),
        format!("10001:10001 /var/weft {}", env!("CARGO_PKG_VERSION"))
    );
    // No shell, no package manager: the binary, its libraries, certificates.
    let shell = engine.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        "weft:test",
        "-c",
        "true",
    ]);
    assert!(!shell.status.success());
    assert!(text(&shell).contains("/bin/sh"), "{}", text(&shell));
}

/// Without an engine, the error names the socket and what to do.
#[test]
fn without_an_engine_the_error_says_what_to_start() {
    let missing = PathBuf::from("/tmp/no-such-dir/docker.sock");
    let output = Command::new(WEFT)
        .args(["image", "build"])
        .env("DOCKER_HOST", format!("unix://{}", missing.display()))
        .stdin(Stdio::null())
        .output()
        .expect("weft");
    assert!(!output.status.success());
    let said = text(&output);
    assert!(
        said.contains("no Docker engine at /tmp/no-such-dir/docker.sock")
            && said.contains("start dockerd"),
        "{said}"
    );
    assert!(!Path::new("/tmp/no-such-dir").exists());
}
