//! The default network's identities, generated once per fixture.

use std::path::{Path, PathBuf};

use weft_channel::{BatchSettings, ChannelProfile};
use weft_material::channel::ConsenterNode;
use weft_material::cryptogen::{self, CryptogenConfig};
use weft_material::{SigningIdentity, layout, msp_dir};
use weft_msp::{Msp, MspManager, MspManagerConfig};
use weft_spec::NetworkSpec;

use crate::chain::Submitter;

/// Org1MSP (org1.example.com), Org2MSP (org2.example.com) and the
/// orderer org, as `weft cryptogen` writes them.
pub struct TestNetwork {
    _dir: Option<tempfile::TempDir>,
    root: PathBuf,
    /// The generation time; certificates are valid from shortly before it.
    pub now: i64,
}

/// The orderer organisation of the default network: (domain, MSP id).
pub const ORDERER_ORG: (&str, &str) = ("example.com", "OrdererMSP");

/// The peer organisations of the default network: (domain, MSP id).
pub const ORGS: [(&str, &str); 2] = [
    ("org1.example.com", "Org1MSP"),
    ("org2.example.com", "Org2MSP"),
];

impl TestNetwork {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("organizations");
        let now = Self::generate_into(&root);
        TestNetwork {
            _dir: Some(dir),
            root,
            now,
        }
    }

    /// The network whose material lives in `root`, generating what is
    /// missing (so several processes can share one network).
    pub fn in_dir(root: &Path) -> Self {
        let now = Self::generate_into(root);
        TestNetwork {
            _dir: None,
            root: root.to_path_buf(),
            now,
        }
    }

    fn generate_into(root: &Path) -> i64 {
        let config = CryptogenConfig::default();
        cryptogen::generate(&NetworkSpec::default_network(), root, &config, &mut |_| {})
            .expect("cryptogen");
        config.now.unix_timestamp()
    }

    /// The `organizations/` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn org_dir(&self, domain: &str) -> PathBuf {
        layout::peer_org_dir(&self.root, domain)
    }

    pub fn msp(&self, domain: &str, msp_id: &str) -> Msp {
        let config =
            msp_dir::load_msp_config(&self.org_dir(domain).join("msp"), msp_id).expect("load msp");
        Msp::from_config(&config).expect("valid msp")
    }

    /// An MSP manager that knows both peer organisations.
    pub fn msp_manager(&self, config: MspManagerConfig) -> MspManager {
        MspManager::new(
            ORGS.map(|(domain, msp_id)| self.msp(domain, msp_id)),
            config,
        )
    }

    pub fn user(&self, domain: &str, user: &str, msp_id: &str) -> SigningIdentity {
        SigningIdentity::load(
            &layout::user_dir(&self.org_dir(domain), user, domain).join("msp"),
            msp_id,
        )
        .expect("signing identity")
    }

    pub fn peer(&self, domain: &str, msp_id: &str) -> SigningIdentity {
        SigningIdentity::load(&layout::peer_dir(&self.root, domain, 0).join("msp"), msp_id)
            .expect("peer identity")
    }

    /// Org1's User1 submitting on `channel_id`, endorsed by the first peer of
    /// each organisation, at the network's generation time.
    pub fn submitter(&self, channel_id: &str) -> Submitter {
        let endorsers = ORGS
            .map(|(domain, msp_id)| self.peer(domain, msp_id))
            .into();
        let mut submitter = Submitter::new(
            channel_id,
            self.user(ORGS[0].0, "User1", ORGS[0].1),
            endorsers,
        );
        submitter.timestamp_seconds = self.now;
        submitter
    }

    /// `ordererOrganizations/example.com`.
    pub fn orderer_org_dir(&self) -> PathBuf {
        layout::orderer_org_dir(&self.root, ORDERER_ORG.0)
    }

    /// The node directory of Raft node `index` (0-based): `msp/` and `tls/`.
    pub fn orderer_dir(&self, index: u32) -> PathBuf {
        layout::orderer_dir(&self.root, ORDERER_ORG.0, index)
    }

    pub fn orderer(&self, index: u32) -> SigningIdentity {
        SigningIdentity::load(&self.orderer_dir(index).join("msp"), ORDERER_ORG.1)
            .expect("orderer identity")
    }

    /// Both peer organisations and the orderer organisation on `channel_id`,
    /// with the given consenters (`host`, `port`, orderer node index).
    pub fn channel_profile(
        &self,
        channel_id: &str,
        consenters: &[(&str, u32, u32)],
        batch: BatchSettings,
    ) -> ChannelProfile {
        let consenters: Vec<ConsenterNode> = consenters
            .iter()
            .map(|&(host, port, index)| ConsenterNode {
                host: host.to_owned(),
                port,
                index,
            })
            .collect();
        weft_material::channel::channel_profile(
            &self.root,
            channel_id,
            &ORGS,
            ORDERER_ORG,
            &consenters,
            batch,
            self.now,
        )
        .expect("channel profile")
    }
}
