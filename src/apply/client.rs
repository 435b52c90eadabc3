//! One [`Applier`] per plugin: its (impersonating) client, its field manager, its event
//! recorder. A validated action in, one request (retried in place while transient) out.

use super::audit::action_label;
use super::classify::{Decision, Goal, classify, reached, status_code};
use crate::actions::{Action, PatchType, Severity};
use crate::model::{Gvk, ObjectRef};
use crate::ops::{ApiMetricsLayer, Metrics, PluginLabel};
use crate::retry::Backoff;
use crate::watch::Resources;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Builds the client a plugin's actions go through. With impersonation (the default in a
/// cluster) requests carry `Impersonate-User` for the plugin's service account, so the API
/// server enforces the plugin's RBAC even if kreflex had a bug.
///
/// Every client kreflex uses is built here, so that with [`ScopedClients::with_metrics`]
/// each request any of them sends is counted once (`kreflex_rest_client_*`, see
/// [`ApiMetricsLayer`]).
#[derive(Clone)]
pub struct ScopedClients {
    base: kube::Config,
    impersonate: Option<ImpersonationTemplate>,
    metrics: Option<Metrics>,
}

#[derive(Clone, Debug)]
struct ImpersonationTemplate {
    user: String,
    namespace: String,
    groups: Vec<String>,
}

impl ScopedClients {
    /// Clients that act with kreflex's own identity (no impersonation).
    pub fn unscoped(base: kube::Config) -> Self {
        Self { base: without_client_retries(base), impersonate: None, metrics: None }
    }

    /// Clients impersonating `user_template` (`{namespace}` and `{plugin}` are replaced),
    /// e.g. `system:serviceaccount:{namespace}:kreflex-{plugin}`.
    pub fn impersonating(base: kube::Config, user_template: &str, namespace: &str, groups: Vec<String>) -> Self {
        Self {
            base: without_client_retries(base),
            impersonate: Some(ImpersonationTemplate {
                user: user_template.to_owned(),
                namespace: namespace.to_owned(),
                groups,
            }),
            metrics: None,
        }
    }

    /// Counts the requests of every client built from now on into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The identity a plugin's requests carry, if impersonating.
    pub fn user_for(&self, plugin: &str) -> Option<String> {
        self.impersonate.as_ref().map(|t| t.user.replace("{namespace}", &t.namespace).replace("{plugin}", plugin))
    }

    /// A client for `plugin`.
    pub fn client_for(&self, plugin: &str) -> Result<kube::Client, kube::Error> {
        let mut config = self.base.clone();
        if let Some(t) = &self.impersonate {
            config.auth_info.impersonate = self.user_for(plugin);
            config.auth_info.impersonate_groups = if t.groups.is_empty() {
                None
            } else {
                Some(t.groups.iter().map(|g| g.replace("{namespace}", &t.namespace)).collect())
            };
        }
        self.build(config)
    }

    /// A client with kreflex's own identity (informers, discovery, finalizers, Warning
    /// Events, Leases).
    pub fn own_client(&self) -> Result<kube::Client, kube::Error> {
        self.build(self.base.clone())
    }

    fn build(&self, config: kube::Config) -> Result<kube::Client, kube::Error> {
        let builder = kube::client::ClientBuilder::try_from(config)?;
        Ok(match &self.metrics {
            Some(metrics) => builder.with_layer(&ApiMetricsLayer::new(metrics.clone())).build(),
            None => builder.build(),
        })
    }
}

/// kube's client retries 429/503/504 itself (up to 15 times, minutes in all), which would
/// hide failures from [`classify`](super::classify) and from the metrics. kreflex retries
/// with its own policy, in one place.
fn without_client_retries(mut config: kube::Config) -> kube::Config {
    config.default_retry = false;
    config
}

/// The object an event is about, for defaults (patch target, namespace and owner of
/// created objects, Kubernetes Events).
#[derive(Debug, Clone)]
pub struct EventTarget {
    /// Its reference.
    pub object: ObjectRef,
    /// Its `metadata.uid`, needed for owner references and Events.
    pub uid: Option<String>,
    /// Its `metadata.resourceVersion`.
    pub resource_version: Option<String>,
}

/// What applying an action did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The request succeeded.
    Done,
    /// Nothing to do: the object to create already exists, or the one to delete is gone.
    AlreadyDone,
    /// Not a request: a requeue.
    Requeue(Duration),
}

/// An action that failed, with the decision for it.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin}: {action} {target}: {source}")]
pub struct ApplyError {
    /// Plugin name.
    pub plugin: String,
    /// patch / create / delete / event.
    pub action: &'static str,
    /// What the action was aimed at.
    pub target: String,
    /// Retry, conflict or give up.
    pub decision: Decision,
    /// HTTP status code, if the server answered.
    pub code: Option<u16>,
    /// The underlying error.
    #[source]
    pub source: kube::Error,
}

