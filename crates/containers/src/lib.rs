//! weft in containers. [`build_image`] builds weft's image into a local
//! Docker engine through the engine API (`bollard`): no registry is needed,
//! because the image starts `FROM scratch` and holds only the weft binary
//! (stripped),
//! the shared libraries it loads (as `ldd` lists them: the C library and
//! its loader), CA certificates, and a non-root `weft` user (uid 10001);
//! `/var/weft`, the working directory for node data, takes any user (mode
//! 1777, like `/tmp`).
//!
//! The engine is `DOCKER_HOST` (`unix:///path/docker.sock`) or
//! `/var/run/docker.sock`.

pub mod chaincode;
pub mod source;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use futures_util::StreamExt;

/// The uid and gid the image runs as.
pub const WEFT_UID: u64 = 10001;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(
        "no Docker engine at {socket}: {reason} (start dockerd, or set DOCKER_HOST=unix:///path/to/docker.sock)"
    )]
    NoEngine { socket: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("the image build failed: {0}")]
    Build(String),
    #[error("Docker engine: {0}")]
    Engine(#[from] bollard::errors::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContainerError + '_ {
    move |source| ContainerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The engine's socket: `DOCKER_HOST` (a `unix://` address) or Docker's
/// default.
pub fn engine_socket() -> Result<String, ContainerError> {
    socket_from(std::env::var("DOCKER_HOST").ok().as_deref())
}

fn socket_from(docker_host: Option<&str>) -> Result<String, ContainerError> {
    match docker_host {
        Some(host) if !host.is_empty() => host
            .strip_prefix("unix://")
            .map(str::to_owned)
            .ok_or_else(|| {
                ContainerError::Refused(format!(
                    "DOCKER_HOST={host}: only unix:// sockets are supported"
                ))
            }),
        _ => Ok("/var/run/docker.sock".to_owned()),
    }
}

/// Connects to the engine and agrees on an API version with it.
pub async fn connect() -> Result<Docker, ContainerError> {
    let socket = engine_socket()?;
    let no_engine = |reason: String| ContainerError::NoEngine {
        socket: socket.clone(),
        reason,
    };
    let docker = Docker::connect_with_unix(&socket, 120, bollard::API_DEFAULT_VERSION)
        .map_err(|e| no_engine(e.to_string()))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| no_engine(e.to_string()))?;
    Ok(docker)
}

/// The shared libraries `binary` loads, as `ldd` lists them (none for a
/// static binary).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, ContainerError> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(io(Path::new("ldd")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // "not a dynamic executable": nothing to add.
        return Ok(Vec::new());
    }
    Ok(text
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect())
}

/// `binary` without its symbols (binutils' `strip` on a copy: a release
/// build loses about a fifth), or as it is where `strip` is missing.
pub fn stripped(binary: &Path) -> Result<Vec<u8>, ContainerError> {
    let copy = std::env::temp_dir().join(format!("weft-image-{}", std::process::id()));
    std::fs::copy(binary, &copy).map_err(io(binary))?;
    let strip = Command::new("strip").arg(&copy).status();
    let bytes = match strip {
        Ok(status) if status.success() => std::fs::read(&copy).map_err(io(&copy)),
        _ => std::fs::read(binary).map_err(io(binary)),
    };
    let _ = std::fs::remove_file(&copy);
    bytes
}

/// A build context being written: a tar archive in memory.
pub(crate) struct Archive(tar::Builder<Vec<u8>>);

impl Archive {
    pub(crate) fn new() -> Self {
        Archive(tar::Builder::new(Vec::new()))
    }

