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
        dir.store_spec(DEFAULT_SPEC_YAML, &base)?;
        return Ok((spec, base));
    };
    let text = std::fs::read_to_string(path).map_err(|e| NetworkError::io(path, e))?;
    let spec = NetworkSpec::from_yaml(&text, &path.display().to_string())?;
    check_builtins(&spec, builtins, &path.display().to_string())?;
    let base = absolute(path.parent().unwrap_or(Path::new(".")));
    let without_chaincodes = |spec: &NetworkSpec| NetworkSpec {
        chaincodes: Vec::new(),
        ..spec.clone()
    };
    if let Some((existing, _)) = stored
        && without_chaincodes(&existing) != without_chaincodes(&spec)
    {
        return Err(NetworkError::Spec(SpecError {
            file: path.display().to_string(),
            location: "document".into(),
            message: format!(
                "differs from the spec the network in {} was created from ({}); weft up can change an existing network's chaincodes but not yet its organisations, orderers or channels: use another --dir, or `weft down --purge` first",
                dir.root().display(),
                dir.spec_file().display()
            ),
        }));
    }
    dir.store_spec(&text, &base)?;
    Ok((spec, base))
}

/// Refuses built-in launchers naming a contract the binary lacks.
fn check_builtins(spec: &NetworkSpec, builtins: &[String], file: &str) -> Result<(), SpecError> {
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
        out.push_str(&format!(
            "  {:<28} {:<16} {what}\n",
            node.name,
            node.address()
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
