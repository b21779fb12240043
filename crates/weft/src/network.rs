//! `weft up|down|status|logs|chaincode|supervise`: argument handling and
//! printing around `weft-network` and `weft-client`.

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use weft_network::admin;
use weft_network::deploy::org_gateway;
use weft_network::nodes::nodes;
use weft_network::{NetworkDir, supervisor, up as plan};

use weft_shim_host::shutdown_signal;

use crate::{ChaincodeCall, runtime};

fn weft_exe() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_exe().context("locating the weft executable")
}

/// Step lines with the time since the start.
fn stepper() -> impl FnMut(&str) {
    let start = Instant::now();
    move |line: &str| eprintln!("[{:>5.1}s] {line}", start.elapsed().as_secs_f64())
}

pub fn up(
    dir: NetworkDir,
    spec: Option<&Path>,
    foreground: bool,
    timeout: u64,
) -> anyhow::Result<()> {
    let (spec, base) = plan::choose_spec(&dir, spec, &builtin_names())?;
    bring_up(dir, &spec, &base, foreground, timeout, true).map(|_| ())
}

fn builtin_names() -> Vec<String> {
    crate::builtin::builtins().into_keys().collect()
}

/// What `weft up` does once it has its spec, and what `weft channel create`
/// and `weft chaincode deploy` do after changing the stored one: write what
/// is missing, (re)start what is down or changed, join, deploy.
fn bring_up(
    dir: NetworkDir,
    spec: &weft_spec::NetworkSpec,
    base: &Path,
    foreground: bool,
    timeout: u64,
    print_summary: bool,
) -> anyhow::Result<Vec<weft_network::deploy::Defined>> {
    let mut step = stepper();
    step(&format!(
        "network {:?} in {}",
        spec.name,
        dir.root().display()
    ));
    let services = runtime()?.block_on(chaincode_containers(&dir, spec, base, &mut step))?;
    let changed = weft_network::prepare::prepare(&dir, spec, base, &services, &mut step)?;
    let weft = weft_exe()?;
    let stop = Arc::new(AtomicBool::new(false));
    let attached = if foreground {
        supervisor::claim(&dir)?;
        let (dir, weft, stop) = (dir.clone(), weft.clone(), Arc::clone(&stop));
        Some(std::thread::spawn(move || {
            supervisor::supervise(&dir, &weft, &stop, &mut |line| {
                eprintln!("supervisor: {line}")
            })
        }))
    } else {
        let pid = supervisor::spawn_background(&dir, &weft)?;
        step(&format!(
            "supervisor running (pid {pid}; log {})",
            dir.supervisor_log().display()
        ));
        None
    };
    // A running node whose config changed (chaincodes added or changed)
    // restarts under the supervisor to pick it up.
    for node in &changed {
        if let Some(pid) = supervisor::restart_node(&dir, node) {
            step(&format!(
                "{}: config changed, restarting (was pid {pid})",
                node.name
            ));
        }
    }
    let runtime = runtime()?;
    let converged = runtime.block_on(async {
        let timeout = Duration::from_secs(timeout);
        admin::converge(&dir, spec, timeout, &mut step).await?;
        weft_network::deploy::deploy(&dir, spec, base, timeout, &mut step).await
    });
    let converged = converged.and_then(|defined| {
        weft_network::cas::wait_ready(&dir, spec, Duration::from_secs(timeout), &mut step)
            .map(|()| defined)
    });
    let defined = match converged {
        Ok(defined) => defined,
        Err(error) => {
            if let Some(thread) = attached {
                stop.store(true, Ordering::SeqCst);
                let _ = thread.join();
            }
            // `weft up` stored its spec and finishes it when run again; a
            // change (`weft chaincode deploy`, `weft channel create`) is
            // stored only once it succeeds, so it is that command to re-run.
            let again = if print_summary {
                "run `weft up` again to finish"
            } else {
                "run the same command again once the cause is fixed (the network's spec is unchanged)"
            };
            anyhow::bail!(
                "{error}\nthe nodes keep running under the supervisor; see `weft status` and `weft logs <node>`, then {again}"
            );
        }
    };
    step("ready");
    if print_summary {
        print!("\n{}", plan::summary(&dir, spec));
    }
    let Some(thread) = attached else {
        return Ok(defined);
    };
    println!("(attached: Ctrl-C stops the network)");
    runtime.block_on(shutdown_signal());
    stop.store(true, Ordering::SeqCst);
    match thread.join() {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("the supervisor thread panicked"),
    }
    let _ = std::fs::remove_file(dir.supervisor_pid());
    Ok(defined)
}

