//! Chaincode images built from source (`launcher: {docker: {build: DIR}}`)
//! with a generated multi-stage Dockerfile, no registry needed.
//!
//! Node chaincode (a `package.json`): the build stage starts from
//! `weft-node-base:<node version>`, an image weft builds once from this
//! machine's own Node.js (the `node` binary, the libraries it loads and
//! npm), runs `npm ci` (or `npm install` without a lock file) with
//! `--omit=dev --ignore-scripts`, and copies the source; the runtime stage
//! starts `FROM scratch` with only `node`, its libraries, CA certificates,
//! a non-root user and `/chaincode`, started as `fabric-chaincode-node
//! server`. The image is labelled with a hash of the source; an image
//! with the same hash is not rebuilt. Rust and Python chaincode: not yet.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Archive, ContainerError, WEFT_UID, connect, engine_build, io};

const LABEL_SOURCE: &str = "weft.source";

/// The command a built Node image runs (the launcher fills the
/// placeholders in).
pub const NODE_SERVER_COMMAND: [&str; 3] = [
    "server",
    "--chaincode-address={chaincode_address}",
    "--chaincode-id={chaincode_id}",
];

/// The language of the chaincode in `dir`, by its build file.
fn language(dir: &Path) -> Result<&'static str, ContainerError> {
    if dir.join("package.json").is_file() {
        return Ok("node");
    }
    let other = [
        ("Cargo.toml", "Rust"),
        ("go.mod", "Go"),
        ("requirements.txt", "Python"),
        ("setup.py", "Python"),
    ]
    .into_iter()
    .find(|(file, _)| dir.join(file).is_file());
    Err(ContainerError::Refused(match other {
        Some((file, language)) => format!(
            "{}: {language} chaincode ({file}) cannot be built into an image yet; build it yourself and give `image:`, or use Node (package.json)",
            dir.display()
        ),
        None => format!(
            "{}: no package.json: expected a Node chaincode's source directory",
            dir.display()
        ),
    }))
}

/// The chaincode's files (not `node_modules`, `.git`), relative path → path.
fn source_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>, ContainerError> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(io(&current))? {
            let entry = entry.map_err(io(&current))?;
            let path = entry.path();
            let name = entry.file_name();
            if name == "node_modules" || name == ".git" {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                let relative = path
                    .strip_prefix(dir)
                    .map_err(|_| {
                        ContainerError::Refused(format!("{}: outside the source", path.display()))
                    })?
                    .display()
                    .to_string();
                files.insert(relative, path);
            }
        }
    }
    Ok(files)
}

/// A hash of the source: FNV-1a over each file's path and contents.
fn source_hash(files: &BTreeMap<String, PathBuf>) -> Result<String, ContainerError> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (relative, path) in files {
        let bytes = std::fs::read(path).map_err(io(path))?;
        for byte in relative
            .as_bytes()
            .iter()
            .chain([0u8].iter())
            .chain(bytes.iter())
            .chain([0u8].iter())
        {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{hash:016x}"))
}

/// This machine's Node.js: the `node` binary, npm's directory, the version.
fn host_node() -> Result<(PathBuf, PathBuf, String), ContainerError> {
    let missing = |what: &str| {
        ContainerError::Refused(format!(
            "building a Node chaincode image needs Node.js and npm on this machine ({what})"
        ))
    };
    let which = |program: &str| -> Result<PathBuf, ContainerError> {
        let output = Command::new("which")
            .arg(program)
            .output()
            .map_err(|_| missing(program))?;
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if path.is_empty() {
            return Err(missing(program));
        }
        std::fs::canonicalize(&path).map_err(io(Path::new(&path)))
    };
    let node = which("node")?;
    // npm's script is <npm>/bin/npm-cli.js.
    let npm = which("npm")?
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| missing("npm's directory"))?;
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .map_err(io(&node))?;
    let version = String::from_utf8_lossy(&version.stdout)
        .trim()
        .trim_start_matches('v')
        .to_owned();
    Ok((node, npm, version))
}

/// `weft-node-base:<version>`, built from this machine's Node.js when the
/// engine lacks it.
async fn node_base(progress: &mut dyn FnMut(&str)) -> Result<String, ContainerError> {
    let (node, npm, version) = host_node()?;
    let tag = format!("weft-node-base:{version}");
    let docker = connect().await?;
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    progress(&format!(
        "building {tag} from {} and {}",
        node.display(),
        npm.display()
    ));
    let mut archive = Archive::new();
    archive.file(
        "Dockerfile",
        // Node trusts the machine's CA bundle too (copied in by `base`),
        // so npm works behind a registry mirror or proxy with its own CA.
        b"FROM scratch\nCOPY rootfs/ /\nENV HOME=/tmp PATH=/usr/bin NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt\n",
        0o644,
    )?;
    archive.copy("rootfs/usr/bin/node", &node, 0o755)?;
    archive.libraries_of(&node)?;
    archive.base("/chaincode")?;
    for (relative, path) in all_files(&npm)? {
        archive.copy(
            &format!("rootfs/usr/lib/node_modules/npm/{relative}"),
            &path,
            0o644,
        )?;
    }
    let labels = HashMap::new();
    engine_build(
        archive.finish()?,
        "Dockerfile",
        &tag,
        &labels,
        None,
        progress,
    )
    .await?;
    Ok(tag)
}

