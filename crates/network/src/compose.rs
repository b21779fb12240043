//! `weft deploy compose`: the network of a spec as a docker-compose
//! project for one host.
//!
//! ```text
//! <output>/docker-compose.yaml   one service per node, an `init` service, a named volume per node
//! <output>/.env                  COMPOSE_PROJECT_NAME (the spec's name and a tag of the
//!                                 network's identities, so two directories holding the same spec
//!                                 never share ledger volumes)
//! <output>/network/              the network directory, prepared for containers: material,
//!                                genesis blocks, node configs (mounted read-only at /network)
//! ```
//!
//! Inside the project's network each node is dialled at its own name (the
//! service name, which its TLS certificate carries) and listens on every
//! interface; its ports are published on the host's 127.0.0.1 at the
//! spec's numbers, so `weft status --dir <output>/network` and the
//! connection profiles work from the host unchanged. The spec's directory
//! is mounted read-only at /spec where the spec names files (indexes,
//! collections, TLS roots). Ledgers live in named volumes at /var/weft,
//! which `docker-compose down` keeps. The one-shot `init` service runs
//! `weft deploy init`, which waits for every node, then makes the channel
//! joins and chaincode definitions of `weft up`, idempotently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_spec::{LauncherSpec, NetworkSpec, SpecError};

use crate::dir::{NetworkDir, absolute, write_atomic};
use crate::nodes::{Node, Reach};
use crate::{NetworkError, prepare};

/// Where a container finds the network directory.
pub const NETWORK_MOUNT: &str = "/network";
/// Where a container finds the spec's directory.
pub const SPEC_MOUNT: &str = "/spec";
/// Where a node keeps its ledgers (its named volume).
pub const DATA_MOUNT: &str = "/var/weft";
/// The uid and gid of the image's `weft` user.
pub const IMAGE_UID: u32 = 10001;

/// What `weft deploy compose` is asked for.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    /// The project directory to write.
    pub output: PathBuf,
    /// weft's image (`weft image build` makes it).
    pub image: String,
    /// A project per host of the spec (`hosts:`), in `<output>/<host>/`.
    pub per_host: bool,
    /// The image and command of each `docker` chaincode (built already
    /// where the spec gives a source), by chaincode name.
    pub chaincodes: BTreeMap<String, ChaincodeImage>,
}

/// A chaincode image and the command it runs as a service.
#[derive(Debug, Clone)]
pub struct ChaincodeImage {
    pub image: String,
    /// `{chaincode_address}` and `{chaincode_id}` are filled in.
    pub command: Vec<String>,
}

/// Where a chaincode service listens inside its container.
const CHAINCODE_PORT: u16 = 9999;

