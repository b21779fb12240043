//! `weft deploy k8s`: the network of a spec as Kubernetes objects.
//!
//! ```text
//! <output>/network/                 the network directory (Reach::Kubernetes): material, genesis
//!                                   blocks, node configs; CA keys and users stay here, off the cluster
//! <output>/kubernetes/*.yaml        the objects, for `kubectl apply -f <output>/kubernetes/`
//! <output>/kubernetes/<org>/*.yaml  (--per-organization) each organisation's namespace
//! <output>/podman.yaml              (--podman) the variant `podman kube play` runs,
//! <output>/podman-claims.yaml       and its claims, played once
//! ```
//!
//! Each node is a Deployment of one pod (strategy `Recreate`: its ledger
//! is a ReadWriteOnce PersistentVolumeClaim mounted at /var/weft), a
//! ClusterIP Service whose name is the node's DNS label (in its TLS
//! certificate and the channel config), and probes on its operations
//! service's `/healthz` (or its gRPC port). The network directory reaches
//! the pods as one ConfigMap per directory — a Secret where the directory
//! holds a private key — projected at /network in the same layout, each pod
//! seeing only the directories it reads (its own keys, never another
//! node's; CA keys never leave `<output>/network`). A Job runs `weft deploy
//! init` (channel joins, chaincode definitions; idempotent, so re-runnable),
//! and exactly one Service is reachable from outside the cluster: the
//! gateway peer's (NodePort or LoadBalancer). Pods run as weft's non-root
//! user with no service account token, no privilege escalation and a
//! read-only root filesystem. Nodes never call the Kubernetes API; only
//! where the spec has `kubernetes` chaincodes does the init Job get a token,
//! for a Role of exactly the launcher's verbs (`launcher_rules`).
//!
//! With `per_organization`, each organisation's objects go to a namespace
//! of its own (nodes dialled at `<service>.<namespace>`): its nodes, the
//! directories they and its admin read, its own init Job (`--organization`)
//! and, for a peer organisation, its own gateway Service.
//!
//! The podman variant differs where `podman kube play` (4.3) does:
//! Deployments and the Job become Pods named as the Services (podman
//! ignores Services, and its DNS answers pod names); projected volumes and
//! nested item paths are unsupported, so each directory is its own volume
//! mounted at its path; its Secrets are written base64-encoded into files,
//! so keys travel in ConfigMaps (a test machine's variant, never a
//! cluster's), each pod with copies of its own (podman rewrites a shared
//! ConfigMap's files whenever another pod plays it); no probes (podman runs
//! them through a shell); the gateway is published as a hostPort on
//! 127.0.0.1 instead of a NodePort Service.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use weft_spec::{LauncherSpec, NetworkSpec};

use crate::compose::{DATA_MOUNT, IMAGE_UID, NETWORK_MOUNT};
use crate::dir::{NetworkDir, absolute, write_atomic};
use crate::nodes::{Node, Reach, Role, tls_roots};
use crate::{NetworkError, prepare};
use weft_material::layout;

/// How the gateway Service is reached from outside the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    NodePort,
    LoadBalancer,
}

impl Exposure {
    pub(crate) fn service_type(self) -> &'static str {
        match self {
            Exposure::NodePort => "NodePort",
            Exposure::LoadBalancer => "LoadBalancer",
        }
    }
}

/// What `weft deploy k8s` and `weft deploy helm` are both asked for.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub output: PathBuf,
    /// weft's image (`weft image build` makes it; push it where the
    /// cluster pulls from); the chart's default.
    pub image: String,
    pub exposure: Exposure,
    /// The organisation (name or MSP ID) whose first peer is the exposed
    /// gateway; None: the spec's first.
    pub gateway_org: Option<String>,
    /// The ledgers' StorageClass; None: the cluster's default.
    pub storage_class: Option<String>,
    /// Each ledger's PersistentVolumeClaim size (`5Gi`).
    pub storage: String,
    /// The Role rules (apiGroup, resource, verbs) the Kubernetes chaincode
    /// launcher needs, granted to the init Job where the spec has
    /// `kubernetes` chaincodes.
    pub launcher_rules: LauncherRules,
}

/// What `weft deploy k8s` is asked for.
#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    pub cluster: ClusterOptions,
    /// The namespace of every object (a Namespace object is written too);
    /// None: the one `kubectl` is pointed at.
    pub namespace: Option<String>,
    /// Write the `podman kube play` variant (`<output>/podman.yaml`)
    /// instead of the cluster's objects.
    pub podman: bool,
    /// A namespace per organisation (named after it: `org1`, `orderer`),
    /// each holding only that organisation's nodes, keys, init Job and
    /// (peer organisations) gateway Service.
    pub per_organization: bool,
}