/// Applies one plugin's actions.
#[derive(Clone)]
pub struct Applier {
    plugin: Arc<str>,
    client: kube::Client,
    resources: Resources,
    backoff: Backoff,
    metrics: Metrics,
    field_manager: String,
}

impl Applier {
    /// An applier for `plugin` sending through `client` (its scoped client).
    pub fn new(plugin: &str, client: kube::Client, resources: Resources, backoff: Backoff, metrics: Metrics) -> Self {
        Self {
            plugin: Arc::from(plugin),
            field_manager: format!("kreflex/{plugin}"),
            client,
            resources,
            backoff,
            metrics,
        }
    }

    /// The field manager of this plugin's writes: `kreflex/<plugin>`.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// Applies one action. Transient failures (429, 5xx, timeouts, connection errors) are
    /// retried here with jittered exponential backoff up to the policy's attempt limit;
    /// what is left is returned with its [`Decision`].
    pub async fn apply(&self, action: &Action, on: &EventTarget) -> Result<Applied, ApplyError> {
        let name = action_label(action);
        let mut attempt = 0;
        loop {
            let result = self.apply_once(action, on).await;
            let err = match result {
                Ok(a) => return Ok(a),
                Err(e) => e,
            };
            let decision = classify(&err);
            let goal = match action {
                Action::Create { .. } => Some(Goal::Exists),
                Action::Delete { .. } => Some(Goal::Gone),
                _ => None,
            };
            if goal.is_some_and(|g| reached(g, &decision)) {
                return Ok(Applied::AlreadyDone);
            }
            match decision {
                Decision::Retry { after } if attempt + 1 < self.backoff.max_attempts() => {
                    let delay = after.unwrap_or_else(|| self.backoff.delay(attempt));
                    self.metrics.retries.get_or_create(&PluginLabel { plugin: self.plugin.to_string() }).inc();
                    tracing::debug!(plugin = %self.plugin, action = name, attempt, ?delay, error = %err, "transient failure; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                decision => {
                    return Err(ApplyError {
                        plugin: self.plugin.to_string(),
                        action: name,
                        target: describe_target(action, on),
                        decision,
                        code: status_code(&err),
                        source: err,
                    });
                }
            }
        }
    }

    async fn apply_once(&self, action: &Action, on: &EventTarget) -> Result<Applied, kube::Error> {
        match action {
            Action::Patch { target, subresource, patch_type, body } => {
                let api = self.resources.api_for(&self.client, &target.gvk(), target.namespace.as_deref()).await?;
                let params = match patch_type {
                    // Controllers own their intent: a conflict with another manager is
                    // resolved in the plugin's favour, as kube-rs recommends for controllers.
                    PatchType::Apply => PatchParams::apply(&self.field_manager).force(),
                    _ => PatchParams { field_manager: Some(self.field_manager.clone()), ..PatchParams::default() },
                };
                let patch = match patch_type {
                    PatchType::Merge => Patch::Merge(body.clone()),
                    PatchType::Json => {
                        Patch::Json::<Value>(serde_json::from_value(body.clone()).map_err(kube::Error::SerdeError)?)
                    }
                    PatchType::Apply => Patch::Apply(body.clone()),
                };
                match subresource.as_deref() {
                    None => api.patch(&target.name, &params, &patch).await?,
                    Some("status") => api.patch_status(&target.name, &params, &patch).await?,
                    Some(sub) => api.patch_subresource(sub, &target.name, &params, &patch).await?,
                };
                Ok(Applied::Done)
            }
            Action::Create { object } => {
                let mut object = object.clone();
                let gvk = Gvk::of(&object);
                let resource = self.resources.resolve(&gvk).await?;
                let namespace = if resource.namespaced {
                    let ns = crate::rbac::create_namespace(&object, &on.object);
                    object["metadata"]["namespace"] = Value::String(ns.clone());
                    Some(ns)
                } else {
                    None
                };
                add_owner_reference(&mut object, on, namespace.as_deref());
                let api = resource.api(&self.client, namespace.as_deref());
                let obj: DynamicObject = serde_json::from_value(object).map_err(kube::Error::SerdeError)?;
                let params = PostParams { field_manager: Some(self.field_manager.clone()), ..PostParams::default() };
                api.create(&params, &obj).await?;
                Ok(Applied::Done)
            }
            Action::Delete { target } => {
                let api = self.resources.api_for(&self.client, &target.gvk(), target.namespace.as_deref()).await?;
                api.delete(&target.name, &DeleteParams::default()).await?;
                Ok(Applied::Done)
            }
            Action::EmitEvent { severity, reason, message } => {
                self.record(on, *severity, reason, message).await?;
                Ok(Applied::Done)
            }
            Action::RequeueAfter { after_ms } => Ok(Applied::Requeue(Duration::from_millis(*after_ms))),
        }
    }

    /// Records a Kubernetes Event about `on` (events.k8s.io/v1, reporting controller
    /// `kreflex`, instance = the plugin), through this plugin's client.
    pub async fn record(
        &self,
        on: &EventTarget,
        severity: Severity,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        record_event(&self.client, &self.plugin, on, severity, reason, message).await
    }
}

/// Records a Kubernetes Event (events.k8s.io/v1) about `on` through `client`, naming the
/// plugin as the reporting instance of the `kreflex` controller. kreflex also uses this
/// with its own client for the Warning Events it records about a plugin's failures.
pub async fn record_event(
    client: &kube::Client,
    plugin: &str,
    on: &EventTarget,
    severity: Severity,
    reason: &str,
    message: &str,
) -> Result<(), kube::Error> {
    let reporter = Reporter { controller: "kreflex".into(), instance: Some(format!("kreflex/{plugin}")) };
    let recorder = Recorder::new(client.clone(), reporter);
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(on.object.api_version.clone()),
        kind: Some(on.object.kind.clone()),
        name: Some(on.object.name.clone()),
        namespace: on.object.namespace.clone(),
        uid: on.uid.clone(),
        resource_version: on.resource_version.clone(),
        field_path: None,
    };
    let ev = KEvent {
        type_: match severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        },
        reason: reason.to_owned(),
        note: Some(message.to_owned()),
        action: "React".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await
}

