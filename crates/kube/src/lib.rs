//! The Kubernetes chaincode launcher (spec `launcher: {kubernetes: {image:
//! …}}`): each chaincode runs as chaincode-as-a-service in a Deployment of
//! its own behind a ClusterIP Service, created through the Kubernetes API,
//! so the peers dial it and need neither a Docker socket nor API access.
//!
//! [`Launcher::ensure`] reads the Deployment and Service, creates what is
//! missing and applies (server-side) what exists — a new image, command or
//! chaincode version rolls the Deployment — then watches the Deployment
//! until its new pods are available. [`Launcher::collect_garbage`] deletes
//! the workloads of the network (owner labels) whose chaincode left the
//! spec. The calls need exactly the verbs of [`ROLE_RULES`].
//!
//! Kept in its own crate: `kube` and `k8s-openapi` compile only here.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

/// Where a chaincode server listens in its pod.
pub const PORT: u16 = 9999;

/// The API verbs the launcher uses, as Role rules (apiGroups, resources,
/// verbs): what `weft deploy k8s` grants the init Job's ServiceAccount.
pub const ROLE_RULES: &[(&str, &str, &[&str])] = &[
    (
        "apps",
        "deployments",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    (
        "",
        "services",
        &["get", "list", "create", "patch", "delete"],
    ),
];

/// The label naming a workload's chaincode (with the network's
/// `app.kubernetes.io/instance`, the owner labels garbage collection reads).
pub const CHAINCODE_LABEL: &str = "weft.dev/chaincode";

/// The field manager of weft's server-side applies.
const MANAGER: &str = "weft";

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("no Kubernetes API: {0} (in a pod, the ServiceAccount's token must be mounted)")]
    Config(String),
    #[error("chaincode {chaincode}: {message}")]
    Workload { chaincode: String, message: String },
}

/// One chaincode's workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The chaincode's name (its `CHAINCODE_ID`, as weft's peers name its package).
    pub chaincode: String,
    pub version: String,
    pub image: String,
    /// Arguments for the image's entrypoint (none: its own command);
    /// `{chaincode_address}` and `{chaincode_id}` are filled in.
    pub command: Vec<String>,
    /// The Deployment's and Service's name: the host the peers dial.
    pub service: String,
    /// The network's `app.kubernetes.io/instance` label.
    pub instance: String,
}

impl Workload {
    fn labels(&self) -> Value {
        json!({
            "app.kubernetes.io/name": "weft",
            "app.kubernetes.io/instance": self.instance,
            "app.kubernetes.io/component": "chaincode",
            "app.kubernetes.io/managed-by": "weft",
            CHAINCODE_LABEL: self.service,
        })
    }

    fn selector(&self) -> Value {
        json!({"app.kubernetes.io/instance": self.instance, CHAINCODE_LABEL: self.service})
    }

    /// The Deployment: one pod serving the chaincode on [`PORT`], as an
    /// unprivileged user with no API token; the chaincode's version is in
    /// the pod template, so a new version rolls it.
    pub fn deployment(&self) -> Result<Deployment, LaunchError> {
        let address = format!("0.0.0.0:{PORT}");
        let args: Vec<String> = self
            .command
            .iter()
            .map(|arg| {
                arg.replace("{chaincode_address}", &address)
                    .replace("{chaincode_id}", &self.chaincode)
            })
            .collect();
        let mut container = json!({
            "name": "chaincode",
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "env": [
                {"name": "CHAINCODE_SERVER_ADDRESS", "value": address},
                {"name": "CHAINCODE_ID", "value": self.chaincode},
                {"name": "CORE_CHAINCODE_ID_NAME", "value": self.chaincode},
            ],
            "ports": [{"name": "chaincode", "containerPort": PORT}],
            "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 5},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
            "securityContext": {
                "runAsNonRoot": true,
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
            },
        });
        if !args.is_empty() {
            container["args"] = json!(args);
        }
        self.typed(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self.service, "labels": self.labels()},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": self.selector()},
                "template": {
                    "metadata": {
                        "labels": self.labels(),
                        "annotations": {"weft.dev/chaincode-version": self.version},
                    },
                    "spec": {
                        "automountServiceAccountToken": false,
                        "enableServiceLinks": false,
                        "containers": [container],
                    },
                },
            },
        }))
    }

    /// The ClusterIP Service the peers dial (`<service>:9999`).
    pub fn service(&self) -> Result<Service, LaunchError> {
        self.typed(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.service, "labels": self.labels()},
            "spec": {
                "type": "ClusterIP",
                "selector": self.selector(),
                "ports": [{"name": "chaincode", "port": PORT, "targetPort": PORT}],
            },
        }))
    }

    fn typed<T: serde::de::DeserializeOwned>(&self, value: Value) -> Result<T, LaunchError> {
        serde_json::from_value(value).map_err(|e| LaunchError::Workload {
            chaincode: self.chaincode.clone(),
            message: e.to_string(),
        })
    }
}