/// Role rules: (apiGroup, resource, verbs).
pub type LauncherRules = &'static [(&'static str, &'static str, &'static [&'static str])];

/// Where a `kubernetes` chaincode listens, and the port of its Service.
pub const CHAINCODE_PORT: u16 = 9999;

/// The Deployment and Service of chaincode `name`: `chaincode-<name>`.
pub fn chaincode_service(name: &str) -> String {
    crate::nodes::service_name(&format!("chaincode-{name}"))
}

/// The `app.kubernetes.io/instance` label of a network's objects.
pub fn instance(spec: &NetworkSpec) -> String {
    label(&spec.name)
}

/// The address the peers dial for each `kubernetes` chaincode.
pub(crate) fn chaincode_services(spec: &NetworkSpec) -> BTreeMap<String, String> {
    spec.chaincodes
        .iter()
        .filter(|c| matches!(c.launcher, LauncherSpec::Kubernetes { .. }))
        .map(|c| {
            (
                c.name.clone(),
                format!("{}:{CHAINCODE_PORT}", chaincode_service(&c.name)),
            )
        })
        .collect()
}

/// What was written.
#[derive(Debug, Clone)]
pub struct KubernetesProject {
    pub files: Vec<PathBuf>,
    pub network_dir: NetworkDir,
    /// The gateway peer and the Service exposing it.
    pub gateway: Node,
    pub gateway_service: String,
    pub init: String,
}

/// Names the Kubernetes objects and label values weft writes carry:
/// lower-case letters, digits and `-`.
pub(crate) fn label(text: &str) -> String {
    crate::nodes::service_name(text)
}

/// A directory of the network directory as one ConfigMap or Secret.
#[derive(Debug, Clone)]
pub(crate) struct Bundle {
    /// Relative to the network directory, `/`-separated (`""`: its root).
    pub(crate) dir: String,
    pub(crate) name: String,
    pub(crate) files: BTreeMap<String, Vec<u8>>,
    pub(crate) secret: bool,
}

/// Refuses to write over a network directory of another network, or one
/// written for another layout of namespaces (its certificates name the
/// nodes as that layout dials them); marks it with this one's. Peers may
/// come and go: identities are kept and new ones issued.
pub(crate) fn check_existing(
    dir: &NetworkDir,
    spec: &NetworkSpec,
    output: &Path,
) -> Result<(), NetworkError> {
    let marker = dir.root().join("kubernetes-layout");
    let layout = match dir.reach() {
        Reach::KubernetesPerOrganization => "a namespace per organisation",
        _ => "one namespace",
    };
    if dir.exists() {
        let (existing, _) = dir.load_spec()?;
        let identities = |spec: &NetworkSpec| -> Vec<(String, String, String)> {
            spec.organizations
                .iter()
                .map(|o| (o.name.clone(), o.msp_id.clone(), o.domain.clone()))
                .collect()
        };
        if identities(&existing) != identities(spec) || existing.orderers != spec.orderers {
            return Err(NetworkError::Refused(format!(
                "{} holds another network (its organisations or orderers differ); choose another --output, or delete it first",
                output.display()
            )));
        }
        let written = std::fs::read_to_string(&marker).unwrap_or_default();
        if !written.is_empty() && written.trim() != layout {
            return Err(NetworkError::Refused(format!(
                "{} was written for {} (its certificates name the nodes so); choose another --output for {layout}",
                output.display(),
                written.trim()
            )));
        }
    }
    std::fs::create_dir_all(dir.root()).map_err(|e| NetworkError::io(dir.root(), e))?;
    write_atomic(&marker, format!("{layout}\n").as_bytes())
}

/// The spec of `spec_text`, refused where a cluster cannot run it.
pub(crate) fn checked_spec(
    spec_text: &str,
    origin: &str,
    builtins: &[String],
) -> Result<NetworkSpec, NetworkError> {
    let spec = NetworkSpec::from_yaml(spec_text, origin)?;
    crate::up::check_builtins(&spec, builtins, origin)?;
    check(&spec, origin)?;
    Ok(spec)
}

/// Refuses what the Kubernetes objects cannot carry yet, naming it.
fn check(spec: &NetworkSpec, origin: &str) -> Result<(), NetworkError> {
    crate::compose::check_image(spec, origin)?;
    let refuse = |what: &str, instead: &str| {
        Err(NetworkError::Refused(format!(
            "{origin}: {what} is not yet deployed to Kubernetes; {instead}"
        )))
    };
    if spec.certificate_authorities {
        return refuse(
            "`certificateAuthorities: true`",
            "remove it to use cryptogen-style material",
        );
    }
    if spec.rest.as_ref().is_some_and(|rest| rest.enabled) {
        return refuse(
            "the REST gateway (`rest:`)",
            "remove `rest:` and run `weft rest start` against the exposed gateway peer",
        );
    }
    if !spec.hosts.is_empty() {
        return refuse(
            "`hosts:` (nodes placed on machines)",
            "the cluster places pods; remove `hosts:`",
        );
    }
    if !spec.event_sinks.is_empty() {
        return refuse(
            "`eventSinks:`",
            "remove them and run `weft events sink` against the network",
        );
    }
    for chaincode in &spec.chaincodes {
        if matches!(chaincode.launcher, LauncherSpec::Docker { .. }) {
            return refuse(
                &format!("chaincode {}'s docker launcher", chaincode.name),
                "run the chaincode as a service in the cluster and declare it `external: {address: <service>:<port>}`",
            );
        }
        let files = !chaincode.indexes.is_empty()
            || chaincode.collections_config.is_some()
            || matches!(
                chaincode.launcher,
                LauncherSpec::External {
                    tls_root_ca: Some(_),
                    ..
                }
            );
        if files {
            return refuse(
                &format!(
                    "chaincode {}'s files (indexes, collections, TLS root)",
                    chaincode.name
                ),
                "remove them from the spec",
            );
        }
    }
    Ok(())
}

/// Writes the network directory and the objects.
/// `origin` names the spec in errors; built-in launchers must name one of
/// `builtins`.
pub fn write(
    spec_text: &str,
    origin: &str,
    builtins: &[String],
    options: &KubernetesOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<KubernetesProject, NetworkError> {
    let spec = checked_spec(spec_text, origin, builtins)?;
    if let Some(namespace) = &options.namespace
        && label(namespace) != *namespace
    {
        return Err(NetworkError::Refused(format!(
            "namespace {namespace:?}: a namespace is a DNS label (lower-case letters, digits and '-', at most 63), such as {:?}",
            label(namespace)
        )));
    }
    let launches = !chaincode_services(&spec).is_empty();
    if options.per_organization && (options.podman || options.namespace.is_some()) {
        return Err(NetworkError::Refused(
            "--per-organization names each namespace after its organisation (org1, orderer, …): drop --namespace and --podman".into(),
        ));
    }
    if !options.podman && !options.per_organization && options.namespace.is_none() && launches {
        return Err(NetworkError::Refused(format!(
            "{origin}: the kubernetes launcher's RoleBinding names the namespace its ServiceAccount lives in; give --namespace"
        )));
    }
    if options.podman && launches {
        return Err(NetworkError::Refused(format!(
            "{origin}: the kubernetes launcher creates chaincode workloads through the Kubernetes API, which podman lacks; in the podman variant run the chaincode as a service and declare it `external`"
        )));
    }
    let output = absolute(&options.cluster.output);
    let reach = if options.per_organization {
        Reach::KubernetesPerOrganization
    } else {
        Reach::Kubernetes
    };
    let dir = NetworkDir::new(output.join("network")).reached_from(reach);
    let gateway = gateway_node(
        &spec,
        &dir.nodes(&spec),
        options.cluster.gateway_org.as_deref(),
    )?;
    check_existing(&dir, &spec, &output)?;
    dir.store_spec(spec_text, Path::new(crate::compose::SPEC_MOUNT))?;
    prepare::prepare(
        &dir,
        &spec,
        Path::new(crate::compose::SPEC_MOUNT),
        &chaincode_services(&spec),
        progress,
    )?;
    let nodes = dir.nodes(&spec);
    let mut files = Vec::new();
    let gateway_service = format!("{}-gateway", instance(&spec));
    let init = format!("{}-init", instance(&spec));
    if options.per_organization {
        for (msp_id, name) in organizations(&spec) {
            let namespace = crate::nodes::organization_namespace(&name);
            let scoped = KubernetesOptions {
                namespace: Some(namespace.clone()),
                ..options.clone()
            };
            let objects = Objects::scoped(&spec, &dir, &scoped, Some(msp_id.clone()))?;
            let own: Vec<Node> = nodes
                .iter()
                .filter(|n| n.msp_id == msp_id)
                .cloned()
                .collect();
            let gateway = own
                .iter()
                .find(|n| matches!(n.role, Role::Peer { index: 0, .. }))
                .cloned();
            files.extend(objects.write_cluster(
                &output.join("kubernetes").join(&namespace),
                &own,
                gateway.as_ref().map(|g| (g, gateway_service.as_str())),
                &init,
            )?);
        }
    } else if options.podman {
        let objects = Objects::new(&spec, &dir, options)?;
        // The claims apart: `podman kube play` refuses a claim whose volume
        // exists, so the pods' file is played again after `kube down`.
        let claims: Vec<Value> = nodes.iter().map(|node| objects.claim(node)).collect();
        let file = output.join("podman-claims.yaml");
        write_documents(&file, &claims, "podman kube play")?;
        files.push(file);
        let mut docs = Vec::new();
        for node in &nodes {
            docs.extend(objects.podman_bundles(&object_of(node), &objects.node_dirs(node)?));
            docs.push(objects.podman_pod(node, node.name == gateway.name)?);
        }
        docs.extend(objects.podman_bundles(&init, &objects.init_dirs()?));
        docs.push(objects.podman_init(&init)?);
        let file = output.join("podman.yaml");
        write_documents(&file, &docs, "podman kube play")?;
        files.push(file);
    } else {
        let objects = Objects::new(&spec, &dir, options)?;
        files.extend(objects.write_cluster(
            &output.join("kubernetes"),
            &nodes,
            Some((&gateway, &gateway_service)),
            &init,
        )?);
    }
    progress(&format!(
        "{} file(s) in {}: {} node(s), gateway {} ({})",
        files.len(),
        output.display(),
        nodes.len(),
        gateway.name,
        if options.podman {
            format!("hostPort 127.0.0.1:{}", gateway.port)
        } else {
            format!(
                "Service {gateway_service}, {}",
                options.cluster.exposure.service_type()
            )
        }
    ));
    Ok(KubernetesProject {
        files,
        network_dir: dir,
        gateway,
        gateway_service,
        init,
    })
}

/// The first peer of `org` (the spec's first organisation without one).
pub(crate) fn gateway_node(
    spec: &NetworkSpec,
    nodes: &[Node],
    org: Option<&str>,
) -> Result<Node, NetworkError> {
    let org = match org {
        None => spec.organizations.first(),
        Some(name) => Some(spec.organization(name).ok_or_else(|| {
            NetworkError::Refused(format!(
                "--gateway-org {name}: no such organisation (organisations: {})",
                spec.organizations
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
    };
    org.and_then(|org| {
        nodes
            .iter()
            .find(|n| n.msp_id == org.msp_id && matches!(n.role, Role::Peer { index: 0, .. }))
    })
    .cloned()
    .ok_or_else(|| NetworkError::Refused("the network has no peer to expose".into()))
}

/// Writes YAML documents with a header saying how to apply them.
fn write_documents(file: &Path, docs: &[Value], apply: &str) -> Result<(), NetworkError> {
    let mut text = format!(
        "# Written by `weft deploy k8s`; regenerate rather than edit.\n# Apply: {apply} {}\n",
        file.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    );
    for doc in docs {
        text.push_str("---\n");
        text.push_str(
            &serde_saphyr::to_string(doc)
                .map_err(|e| NetworkError::Material(format!("{}: {e}", file.display())))?,
        );
    }
    write_atomic(file, text.as_bytes())
}

/// Everything the objects of one network share.
pub(crate) struct Objects<'a> {
    spec: &'a NetworkSpec,
    dir: &'a NetworkDir,
    options: &'a KubernetesOptions,
    /// The organisation (MSP ID) whose objects these are, in a namespace
    /// of its own; None: the whole network.
    scope: Option<String>,
    /// `app.kubernetes.io/instance`: the network's name as a label.
    pub(crate) instance: String,
    pub(crate) bundles: BTreeMap<String, Bundle>,
}

impl<'a> Objects<'a> {
    pub(crate) fn new(
        spec: &'a NetworkSpec,
        dir: &'a NetworkDir,
        options: &'a KubernetesOptions,
    ) -> Result<Self, NetworkError> {
        Self::scoped(spec, dir, options, None)
    }

    /// The objects of organisation `scope` (MSP ID) only, or of the whole
    /// network.
    pub(crate) fn scoped(
        spec: &'a NetworkSpec,
        dir: &'a NetworkDir,
        options: &'a KubernetesOptions,
        scope: Option<String>,
    ) -> Result<Self, NetworkError> {
        let mut objects = Objects {
            spec,
            dir,
            options,
            scope,
            instance: label(&spec.name),
            bundles: BTreeMap::new(),
        };
        let mut wanted = BTreeSet::new();
        for node in dir.nodes(spec) {
            if objects.in_scope(&node.msp_id) {
                wanted.extend(objects.node_dirs(&node)?);
            }
        }
        wanted.extend(objects.init_dirs()?);
        for relative in wanted {
            let bundle = objects.read_bundle(&relative)?;
            objects.bundles.insert(relative, bundle);
        }
        Ok(objects)
    }

    pub(crate) fn labels(&self, component: &str, node: Option<&Node>) -> Value {
        let mut labels = json!({
            "app.kubernetes.io/name": "weft",
            "app.kubernetes.io/instance": self.instance,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "weft",
        });
        if let Some(node) = node {
            labels["weft.dev/node"] = json!(object_of(node));
            labels["weft.dev/msp-id"] = json!(label(&node.msp_id));
        }
        labels
    }

    pub(crate) fn metadata(&self, name: &str, component: &str, node: Option<&Node>) -> Value {
        let mut metadata = json!({"name": name, "labels": self.labels(component, node)});
        if let (Some(namespace), false) = (&self.options.namespace, self.options.podman) {
            metadata["namespace"] = json!(namespace);
        }
        metadata
    }

    /// The directories `node` reads: its own material, its config, every
    /// organisation's TLS CA and (peers) the other peers' certificates.
    pub(crate) fn node_dirs(&self, node: &Node) -> Result<Vec<String>, NetworkError> {
        let organizations = self.dir.organizations();
        let mut dirs = self.tree(&node.material_dir(&organizations))?;
        dirs.push(self.relative(&self.dir.node_dir(&node.name))?);
        for root in tls_roots(self.spec, self.dir) {
            if let Some(parent) = root.parent() {
                dirs.push(self.relative(parent)?);
            }
        }
        if matches!(node.role, Role::Peer { .. }) {
            for other in self.dir.nodes(self.spec) {
                if matches!(other.role, Role::Peer { .. }) && other.name != node.name {
                    let certs = other.material_dir(&organizations).join("msp/signcerts");
                    dirs.push(self.relative(&certs)?);
                }
            }
        }
        dirs.sort();
        dirs.dedup();
        Ok(dirs)
    }

    /// What `weft deploy init` reads: the spec, the genesis blocks and each
    /// organisation's MSP, CA certificates and Admin (no node's keys).
    pub(crate) fn init_dirs(&self) -> Result<Vec<String>, NetworkError> {
        let mut dirs = vec![String::new(), "channel-artifacts".to_owned()];
        let scoped_dir = self.scope.as_ref().map(|msp_id| {
            let organizations = self.dir.organizations();
            let orderer = &self.spec.orderers.organization;
            match self.spec.organizations.iter().find(|o| &o.msp_id == msp_id) {
                Some(org) => layout::peer_org_dir(&organizations, &org.domain),
                None => layout::orderer_org_dir(&organizations, &orderer.domain),
            }
        });
        for kind in ["peerOrganizations", "ordererOrganizations"] {
            let parent = self.dir.organizations().join(kind);
            for org in read_dir(&parent)? {
                if !org.is_dir() || scoped_dir.as_ref().is_some_and(|own| *own != org) {
                    continue;
                }
                for part in ["msp", "ca", "tlsca"] {
                    dirs.extend(self.tree(&org.join(part))?);
                }
                for user in read_dir(&org.join("users"))? {
                    let admin = user
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("Admin@"));
                    if admin {
                        dirs.extend(self.tree(&user)?);
                    }
                }
            }
        }
        dirs.sort();
        dirs.dedup();
        Ok(dirs)
    }

    /// `path` and every directory under it that holds files, relative.
    fn tree(&self, path: &Path) -> Result<Vec<String>, NetworkError> {
        let mut dirs = Vec::new();
        let entries = read_dir(path)?;
        if entries.iter().any(|e| e.is_file()) {
            dirs.push(self.relative(path)?);
        }
        for entry in entries {
            if entry.is_dir() {
                dirs.extend(self.tree(&entry)?);
            }
        }
        Ok(dirs)
    }

    fn relative(&self, path: &Path) -> Result<String, NetworkError> {
        path.strip_prefix(self.dir.root())
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|_| {
                NetworkError::Material(format!(
                    "{} is outside the network directory",
                    path.display()
                ))
            })
    }

    /// The files of directory `relative` that pods may read: CA private
    /// keys stay behind, the root holds only the spec, a node's directory
    /// only its config.
    fn read_bundle(&self, relative: &str) -> Result<Bundle, NetworkError> {
        let path = self.dir.root().join(relative);
        let ca_dir = path.file_name().is_some_and(|n| n == "ca" || n == "tlsca");
        let mut files = BTreeMap::new();
        let mut secret = false;
        for entry in read_dir(&path)? {
            if !entry.is_file() {
                continue;
            }
            let name = entry
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let private = name.ends_with("_sk") || name.ends_with(".key");
            let wanted = match relative {
                "" => name == "network.yaml",
                _ if relative.starts_with("nodes/") => name == "config.yaml",
                _ => !(ca_dir && private),
            };
            if !wanted {
                continue;
            }
            secret |= private;
            let bytes = std::fs::read(&entry).map_err(|e| NetworkError::io(&entry, e))?;
            files.insert(name, bytes);
        }
        let digest: String = weft_crypto::sha256(relative.as_bytes())[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let stem = if relative.is_empty() {
            "spec".to_owned()
        } else {
            object_name(&relative.replace("organizations/", ""))
        };
        Ok(Bundle {
            dir: relative.to_owned(),
            name: format!("{}-{stem}-{digest}", self.instance),
            files,
            secret,
        })
    }

    /// The ConfigMaps and Secrets.
    pub(crate) fn bundles(&self) -> Vec<Value> {
        self.bundles
            .values()
            .map(|bundle| self.bundle_doc(bundle, &bundle.name, false))
            .collect()
    }

    /// Pod `pod`'s own copies of `dirs`, all ConfigMaps: podman writes a
    /// ConfigMap's files again for every pod playing it, so a copy shared
    /// with a pod already running could be read half-written.
    fn podman_bundles(&self, pod: &str, dirs: &[String]) -> Vec<Value> {
        dirs.iter()
            .filter_map(|dir| self.bundles.get(dir))
            .map(|bundle| self.bundle_doc(bundle, &podman_copy(pod, bundle), true))
            .collect()
    }

    pub(crate) fn bundle_doc(&self, bundle: &Bundle, name: &str, podman: bool) -> Value {
        let mut doc = json!({
            "apiVersion": "v1",
            "metadata": self.metadata(name, "material", None),
        });
        let mut text = serde_json::Map::new();
        let mut binary = serde_json::Map::new();
        for (name, bytes) in &bundle.files {
            match (bundle.secret && !podman, std::str::from_utf8(bytes)) {
                (false, Ok(utf8)) => text.insert(name.clone(), json!(utf8)),
                _ => binary.insert(name.clone(), json!(weft_crypto::pem::base64(bytes))),
            };
        }
        if bundle.secret && !podman {
            doc["kind"] = json!("Secret");
            doc["type"] = json!("Opaque");
            doc["data"] = Value::Object(binary);
        } else {
            doc["kind"] = json!("ConfigMap");
            if !text.is_empty() {
                doc["data"] = Value::Object(text);
            }
            if !binary.is_empty() {
                doc["binaryData"] = Value::Object(binary);
            }
        }
        doc
    }

    pub(crate) fn service_account(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": self.metadata(&format!("{}-node", self.instance), "node", None),
            "automountServiceAccountToken": false,
        })
    }

    pub(crate) fn claim_name(node: &Node) -> String {
        format!("data-{}", object_of(node))
    }

    pub(crate) fn claim(&self, node: &Node) -> Value {
        let mut spec = json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": self.options.cluster.storage}},
        });
        if let Some(class) = &self.options.cluster.storage_class {
            spec["storageClassName"] = json!(class);
        }
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": self.metadata(&Self::claim_name(node), node.kind(), Some(node)),
            "spec": spec,
        })
    }

    fn ports(node: &Node) -> Vec<(String, u16)> {
        let mut ports = vec![("grpc".to_owned(), node.port)];
        ports.extend(node.operations_port.map(|p| ("operations".to_owned(), p)));
        ports
    }

    pub(crate) fn service(&self, node: &Node) -> Value {
        let ports: Vec<Value> = Self::ports(node)
            .into_iter()
            .map(|(name, port)| json!({"name": name, "port": port, "targetPort": port}))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(&object_of(node), node.kind(), Some(node)),
            "spec": {
                "type": "ClusterIP",
                "selector": {"weft.dev/node": object_of(node), "app.kubernetes.io/instance": self.instance},
                "ports": ports,
            },
        })
    }

    pub(crate) fn gateway_service(&self, node: &Node, name: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(name, "gateway", Some(node)),
            "spec": {
                "type": self.options.cluster.exposure.service_type(),
                "selector": {"weft.dev/node": object_of(node), "app.kubernetes.io/instance": self.instance},
                "ports": [{"name": "grpc", "port": node.port, "targetPort": node.port}],
            },
        })
    }

    /// The node's probe: its operations service's `/healthz` where it has a
    /// plain-HTTP one, else whether its gRPC port accepts connections.
    fn probe(&self, node: &Node, delay: u32) -> Value {
        let mut probe = match (node.operations_port, node.operations_tls) {
            (Some(port), false) => json!({"httpGet": {"path": "/healthz", "port": port}}),
            _ => json!({"tcpSocket": {"port": node.port}}),
        };
        probe["initialDelaySeconds"] = json!(delay);
        probe["periodSeconds"] = json!(10);
        probe["timeoutSeconds"] = json!(5);
        probe["failureThreshold"] = json!(6);
        probe
    }

    /// (podman creates each directory's mount point in the root
    /// filesystem, which therefore stays writable there.)
    fn container(&self, name: &str, args: Vec<String>, mounts: Vec<Value>, podman: bool) -> Value {
        json!({
            "name": name,
            "image": self.options.cluster.image,
            "imagePullPolicy": "IfNotPresent",
            "args": args,
            "volumeMounts": mounts,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": !podman,
                "capabilities": {"drop": ["ALL"]},
            },
        })
    }

    /// The volumes and mounts that show `dirs` at /network: one projected
    /// volume (a cluster), or a volume per directory of pod `podman`'s own
    /// copies.
    fn network_volumes(&self, dirs: &[String], podman: Option<&str>) -> (Vec<Value>, Vec<Value>) {
        let bundles: Vec<&Bundle> = dirs.iter().filter_map(|d| self.bundles.get(d)).collect();
        if let Some(pod) = podman {
            let mut volumes = Vec::new();
            let mut mounts = Vec::new();
            for (i, bundle) in bundles.iter().enumerate() {
                let name = format!("network-{i}");
                let items: Vec<Value> = bundle
                    .files
                    .keys()
                    .map(|f| json!({"key": f, "path": f}))
                    .collect();
                volumes.push(json!({"name": name, "configMap": {"name": podman_copy(pod, bundle), "items": items}}));
                let path = if bundle.dir.is_empty() {
                    NETWORK_MOUNT.to_owned()
                } else {
                    format!("{NETWORK_MOUNT}/{}", bundle.dir)
                };
                // Writable, for the mount points of the directories nested
                // in it (its files stay root's, out of the node's reach).
                mounts.push(json!({"name": name, "mountPath": path}));
            }
            return (volumes, mounts);
        }
        let sources: Vec<Value> = bundles
            .iter()
            .map(|bundle| {
                let items: Vec<Value> = bundle
                    .files
                    .keys()
                    .map(|f| {
                        let path = if bundle.dir.is_empty() {
                            f.clone()
                        } else {
                            format!("{}/{f}", bundle.dir)
                        };
                        json!({"key": f, "path": path})
                    })
                    .collect();
                let kind = if bundle.secret { "secret" } else { "configMap" };
                json!({kind: {"name": bundle.name, "items": items}})
            })
            .collect();
        (
            vec![
                json!({"name": "network", "projected": {"sources": sources, "defaultMode": 0o440}}),
            ],
            vec![json!({"name": "network", "mountPath": NETWORK_MOUNT, "readOnly": true})],
        )
    }

    fn node_pod_spec(
        &self,
        node: &Node,
        podman: bool,
        gateway: bool,
    ) -> Result<Value, NetworkError> {
        let dirs = self.node_dirs(node)?;
        let (mut volumes, mut mounts) =
            self.network_volumes(&dirs, podman.then_some(object_of(node).as_str()));
        volumes.push(
            json!({"name": "data", "persistentVolumeClaim": {"claimName": Self::claim_name(node)}}),
        );
        mounts.push(json!({"name": "data", "mountPath": DATA_MOUNT}));
        let args = vec![
            node.kind().to_owned(),
            "start".to_owned(),
            "--config".to_owned(),
            format!("{NETWORK_MOUNT}/nodes/{}/config.yaml", node.name),
        ];
        let mut container = self.container(node.kind(), args, mounts, podman);
        let ports: Vec<Value> = Self::ports(node)
            .into_iter()
            .map(|(name, port)| {
                let mut entry = json!({"name": name, "containerPort": port});
                if podman && gateway && name == "grpc" {
                    entry["hostPort"] = json!(port);
                    entry["hostIP"] = json!("127.0.0.1");
                }
                entry
            })
            .collect();
        container["ports"] = json!(ports);
        // podman runs probes through a shell, which weft's image lacks.
        if !podman {
            container["readinessProbe"] = self.probe(node, 5);
            container["livenessProbe"] = self.probe(node, 30);
        }
        let memory = match node.role {
            Role::Orderer { .. } => "512Mi",
            Role::Peer { .. } => "1Gi",
        };
        container["resources"] = json!({
            "requests": {"cpu": "250m", "memory": "128Mi"},
            "limits": {"memory": memory},
        });
        Ok(self.pod_spec(vec![container], volumes, podman, "Always"))
    }

    fn pod_spec(
        &self,
        containers: Vec<Value>,
        volumes: Vec<Value>,
        podman: bool,
        restart: &str,
    ) -> Value {
        let mut spec = json!({
            "restartPolicy": restart,
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": 15,
            "securityContext": {
                "runAsUser": IMAGE_UID,
                "runAsGroup": IMAGE_UID,
                "runAsNonRoot": true,
                "fsGroup": IMAGE_UID,
            },
            "containers": containers,
            "volumes": volumes,
        });
        if !podman {
            spec["serviceAccountName"] = json!(format!("{}-node", self.instance));
        }
        spec
    }

    pub(crate) fn deployment(&self, node: &Node) -> Result<Value, NetworkError> {
        let labels = self.labels(node.kind(), Some(node));
        let spec = self.node_pod_spec(node, false, false)?;
        Ok(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata(&object_of(node), node.kind(), Some(node)),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"weft.dev/node": object_of(node), "app.kubernetes.io/instance": self.instance}},
                "template": {"metadata": {"labels": labels}, "spec": spec},
            },
        }))
    }

    fn podman_pod(&self, node: &Node, gateway: bool) -> Result<Value, NetworkError> {
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": self.metadata(&object_of(node), node.kind(), Some(node)),
            "spec": self.node_pod_spec(node, true, gateway)?,
        }))
    }

    fn init_pod_spec(&self, podman: Option<&str>) -> Result<Value, NetworkError> {
        let dirs = self.init_dirs()?;
        let (volumes, mounts) = self.network_volumes(&dirs, podman);
        let podman = podman.is_some();
        let args = ["deploy", "init", "--dir", NETWORK_MOUNT, "--timeout", "300"]
            .map(str::to_owned)
            .to_vec();
        let mut args = args;
        match &self.scope {
            None => args.extend(["--reach".to_owned(), "kubernetes".to_owned()]),
            Some(msp_id) => args.extend([
                "--reach".to_owned(),
                "kubernetes-per-organization".to_owned(),
                "--organization".to_owned(),
                msp_id.clone(),
            ]),
        }
        let mut container = self.container("init", args, mounts, podman);
        container["resources"] = json!({
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        });
        let mut spec = self.pod_spec(vec![container], volumes, podman, "OnFailure");
        if !podman && self.launches() {
            // The launcher's API calls: the init Job's own account and token.
            spec["serviceAccountName"] = json!(self.launcher_account());
            spec["automountServiceAccountToken"] = json!(true);
        }
        Ok(spec)
    }

    /// Whether the spec has chaincodes for the Kubernetes launcher this
    /// init Job starts (a peer organisation's, or the whole network's).
    fn launches(&self) -> bool {
        let peer_org = self
            .scope
            .as_ref()
            .is_none_or(|msp_id| self.spec.organizations.iter().any(|o| &o.msp_id == msp_id));
        peer_org && !chaincode_services(self.spec).is_empty()
    }

    fn in_scope(&self, msp_id: &str) -> bool {
        self.scope.as_ref().is_none_or(|own| own == msp_id)
    }

    /// Writes the cluster's objects of `nodes` into `manifests`: base,
    /// material, a file per node, the gateway Service and the init Job.
    fn write_cluster(
        &self,
        manifests: &Path,
        nodes: &[Node],
        gateway: Option<(&Node, &str)>,
        init: &str,
    ) -> Result<Vec<PathBuf>, NetworkError> {
        let mut files = Vec::new();
        let mut write = |name: &str, docs: Vec<Value>| -> Result<(), NetworkError> {
            let file = manifests.join(name);
            write_documents(&file, &docs, "kubectl apply -f")?;
            files.push(file);
            Ok(())
        };
        let mut base = Vec::new();
        if let Some(namespace) = &self.options.namespace {
            base.push(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": self.labels("namespace", None)},
            }));
        }
        base.push(self.service_account());
        base.extend(self.launcher_rbac());
        write("00-base.yaml", base)?;
        write("10-material.yaml", self.bundles())?;
        for node in nodes {
            write(
                &format!("20-{}.yaml", crate::nodes::service_name(&node.name)),
                vec![self.claim(node), self.service(node), self.deployment(node)?],
            )?;
        }
        if let Some((node, name)) = gateway {
            write("30-gateway.yaml", vec![self.gateway_service(node, name)])?;
        }
        write("40-init.yaml", vec![self.init_job(init)?])?;
        Ok(files)
    }

    fn launcher_account(&self) -> String {
        format!("{}-launcher", self.instance)
    }

    /// The init Job's ServiceAccount, Role and RoleBinding, where the spec
    /// has `kubernetes` chaincodes: exactly the launcher's verbs on
    /// Deployments and Services of the namespace.
    pub(crate) fn launcher_rbac(&self) -> Vec<Value> {
        if !self.launches() {
            return Vec::new();
        }
        let name = self.launcher_account();
        let rules: Vec<Value> = self
            .options
            .cluster
            .launcher_rules
            .iter()
            .map(|(group, resource, verbs)| {
                json!({"apiGroups": [group], "resources": [resource], "verbs": verbs})
            })
            .collect();
        let mut subject = json!({"kind": "ServiceAccount", "name": name});
        if let Some(namespace) = &self.options.namespace {
            subject["namespace"] = json!(namespace);
        }
        vec![
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": self.metadata(&name, "launcher", None),
                "automountServiceAccountToken": false,
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": self.metadata(&name, "launcher", None),
                "rules": rules,
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": self.metadata(&name, "launcher", None),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [subject],
            }),
        ]
    }

    pub(crate) fn init_job(&self, name: &str) -> Result<Value, NetworkError> {
        Ok(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self.metadata(name, "init", None),
            "spec": {
                "backoffLimit": 20,
                "template": {
                    "metadata": {"labels": self.labels("init", None)},
                    "spec": self.init_pod_spec(None)?,
                },
            },
        }))
    }

    fn podman_init(&self, name: &str) -> Result<Value, NetworkError> {
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": self.metadata(name, "init", None),
            "spec": self.init_pod_spec(Some(name))?,
        }))
    }
}

