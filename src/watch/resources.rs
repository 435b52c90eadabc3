//! GVK → API resource (plural, scope, subresources) via API discovery, cached, and the
//! one place a per-kind `Api<DynamicObject>` is built from it. Shared by the informers
//! (what to watch), the apply stage (where to send a patch), the finalizer helpers and
//! `kreflex dev`.

use crate::model::Gvk;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// A resolved resource.
#[derive(Debug, Clone)]
pub struct Resource {
    /// What kube needs to build an `Api<DynamicObject>`.
    pub api: ApiResource,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Subresources served (e.g. `status`).
    pub subresources: Vec<String>,
}

impl Resource {
    /// An `Api` for this kind through `client`: in `namespace` if the kind is namespaced and
    /// a namespace is given, otherwise across the cluster (cluster-scoped objects, or every
    /// namespace).
    pub fn api(&self, client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if self.namespaced => Api::namespaced_with(client.clone(), ns, &self.api),
            _ => Api::all_with(client.clone(), &self.api),
        }
    }
}

/// Discovery lookups, cached per GVK. Cheap to clone.
#[derive(Clone)]
pub struct Resources {
    client: Client,
    cache: Arc<RwLock<HashMap<Gvk, Arc<Resource>>>>,
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources").finish_non_exhaustive()
    }
}

impl Resources {
    /// Discovery through `client`.
    pub fn new(client: Client) -> Self {
        Self { client, cache: Arc::default() }
    }

    /// Resolves a GVK (cached after the first success).
    pub async fn resolve(&self, gvk: &Gvk) -> Result<Arc<Resource>, kube::Error> {
        if let Some(r) = self.cache.read().get(gvk) {
            return Ok(r.clone());
        }
        let g = GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind);
        let (api, caps): (ApiResource, ApiCapabilities) = kube::discovery::pinned_kind(&self.client, &g).await?;
        let r = Arc::new(Resource {
            api,
            namespaced: matches!(caps.scope, Scope::Namespaced),
            subresources: caps.subresources.iter().map(|(s, _)| s.plural.clone()).collect(),
        });
        self.cache.write().insert(gvk.clone(), r.clone());
        Ok(r)
    }

    /// Resolves `gvk` and builds its `Api` through `client` (see [`Resource::api`]).
    pub async fn api_for(
        &self,
        client: &Client,
        gvk: &Gvk,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>, kube::Error> {
        Ok(self.resolve(gvk).await?.api(client, namespace))
    }

    /// The plural of an already resolved GVK, if known.
    pub fn plural_of(&self, gvk: &Gvk) -> Option<String> {
        self.cache.read().get(gvk).map(|r| r.api.plural.clone())
    }

    /// Forgets a GVK (its CRD may have changed).
    pub fn invalidate(&self, gvk: &Gvk) {
        self.cache.write().remove(gvk);
    }
}