/// Makes the event's object the owner (for garbage collection) of an object it creates,
/// unless the object names its owners itself or ownership is impossible (a namespaced
/// owner cannot own an object in another namespace or a cluster-scoped one).
fn add_owner_reference(object: &mut Value, on: &EventTarget, namespace: Option<&str>) {
    let Some(uid) = &on.uid else { return };
    if object.pointer("/metadata/ownerReferences").is_some() {
        return;
    }
    if let Some(owner_ns) = &on.object.namespace
        && namespace != Some(owner_ns.as_str())
    {
        return;
    }
    object["metadata"]["ownerReferences"] = serde_json::json!([{
        "apiVersion": on.object.api_version,
        "kind": on.object.kind,
        "name": on.object.name,
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": false,
    }]);
}

fn describe_target(a: &Action, on: &EventTarget) -> String {
    match a {
        Action::Patch { target, subresource: Some(s), .. } => format!("{target} ({s})"),
        Action::Patch { target, .. } | Action::Delete { target } => target.to_string(),
        Action::Create { object } => format!(
            "{} {}",
            object.get("kind").and_then(Value::as_str).unwrap_or("object"),
            object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<generated>")
        ),
        Action::EmitEvent { .. } | Action::RequeueAfter { .. } => on.object.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(ns: Option<&str>) -> EventTarget {
        EventTarget {
            object: ObjectRef {
                api_version: "stable.example.com/v1".into(),
                kind: "Database".into(),
                namespace: ns.map(Into::into),
                name: "orders".into(),
            },
            uid: Some("u1".into()),
            resource_version: None,
        }
    }

    #[test]
    fn created_objects_are_owned_by_the_event_object_when_possible() {
        let mut same = json!({"metadata": {"name": "x"}});
        add_owner_reference(&mut same, &target(Some("a")), Some("a"));
        assert_eq!(same["metadata"]["ownerReferences"][0]["uid"], "u1");
        let mut other_ns = json!({"metadata": {"name": "x"}});
        add_owner_reference(&mut other_ns, &target(Some("a")), Some("b"));
        assert!(other_ns["metadata"].get("ownerReferences").is_none());
        let mut explicit = json!({"metadata": {"name": "x", "ownerReferences": []}});
        add_owner_reference(&mut explicit, &target(Some("a")), Some("a"));
        assert_eq!(explicit["metadata"]["ownerReferences"], json!([]));
        let mut cluster_owner = json!({"metadata": {"name": "x"}});
        add_owner_reference(&mut cluster_owner, &target(None), Some("b"));
        assert_eq!(cluster_owner["metadata"]["ownerReferences"][0]["name"], "orders");
    }

    #[test]
    fn impersonation_identity_follows_the_template() {
        let cfg = kube::Config::new("http://127.0.0.1:1".parse().expect("uri"));
        let c = ScopedClients::impersonating(cfg, "system:serviceaccount:{namespace}:kreflex-{plugin}", "ops", vec![]);
        assert_eq!(c.user_for("database-status").as_deref(), Some("system:serviceaccount:ops:kreflex-database-status"));
    }
}