/// The name of a node's objects (Deployment, Service, pod): its DNS label.
fn object_of(node: &Node) -> String {
    crate::nodes::service_name(&node.name)
}

/// Every organisation (MSP ID, name): the peer organisations, then the
/// orderers'.
fn organizations(spec: &NetworkSpec) -> Vec<(String, String)> {
    let orderer = &spec.orderers.organization;
    spec.organizations
        .iter()
        .map(|o| (o.msp_id.clone(), o.name.clone()))
        .chain([(orderer.msp_id.clone(), orderer.name.clone())])
        .collect()
}

/// Pod `pod`'s copy of `bundle` (podman).
fn podman_copy(pod: &str, bundle: &Bundle) -> String {
    let name = format!("{pod}-{}", bundle.name);
    if name.len() <= 253 {
        return name;
    }
    let digest = &bundle.name[bundle.name.len().saturating_sub(8)..];
    format!("{pod}-{digest}")
}

/// `text` in the characters of an object's name (lower-case letters,
/// digits, `-`), at most 180 of them.
fn object_name(text: &str) -> String {
    let mut name = String::new();
    for c in text.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(180);
    name.trim_end_matches('-').to_owned()
}

/// The entries of `path`, sorted; none where it does not exist.
fn read_dir(path: &Path) -> Result<Vec<PathBuf>, NetworkError> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetworkError::io(path, e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|e| NetworkError::io(path, e))?.path());
    }
    paths.sort();
    Ok(paths)
}