/// `weft up --containers`: the spec's compose project in `dir` (written
/// when a spec is given or none exists yet), weft's image built when the
/// engine lacks it, `docker-compose up -d`, then a wait for `init`.
pub fn up_containers(dir: &Path, spec: Option<&Path>, timeout: u64) -> anyhow::Result<()> {
    let mut step = stepper();
    let image = format!("weft:{}", env!("CARGO_PKG_VERSION"));
    let runtime = runtime()?;
    if !runtime.block_on(weft_containers::has_image(&image))? {
        step(&format!("building {image} (weft image build)"));
        runtime.block_on(weft_containers::build_image(
            &weft_exe()?,
            &image,
            env!("CARGO_PKG_VERSION"),
            &mut |_| {},
        ))?;
    }
    let file = dir.join("docker-compose.yaml");
    if spec.is_some() || !file.is_file() {
        let options = weft_network::compose::ComposeOptions {
            output: dir.to_path_buf(),
            image,
            per_host: false,
            chaincodes: Default::default(),
        };
        write_compose(spec, options, &mut step)?;
    }
    step("docker-compose up -d");
    compose(dir, &["up", "-d"])?;
    let started = Instant::now();
    loop {
        let id = String::from_utf8_lossy(&compose(dir, &["ps", "-q", "init"])?.stdout)
            .trim()
            .to_owned();
        let (state, log) = if id.is_empty() {
            (None, String::new())
        } else {
            runtime.block_on(weft_containers::exit_state(&id))?
        };
        match state {
            Some(0) => break,
            Some(code) => anyhow::bail!(
                "the init service exited with {code}:\n{log}\nfix what it says, then run `weft up --containers --dir {}` again",
                dir.display()
            ),
            None if started.elapsed() > Duration::from_secs(timeout) => anyhow::bail!(
                "the init service has not finished after {timeout}s:\n{log}\n\
                 where it waits for a node that `docker-compose ps` shows healthy, the containers \
                 cannot reach each other on the project's network: look for a firewall dropping \
                 forwarded traffic between them (an iptables FORWARD policy of DROP with the \
                 engine's own iptables rules off); see `docker-compose logs` in {}",
                dir.display()
            ),
            None => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    step("ready");
    println!(
        "\nthe network runs in containers: {}\n  weft status --dir {0}\n  weft chaincode query --dir {0} …\n  weft down --dir {0}      (docker-compose down; --purge also deletes the ledgers' volumes)",
        dir.display()
    );
    Ok(())
}

/// `weft down` for a compose project: `docker-compose down` (`-v` and the
/// directory deleted with `purge`).
pub fn down_containers(dir: &Path, purge: bool) -> anyhow::Result<()> {
    let mut step = stepper();
    if purge {
        compose(dir, &["down", "-v"])?;
        std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))?;
        step(&format!("stopped; volumes and {} deleted", dir.display()));
    } else {
        compose(dir, &["down"])?;
        step("stopped; the ledgers stay in the project's volumes");
    }
    Ok(())
}