fn all_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>, ContainerError> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(io(&current))? {
            let path = entry.map_err(io(&current))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                files.insert(relative.display().to_string(), path.clone());
            }
        }
    }
    Ok(files)
}

/// The generated Dockerfile of a Node chaincode.
fn node_dockerfile(base: &str, locked: bool) -> String {
    let install = if locked { "ci" } else { "install" };
    format!(
        "# Generated by weft: a Node chaincode as a service.\n\
         FROM {base} AS build\n\
         WORKDIR /chaincode\n\
         COPY package*.json ./\n\
         RUN [\"/usr/bin/node\", \"/usr/lib/node_modules/npm/bin/npm-cli.js\", \"{install}\", \"--omit=dev\", \"--ignore-scripts\", \"--no-audit\", \"--no-fund\"]\n\
         COPY . .\n\
         \n\
         FROM scratch\n\
         COPY --from=build /usr/bin/node /usr/bin/node\n\
         COPY --from=build /lib /lib\n\
         COPY --from=build /lib64 /lib64\n\
         COPY --from=build /etc /etc\n\
         COPY --from=build /tmp /tmp\n\
         COPY --from=build /chaincode /chaincode\n\
         USER {WEFT_UID}:{WEFT_UID}\n\
         WORKDIR /chaincode\n\
         ENV HOME=/tmp\n\
         ENTRYPOINT [\"/usr/bin/node\", \"/chaincode/node_modules/fabric-shim/cli.js\"]\n"
    )
}

/// Builds the chaincode in `dir` as `tag` unless the engine has it built
/// from the same source; says which.
pub async fn build_chaincode_image(
    dir: &Path,
    tag: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ContainerError> {
    language(dir)?;
    let files = source_files(dir)?;
    let hash = source_hash(&files)?;
    let docker = connect().await?;
    if let Ok(image) = docker.inspect_image(tag).await
        && image
            .config
            .and_then(|c| c.labels)
            .is_some_and(|labels| labels.get(LABEL_SOURCE) == Some(&hash))
    {
        progress(&format!("image {tag}: up to date with {}", dir.display()));
        return Ok(());
    }
    let base = node_base(progress).await?;
    let mut archive = Archive::new();
    let dockerfile = ".weft.Dockerfile";
    archive.file(
        dockerfile,
        node_dockerfile(&base, files.contains_key("package-lock.json")).as_bytes(),
        0o644,
    )?;
    for (relative, path) in &files {
        archive.copy(relative, path, 0o644)?;
    }
    let labels: HashMap<String, String> = [(LABEL_SOURCE.to_owned(), hash)].into();
    progress(&format!("building {tag} from {}", dir.display()));
    // npm fetches packages: its RUN step uses the host's network.
    let built = engine_build(
        archive.finish()?,
        dockerfile,
        tag,
        &labels,
        Some("host"),
        progress,
    )
    .await?;
    progress(&format!(
        "built {tag} ({:.1} MB)",
        built.size_bytes as f64 / 1e6
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_node_sources_are_built_and_others_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let said = language(dir.path()).expect_err("empty").to_string();
        assert!(said.contains("no package.json"), "{said}");
        std::fs::write(dir.path().join("Cargo.toml"), "").expect("write");
        let said = language(dir.path()).expect_err("rust").to_string();
        assert!(
            said.contains("Rust chaincode (Cargo.toml) cannot be built"),
            "{said}"
        );
        std::fs::write(dir.path().join("package.json"), "{}").expect("write");
        assert_eq!(language(dir.path()).expect("node"), "node");
    }

    #[test]
    fn the_source_hash_follows_the_files_but_not_node_modules() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("index.js"), "a").expect("write");
        std::fs::create_dir(dir.path().join("node_modules")).expect("mkdir");
        std::fs::write(dir.path().join("node_modules/x.js"), "x").expect("write");
        let first = source_hash(&source_files(dir.path()).expect("files")).expect("hash");
        std::fs::write(dir.path().join("node_modules/x.js"), "y").expect("write");
        assert_eq!(
            first,
            source_hash(&source_files(dir.path()).expect("files")).expect("hash")
        );
        std::fs::write(dir.path().join("index.js"), "b").expect("write");
        assert_ne!(
            first,
            source_hash(&source_files(dir.path()).expect("files")).expect("hash")
        );
    }

    #[test]
    fn the_dockerfile_has_a_build_stage_and_a_scratch_runtime() {
        let text = node_dockerfile("weft-node-base:20.1.0", true);
        assert!(
            text.contains("FROM weft-node-base:20.1.0 AS build"),
            "{text}"
        );
        assert!(text.contains("\"ci\", \"--omit=dev\""), "{text}");
        assert!(text.contains("FROM scratch\n"), "{text}");
        assert!(text.contains("USER 10001:10001"), "{text}");
        assert!(node_dockerfile("b", false).contains("\"install\""));
    }
}
