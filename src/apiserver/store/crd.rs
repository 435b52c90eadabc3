//! CustomResourceDefinitions as the store sees them: the resources a CRD serves (refused
//! when they would shadow a built-in), starting to serve them (status Established) and
//! stopping (their objects are deleted).

use super::{Store, now};
use crate::apiserver::resources::{self, ResourceDef};
use crate::apiserver::status::ApiError;
use serde_json::{Value, json};
use std::sync::Arc;

impl Store {
    pub(super) fn crd_defs(&self, crd: &Value) -> Result<Vec<ResourceDef>, ApiError> {
        let crd_def = self.find("apiextensions.k8s.io", "v1", "customresourcedefinitions").expect("CRDs are built in");
        let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let defs = resources::from_crd(crd).map_err(|reason| {
            ApiError::invalid(
                &crd_def,
                "CustomResourceDefinition",
                name,
                &[("FieldValueInvalid".into(), reason, "spec".into())],
            )
        })?;
        let taken =
            self.defs.iter().any(|d| !d.custom && defs.iter().any(|n| n.group == d.group && n.plural == d.plural));
        if taken {
            return Err(ApiError::invalid(
                &crd_def,
                "CustomResourceDefinition",
                name,
                &[("FieldValueInvalid".into(), "the resource is built in".into(), "spec.names.plural".into())],
            ));
        }
        Ok(defs)
    }

    /// Starts serving a CRD's resources and marks it Established.
    pub(super) fn serve_crd(&mut self, crd: &mut Value, defs: Vec<ResourceDef>) {
        if let Some(first) = defs.first() {
            let key = first.storage_key();
            self.defs.retain(|d| d.storage_key() != key);
        }
        let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
        let ts = now();
        crd["status"] = json!({
            "acceptedNames": names,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": ts},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": ts},
            ],
            "storedVersions": defs.iter().map(|d| d.version.clone()).collect::<Vec<_>>(),
        });
        self.defs.extend(defs.into_iter().map(Arc::new));
    }

    pub(super) fn unserve_crd(&mut self, crd: &Value) {
        let Ok(defs) = resources::from_crd(crd) else {
            return;
        };
        let Some(first) = defs.first() else { return };
        let key = first.storage_key();
        self.defs.retain(|d| d.storage_key() != key || !d.custom);
        if let Some(objects) = self.objects.remove(&key) {
            for (_, obj) in objects {
                let rv = self.next_rv();
                let mut last = (*obj).clone();
                last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                self.record(key.clone(), "DELETED", Arc::new(last), None);
            }
        }
    }
}
