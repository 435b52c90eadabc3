//! A plugin's finalizer on an object, managed with kreflex's own identity: added before the
//! plugin first sees the object, removed once it has finalized it (or has failed to for
//! longer than the timeout), and the object read fresh from the server to do either.
//!
//! Called by the dispatcher before and after a plugin call. Failures are `kube::Error`s
//! for the caller's error policy to [`classify`]; the only ones decided here are those that
//! mean the job is done (the object is gone).

use super::classify::{Goal, classify, reached};
use crate::model::{Gvk, ObjectRef};
use crate::watch::{CachedObject, Resources};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use std::sync::Arc;

/// Finalizer writes and fresh reads through one client. Cheap to clone.
#[derive(Clone)]
pub struct Finalizers {
    client: kube::Client,
    resources: Resources,
}

impl Finalizers {
    /// Writes through `client` (kreflex's own), kinds resolved by `resources`.
    pub fn new(client: kube::Client, resources: Resources) -> Self {
        Self { client, resources }
    }

    /// The object as the server has it now; `None` if it is gone (or its kind is).
    pub async fn fetch(&self, r: &ObjectRef) -> Result<Option<Arc<CachedObject>>, kube::Error> {
        let got = match self.resources.api_for(&self.client, &r.gvk(), r.namespace.as_deref()).await {
            Ok(api) => api.get(&r.name).await,
            Err(e) => Err(e),
        };
        match got {
            Ok(obj) => {
                Ok(CachedObject::from_value(serde_json::to_value(obj).map_err(kube::Error::SerdeError)?).map(Arc::new))
            }
            Err(e) if reached(Goal::Gone, &classify(&e)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds `finalizer` to `o`, on condition that `o` has not changed since it was read.
    pub async fn add(&self, gvk: &Gvk, o: &CachedObject, finalizer: &str) -> Result<(), kube::Error> {
        let mut patch = vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": o.resource_version()})];
        if o.finalizers().next().is_none() {
            patch.push(json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}));
        } else {
            patch.push(json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}));
        }
        self.patch_metadata(&o.object_ref(gvk), patch).await
    }

    /// Removes `finalizer` from `o` if it is still there. The list is read fresh (the
    /// cached one may be stale) and the removal is conditional on the entry not having
    /// moved; an object that is gone has nothing left to remove.
    pub async fn remove(&self, gvk: &Gvk, o: &CachedObject, finalizer: &str) -> Result<(), kube::Error> {
        let r = o.object_ref(gvk);
        let Some(current) = self.fetch(&r).await? else {
            return Ok(());
        };
        let Some(index) = current.finalizers().position(|f| f == finalizer) else {
            return Ok(());
        };
        let patch = vec![
            json!({"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": finalizer}),
            json!({"op": "remove", "path": format!("/metadata/finalizers/{index}")}),
        ];
        match self.patch_metadata(&r, patch).await {
            Err(e) if reached(Goal::Gone, &classify(&e)) => Ok(()),
            other => other,
        }
    }

    async fn patch_metadata(&self, r: &ObjectRef, patch: Vec<Value>) -> Result<(), kube::Error> {
        let api = self.resources.api_for(&self.client, &r.gvk(), r.namespace.as_deref()).await?;
        let p: json_patch::Patch = serde_json::from_value(Value::Array(patch)).map_err(kube::Error::SerdeError)?;
        let params = PatchParams { field_manager: Some("kreflex".into()), ..Default::default() };
        api.patch(&r.name, &params, &Patch::Json::<()>(p)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::fake;

    const FIN: &str = "kreflex.io/p";

    fn gvk() -> Gvk {
        Gvk::new("stable.example.com", "v1", "Database")
    }

    fn finalizers(answer: impl Fn(&str, &str) -> (u16, Value) + Send + Sync + 'static) -> (Finalizers, fake::Seen) {
        let (client, seen) = fake::client(move |method, path| match path {
            fake::DISCOVERY_PATH => fake::discovery(),
            _ => answer(method, path),
        });
        (Finalizers::new(client.clone(), Resources::new(client)), seen)
    }

    #[tokio::test]
    async fn a_failed_read_is_not_taken_for_the_finalizer_being_gone() {
        let (f, seen) = finalizers(|method, _| match method {
            "GET" => fake::status(503, "ServiceUnavailable"),
            _ => (200, fake::database(&[])),
        });
        let o = CachedObject::from_value(fake::database(&[FIN])).expect("named");
        let removed = f.remove(&gvk(), &o, FIN).await;
        assert!(removed.is_err(), "a 503 on the read was taken for success; requests: {:?}", seen.lock());
        assert!(!seen.lock().iter().any(|r| r.starts_with("PATCH")));
    }

    #[tokio::test]
    async fn an_object_that_is_gone_has_no_finalizer_left_to_remove() {
        let o = CachedObject::from_value(fake::database(&[FIN])).expect("named");
        let (read_gone, _) = finalizers(|_, _| fake::status(404, "NotFound"));
        assert!(read_gone.remove(&gvk(), &o, FIN).await.is_ok());
        let (patch_gone, seen) = finalizers(|method, _| match method {
            "GET" => (200, fake::database(&["other", FIN])),
            _ => fake::status(404, "NotFound"),
        });
        assert!(patch_gone.remove(&gvk(), &o, FIN).await.is_ok());
        assert_eq!(
            seen.lock().last().map(String::as_str),
            Some("PATCH /apis/stable.example.com/v1/namespaces/shop/databases/orders")
        );
    }

    #[tokio::test]
    async fn a_rejected_removal_is_an_error() {
        let o = CachedObject::from_value(fake::database(&[FIN])).expect("named");
        let (f, _) = finalizers(|method, _| match method {
            "GET" => (200, fake::database(&[FIN])),
            _ => fake::status(422, "Invalid"),
        });
        assert!(f.remove(&gvk(), &o, FIN).await.is_err());
    }
}
