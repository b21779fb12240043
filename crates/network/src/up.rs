//! Which spec a `weft up` uses, and the summary it prints.

use std::path::{Path, PathBuf};

use weft_spec::{DEFAULT_SPEC_YAML, LauncherSpec, NetworkSpec, SpecError};

use crate::NetworkError;
use crate::admin::user_files;
use crate::dir::{NetworkDir, absolute};
use crate::nodes::{Role, nodes};
use crate::profile;

/// The spec for this run: the file given (which may differ from the one an
/// existing network was created from in its chaincodes only), else the
/// stored one, else the built-in default. Returns it with the directory its relative paths are
/// relative to, after storing it in the network directory. A built-in
/// launcher must name one of `builtins`.
pub fn choose_spec(
    dir: &NetworkDir,
    given: Option<&Path>,
    builtins: &[String],
) -> Result<(NetworkSpec, PathBuf), NetworkError> {
    let stored = if dir.exists() {
        Some(dir.load_spec()?)
    } else {
        None
    };
    let Some(path) = given else {
        if let Some(stored) = stored {
            return Ok(stored);
        }
        let spec = NetworkSpec::from_yaml(DEFAULT_SPEC_YAML, "<default spec>")?;
        let base = absolute(Path::new("."));
        crate::supervisor::check_ports_free(dir, &spec)?;
        dir.store_spec(DEFAULT_SPEC_YAML, &base)?;
        return Ok((spec, base));
    };
    let text = std::fs::read_to_string(path).map_err(|e| NetworkError::io(path, e))?;
    let spec = NetworkSpec::from_yaml(&text, &path.display().to_string())?;
    let spec_dir = absolute(path.parent().unwrap_or(Path::new(".")));
    check_references(&spec, &spec_dir, builtins, &path.display().to_string())?;
    if !spec.hosts.is_empty() {
        return Err(NetworkError::Spec(SpecError {
            file: path.display().to_string(),
            location: "hosts".into(),
            message: "places nodes on other hosts; `weft up` runs a network on this one: use `weft deploy compose --per-host`, or leave out `hosts:` and the nodes' `hosts`".into(),
        }));
    }
    let base = absolute(path.parent().unwrap_or(Path::new(".")));
    if let Some((existing, _)) = stored {
        check_change(dir, &existing, &spec, &path.display().to_string())?;
    }
    crate::supervisor::check_ports_free(dir, &spec)?;
    dir.store_spec(&text, &base)?;
    Ok((spec, base))
}

/// What a running network accepts from a new spec: other chaincodes and
/// more channels. Organisations, the ordering service and the existing
/// channels stay as they are (changing them needs channel config updates,
/// which weft does not make yet).
fn check_change(
    dir: &NetworkDir,
    existing: &NetworkSpec,
    new: &NetworkSpec,
    file: &str,
) -> Result<(), NetworkError> {
    let refuse = |location: String, what: String| {
        NetworkError::Spec(SpecError {
            file: file.to_owned(),
            location,
            message: format!(
                "{what} in the network in {} ({}); a running network takes new chaincodes and new channels, but not yet changes to its organisations, orderers or existing channels: use another --dir, or `weft down --purge` first",
                dir.root().display(),
                dir.spec_file().display()
            ),
        })
    };
    if new.name != existing.name {
        return Err(refuse(
            "name".into(),
            format!("the network is named {:?}", existing.name),
        ));
    }
    if new.organizations != existing.organizations {
        return Err(refuse(
            "organizations".into(),
            "differs from the organisations".into(),
        ));
    }
    if new.orderers != existing.orderers {
        return Err(refuse(
            "orderers".into(),
            "differs from the ordering service".into(),
        ));
    }
    for (i, channel) in existing.channels.iter().enumerate() {
        match new.channels.get(i) {
            Some(same) if same == channel => {}
            Some(_) => {
                return Err(refuse(
                    format!("channels[{i}]"),
                    format!("differs from channel {:?} (channels[{i}])", channel.name),
                ));
            }
            None => {
                return Err(refuse(
                    "channels".into(),
                    format!("lacks channel {:?}, which exists", channel.name),
                ));
            }
        }
    }
    Ok(())
}

/// Changes the stored spec of an existing network with `edit` (what `weft
/// channel create` and `weft chaincode deploy` do), validates the result as
/// `weft up` would a file and returns it with its base directory. It is not
/// stored: the caller stores it ([`NetworkDir::store_spec`]) once the
/// network has taken the change, so a change that failed is not kept.
pub fn amend_spec(
    dir: &NetworkDir,
    builtins: &[String],
    edit: impl FnOnce(&mut NetworkSpec) -> Result<(), String>,
) -> Result<(NetworkSpec, PathBuf), NetworkError> {
    let (existing, base) = dir.load_spec()?;
    let mut spec = existing.clone();
    edit(&mut spec).map_err(NetworkError::Refused)?;
    let file = dir.spec_file().display().to_string();
    let text = spec.to_yaml();
    let spec = NetworkSpec::from_yaml(&text, &file)?;
    check_references(&spec, &base, builtins, &file)?;
    check_change(dir, &existing, &spec, &file)?;
    crate::supervisor::check_ports_free(dir, &spec)?;
    Ok((spec, base))
}

