//! Deploying the spec's chaincodes with Fabric's lifecycle: for each
//! chaincode and each of its channels, every member organisation's admin
//! approves the definition (naming the package its peers have installed)
//! through the org's own peer, then the definition is committed on the
//! channel, and `weft up` waits until every peer of the channel has the
//! commit. Idempotent: a definition already committed is left alone, an
//! organisation that already approved is not asked again.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use weft_client::Gateway;
use weft_client::lifecycle::Definition;
use weft_protos::peer::CollectionConfigPackage;
use weft_spec::{ChaincodeSpec, ChannelSpec, NetworkSpec};

use crate::NetworkError;
use crate::admin::{NodeAdmin, retry, user_files, user_msp};
use crate::dir::NetworkDir;
use crate::nodes::{Node, Role};

/// A gateway to peer0 of organisation `org` (name or MSP ID), as `user`
/// (`Admin`, `User1`).
pub fn org_gateway(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    org: &str,
    user: &str,
) -> Result<(Node, Gateway), NetworkError> {
    let org = spec
        .organization(org)
        .ok_or_else(|| NetworkError::Material(format!("no organisation {org}")))?;
    let peer = dir
        .nodes(spec)
        .into_iter()
        .find(|n| matches!(n.role, Role::Peer { index: 0, .. }) && n.msp_id == org.msp_id)
        .ok_or_else(|| NetworkError::Material(format!("{} has no peer", org.msp_id)))?;
    let (_, _, tls_ca) = user_files(dir, &org.domain, user);
    let identity =
        weft_material::SigningIdentity::load(&user_msp(dir, &org.domain, user), &org.msp_id)
            .map_err(|e| NetworkError::Material(format!("{user}@{}: {e}", org.domain)))?;
    let gateway = Gateway::connect(&peer.address(), &tls_ca, identity)
        .map_err(|e| NetworkError::Material(e.to_string()))?;
    Ok((peer, gateway))
}

/// The definition of `chaincode` the spec asks for, at `sequence`; the
/// spec's relative paths are resolved against `base`.
pub fn definition(
    chaincode: &ChaincodeSpec,
    sequence: i64,
    base: &Path,
) -> Result<Definition, NetworkError> {
    let collections = match &chaincode.collections_config {
        None => None,
        Some(file) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| NetworkError::io(&path, e))?;
            let package =
                weft_client::lifecycle::collections_config(&text, &path.display().to_string())
                    .map_err(|e| {
                        NetworkError::Refused(format!("chaincode {}: {e}", chaincode.name))
                    })?;
            Some(package)
        }
    };
    Ok(Definition {
        name: chaincode.name.clone(),
        version: chaincode.version.clone(),
        sequence,
        endorsement_policy: chaincode.endorsement_policy.clone(),
        collections,
    })
}

/// Defines `definition` on `channel`: approvals by every member
/// organisation not yet approving (in parallel), then the commit, then a
/// wait until every peer of the channel has the block. Returns what it did,
/// one line per step.
pub async fn define(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    channel: &ChannelSpec,
    definition: &Definition,
    package_id: &str,
    deadline: Instant,
) -> Result<Vec<String>, NetworkError> {
    define_as(dir, spec, channel, definition, package_id, None, deadline).await
}