    pub(crate) fn file(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
    ) -> Result<(), ContainerError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        self.0
            .append_data(&mut header, path, data)
            .map_err(io(Path::new(path)))
    }

    pub(crate) fn dir(&mut self, path: &str, mode: u32) -> Result<(), ContainerError> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(mode);
        header.set_cksum();
        self.0
            .append_data(&mut header, path, std::io::empty())
            .map_err(io(Path::new(path)))
    }

    /// The file at `from` on this machine, as `path`.
    pub(crate) fn copy(
        &mut self,
        path: &str,
        from: &Path,
        mode: u32,
    ) -> Result<(), ContainerError> {
        let bytes = std::fs::read(from).map_err(io(from))?;
        self.file(path, &bytes, mode)
    }

    /// The shared libraries `binary` loads, at their paths under `rootfs/`.
    pub(crate) fn libraries_of(&mut self, binary: &Path) -> Result<(), ContainerError> {
        for library in shared_libraries(binary)? {
            let resolved = std::fs::canonicalize(&library).map_err(io(&library))?;
            self.copy(&format!("rootfs{}", library.display()), &resolved, 0o755)?;
        }
        Ok(())
    }

    /// What every image of weft's holds under `rootfs/`: CA certificates,
    /// root and the `weft` user (home `home`), and `/tmp` and `home` that
    /// anyone may create in (like /tmp: a volume mounted there, which
    /// starts as a copy of it, takes any user).
    pub(crate) fn base(&mut self, home: &str) -> Result<(), ContainerError> {
        let certificates = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if certificates.is_file() {
            self.copy(
                "rootfs/etc/ssl/certs/ca-certificates.crt",
                certificates,
                0o644,
            )?;
        }
        self.file(
            "rootfs/etc/passwd",
            format!("root:x:0:0:root:/:/nonexistent\nweft:x:{WEFT_UID}:{WEFT_UID}:weft:{home}:/nonexistent\n")
                .as_bytes(),
            0o644,
        )?;
        self.file(
            "rootfs/etc/group",
            format!("root:x:0:\nweft:x:{WEFT_UID}:\n").as_bytes(),
            0o644,
        )?;
        self.dir("rootfs/tmp/", 0o1777)?;
        self.dir(&format!("rootfs{home}/"), 0o1777)
    }

    pub(crate) fn finish(self) -> Result<Vec<u8>, ContainerError> {
        self.0.into_inner().map_err(io(Path::new("build context")))
    }
}

/// What goes in the image: the build context as a tar archive.
pub fn build_context(binary: &Path, version: &str) -> Result<Vec<u8>, ContainerError> {
    let mut archive = Archive::new();
    let dockerfile = format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         LABEL org.opencontainers.image.title=weft org.opencontainers.image.version={version}\n\
         USER {WEFT_UID}:{WEFT_UID}\n\
         WORKDIR /var/weft\n\
         ENV HOME=/var/weft\n\
         ENTRYPOINT [\"/usr/local/bin/weft\"]\n"
    );
    archive.file("Dockerfile", dockerfile.as_bytes(), 0o644)?;
    archive.file("rootfs/usr/local/bin/weft", &stripped(binary)?, 0o755)?;
    archive.libraries_of(binary)?;
    archive.base("/var/weft")?;
    archive.finish()
}

/// Whether the engine has the image `tag`.
pub async fn has_image(tag: &str) -> Result<bool, ContainerError> {
    Ok(connect().await?.inspect_image(tag).await.is_ok())
}

/// A container's exit code once it has exited (None while it runs), with
/// the last lines of its log.
pub async fn exit_state(id: &str) -> Result<(Option<i64>, String), ContainerError> {
    let docker = connect().await?;
    let inspected = docker.inspect_container(id, None).await?;
    let state = inspected.state.unwrap_or_default();
    let log = chaincode::logs(&docker, id).await;
    let exited = matches!(
        state.status,
        Some(bollard::models::ContainerStateStatusEnum::EXITED)
    );
    Ok((exited.then(|| state.exit_code.unwrap_or_default()), log))
}

/// The image built: its id and size.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub tag: String,
    pub id: String,
    pub size_bytes: u64,
}