/// Runs `docker-compose ARGS` in `dir`; fails with its output.
fn compose(dir: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let output = std::process::Command::new("docker-compose")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running docker-compose (install it: Debian's docker-compose package)")?;
    anyhow::ensure!(
        output.status.success(),
        "docker-compose {} in {}: {}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// `weft deploy compose`: writes the project(s) and says how to start them.
pub fn deploy_compose(
    spec: Option<&Path>,
    options: weft_network::compose::ComposeOptions,
) -> anyhow::Result<()> {
    let mut step = stepper();
    let image = options.image.clone();
    let projects = write_compose(spec, options, &mut step)?;
    println!("start (image {image}: `weft image build` makes it; with --per-host, on each host):");
    for project in &projects {
        let root = project
            .file
            .parent()
            .map_or_else(String::new, |p| p.display().to_string());
        println!(
            "  cd {root} && docker-compose up -d     # {}",
            project.services.join(", ")
        );
    }
    if let Some(first) = projects.first() {
        println!(
            "then:\n  weft status --dir {0}\n  weft chaincode query --dir {0} …",
            first.network_dir.root().display()
        );
    }
    Ok(())
}

/// The spec's text and its name in errors (the default spec without one).
fn spec_text(spec: Option<&Path>) -> anyhow::Result<(String, String)> {
    Ok(match spec {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            weft_spec::DEFAULT_SPEC_YAML.to_owned(),
            "<default spec>".to_owned(),
        ),
    })
}

/// `weft deploy helm`: writes the chart and says how to install it.
pub fn deploy_helm(
    spec: Option<&Path>,
    options: weft_network::helm::HelmOptions,
) -> anyhow::Result<()> {
    let mut step = stepper();
    let (text, origin) = spec_text(spec)?;
    let chart = weft_network::helm::write(&text, &origin, &builtin_names(), &options, &mut step)?;
    println!(
        "install (image {}: `weft image build`, then push it where the cluster pulls from):\n  helm install {release} {chart} --namespace NS --create-namespace\nmore peers (up to the chart's capacity):\n  helm upgrade {release} {chart} --namespace NS --reuse-values --set organizations.<org>.peers=N\nthe gateway peer {} is exposed by Service {}:\n  kubectl -n NS get service {}\napplications use the material in {}/organizations (TLS server name {})",
        options.cluster.image,
        chart.gateway.name,
        chart.gateway_service,
        chart.gateway_service,
        chart.network_dir.root().display(),
        chart.gateway.name,
        release = "weft",
        chart = chart.chart.display(),
    );
    Ok(())
}

/// `weft deploy k8s`: writes the objects and says how to apply them.
pub fn deploy_k8s(
    spec: Option<&Path>,
    options: weft_network::k8s::KubernetesOptions,
) -> anyhow::Result<()> {
    let mut step = stepper();
    let (text, origin) = spec_text(spec)?;
    let project = weft_network::k8s::write(&text, &origin, &builtin_names(), &options, &mut step)?;
    let output = options.cluster.output.display();
    let gateway = &project.gateway;
    if options.podman {
        println!(
            "run it (image {}: `weft image build` into podman's engine makes it):
  podman kube play {output}/podman-claims.yaml     # once: the ledgers' volumes
  podman kube play {output}/podman.yaml
the gateway peer {} is on 127.0.0.1:{}",
            options.cluster.image, gateway.name, gateway.port
        );
    } else if options.per_organization {
        println!(
            "apply each organisation's namespace (image {}: `weft image build`, then push it where the cluster pulls from):",
            options.cluster.image
        );
        for file in &project.files {
            if file.file_name().is_some_and(|n| n == "00-base.yaml")
                && let Some(dir) = file.parent()
            {
                println!("  kubectl apply -f {}/", dir.display());
            }
        }
        println!(
            "each peer organisation's gateway peer is exposed by Service {} in its namespace (kubectl -n org1 get service {})",
            project.gateway_service, project.gateway_service
        );
    } else {
        let ns = options
            .namespace
            .as_ref()
            .map_or_else(String::new, |n| format!(" -n {n}"));
        println!(
            "apply (image {}: `weft image build`, then push it where the cluster pulls from):
  kubectl apply -f {output}/kubernetes/
  kubectl{ns} wait --for=condition=complete job/{} --timeout=600s
the gateway peer {} is exposed by Service {} (port {}):
  kubectl{ns} get service {}",
            options.cluster.image,
            project.init,
            gateway.name,
            project.gateway_service,
            gateway.port,
            project.gateway_service,
        );
    }
    println!(
        "applications use the material in {}/organizations (TLS server name {})",
        project.network_dir.root().display(),
        gateway.name
    );
    Ok(())
}

/// Writes the compose project(s) of `spec` (the default one without).
fn write_compose(
    spec: Option<&Path>,
    options: weft_network::compose::ComposeOptions,
    step: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<weft_network::compose::ComposeProject>> {
    let (text, origin, base) = match spec {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        ),
        None => (
            weft_spec::DEFAULT_SPEC_YAML.to_owned(),
            "<default spec>".to_owned(),
            std::path::PathBuf::from("."),
        ),
    };
    let mut options = options;
    options.chaincodes =
        runtime()?.block_on(compose_chaincode_images(&text, &origin, &base, step))?;
    if let Ok(parsed) = weft_spec::NetworkSpec::from_yaml(&text, &origin)
        && !parsed.event_sinks.is_empty()
    {
        step(&format!(
            "note: eventSinks ({}) are not services of compose projects yet; run `weft events sink --dir {}/network --sink NAME` beside the project",
            parsed
                .event_sinks
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            options.output.display()
        ));
    }
    Ok(weft_network::compose::write(
        &text,
        &origin,
        &base,
        &builtin_names(),
        &options,
        step,
    )?)
}

/// The image and command of each `docker` chaincode of the spec, built
/// into the engine first where it gives a source directory.
async fn compose_chaincode_images(
    text: &str,
    origin: &str,
    base: &Path,
    step: &mut dyn FnMut(&str),
) -> anyhow::Result<std::collections::BTreeMap<String, weft_network::compose::ChaincodeImage>> {
    let spec = weft_spec::NetworkSpec::from_yaml(text, origin)?;
    let mut images = std::collections::BTreeMap::new();
    for chaincode in &spec.chaincodes {
        if let weft_spec::LauncherSpec::Docker { .. } = &chaincode.launcher {
            let (image, command) = docker_image(chaincode, base, step).await?;
            images.insert(
                chaincode.name.clone(),
                weft_network::compose::ChaincodeImage { image, command },
            );
        }
    }
    Ok(images)
}

/// The image a `docker` chaincode runs and its command: its `image`, or
/// one built from its `build` source (running the Node chaincode server).
async fn docker_image(
    chaincode: &weft_spec::ChaincodeSpec,
    base: &Path,
    step: &mut dyn FnMut(&str),
) -> anyhow::Result<(String, Vec<String>)> {
    let weft_spec::LauncherSpec::Docker {
        image,
        build,
        command,
    } = &chaincode.launcher
    else {
        anyhow::bail!("chaincode {}: not a docker launcher", chaincode.name);
    };
    match (image, build) {
        (Some(image), _) => Ok((image.clone(), command.clone())),
        (None, Some(source)) => {
            let tag = chaincode_image_tag(&chaincode.name, &chaincode.version);
            weft_containers::source::build_chaincode_image(&base.join(source), &tag, step).await?;
            let command = if command.is_empty() {
                weft_containers::source::NODE_SERVER_COMMAND
                    .map(str::to_owned)
                    .to_vec()
            } else {
                command.clone()
            };
            Ok((tag, command))
        }
        (None, None) => anyhow::bail!("chaincode {}: no image to run", chaincode.name),
    }
}

/// `weft deploy init`: what `weft up` does after starting the nodes, for
/// nodes that run in containers beside this one.
pub fn deploy_init(
    dir: NetworkDir,
    timeout: u64,
    reach: weft_network::nodes::Reach,
    organization: Option<&str>,
) -> anyhow::Result<()> {
    use weft_network::nodes::Reach;
    let dir = dir.reached_from(reach);
    let (spec, base) = dir.load_spec()?;
    let orderer = &spec.orderers.organization;
    let msp_id = match organization {
        None => None,
        Some(name) if name == orderer.name || name == orderer.msp_id => {
            Some(orderer.msp_id.clone())
        }
        Some(name) => Some(
            spec.organization(name)
                .map(|o| o.msp_id.clone())
                .with_context(|| {
                    format!(
                        "--organization {name}: no such organisation in {} (organisations: {})",
                        dir.spec_file().display(),
                        spec.organizations
                            .iter()
                            .map(|o| o.name.as_str())
                            .chain([orderer.name.as_str()])
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?,
        ),
    };
    let peer_org = msp_id
        .as_ref()
        .is_none_or(|m| spec.organizations.iter().any(|o| &o.msp_id == m));
    let mut step = stepper();
    let timeout = Duration::from_secs(timeout);
    runtime()?.block_on(async {
        match &msp_id {
            None => admin::converge(&dir, &spec, timeout, &mut step).await?,
            Some(msp_id) => {
                admin::converge_organization(&dir, &spec, msp_id, timeout, &mut step).await?;
            }
        }
        if matches!(reach, Reach::Kubernetes | Reach::KubernetesPerOrganization) && peer_org {
            launch_chaincodes(&spec, timeout, &mut step).await?;
        }
        match &msp_id {
            None => weft_network::deploy::deploy(&dir, &spec, &base, timeout, &mut step).await?,
            Some(msp_id) => {
                weft_network::deploy::deploy_organization(
                    &dir, &spec, &base, msp_id, timeout, &mut step,
                )
                .await?
            }
        };
        anyhow::Ok(())
    })?;
    step("ready");
    Ok(())
}

// The peers dial the port the launcher's workloads serve.
const _: () = assert!(weft_kube::PORT == weft_network::k8s::CHAINCODE_PORT);

/// The Kubernetes launcher's part of `weft deploy init`: each `kubernetes`
/// chaincode's Deployment and Service created or updated and available,
/// then the workloads of chaincodes no longer in the spec deleted.
async fn launch_chaincodes(
    spec: &weft_spec::NetworkSpec,
    timeout: Duration,
    step: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<()> {
    let workloads: Vec<weft_kube::Workload> = spec
        .chaincodes
        .iter()
        .filter_map(|chaincode| match &chaincode.launcher {
            weft_spec::LauncherSpec::Kubernetes { image, command } => Some(weft_kube::Workload {
                chaincode: chaincode.name.clone(),
                version: chaincode.version.clone(),
                image: image.clone(),
                command: command.clone(),
                service: weft_network::k8s::chaincode_service(&chaincode.name),
                instance: weft_network::k8s::instance(spec),
            }),
            _ => None,
        })
        .collect();
    if workloads.is_empty() {
        return Ok(());
    }
    let launcher = weft_kube::Launcher::from_environment().await?;
    for workload in &workloads {
        launcher.ensure(workload, timeout, step).await?;
    }
    let keep: Vec<String> = workloads.iter().map(|w| w.service.clone()).collect();
    for deleted in launcher
        .collect_garbage(&weft_network::k8s::instance(spec), &keep)
        .await?
    {
        step(&format!("{deleted} deleted: its chaincode left the spec"));
    }
    Ok(())
}

/// Runs each `docker` chaincode's container on the local engine (the
/// Docker launcher), building its image first where the spec gives a
/// source directory; its address for the peers, by chaincode name.
async fn chaincode_containers(
    dir: &NetworkDir,
    spec: &weft_spec::NetworkSpec,
    base: &Path,
    step: &mut dyn FnMut(&str),
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut services = std::collections::BTreeMap::new();
    for chaincode in &spec.chaincodes {
        if !matches!(chaincode.launcher, weft_spec::LauncherSpec::Docker { .. }) {
            continue;
        }
        let (image, command) = docker_image(chaincode, base, step).await?;
        let service = weft_containers::chaincode::ChaincodeService {
            network: dir.root(),
            chaincode: &chaincode.name,
            // The package id the peers of `weft up` give a chaincode.
            package_id: &chaincode.name,
            image: &image,
            command: &command,
        };
        let address = weft_containers::chaincode::run_chaincode(&service, step).await?;
        services.insert(chaincode.name.clone(), address);
    }
    Ok(services)
}

/// `weft-cc-<name>:<version>`, in the characters image references allow.
fn chaincode_image_tag(name: &str, version: &str) -> String {
    let clean = |text: &str, extra: &[char]| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || extra.contains(&c) {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!(
        "weft-cc-{}:{}",
        clean(name, &['-', '_', '.']),
        clean(version, &['-', '_', '.'])
    )
}

/// `weft channel create`: adds a channel to the network's spec and brings
/// the network to it (genesis block, orderers and member peers joined,
/// chaincodes meant for every channel deployed on it).
pub fn channel_create(
    dir: NetworkDir,
    name: &str,
    organizations: Vec<String>,
    timeout: u64,
) -> anyhow::Result<()> {
    let (spec, base) = plan::amend_spec(&dir, &builtin_names(), |spec| {
        if spec.channels.iter().any(|c| c.name == name) {
            return Err(format!("channel {name} already exists in this network"));
        }
        spec.channels.push(weft_spec::ChannelSpec {
            name: name.to_owned(),
            organizations: (!organizations.is_empty()).then_some(organizations),
        });
        Ok(())
    })?;
    bring_up(dir.clone(), &spec, &base, false, timeout, false)?;
    // Stored once the network has the channel: a failed create is not kept.
    dir.store_spec(&spec.to_yaml(), &base)?;
    println!("channel {name} created");
    Ok(())
}

/// `weft channel join`: joins peers of the network to one of its channels
/// from the channel's genesis block (they catch up from the orderers);
/// peers already joined are left alone.
pub fn channel_join(dir: NetworkDir, name: &str, peers: Vec<String>) -> anyhow::Result<()> {
    let (spec, _) = dir.load_spec()?;
    let channel = spec
        .channels
        .iter()
        .find(|c| c.name == name)
        .with_context(|| {
            let known: Vec<&str> = spec.channels.iter().map(|c| c.name.as_str()).collect();
            format!(
                "no channel {name} in this network (channels: {}); `weft channel create {name}` makes one",
                known.join(", ")
            )
        })?;
    let members: Vec<String> = spec
        .channel_organizations(channel)
        .iter()
        .map(|o| o.msp_id.clone())
        .collect();
    let all_peers: Vec<_> = nodes(&spec)
        .into_iter()
        .filter(|n| matches!(n.role, weft_network::nodes::Role::Peer { .. }))
        .collect();
    let chosen = if peers.is_empty() {
        all_peers
            .into_iter()
            .filter(|n| members.contains(&n.msp_id))
            .collect::<Vec<_>>()
    } else {
        let mut chosen = Vec::new();
        for wanted in &peers {
            let peer = all_peers
                .iter()
                .find(|n| &n.name == wanted)
                .with_context(|| {
                    let known: Vec<&str> = all_peers.iter().map(|n| n.name.as_str()).collect();
                    format!(
                        "no peer {wanted} in this network (peers: {})",
                        known.join(", ")
                    )
                })?;
            anyhow::ensure!(
                members.contains(&peer.msp_id),
                "{wanted} belongs to {}, which is not a member of channel {name} (members: {}); adding an organisation to an existing channel needs a channel config update, which weft does not make yet",
                peer.msp_id,
                members.join(", ")
            );
            chosen.push(peer.clone());
        }
        chosen
    };
    let block = dir.block(name);
    runtime()?.block_on(async {
        for peer in &chosen {
            let admin = admin::NodeAdmin::new(&dir, peer)?;
            let joined = admin.channels().await?;
            if let Some(info) = joined.iter().find(|c| c.name == name) {
                println!(
                    "{}: already joined {name} (height {})",
                    peer.name, info.height
                );
                continue;
            }
            let info = admin.join(&block).await?;
            println!("{}: joined {name} (height {})", peer.name, info.height);
        }
        Ok::<_, anyhow::Error>(())
    })
}

/// `weft chaincode deploy`: adds (or changes) `chaincode` in the network's
/// spec, installs it on the peers of its channels' organisations (their
/// configs change and they restart) and defines it through the lifecycle:
/// every member org approves, then the definition is committed, at the next
/// sequence when it changed.
pub fn chaincode_deploy(
    dir: NetworkDir,
    chaincode: weft_spec::ChaincodeSpec,
    timeout: u64,
) -> anyhow::Result<()> {
    let mut changes = Vec::new();
    let mut chaincode = chaincode;
    let (spec, base) = plan::amend_spec(&dir, &builtin_names(), |spec| {
        match spec
            .chaincodes
            .iter_mut()
            .find(|c| c.name == chaincode.name)
        {
            Some(existing) => {
                // What the command does not give is kept, as an operator
                // upgrading a version expects: the policy, collections,
                // indexes and channels.
                keep_unspecified(&mut chaincode, existing);
                changes = spec_changes(existing, &chaincode);
                *existing = chaincode.clone();
            }
            None => spec.chaincodes.push(chaincode.clone()),
        }
        Ok(())
    })?;
    let defined = bring_up(dir.clone(), &spec, &base, false, timeout, false)?;
    // Stored once deployed: a deploy that failed is not kept.
    dir.store_spec(&spec.to_yaml(), &base)?;
    if !changes.is_empty() {
        println!("chaincode {}: {}", chaincode.name, changes.join("; "));
    }
    for done in defined.iter().filter(|d| d.chaincode == chaincode.name) {
        let (version, sequence) = &done.after;
        let what = match &done.before {
            None => format!("deployed (version {version}, sequence {sequence})"),
            Some(before) if !done.committed() => {
                format!("unchanged (version {}, sequence {})", before.0, before.1)
            }
            Some((old_version, old_sequence)) => format!(
                "upgraded: sequence {old_sequence} → {sequence}, version {old_version} → {version}"
            ),
        };
        println!("chaincode {} on {}: {what}", chaincode.name, done.channel);
    }
    Ok(())
}

/// Fills what `weft chaincode deploy` was not given from the definition in
/// the spec.
fn keep_unspecified(chaincode: &mut weft_spec::ChaincodeSpec, existing: &weft_spec::ChaincodeSpec) {
    if chaincode.endorsement_policy.is_none() {
        chaincode.endorsement_policy = existing.endorsement_policy.clone();
    }
    if chaincode.collections_config.is_none() {
        chaincode.collections_config = existing.collections_config.clone();
    }
    if chaincode.indexes.is_empty() {
        chaincode.indexes = existing.indexes.clone();
    }
    if chaincode.channels.is_none() {
        chaincode.channels = existing.channels.clone();
    }
}

/// What differs between two definitions of a chaincode in the spec.
fn spec_changes(old: &weft_spec::ChaincodeSpec, new: &weft_spec::ChaincodeSpec) -> Vec<String> {
    let show = |value: &Option<String>| value.clone().unwrap_or_else(|| "the default".into());
    let mut changes = Vec::new();
    if old.version != new.version {
        changes.push(format!("version {} → {}", old.version, new.version));
    }
    if old.endorsement_policy != new.endorsement_policy {
        changes.push(format!(
            "endorsement policy {} → {}",
            show(&old.endorsement_policy),
            show(&new.endorsement_policy)
        ));
    }
    if old.collections_config != new.collections_config {
        changes.push(format!(
            "collections {} → {}",
            show(&old.collections_config),
            show(&new.collections_config)
        ));
    }
    if old.indexes != new.indexes {
        changes.push("indexes changed".into());
    }
    if old.channels != new.channels {
        changes.push("channels changed".into());
    }
    if old.launcher != new.launcher {
        changes.push("launcher changed".into());
    }
    changes
}

/// A flag SIGTERM or Ctrl-C sets, for a supervisor loop; the runtime
/// watching for them runs as long as it is kept.
fn stop_flag() -> anyhow::Result<(tokio::runtime::Runtime, Arc<AtomicBool>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let runtime = runtime()?;
    runtime.spawn(async move {
        shutdown_signal().await;
        flag.store(true, Ordering::SeqCst);
    });
    Ok((runtime, stop))
}

/// A supervisor's log line: UTC time, then the line.
fn timestamped(line: &str) {
    eprintln!("{} {line}", weft_node::clock::utc_now())
}

pub fn supervise(dir: NetworkDir) -> anyhow::Result<()> {
    supervisor::claim(&dir)?;
    let (_runtime, stop) = stop_flag()?;
    let weft = weft_exe()?;
    let result = supervisor::supervise(&dir, &weft, &stop, &mut timestamped);
    let _ = std::fs::remove_file(dir.supervisor_pid());
    Ok(result?)
}

pub fn down(dir: NetworkDir, purge: bool) -> anyhow::Result<()> {
    let mut step = stepper();
    if !dir.exists() {
        if purge && dir.root().exists() {
            anyhow::bail!(
                "{} holds no weft network (no network.yaml); not deleting it",
                dir.root().display()
            );
        }
        anyhow::bail!(weft_network::NetworkError::NoNetwork(
            dir.root().to_path_buf()
        ));
    }
    weft_network::monitor::down(&dir, &mut step)?;
    let stopped = supervisor::stop_network(&dir, &mut step)?;
    step(&format!("stopped ({stopped} process(es) signalled)"));
    let (spec, _) = dir.load_spec()?;
    if spec
        .chaincodes
        .iter()
        .any(|c| matches!(c.launcher, weft_spec::LauncherSpec::Docker { .. }))
    {
        let removed =
            runtime()?.block_on(weft_containers::chaincode::remove_chaincodes(dir.root()))?;
        step(&format!("{removed} chaincode container(s) removed"));
    }
    if purge {
        std::fs::remove_dir_all(dir.root())
            .with_context(|| format!("deleting {}", dir.root().display()))?;
        step(&format!("deleted {}", dir.root().display()));
    } else {
        step(&format!(
            "data kept in {}; `weft up` starts it again",
            dir.root().display()
        ));
    }
    Ok(())
}

pub fn status(dir: NetworkDir) -> anyhow::Result<()> {
    let (spec, _) = dir.load_spec()?;
    let supervisor = supervisor::running_supervisor(&dir);
    println!(
        "network {:?} in {}: supervisor {}",
        spec.name,
        dir.root().display(),
        supervisor.map_or("not running".to_owned(), |pid| format!(
            "running (pid {pid})"
        ))
    );
    let statuses = runtime()?.block_on(admin::status(&dir, &spec));
    let mut healthy = 0;
    for status in &statuses {
        // No local process, yet it answers: it runs elsewhere (a
        // container, another host).
        let process = match (status.pid, &status.channels) {
            (Some(pid), _) => format!("pid {pid}"),
            (None, Ok(_)) => "elsewhere".to_owned(),
            (None, Err(_)) => "stopped".to_owned(),
        };
        let detail = match &status.channels {
            // Nothing runs and nothing answers: no transport error to show.
            Err(_) if status.pid.is_none() => "not running".to_owned(),
            Ok(channels) if channels.is_empty() => "up, no channels".to_owned(),
            Ok(channels) => {
                let heights: Vec<String> = channels
                    .iter()
                    .map(|(name, height)| format!("{name} height {height}"))
                    .collect();
                format!("up, {}", heights.join(", "))
            }
            Err(error) => format!("unreachable: {}", error.lines().next().unwrap_or("")),
        };
        if status.channels.is_ok() {
            healthy += 1;
        }
        let operations = status
            .node
            .operations_url()
            .map_or(String::new(), |url| format!("; operations {url}"));
        println!(
            "  {:<28} {:<16} {:<10} {detail}{operations}",
            status.node.name,
            status.node.address(),
            process
        );
    }
    for ca in spec.certificate_authorities() {
        let process = supervisor::running_ca(&dir, &ca)
            .map_or("stopped".to_owned(), |pid| format!("pid {pid}"));
        let listening = std::net::TcpStream::connect(("127.0.0.1", ca.port)).is_ok();
        println!(
            "  {:<28} {:<16} {process:<10} {} (CA of {})",
            ca.name,
            format!("127.0.0.1:{}", ca.port),
            if listening { "up" } else { "not listening" },
            ca.msp_id
        );
    }
    if let Some(port) = spec.rest_port() {
        let process =
            supervisor::running_rest(&dir).map_or("stopped".to_owned(), |pid| format!("pid {pid}"));
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        println!(
            "  {:<28} {:<16} {process:<10} {} (REST gateway, weft logs rest)",
            "rest",
            format!("127.0.0.1:{port}"),
            if listening { "up" } else { "not listening" },
        );
    }
    for sink in &spec.event_sinks {
        let process = supervisor::running_sink(&dir, &sink.name)
            .map_or("stopped".to_owned(), |pid| format!("pid {pid}"));
        let operations = sink.operations_port.map_or(String::new(), |port| {
            format!(
                "{}; operations http://127.0.0.1:{port}",
                sink_progress(port)
            )
        });
        println!(
            "  {:<28} {:<16} {process:<10} {} into PostgreSQL (weft logs {}){operations}",
            format!("event sink {}", sink.name),
            "",
            sink.channel_in(&spec),
            sink.name
        );
    }
    println!("{healthy}/{} node(s) healthy", statuses.len());
    print_restarts(&dir);
    if healthy == 0 && supervisor.is_none() {
        anyhow::bail!(
            "the network is stopped; `weft up --dir {}` starts it again with its ledgers",
            dir.root().display()
        );
    }
    if healthy < statuses.len() {
        anyhow::bail!("{} node(s) not healthy", statuses.len() - healthy);
    }
    Ok(())
}

pub fn logs(dir: NetworkDir, node: &str, lines: usize, follow: bool) -> anyhow::Result<()> {
    let (spec, _) = dir.load_spec()?;
    let path = if node == "supervisor" {
        dir.supervisor_log()
    } else if spec.event_sinks.iter().any(|s| s.name == node) {
        dir.sink_log(node)
    } else if node == "rest" && spec.rest_port().is_some() {
        weft_network::rest::dir(&dir).join("rest.log")
    } else {
        let names: Vec<String> = spec
            .certificate_authorities()
            .into_iter()
            .map(|ca| ca.name)
            .chain(nodes(&spec).into_iter().map(|n| n.name))
            .collect();
        if !names.iter().any(|n| n == node) {
            let sinks: String = spec
                .event_sinks
                .iter()
                .map(|s| format!(", {}", s.name))
                .collect();
            anyhow::bail!(
                "no node {node:?} in network {:?} (nodes: {}{sinks}, supervisor)",
                spec.name,
                names.join(", ")
            );
        }
        dir.node_log(node)
    };
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    let all: Vec<&str> = text.lines().collect();
    let mut out = std::io::stdout();
    for line in &all[all.len().saturating_sub(lines)..] {
        if writeln!(out, "{line}").is_err() {
            return Ok(());
        }
    }
    if !follow {
        return Ok(());
    }
    let mut position = file.stream_position()?;
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let length = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if length < position {
            position = 0;
        }
        if length > position {
            file.seek(std::io::SeekFrom::Start(position))?;
            let mut chunk = Vec::new();
            file.read_to_end(&mut chunk)?;
            position += chunk.len() as u64;
            if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
                return Ok(());
            }
        }
    }
}

/// The MSP ID of organisation `org` (the spec's first by default) and the
/// channel to use for `chaincode`: the one given, else the chaincode's only
/// channel, else the spec's first.
pub fn org_and_channel(
    spec: &weft_spec::NetworkSpec,
    org: Option<&str>,
    chaincode: &str,
    channel: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let org = match org {
        Some(name) => spec.organization(name).with_context(|| {
            format!(
                "no organisation {name:?} in network {:?} (organisations: {})",
                spec.name,
                spec.organizations
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => &spec.organizations[0],
    };
    let channel = match channel {
        Some(channel) => channel.to_owned(),
        None => spec
            .chaincodes
            .iter()
            .find(|c| c.name == chaincode)
            .map(|c| spec.chaincode_channels(c))
            .filter(|channels| channels.len() == 1)
            .map(|channels| channels[0].name.clone())
            .unwrap_or_else(|| spec.channels[0].name.clone()),
    };
    Ok((org.msp_id.clone(), channel))
}

pub fn chaincode(call: ChaincodeCall, submit: bool) -> anyhow::Result<()> {
    let dir = call.dir.open();
    let (spec, _) = dir.load_spec()?;
    let (msp_id, channel) = org_and_channel(
        &spec,
        call.org.as_deref(),
        &call.chaincode,
        call.channel.as_deref(),
    )?;
    let args = match (&call.ctor, call.function) {
        (Some(ctor), _) => fabric_ctor(ctor)?,
        (None, Some(function)) => std::iter::once(function)
            .chain(call.args)
            .map(String::into_bytes)
            .collect(),
        (None, None) => anyhow::bail!("give the function (or the call as -c '{{\"Args\":[…]}}')"),
    };
    let transient = call
        .transient
        .as_deref()
        .map(fabric_transient)
        .transpose()?;
    runtime()?.block_on(async move {
        let (peer, gateway) = org_gateway(&dir, &spec, &msp_id, &call.user)?;
        let gateway = match transient {
            Some(transient) => gateway.with_transient(transient),
            None => gateway,
        };
        let payload = if submit {
            let done = gateway.submit(&channel, &call.chaincode, &args).await?;
            eprintln!(
                "transaction {} committed in block {} (VALID) on {channel} via {}",
                done.tx_id, done.block, peer.name
            );
            done.result
        } else {
            gateway.evaluate(&channel, &call.chaincode, &args).await?
        };
        let mut out = std::io::stdout();
        match String::from_utf8(payload) {
            Ok(text) if !text.is_empty() => {
                let _ = writeln!(out, "{text}");
            }
            Ok(_) => {}
            Err(bytes) => {
                let _ = writeln!(out, "{}", weft_protoutil::hex(bytes.as_bytes()));
            }
        }
        Ok(())
    })
}

/// `weft monitor up|down|status|receive`.
pub(crate) fn monitor(command: crate::MonitorCommand) -> anyhow::Result<()> {
    use weft_network::monitor;
    match command {
        crate::MonitorCommand::Up {
            dir,
            prometheus_port,
            alertmanager_port,
            receiver_port,
            webhook,
        } => {
            let dir = dir.open();
            let (spec, _) = dir.load_spec()?;
            let options = monitor::MonitorOptions {
                prometheus_port,
                alertmanager_port,
                receiver_port,
                webhook,
            };
            let mut step = stepper();
            monitor::up(&dir, &spec, &options, &weft_exe()?, &mut step)?;
            println!(
                "monitoring is up: Prometheus http://127.0.0.1:{prometheus_port}, Alertmanager \
                 http://127.0.0.1:{alertmanager_port}; files and alerts.log in {}",
                dir.root().join("monitoring").display()
            );
            Ok(())
        }
        crate::MonitorCommand::Down { dir } => {
            let mut step = stepper();
            if monitor::down(&dir.open(), &mut step)? == 0 {
                step("monitoring was not running");
            }
            Ok(())
        }
        crate::MonitorCommand::Status { dir } => {
            let status = monitor::status(&dir.open())?;
            for (process, pid) in &status.processes {
                println!(
                    "  {process:<14} {}",
                    pid.map_or("stopped".to_owned(), |pid| format!("pid {pid}"))
                );
            }
            println!("targets:");
            let mut down = 0;
            for (node, url, health, error) in &status.targets {
                if health != "up" {
                    down += 1;
                }
                let error = if error.is_empty() {
                    String::new()
                } else {
                    format!(" ({error})")
                };
                println!("  {node:<28} {health:<8} {url}{error}");
            }
            println!("alerts:");
            if status.alerts.is_empty() {
                println!("  none firing");
            }
            for (name, labels) in &status.alerts {
                println!("  {name} {labels}");
            }
            println!(
                "{}/{} target(s) up, {} alert(s)",
                status.targets.len() - down,
                status.targets.len(),
                status.alerts.len()
            );
            Ok(())
        }
        crate::MonitorCommand::Supervise { dir } => {
            let (_runtime, stop) = stop_flag()?;
            monitor::supervise(&dir.open(), &weft_exe()?, &stop, &mut timestamped)?;
            Ok(())
        }
        crate::MonitorCommand::Receive { listen, log } => {
            runtime()?.block_on(monitor::receive(&listen, log))?;
            Ok(())
        }
    }
}

/// `weft validate`: the spec parsed, checked and every file it refers to
/// read (as `weft up` would, before changing anything), then the whole
/// network it describes printed.
pub fn validate(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading network spec {}", path.display()))?;
    let file = path.display().to_string();
    let spec = weft_spec::NetworkSpec::from_yaml(&text, &file)?;
    let base = weft_network::dir::absolute(path.parent().unwrap_or(Path::new(".")));
    plan::check_references(&spec, &base, &builtin_names(), &file)?;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "network {}: valid ({file})", spec.name);
    let _ = writeln!(out, "nodes:");
    for node in nodes(&spec) {
        let operations = node
            .operations_url()
            .map_or(String::new(), |url| format!(", operations {url}"));
        let _ = writeln!(
            out,
            "  {:<28} {}:{} ({}){operations}",
            node.name, node.host, node.port, node.msp_id
        );
    }
    let _ = writeln!(
        out,
        "ordering: {} Raft node(s) of {}, blocks of at most {} transactions, cut within {}",
        spec.orderers.nodes,
        spec.orderers.organization.msp_id,
        spec.orderers.batch_size.max_message_count,
        spec.orderers.batch_timeout
    );
    let _ = writeln!(out, "organisations:");
    for org in &spec.organizations {
        let _ = writeln!(
            out,
            "  {} ({}), domain {}: {} peer(s), users Admin and User1…User{}",
            org.name, org.msp_id, org.domain, org.peers, org.users
        );
    }
    let cas = spec.certificate_authorities();
    if !cas.is_empty() {
        let _ = writeln!(
            out,
            "certificate authorities (identities enrolled through them):"
        );
        for ca in &cas {
            let _ = writeln!(
                out,
                "  {:<12} https://localhost:{} ({}), organizations/fabric-ca/{}",
                ca.name, ca.port, ca.msp_id, ca.directory
            );
        }
    }
    let _ = writeln!(out, "channels:");
    for channel in &spec.channels {
        let members: Vec<&str> = spec
            .channel_organizations(channel)
            .iter()
            .map(|o| o.msp_id.as_str())
            .collect();
        let _ = writeln!(out, "  {}: {}", channel.name, members.join(", "));
    }
    if !spec.chaincodes.is_empty() {
        let _ = writeln!(out, "chaincodes:");
    }
    for chaincode in &spec.chaincodes {
        let channels: Vec<&str> = spec
            .chaincode_channels(chaincode)
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let launcher = match &chaincode.launcher {
            weft_spec::LauncherSpec::Builtin(name) => format!("built-in {name}"),
            weft_spec::LauncherSpec::Process { command, .. } => {
                format!("process `{}`", command.join(" "))
            }
            weft_spec::LauncherSpec::External { address, .. } => format!("service at {address}"),
            weft_spec::LauncherSpec::Docker { image, build, .. } => match (image, build) {
                (Some(image), _) => format!("container {image}"),
                (None, Some(build)) => format!("container built from {build}"),
                (None, None) => "container".into(),
            },
            weft_spec::LauncherSpec::Kubernetes { image, .. } => {
                format!("Kubernetes Deployment of {image}")
            }
        };
        let _ = writeln!(
            out,
            "  {} {} on {}: {launcher}; endorsement {}{}",
            chaincode.name,
            chaincode.version,
            channels.join(", "),
            chaincode
                .endorsement_policy
                .as_deref()
                .unwrap_or("a majority of the channel's organisations"),
            chaincode
                .collections_config
                .as_deref()
                .map(|c| format!("; collections {c}"))
                .unwrap_or_default()
        );
    }
    for sink in &spec.event_sinks {
        let _ = writeln!(
            out,
            "event sink {}: {} into PostgreSQL as {}",
            sink.name,
            sink.channel_in(&spec),
            sink.organization_in(&spec)
                .map_or("?", |o| o.msp_id.as_str())
        );
    }
    Ok(())
}

/// The supervisor's restarts of processes that exited.
fn print_restarts(dir: &NetworkDir) {
    let restarts = supervisor::restarts(dir);
    if restarts.is_empty() {
        return;
    }
    println!("restarted after exiting (weft logs supervisor):");
    for (name, count, time, status) in restarts {
        println!("  {name}: {count} time(s), last at {time} ({status})");
    }
}

/// The arguments of a Fabric CLI call (`-c`): `{"Args":["fn","a"]}`, or
/// `{"function":"fn","Args":["a"]}`.
pub(crate) fn fabric_ctor(text: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ctor {
        #[serde(default, rename = "function", alias = "Function")]
        function: Option<String>,
        #[serde(rename = "Args", alias = "args")]
        args: Vec<String>,
    }
    let ctor: Ctor = serde_json::from_str(text)
        .with_context(|| format!("-c {text}: expected {{\"Args\":[\"function\",\"arg\",…]}}"))?;
    let args: Vec<Vec<u8>> = ctor
        .function
        .into_iter()
        .chain(ctor.args)
        .map(String::into_bytes)
        .collect();
    if args.is_empty() {
        anyhow::bail!("-c {text}: names no function");
    }
    Ok(args)
}

/// Fabric's `--transient`: a JSON object whose values are base64.
pub(crate) fn fabric_transient(
    text: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let map: std::collections::BTreeMap<String, String> = serde_json::from_str(text)
        .with_context(|| format!("--transient {text}: expected a JSON object of base64 strings"))?;
    map.into_iter()
        .map(|(key, value)| {
            let bytes = weft_crypto::pem::unbase64(&value)
                .map_err(|e| anyhow::anyhow!("--transient: {key}: {e}"))?;
            Ok((key, bytes))
        })
        .collect()
}

/// A sink's progress from its `/metrics`: `, block N written, M behind`
/// (nothing when it does not answer).
fn sink_progress(port: u16) -> String {
    let Ok((200, metrics)) =
        weft_network::monitor::http_get(&format!("127.0.0.1:{port}"), "/metrics")
    else {
        return String::new();
    };
    let value = |name: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(name) && !line.starts_with('#'))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    match (
        value("weft_sink_checkpoint_block"),
        value("weft_sink_blocks_behind"),
    ) {
        (Some(block), Some(behind)) => format!(", block {block} written, {behind} behind"),
        _ => String::new(),
    }
}