/// Everything a spec refers to outside itself, checked before anything is
/// written or started: built-in names, index and collection files, TLS
/// roots of chaincode services, process directories and programs, image
/// sources. Paths are relative to `base` (the spec's directory); errors
/// name the file, the place in the document and what was expected.
pub fn check_references(
    spec: &NetworkSpec,
    base: &Path,
    builtins: &[String],
    file: &str,
) -> Result<(), SpecError> {
    check_builtins(spec, builtins, file)?;
    let fail = |location: String, message: String| SpecError {
        file: file.to_owned(),
        location,
        message,
    };
    let read = |location: &str, path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| fail(location.to_owned(), format!("{}: {e}", path.display())))
    };
    for (i, chaincode) in spec.chaincodes.iter().enumerate() {
        for (j, index) in chaincode.indexes.iter().enumerate() {
            let location = format!("chaincodes[{i}].indexes[{j}]");
            let path = base.join(index);
            let text = read(&location, &path)?;
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                return Err(fail(
                    location,
                    format!("{}: expected a JSON index definition: {e}", path.display()),
                ));
            }
        }
        if let Some(collections) = &chaincode.collections_config {
            let location = format!("chaincodes[{i}].collectionsConfig");
            let path = base.join(collections);
            let text = read(&location, &path)?;
            weft_client::lifecycle::collections_config(&text, &path.display().to_string())
                .map_err(|e| fail(location, e.to_string()))?;
        }
        match &chaincode.launcher {
            LauncherSpec::Kubernetes { .. } => {
                return Err(fail(
                    format!("chaincodes[{i}].launcher.kubernetes"),
                    format!(
                        "chaincode {} runs in a Kubernetes cluster (`weft deploy k8s` or `weft deploy helm`); here use `docker` or `external`",
                        chaincode.name
                    ),
                ));
            }
            LauncherSpec::External {
                tls_root_ca: Some(ca),
                ..
            } if !generated_material(ca) => {
                let location = format!("chaincodes[{i}].launcher.external.tlsRootCa");
                let path = base.join(ca);
                if !read(&location, &path)?.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(fail(
                        location,
                        format!("{}: expected a PEM certificate", path.display()),
                    ));
                }
            }
            LauncherSpec::Process { command, dir, .. } => {
                let workdir = dir.as_ref().map_or(base.to_path_buf(), |d| base.join(d));
                if !workdir.is_dir() {
                    return Err(fail(
                        format!("chaincodes[{i}].launcher.process.dir"),
                        format!("{}: no such directory", workdir.display()),
                    ));
                }
                if let Some(program) = command.first()
                    && !program.contains('{')
                    && !runnable(program, &workdir)
                {
                    return Err(fail(
                        format!("chaincodes[{i}].launcher.process.command[0]"),
                        if program.contains('/') {
                            format!("{}: no such program", workdir.join(program).display())
                        } else {
                            format!("{program:?}: not found on PATH")
                        },
                    ));
                }
            }
            LauncherSpec::Docker {
                build: Some(source),
                ..
            } => {
                let path = base.join(source);
                if !path.is_dir() {
                    return Err(fail(
                        format!("chaincodes[{i}].launcher.docker.build"),
                        format!("{}: no such directory", path.display()),
                    ));
                }
            }
            _ => {}
        }
    }
    for (i, sink) in spec.event_sinks.iter().enumerate() {
        if let Some(ca) = &sink.postgres_ca {
            let location = format!("eventSinks[{i}].postgresCa");
            let path = base.join(ca);
            if !read(&location, &path)?.contains("-----BEGIN CERTIFICATE-----") {
                return Err(fail(
                    location,
                    format!("{}: expected a PEM certificate", path.display()),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `path` is crypto material in Fabric's layout
/// (`…/organizations/peerOrganizations/…`), which the run that reads the
/// spec may be about to generate (a chaincode service trusting its
/// organisation's TLS CA). It is read when the peers start; a peer that
/// cannot read it still runs and reports that chaincode.
fn generated_material(path: &str) -> bool {
    path.contains("organizations/peerOrganizations/")
        || path.contains("organizations/ordererOrganizations/")
}

/// Whether `program` can be started from `workdir`: a path to a file, or a
/// name found on PATH.
fn runnable(program: &str, workdir: &Path) -> bool {
    if program.contains('/') {
        return workdir.join(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Refuses built-in launchers naming a contract the binary lacks.
pub(crate) fn check_builtins(
    spec: &NetworkSpec,
    builtins: &[String],
    file: &str,
) -> Result<(), SpecError> {
    for (i, chaincode) in spec.chaincodes.iter().enumerate() {
        if let LauncherSpec::Builtin(name) = &chaincode.launcher
            && !builtins.contains(name)
        {
            return Err(SpecError {
                file: file.to_owned(),
                location: format!("chaincodes[{i}].launcher.builtin"),
                message: format!(
                    "no built-in chaincode {name:?} (built-ins: {})",
                    builtins.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// What `weft up` prints when the network is ready.
pub fn summary(dir: &NetworkDir, spec: &NetworkSpec) -> String {
    let shown = |path: &Path| {
        let cwd = absolute(Path::new("."));
        path.strip_prefix(&cwd)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut out = format!(
        "network {:?} is up: {}\n\nnodes (weft status, weft logs <node>):\n",
        spec.name,
        shown(dir.root())
    );
    for node in nodes(spec) {
        let what = match node.role {
            Role::Orderer { .. } => "orderer".to_owned(),
            Role::Peer { .. } => format!("peer of {}", node.msp_id),
        };
        let operations = node
            .operations_url()
            .map_or(String::new(), |url| format!("; metrics {url}/metrics"));
        out.push_str(&format!(
            "  {:<28} {:<16} {what}{operations}\n",
            node.name,
            node.address()
        ));
    }
    let cas = spec.certificate_authorities();
    if !cas.is_empty() {
        out.push_str("\ncertificate authorities (Fabric CA clients; registrar admin:adminpw):\n");
        for ca in &cas {
            let home = crate::cas::home(&dir.organizations(), ca);
            let metrics = ca.operations_port.map_or(String::new(), |port| {
                format!("; metrics http://127.0.0.1:{port}/metrics")
            });
            out.push_str(&format!(
                "  {:<12} https://localhost:{:<6} of {}; root {}{metrics}\n",
                ca.name,
                ca.port,
                ca.msp_id,
                shown(&home.join(weft_ca::config::CA_CERT_FILE))
            ));
        }
    }
    if let Some(port) = spec.rest_port() {
        let org = spec
            .organizations
            .first()
            .map_or("Org1", |o| o.name.as_str());
        out.push_str(&format!(
            "\nREST gateway (weft logs rest): http://127.0.0.1:{port}/api/v1, OpenAPI at /api/v1/openapi.json\n  a key: weft rest key create --org {org} --user User1{}\n",
            if dir.root() == absolute(Path::new(crate::DEFAULT_DIR)) {
                String::new()
            } else {
                format!(" --dir {}", shown(dir.root()))
            }
        ));
    }
    out.push_str("\nchannels:\n");
    for channel in &spec.channels {
        let orgs: Vec<&str> = spec
            .channel_organizations(channel)
            .iter()
            .map(|o| o.msp_id.as_str())
            .collect();
        let chaincodes: Vec<String> = spec
            .chaincodes
            .iter()
            .filter(|c| {
                spec.chaincode_channels(c)
                    .iter()
                    .any(|ch| ch.name == channel.name)
            })
            .map(|c| format!("{} {}", c.name, c.version))
            .collect();
        out.push_str(&format!(
            "  {:<16} orgs {}; chaincodes: {}\n",
            channel.name,
            orgs.join(", "),
            if chaincodes.is_empty() {
                "none".to_owned()
            } else {
                chaincodes.join(", ")
            }
        ));
    }
    out.push_str("\nconnection profiles:\n");
    let organizations = dir.organizations();
    for org in &spec.organizations {
        let (json, yaml) = profile::paths(&organizations, org);
        out.push_str(&format!(
            "  {:<8} {}\n           {}\n",
            org.name,
            shown(&json),
            shown(&yaml)
        ));
    }
    out.push_str("\nidentities (certificate, private key, peer TLS CA):\n");
    for org in &spec.organizations {
        let users = std::iter::once("Admin".to_owned())
            .chain((1..=org.users).map(|n| format!("User{n}")))
            .take(3);
        for user in users {
            let (cert, key, ca) = user_files(dir, &org.domain, &user);
            out.push_str(&format!(
                "  {user}@{}\n    {}\n    {}\n    {}\n",
                org.domain,
                shown(&cert),
                shown(&key),
                shown(&ca)
            ));
        }
    }
    if let Some(chaincode) = spec.chaincodes.first() {
        let org = &spec.organizations[0].name;
        let dir_flag = if dir.root() == absolute(Path::new(crate::DEFAULT_DIR)) {
            String::new()
        } else {
            format!(" --dir {}", shown(dir.root()))
        };
        out.push_str("\ntry:\n");
        if chaincode.name == "basic"
            || matches!(&chaincode.launcher, LauncherSpec::Builtin(b) if b == "basic")
        {
            out.push_str(&format!(
                "  weft chaincode invoke {cc} CreateAsset asset1 blue 5 Tom 100 --org {org}{dir_flag}\n  weft chaincode query {cc} ReadAsset asset1 --org {org}{dir_flag}\n",
                cc = chaincode.name
            ));
        } else {
            out.push_str(&format!(
                "  weft chaincode query {cc} <function> [args...] --org {org}{dir_flag}\n",
                cc = chaincode.name
            ));
        }
    }
    out.push_str(
        "stop with `weft down` (keeps the ledgers); `weft down --purge` deletes the network.\n",
    );
    out
}
