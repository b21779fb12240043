//! A channel profile (orgs, MSPs, consenters) read from generated material.

use std::path::Path;

use weft_channel::{BatchSettings, ChannelProfile, ConsenterProfile, OrgProfile};

use crate::{MaterialError, layout, msp_dir};

/// One Raft consenter: where it listens, and which orderer node (0-based) of
/// the orderer organisation it is (its `tls/server.crt` is used).
#[derive(Debug, Clone)]
pub struct ConsenterNode {
    pub host: String,
    pub port: u32,
    pub index: u32,
}

/// The profile of a channel joining the peer organisations `peer_orgs`
/// (domain, MSP id) and the orderer organisation `orderer_org`, with MSPs and
/// TLS certificates read from the `organizations/` directory `root`.
pub fn channel_profile(
    root: &Path,
    channel_id: &str,
    peer_orgs: &[(&str, &str)],
    orderer_org: (&str, &str),
    consenters: &[ConsenterNode],
    batch: BatchSettings,
    timestamp_seconds: i64,
) -> Result<ChannelProfile, MaterialError> {
    let org =
        |msp_id: &str, dir: &Path, endpoints: Vec<String>| -> Result<OrgProfile, MaterialError> {
            Ok(OrgProfile {
                msp_id: msp_id.to_owned(),
                msp: msp_dir::load_msp_config(&dir.join("msp"), msp_id)?,
                endpoints,
            })
        };
    let consenters = consenters
        .iter()
        .map(|node| {
            let path = layout::orderer_dir(root, orderer_org.0, node.index).join("tls/server.crt");
            let cert = std::fs::read(&path).map_err(|source| MaterialError::Io { path, source })?;
            Ok(ConsenterProfile {
                host: node.host.clone(),
                port: node.port,
                client_tls_cert: cert.clone(),
                server_tls_cert: cert,
            })
        })
        .collect::<Result<Vec<_>, MaterialError>>()?;
    let endpoints = consenters
        .iter()
        .map(|c| format!("{}:{}", c.host, c.port))
        .collect();
    Ok(ChannelProfile {
        channel_id: channel_id.to_owned(),
        application_orgs: peer_orgs
            .iter()
            .map(|&(domain, msp_id)| org(msp_id, &layout::peer_org_dir(root, domain), Vec::new()))
            .collect::<Result<_, _>>()?,
        orderer_orgs: vec![org(
            orderer_org.1,
            &layout::orderer_org_dir(root, orderer_org.0),
            endpoints,
        )?],
        consenters,
        batch,
        timestamp_seconds,
    })
}
