//! The Docker chaincode launcher: a chaincode image run as a service
//! (Fabric's chaincode-as-a-service) on the local engine for one network.
//!
//! One container per chaincode and network, named
//! `weft-cc-<chaincode>-<hash of the network directory>` and labelled with
//! the network directory, the chaincode, its package id, image and address,
//! so `weft up` finds it again (and keeps it when nothing changed) and
//! `weft down` removes exactly its network's. It shares the host's network
//! and listens on a `127.0.0.1` port chosen when it is created (Fabric's
//! `CHAINCODE_SERVER_ADDRESS`, with `CHAINCODE_ID`): the peers of `weft up`
//! dial it there, and no bridge or published port is needed. The engine
//! restarts it if it dies (`restart: unless-stopped`).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;

use crate::{ContainerError, connect};

const LABEL_NETWORK: &str = "weft.network";
const LABEL_CHAINCODE: &str = "weft.chaincode";
const LABEL_PACKAGE_ID: &str = "weft.package-id";
const LABEL_IMAGE: &str = "weft.image";
const LABEL_IMAGE_ID: &str = "weft.image-id";
const LABEL_COMMAND: &str = "weft.command";
const LABEL_ADDRESS: &str = "weft.address";

/// A chaincode to run as a service for the network in `network`.
#[derive(Debug, Clone)]
pub struct ChaincodeService<'a> {
    /// The network directory (absolute).
    pub network: &'a Path,
    pub chaincode: &'a str,
    /// The package id the peers expect (`CHAINCODE_ID`).
    pub package_id: &'a str,
    pub image: &'a str,
    /// Arguments for the image's entrypoint; empty: the image's own.
    pub command: &'a [String],
}

impl ChaincodeService<'_> {
    /// The container's name.
    pub fn container_name(&self) -> String {
        format!(
            "weft-cc-{}-{:08x}",
            self.chaincode
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>(),
            fnv(self.network.display().to_string().as_bytes()) as u32
        )
    }

    /// What the container is: compared to decide whether to keep it.
    fn labels(&self, address: &str, image_id: &str) -> HashMap<String, String> {
        [
            (LABEL_NETWORK, self.network.display().to_string()),
            (LABEL_CHAINCODE, self.chaincode.to_owned()),
            (LABEL_PACKAGE_ID, self.package_id.to_owned()),
            (LABEL_IMAGE, self.image.to_owned()),
            (LABEL_IMAGE_ID, image_id.to_owned()),
            (LABEL_COMMAND, self.command.join("\u{1f}")),
            (LABEL_ADDRESS, address.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// FNV-1a: a stable short name for a path.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs the chaincode's container unless it already runs as asked (then it
/// is kept, with its address); returns the address the peers dial.
pub async fn run_chaincode(
    service: &ChaincodeService<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<String, ContainerError> {
    let docker = connect().await?;
    let name = service.container_name();
    let Ok(image) = docker.inspect_image(service.image).await else {
        return Err(ContainerError::Refused(format!(
            "chaincode {}: image {} is not in the Docker engine; build it first (docker build -t {} …)",
            service.chaincode, service.image, service.image
        )));
    };
    let image_id = image.id.unwrap_or_default();
    if let Ok(existing) = docker.inspect_container(&name, None).await {
        let labels = existing
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let address = labels.get(LABEL_ADDRESS).cloned().unwrap_or_default();
        let same = service
            .labels(&address, &image_id)
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        let running = existing
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        if same && running {
            progress(&format!(
                "chaincode {}: container {name} running at {address}",
                service.chaincode
            ));
            return Ok(address);
        }
        // Changed (another image, command or package), or stopped: a new one.
        docker
            .remove_container(
                &name,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| ContainerError::Refused(format!("choosing a port: {e}")))?
        .port();
    let address = format!("127.0.0.1:{port}");
    let body = ContainerCreateBody {
        image: Some(service.image.to_owned()),
        cmd: (!service.command.is_empty()).then(|| {
            service
                .command
                .iter()
                .map(|arg| {
                    arg.replace("{chaincode_address}", &address)
                        .replace("{chaincode_id}", service.package_id)
                })
                .collect()
        }),
        env: Some(vec![
            format!("CHAINCODE_SERVER_ADDRESS={address}"),
            format!("CHAINCODE_ID={}", service.package_id),
            format!("CORE_CHAINCODE_ID_NAME={}", service.package_id),
        ]),
        labels: Some(service.labels(&address, &image_id)),
        host_config: Some(HostConfig {
            network_mode: Some("host".into()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await?;
    docker.start_container(&name, None).await?;
    progress(&format!(
        "chaincode {}: container {name} ({}) started at {address}",
        service.chaincode, service.image
    ));
    // Ready when it listens; a container that exits says why in its log.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(&address).await.is_ok() {
            return Ok(address);
        }
        let state = docker.inspect_container(&name, None).await?;
        let running = state
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        if !running || Instant::now() > deadline {
            let log = logs(&docker, &name).await;
            return Err(ContainerError::Refused(format!(
                "chaincode {}: container {name} ({}) {} {address}; its log:\n{log}",
                service.chaincode,
                service.image,
                if running {
                    "does not listen on"
                } else {
                    "exited instead of listening on"
                },
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn logs(docker: &bollard::Docker, name: &str) -> String {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail("20")
        .build();
    let mut stream = docker.logs(name, Some(options));
    let mut text = String::new();
    while let Some(Ok(line)) = stream.next().await {
        text.push_str(&line.to_string());
    }
    text
}

/// Removes every chaincode container of the network in `network`; how many.
pub async fn remove_chaincodes(network: &Path) -> Result<usize, ContainerError> {
    let docker = connect().await?;
    let filters: HashMap<&str, Vec<String>> = [(
        "label",
        vec![format!("{LABEL_NETWORK}={}", network.display())],
    )]
    .into();
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker.list_containers(Some(options)).await?;
    for container in &containers {
        if let Some(id) = &container.id {
            docker
                .remove_container(
                    id,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await?;
        }
    }
    Ok(containers.len())
}