/// Builds weft's image from `binary` as `tag` into the engine, reporting
/// the engine's build output line by line.
pub async fn build_image(
    binary: &Path,
    tag: &str,
    version: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<BuiltImage, ContainerError> {
    let context = build_context(binary, version)?;
    progress(&format!(
        "build context: {} MB (the binary and its libraries)",
        context.len() / 1_000_000
    ));
    let labels: HashMap<String, String> =
        [("org.opencontainers.image.title".into(), "weft".into())].into();
    engine_build(context, "Dockerfile", tag, &labels, None, progress).await
}

/// Builds the tar `context` (with `dockerfile` in it) as `tag`, labelled;
/// `network` is the network mode of its `RUN` steps (`host` where they
/// fetch packages: engines without a default bridge have no other).
pub(crate) async fn engine_build(
    context: Vec<u8>,
    dockerfile: &str,
    tag: &str,
    labels: &HashMap<String, String>,
    network: Option<&str>,
    progress: &mut dyn FnMut(&str),
) -> Result<BuiltImage, ContainerError> {
    let docker = connect().await?;
    let mut options = bollard::query_parameters::BuildImageOptionsBuilder::new()
        .dockerfile(dockerfile)
        .t(tag)
        .rm(true)
        .forcerm(true)
        .labels(labels);
    if let Some(network) = network {
        options = options.networkmode(network);
    }
    let mut output = docker.build_image(
        options.build(),
        None,
        Some(bollard::body_full(context.into())),
    );
    while let Some(info) = output.next().await {
        let info = info?;
        if let Some(error) = info.error_detail.and_then(|e| e.message) {
            return Err(ContainerError::Build(error));
        }
        if let Some(line) = info.stream {
            let line = line.trim_end();
            if !line.is_empty() {
                progress(line);
            }
        }
    }
    let inspected = docker.inspect_image(tag).await?;
    Ok(BuiltImage {
        tag: tag.to_owned(),
        id: inspected.id.unwrap_or_default(),
        size_bytes: inspected.size.unwrap_or_default().max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_holds_the_binary_its_libraries_and_a_non_root_user() {
        let binary = std::env::current_exe().expect("this test binary");
        let context = build_context(&binary, "9.9.9").expect("context");
        let mut archive = tar::Archive::new(context.as_slice());
        let mut names = Vec::new();
        let mut dockerfile = String::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").display().to_string();
            if name == "Dockerfile" {
                use std::io::Read;
                entry.read_to_string(&mut dockerfile).expect("read");
            }
            names.push(name);
        }
        for expected in [
            "Dockerfile",
            "rootfs/usr/local/bin/weft",
            "rootfs/etc/passwd",
            "rootfs/var/weft/",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
        }
        // A dynamically linked test binary brings its C library along.
        assert!(names.iter().any(|n| n.contains("libc.so")), "{names:?}");
        assert!(dockerfile.starts_with("FROM scratch\n"), "{dockerfile}");
        // The binary went in without its symbols.
        let binary_size = std::fs::metadata(&binary).expect("size").len();
        assert!(
            stripped(&binary).expect("stripped").len() < binary_size as usize,
            "strip made nothing smaller"
        );
        assert!(dockerfile.contains("USER 10001:10001"), "{dockerfile}");
        assert!(dockerfile.contains("version=9.9.9"), "{dockerfile}");
    }

    #[test]
    fn only_unix_sockets_are_engines() {
        assert_eq!(
            socket_from(Some("unix:///tmp/d.sock")).expect("unix"),
            "/tmp/d.sock"
        );
        assert_eq!(socket_from(None).expect("default"), "/var/run/docker.sock");
        assert_eq!(
            socket_from(Some("")).expect("default"),
            "/var/run/docker.sock"
        );
        let refused = socket_from(Some("tcp://10.0.0.1:2375")).expect_err("tcp");
        assert!(refused.to_string().contains("only unix://"), "{refused}");
    }
}