/// The compose service (and DNS name) of chaincode `name`.
fn chaincode_service(name: &str) -> String {
    format!(
        "chaincode-{}",
        name.to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
    )
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ComposeProject {
    pub file: PathBuf,
    pub network_dir: NetworkDir,
    /// `uid:gid` the containers run as.
    pub user: String,
    pub services: Vec<String>,
}

/// Refuses what cannot run in a compose project: what weft's image cannot
/// run ([`check_image`]) and chaincodes for a Kubernetes cluster.
pub fn check(spec: &NetworkSpec, file: &str) -> Result<(), SpecError> {
    for (i, chaincode) in spec.chaincodes.iter().enumerate() {
        if let LauncherSpec::Kubernetes { .. } = &chaincode.launcher {
            return Err(SpecError {
                file: file.to_owned(),
                location: format!("chaincodes[{i}].launcher.kubernetes"),
                message: format!(
                    "chaincode {}: the kubernetes launcher runs in a cluster (`weft deploy k8s` or `weft deploy helm`); in compose projects use `docker` or `external`",
                    chaincode.name
                ),
            });
        }
    }
    check_image(spec, file)
}

/// Refuses what cannot run in weft's image: a process launcher's command
/// runs on the peer's machine, and the image holds weft alone.
pub fn check_image(spec: &NetworkSpec, file: &str) -> Result<(), SpecError> {
    for (i, chaincode) in spec.chaincodes.iter().enumerate() {
        if let LauncherSpec::Process { command, .. } = &chaincode.launcher {
            return Err(SpecError {
                file: file.to_owned(),
                location: format!("chaincodes[{i}].launcher.process"),
                message: format!(
                    "chaincode {}: a process launcher runs {:?} beside the peer, and weft's image holds weft alone; in containers use `builtin`, or run the chaincode as a service (`external: {{address: …}}`)",
                    chaincode.name,
                    command.first().map_or("", String::as_str)
                ),
            });
        }
    }
    Ok(())
}

/// Writes the project: the network directory (material, genesis blocks and
/// configs kept where they exist, so re-running keeps identities) and the
/// compose file.
/// `origin` names the spec in errors; `base` is the directory its relative
/// paths are relative to; built-in launchers must name one of `builtins`.
/// One project, or with `per_host` one per host of the spec.
pub fn write(
    spec_text: &str,
    origin: &str,
    base: &Path,
    builtins: &[String],
    options: &ComposeOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ComposeProject>, NetworkError> {
    let spec = NetworkSpec::from_yaml(spec_text, origin)?;
    crate::up::check_builtins(&spec, builtins, origin)?;
    check(&spec, origin)?;
    if spec.certificate_authorities {
        return Err(NetworkError::Refused(format!(
            "{origin}: `certificateAuthorities: true` is not yet deployed as containers; \
             run the network with `weft up`, or remove it to use cryptogen-style material"
        )));
    }
    if spec.rest.as_ref().is_some_and(|rest| rest.enabled) {
        return Err(NetworkError::Refused(format!(
            "{origin}: the REST gateway (`rest:`) is not yet part of compose projects; remove \
             `rest:` and run `weft rest start` beside the project"
        )));
    }
    if spec.rest_port().is_some() {
        progress(
            "the REST gateway `weft up` runs is not part of compose projects yet: run `weft rest start` beside it",
        );
    }
    match (options.per_host, spec.hosts.is_empty()) {
        (true, true) => {
            return Err(NetworkError::Refused(format!(
                "{origin}: --per-host needs `hosts:` in the spec (names and addresses) and a host for each node (`hosts: [...]` under each organisation and the orderers)"
            )));
        }
        (false, false) => {
            return Err(NetworkError::Refused(format!(
                "{origin}: the spec places nodes on hosts ({}); write a project per host with --per-host",
                spec.hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        _ => {}
    }
    let mut services = BTreeMap::new();
    for (i, chaincode) in spec.chaincodes.iter().enumerate() {
        if !matches!(chaincode.launcher, LauncherSpec::Docker { .. }) {
            continue;
        }
        if options.per_host {
            return Err(NetworkError::Spec(SpecError {
                file: origin.to_owned(),
                location: format!("chaincodes[{i}].launcher.docker"),
                message: format!(
                    "chaincode {}: the docker launcher is not available with --per-host yet; run it as a service on a host and declare it `external: {{address: …}}`",
                    chaincode.name
                ),
            }));
        }
        if !options.chaincodes.contains_key(&chaincode.name) {
            return Err(NetworkError::Refused(format!(
                "chaincode {}: no image for its docker launcher",
                chaincode.name
            )));
        }
        services.insert(
            chaincode.name.clone(),
            format!("{}:{CHAINCODE_PORT}", chaincode_service(&chaincode.name)),
        );
    }
    let base = absolute(base);
    let output = absolute(&options.output);
    let dir = NetworkDir::new(output.join("network")).reached_from(Reach::Containers);
    if dir.exists() {
        let (existing, _) = dir.load_spec()?;
        if existing.organizations != spec.organizations
            || existing.orderers != spec.orderers
            || existing.hosts != spec.hosts
        {
            return Err(NetworkError::Refused(format!(
                "{} holds a project of another network (its organisations, orderers or hosts differ); choose another --output, or delete it first",
                output.display()
            )));
        }
    }
    // Inside the containers the spec's paths are under /spec.
    dir.store_spec(spec_text, Path::new(SPEC_MOUNT))?;
    prepare::prepare(&dir, &spec, Path::new(SPEC_MOUNT), &services, progress)?;
    let all = dir.nodes(&spec);
    let project = Project {
        spec: &spec,
        chaincodes: &options.chaincodes,
        image: &options.image,
        spec_dir: references_files(&spec).then_some(base.as_path()),
    };
    let tag = identity_tag(&dir, &spec)?;
    if !options.per_host {
        let name = project_name(&format!("{}-{tag}", spec.name));
        let written = project.write(&output, &name, &all, true, progress)?;
        return Ok(vec![written]);
    }
    // The init service needs every organisation's admin: it goes with the
    // first orderer.
    let init_host = spec.orderer_host(0).map(|h| h.name.clone());
    let mut projects = Vec::new();
    for host in &spec.hosts {
        let nodes: Vec<Node> = all
            .iter()
            .filter(|n| n.host == host.address)
            .cloned()
            .collect();
        if nodes.is_empty() {
            progress(&format!("host {}: no nodes, no project", host.name));
            continue;
        }
        let root = output.join(&host.name);
        copy_tree(dir.root(), &root.join("network"))?;
        let name = project_name(&format!("{}-{tag}-{}", spec.name, host.name));
        let init = init_host.as_deref() == Some(host.name.as_str());
        projects.push(project.write(&root, &name, &nodes, init, progress)?);
    }
    Ok(projects)
}

/// What every project of a spec shares.
struct Project<'a> {
    spec: &'a NetworkSpec,
    chaincodes: &'a BTreeMap<String, ChaincodeImage>,
    image: &'a str,
    spec_dir: Option<&'a Path>,
}

impl Project<'_> {
    /// `root/docker-compose.yaml` and `root/.env` for `nodes`, whose network
    /// directory is `root/network`.
    fn write(
        &self,
        root: &Path,
        name: &str,
        nodes: &[Node],
        init: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ComposeProject, NetworkError> {
        let network = root.join("network");
        let user = container_user(&network)?;
        let mut text = compose_file(self.spec, nodes, self.image, self.spec_dir, &user, init);
        // Chaincode services go with the init service (one project).
        if init {
            text = text.replacen(
                "\nvolumes:\n",
                &format!("\n{}", chaincode_services(self.chaincodes)),
                1,
            );
        }
        let file = root.join("docker-compose.yaml");
        write_atomic(&file, text.as_bytes())?;
        write_atomic(
            &root.join(".env"),
            format!("COMPOSE_PROJECT_NAME={name}\n").as_bytes(),
        )?;
        progress(&format!(
            "{}: {} node service(s){}, running as {user}",
            file.display(),
            nodes.len(),
            if init { " and init" } else { "" }
        ));
        let mut services: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        if init {
            services.push("init".into());
            services.extend(self.chaincodes.keys().map(|name| chaincode_service(name)));
        }
        Ok(ComposeProject {
            file,
            network_dir: NetworkDir::new(network),
            user,
            services,
        })
    }
}

/// Copies the directory `from` over `to` (a host's own copy of the network
/// directory, to be carried to that host).
fn copy_tree(from: &Path, to: &Path) -> Result<(), NetworkError> {
    std::fs::create_dir_all(to).map_err(|e| NetworkError::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| NetworkError::io(from, e))? {
        let entry = entry.map_err(|e| NetworkError::io(from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if source.is_dir() {
            copy_tree(&source, &target)?;
        } else {
            std::fs::copy(&source, &target).map_err(|e| NetworkError::io(&target, e))?;
        }
    }
    Ok(())
}

/// Whether the spec names files (indexes, collections, TLS roots) that the
/// containers must read.
fn references_files(spec: &NetworkSpec) -> bool {
    spec.chaincodes.iter().any(|chaincode| {
        !chaincode.indexes.is_empty()
            || chaincode.collections_config.is_some()
            || matches!(
                chaincode.launcher,
                LauncherSpec::External {
                    tls_root_ca: Some(_),
                    ..
                }
            )
    })
}

/// Who the containers run as, so they can read the keys of the
/// read-only network directory: root's projects are handed to the image's
/// own `weft` user (the directory is chowned to it, nothing runs as root);
/// anyone else's run as that user.
fn container_user(network: &Path) -> Result<String, NetworkError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(network).map_err(|e| NetworkError::io(network, e))?;
    if meta.uid() != 0 {
        return Ok(format!("{}:{}", meta.uid(), meta.gid()));
    }
    chown_tree(network, IMAGE_UID)?;
    Ok(format!("{IMAGE_UID}:{IMAGE_UID}"))
}

fn chown_tree(path: &Path, id: u32) -> Result<(), NetworkError> {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).map_err(|e| NetworkError::io(path, e))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).map_err(|e| NetworkError::io(path, e))? {
            let entry = entry.map_err(|e| NetworkError::io(path, e))?;
            chown_tree(&entry.path(), id)?;
        }
    }
    Ok(())
}

/// Eight hex digits of the SHA-256 of the orderer organisation's CA
/// certificate: the same while a network directory keeps its identities,
/// different for a network generated elsewhere from the same spec (whose
/// ledgers must never be mixed with this one's in the engine's volumes).
fn identity_tag(dir: &NetworkDir, spec: &NetworkSpec) -> Result<String, NetworkError> {
    let domain = &spec.orderers.organization.domain;
    let ca = dir.organizations().join(format!(
        "ordererOrganizations/{domain}/ca/ca.{domain}-cert.pem"
    ));
    let bytes = std::fs::read(&ca).map_err(|e| NetworkError::io(&ca, e))?;
    Ok(weft_crypto::sha256(&bytes)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Compose project names are lower-case letters, digits, `-` and `_`.
pub fn project_name(name: &str) -> String {
    let name: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() { "weft".into() } else { name }
}

fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// The health check of a node: its operations service's `/healthz` where it
/// has a plain-HTTP one, else whether its gRPC port accepts connections.
fn health_target(node: &Node) -> String {
    match node.operations_port {
        Some(port) if !node.operations_tls => format!("http://127.0.0.1:{port}/healthz"),
        _ => format!("tcp://127.0.0.1:{}", node.port),
    }
}

fn compose_file(
    spec: &NetworkSpec,
    nodes: &[Node],
    image: &str,
    spec_dir: Option<&Path>,
    user: &str,
    init: bool,
) -> String {
    // Placed on a host: published on its address (every interface when
    // the address is a name); else on this host's loopback only.
    let bind = |node: &Node| {
        if spec.hosts.is_empty() {
            "127.0.0.1".to_owned()
        } else if node.host.parse::<std::net::IpAddr>().is_ok() {
            node.host.clone()
        } else {
            "0.0.0.0".to_owned()
        }
    };
    let mut mounts = format!(
        "      - {}\n",
        quote(&format!("./network:{NETWORK_MOUNT}:ro"))
    );
    if let Some(dir) = spec_dir {
        mounts.push_str(&format!(
            "      - {}\n",
            quote(&format!("{}:{SPEC_MOUNT}:ro", dir.display()))
        ));
    }
    let mut text = format!(
        "# Written by `weft deploy compose` for network {name:?}; regenerate rather than edit.\n\
         # Start: docker-compose up -d   (the init service joins channels and deploys chaincodes)\n\
         # Stop:  docker-compose down    (ledgers stay in the named volumes; `down -v` deletes them)\n\
         # From this host: weft status --dir network\n\
         version: \"3.8\"\n\
         services:\n",
        name = spec.name
    );
    for node in nodes {
        let config = format!("{NETWORK_MOUNT}/nodes/{}/config.yaml", node.name);
        let mut ports = vec![node.port];
        ports.extend(node.operations_port);
        text.push_str(&format!(
            "  {name}:\n\
             \x20   image: {image}\n\
             \x20   hostname: {name}\n\
             \x20   user: {user}\n\
             \x20   command: [{kind}, start, --config, {config}]\n\
             \x20   volumes:\n\
             {mounts}\
             \x20     - {volume}:{DATA_MOUNT}\n\
             \x20   ports:\n",
            name = node.name,
            image = quote(image),
            user = quote(user),
            kind = node.kind(),
            config = quote(&config),
            volume = node.name,
        ));
        let bind = bind(node);
        for port in ports {
            text.push_str(&format!("      - \"{bind}:{port}:{port}\"\n"));
        }
        text.push_str(&format!(
            "    healthcheck:\n\
             \x20     test: [\"CMD\", \"/usr/local/bin/weft\", \"health\", {target}]\n\
             \x20     interval: 5s\n\
             \x20     timeout: 5s\n\
             \x20     retries: 5\n\
             \x20     start_period: 10s\n\
             \x20   restart: unless-stopped\n\
             \x20   stop_grace_period: 15s\n\
             \x20   networks: [weft]\n",
            target = quote(&health_target(node)),
        ));
    }
    if init {
        text.push_str(&init_service(nodes, image, user, &mounts));
    }
    text.push_str("volumes:\n");
    for node in nodes {
        text.push_str(&format!("  {}: {{}}\n", node.name));
    }
    text.push_str("networks:\n  weft: {}\n");
    text
}

/// A service per `docker` chaincode, then the `volumes:` line they are
/// inserted before.
fn chaincode_services(chaincodes: &BTreeMap<String, ChaincodeImage>) -> String {
    let mut text = String::new();
    for (name, image) in chaincodes {
        let address = format!("0.0.0.0:{CHAINCODE_PORT}");
        let command: Vec<String> = image
            .command
            .iter()
            .map(|arg| {
                quote(
                    &arg.replace("{chaincode_address}", &address)
                        .replace("{chaincode_id}", name),
                )
            })
            .collect();
        text.push_str(&format!(
            "  {service}:\n\
             \x20   image: {image}\n",
            service = chaincode_service(name),
            image = quote(&image.image),
        ));
        if !command.is_empty() {
            text.push_str(&format!("    command: [{}]\n", command.join(", ")));
        }
        text.push_str(&format!(
            "    environment:\n\
             \x20     CHAINCODE_SERVER_ADDRESS: {address}\n\
             \x20     CHAINCODE_ID: {id}\n\
             \x20     CORE_CHAINCODE_ID_NAME: {id}\n\
             \x20   restart: unless-stopped\n\
             \x20   networks: [weft]\n",
            address = quote(&address),
            id = quote(name),
        ));
    }
    text.push_str("volumes:\n");
    text
}

/// The one-shot service that joins channels and deploys chaincodes.
fn init_service(nodes: &[Node], image: &str, user: &str, mounts: &str) -> String {
    let mut text = format!(
        "  init:\n\
         \x20   image: {image}\n\
         \x20   user: {user}\n\
         \x20   command: [deploy, init, --dir, {NETWORK_MOUNT}, --timeout, \"300\"]\n\
         \x20   volumes:\n\
         {mounts}\
         \x20   depends_on:\n",
        image = quote(image),
        user = quote(user),
    );
    // Started, not healthy: `weft deploy init` waits for the nodes itself,
    // where a dependency not yet healthy would fail the whole `up`.
    for node in nodes {
        text.push_str(&format!(
            "      {}:\n        condition: service_started\n",
            node.name
        ));
    }
    text.push_str("    restart: on-failure\n    networks: [weft]\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(chaincodes: &str) -> NetworkSpec {
        NetworkSpec::from_yaml(
            &format!(
                "{}chaincodes:\n{chaincodes}",
                weft_spec::DEFAULT_SPEC_YAML
                    .split("chaincodes:")
                    .next()
                    .unwrap_or_default()
            ),
            "spec.yaml",
        )
        .expect("spec")
    }

    #[test]
    fn a_process_launcher_is_refused_naming_the_chaincode_and_the_alternatives() {
        let refused = check(
            &spec("  - name: js\n    launcher: {process: {command: [node, index.js]}}\n"),
            "spec.yaml",
        )
        .expect_err("process");
        let said = refused.to_string();
        assert!(
            said.contains("chaincodes[0].launcher.process")
                && said.contains("chaincode js")
                && said.contains("\"node\"")
                && said.contains("external"),
            "{said}"
        );
        assert!(check(&spec("  - name: b\n    launcher: {builtin: basic}\n"), "s").is_ok());
    }

    #[test]
    fn each_node_is_a_service_on_its_own_name_with_its_ports_on_loopback() {
        let spec = spec("  - name: b\n    launcher: {builtin: basic}\n");
        let nodes = crate::nodes::nodes_at(&spec, Reach::Containers);
        let text = compose_file(&spec, &nodes, "weft:1", None, "10001:10001", true);
        let file: serde_json::Value = serde_saphyr::from_str(&text).expect("compose YAML");
        let peer = &file["services"]["peer0.org1.example.com"];
        assert_eq!(peer["hostname"], "peer0.org1.example.com");
        assert_eq!(peer["ports"][0], "127.0.0.1:7051:7051");
        assert_eq!(peer["volumes"][1], "peer0.org1.example.com:/var/weft");
        assert_eq!(
            peer["healthcheck"]["test"][3],
            "http://127.0.0.1:17051/healthz"
        );
        assert_eq!(file["services"]["init"]["command"][1], "init", "{text}");
        assert!(
            file["volumes"]["orderer3.example.com"].is_object(),
            "{text}"
        );
        assert!(!text.contains("/spec"), "no files referenced: {text}");
    }
}