/// [`define`] by every member organisation (`only` None), or by one: it
/// approves for itself, waits for the others' approvals (or their commit)
/// and commits if nobody has, then waits for its own peers.
async fn define_as(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    channel: &ChannelSpec,
    definition: &Definition,
    package_id: &str,
    only: Option<&str>,
    deadline: Instant,
) -> Result<Vec<String>, NetworkError> {
    let failed = |source| NetworkError::Lifecycle {
        chaincode: definition.name.clone(),
        channel: channel.name.clone(),
        source,
    };
    let orgs: Vec<_> = spec
        .channel_organizations(channel)
        .into_iter()
        .filter(|org| only.is_none_or(|msp_id| org.msp_id == msp_id))
        .collect();
    if orgs.is_empty() {
        return Ok(Vec::new());
    }
    let mut gateways = Vec::new();
    for org in &orgs {
        gateways.push(org_gateway(dir, spec, &org.msp_id, "Admin")?);
    }
    let (_, first) = &gateways[0];
    let approvals = retry(deadline, || async {
        first
            .commit_readiness(&channel.name, definition)
            .await
            .map_err(failed)
    })
    .await?;
    let mut lines = Vec::new();
    let mut approving = JoinSet::new();
    for (org, (_, gateway)) in orgs.iter().zip(&gateways) {
        if approvals.get(&org.msp_id).copied().unwrap_or(false) {
            continue;
        }
        let (gateway, channel, definition, package_id, msp_id) = (
            gateway.clone(),
            channel.name.clone(),
            definition.clone(),
            package_id.to_owned(),
            org.msp_id.clone(),
        );
        approving.spawn(async move {
            gateway
                .approve_definition(&channel, &definition, Some(&package_id))
                .await
                .map(|done| (msp_id, done.block))
        });
    }
    let mut approved_in = None;
    while let Some(joined) = approving.join_next().await {
        let (msp_id, block) = joined
            .map_err(|e| NetworkError::Material(e.to_string()))?
            .map_err(failed)?;
        approved_in = approved_in.max(Some(block));
        lines.push(format!(
            "{} {}: approved by {msp_id} (block {block})",
            definition.name, channel.name
        ));
    }
    // Alone: the other organisations approve in their own time (or one of
    // them commits first).
    if only.is_some() {
        loop {
            if let Some(block) =
                committed_by_now(&gateways[0], dir, channel, definition, &failed).await?
            {
                lines.push(format!(
                    "{} {}: definition committed by another organisation (sequence {})",
                    definition.name, channel.name, definition.sequence
                ));
                wait_for_block(dir, spec, channel, block, only, deadline).await?;
                return Ok(lines);
            }
            let approvals = first
                .commit_readiness(&channel.name, definition)
                .await
                .map_err(failed)?;
            let waiting: Vec<&String> = approvals
                .iter()
                .filter(|(_, approved)| !**approved)
                .map(|(msp_id, _)| msp_id)
                .collect();
            if waiting.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(NetworkError::Refused(format!(
                    "{} {}: still waiting for the approvals of {}",
                    definition.name,
                    channel.name,
                    waiting
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // The commit is endorsed by every organisation's peer, and each reads
    // every approval: all of them must have the approvals' blocks first.
    if let Some(block) = approved_in {
        wait_for_block(dir, spec, channel, block, only, deadline).await?;
    }
    let done = match first.commit_definition(&channel.name, definition).await {
        Ok(done) => done.block,
        // Another organisation committed it meanwhile.
        Err(error) => {
            match committed_by_now(&gateways[0], dir, channel, definition, &failed).await? {
                Some(block) if only.is_some() => block,
                _ => return Err(failed(error)),
            }
        }
    };
    lines.push(format!(
        "{} {}: definition committed (version {}, sequence {}, block {done})",
        definition.name, channel.name, definition.version, definition.sequence
    ));
    // Every peer of the channel has the definition before anyone is told
    // the chaincode is ready.
    wait_for_block(dir, spec, channel, done, only, deadline).await?;
    Ok(lines)
}

/// Where `gateway`'s peer sees `definition`'s sequence committed (by
/// anyone): the last block it has then, which holds the commit.
async fn committed_by_now(
    gateway: &(Node, Gateway),
    dir: &NetworkDir,
    channel: &ChannelSpec,
    definition: &Definition,
    failed: &impl Fn(weft_client::ClientError) -> NetworkError,
) -> Result<Option<u64>, NetworkError> {
    let (peer, gateway) = gateway;
    let committed = gateway
        .committed_definition(&channel.name, &definition.name)
        .await
        .map_err(failed)?;
    if committed.is_none_or(|c| c.sequence < definition.sequence) {
        return Ok(None);
    }
    let info = NodeAdmin::new(dir, peer)?.info(&channel.name).await?;
    Ok(Some(info.height.saturating_sub(1)))
}

/// Waits until every peer of `channel`'s organisations (or of `only`) has
/// committed `block`.
async fn wait_for_block(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    channel: &ChannelSpec,
    block: u64,
    only: Option<&str>,
    deadline: Instant,
) -> Result<(), NetworkError> {
    let orgs = spec.channel_organizations(channel);
    for node in dir.nodes(spec) {
        if !matches!(node.role, Role::Peer { .. })
            || !orgs.iter().any(|o| o.msp_id == node.msp_id)
            || only.is_some_and(|msp_id| node.msp_id != msp_id)
        {
            continue;
        }
        let admin = NodeAdmin::new(dir, &node)?;
        retry(deadline, || async {
            let info = admin.info(&channel.name).await?;
            if info.height <= block {
                return Err(NetworkError::Node {
                    node: node.name.clone(),
                    message: format!(
                        "channel {}: at height {}, waiting for block {block}",
                        channel.name, info.height
                    ),
                });
            }
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// What deploying did for one chaincode on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Defined {
    pub chaincode: String,
    pub channel: String,
    /// The definition committed before: (version, sequence).
    pub before: Option<(String, i64)>,
    /// The definition committed now: (version, sequence).
    pub after: (String, i64),
}

impl Defined {
    /// Whether a new definition was committed.
    pub fn committed(&self) -> bool {
        self.before.as_ref().map(|(_, sequence)| *sequence) != Some(self.after.1)
    }
}

/// Deploys every chaincode of the spec on each of its channels, skipping
/// definitions already committed as the spec describes them; says what it
/// did for each.
pub async fn deploy(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    base: &Path,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Defined>, NetworkError> {
    deploy_as(dir, spec, base, None, timeout, progress).await
}

/// [`deploy`] as one organisation (MSP ID) alone: on the channels it is a
/// member of, it approves for itself and commits once every member has
/// approved, unless another has committed first. Run by each organisation
/// where none holds another's admin (Kubernetes, a namespace each).
pub async fn deploy_organization(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    base: &Path,
    msp_id: &str,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Defined>, NetworkError> {
    deploy_as(dir, spec, base, Some(msp_id), timeout, progress).await
}

async fn deploy_as(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    base: &Path,
    only: Option<&str>,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Defined>, NetworkError> {
    let deadline = Instant::now() + timeout;
    let mut outcome = Vec::new();
    for chaincode in &spec.chaincodes {
        for channel in spec.chaincode_channels(chaincode) {
            let members = spec.channel_organizations(channel);
            let asking = match only {
                None => members[0].msp_id.as_str(),
                Some(msp_id) if members.iter().any(|o| o.msp_id == msp_id) => msp_id,
                Some(_) => continue,
            };
            let (_, gateway) = org_gateway(dir, spec, asking, "Admin")?;
            let failed = |source| NetworkError::Lifecycle {
                chaincode: chaincode.name.clone(),
                channel: channel.name.clone(),
                source,
            };
            let committed = retry(deadline, || async {
                gateway
                    .committed_definition(&channel.name, &chaincode.name)
                    .await
                    .map_err(failed)
            })
            .await?;
            let wanted = definition(chaincode, 1, base)?;
            let parameter = wanted.validation_parameter().map_err(failed)?;
            let collections = |c: &Option<CollectionConfigPackage>| {
                c.as_ref().filter(|p| !p.config.is_empty()).cloned()
            };
            let sequence = match &committed {
                Some(c)
                    if c.version == wanted.version
                        && c.validation_parameter == parameter
                        && collections(&c.collections) == collections(&wanted.collections) =>
                {
                    progress(&format!(
                        "{} {}: already defined (version {}, sequence {})",
                        chaincode.name, channel.name, c.version, c.sequence
                    ));
                    let now = (c.version.clone(), c.sequence);
                    outcome.push(Defined {
                        chaincode: chaincode.name.clone(),
                        channel: channel.name.clone(),
                        before: Some(now.clone()),
                        after: now,
                    });
                    continue;
                }
                Some(c) => c.sequence + 1,
                None => 1,
            };
            let wanted = definition(chaincode, sequence, base)?;
            for line in
                define_as(dir, spec, channel, &wanted, &chaincode.name, only, deadline).await?
            {
                progress(&line);
            }
            outcome.push(Defined {
                chaincode: chaincode.name.clone(),
                channel: channel.name.clone(),
                before: committed.map(|c| (c.version, c.sequence)),
                after: (wanted.version.clone(), sequence),
            });
        }
    }
    Ok(outcome)
}