/// A client of one namespace.
#[derive(Clone)]
pub struct Launcher {
    client: kube::Client,
    namespace: String,
}

impl Launcher {
    /// From the pod's ServiceAccount (or a kubeconfig), in its namespace.
    pub async fn from_environment() -> Result<Self, LaunchError> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| LaunchError::Config(e.to_string()))?;
        let namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config)?;
        Ok(Launcher { client, namespace })
    }

    /// The API server at `url` (`http://127.0.0.1:PORT`), in `namespace`.
    pub fn at(url: &str, namespace: &str) -> Result<Self, LaunchError> {
        let uri = url
            .parse()
            .map_err(|e| LaunchError::Config(format!("{url}: {e}")))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = namespace.to_owned();
        let client = kube::Client::try_from(config)?;
        Ok(Launcher {
            client,
            namespace: namespace.to_owned(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Creates or updates the workload and waits, at most `timeout`, until
    /// its Deployment's new pods are available.
    pub async fn ensure(
        &self,
        workload: &Workload,
        timeout: Duration,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), LaunchError> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let deployment = workload.deployment()?;
        let name = workload.service.as_str();
        let apply = PatchParams::apply(MANAGER).force();
        match deployments.get_opt(name).await? {
            None => {
                deployments
                    .create(&PostParams::default(), &deployment)
                    .await?;
                progress(&format!(
                    "chaincode {}: Deployment {name} created",
                    workload.chaincode
                ));
            }
            Some(_) => {
                deployments
                    .patch(name, &apply, &Patch::Apply(&deployment))
                    .await?;
                progress(&format!(
                    "chaincode {}: Deployment {name} applied",
                    workload.chaincode
                ));
            }
        }
        let service = workload.service()?;
        match services.get_opt(name).await? {
            None => {
                services.create(&PostParams::default(), &service).await?;
            }
            Some(_) => {
                services
                    .patch(name, &apply, &Patch::Apply(&service))
                    .await?;
            }
        }
        tokio::time::timeout(timeout, self.available(&deployments, name))
            .await
            .map_err(|_| LaunchError::Workload {
                chaincode: workload.chaincode.clone(),
                message: format!(
                    "Deployment {name} has no available pod after {}s (kubectl describe deployment {name})",
                    timeout.as_secs()
                ),
            })??;
        progress(&format!(
            "chaincode {}: available at {name}:{PORT}",
            workload.chaincode
        ));
        Ok(())
    }

    /// Watches Deployment `name` until its newest generation is available.
    async fn available(
        &self,
        deployments: &Api<Deployment>,
        name: &str,
    ) -> Result<(), LaunchError> {
        loop {
            let current = deployments.get(name).await?;
            if is_available(&current) {
                return Ok(());
            }
            let version = current
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            let params = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(60);
            let mut events = deployments.watch(&params, &version).await?.boxed();
            while let Some(event) = events.next().await {
                match event? {
                    WatchEvent::Added(d) | WatchEvent::Modified(d) if is_available(&d) => {
                        return Ok(());
                    }
                    WatchEvent::Deleted(_) => {
                        return Err(LaunchError::Workload {
                            chaincode: name.to_owned(),
                            message: format!("Deployment {name} was deleted while starting"),
                        });
                    }
                    // Expired version, or anything else: read again.
                    WatchEvent::Error(_) => break,
                    _ => {}
                }
            }
        }
    }

    /// Deletes the Deployments and Services of network `instance` whose
    /// chaincode is not in `keep` (Service names); returns what it deleted.
    pub async fn collect_garbage(
        &self,
        instance: &str,
        keep: &[String],
    ) -> Result<Vec<String>, LaunchError> {
        let selector = format!("app.kubernetes.io/instance={instance},{CHAINCODE_LABEL}");
        let params = ListParams::default().labels(&selector);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut deleted = Vec::new();
        for deployment in deployments.list(&params).await? {
            let name = deployment.metadata.name.unwrap_or_default();
            if !keep.contains(&name) {
                deployments.delete(&name, &DeleteParams::default()).await?;
                deleted.push(format!("Deployment {name}"));
            }
        }
        for service in services.list(&params).await? {
            let name = service.metadata.name.unwrap_or_default();
            if !keep.contains(&name) {
                services.delete(&name, &DeleteParams::default()).await?;
                deleted.push(format!("Service {name}"));
            }
        }
        Ok(deleted)
    }
}

/// Whether every replica of the Deployment's newest generation is updated
/// and available.
pub fn is_available(deployment: &Deployment) -> bool {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    deployment.status.as_ref().is_some_and(|status| {
        status.observed_generation.unwrap_or(0) >= generation
            && status.updated_replicas.unwrap_or(0) >= wanted
            && status.available_replicas.unwrap_or(0) >= wanted
    })
}
