//! A directory of Kubernetes objects (YAML or JSON files, multi-document YAML and `List`s
//! allowed) serving the host's `get` and `list-objects` in `kreflex test`.

use super::OfflineError;
use crate::model::{Gvk, ObjectRef};
use crate::selector::{Selector, SelectorError};
use crate::wasm::ObjectSource;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Objects loaded from files, indexed by reference.
#[derive(Debug, Default, Clone)]
pub struct DirObjects {
    objects: BTreeMap<ObjectRef, Arc<Value>>,
}

impl DirObjects {
    /// Loads every `.yaml`, `.yml` and `.json` file in `dir` (not recursive).
    pub fn load(dir: &Path) -> Result<Self, OfflineError> {
        let mut me = Self::default();
        let entries = std::fs::read_dir(dir).map_err(|source| OfflineError::Read { path: dir.to_owned(), source })?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "yaml" | "yml" | "json") {
                continue;
            }
            let text =
                std::fs::read_to_string(&path).map_err(|source| OfflineError::Read { path: path.clone(), source })?;
            let docs = parse_documents(&text).map_err(|e| match e {
                OfflineError::Yaml { source, .. } => OfflineError::Yaml { path: path.clone(), source },
                other => other,
            })?;
            for doc in docs {
                me.insert(doc);
            }
        }
        Ok(me)
    }

    /// Adds one object (a `List` adds its items); objects without a name are ignored.
    pub fn insert(&mut self, object: Value) {
        if object.get("kind").and_then(Value::as_str) == Some("List") {
            if let Some(Value::Array(items)) = object.get("items") {
                for item in items.clone() {
                    self.insert(item);
                }
            }
            return;
        }
        if let Some(r) = ObjectRef::of(&object) {
            self.objects.insert(r, Arc::new(object));
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Every YAML (or JSON, which is YAML) document in `text`.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, OfflineError> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc)
            .map_err(|source| OfflineError::Yaml { path: std::path::PathBuf::new(), source })?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

impl ObjectSource for DirObjects {
    fn get(&self, target: &ObjectRef) -> Option<String> {
        self.objects.get(target).map(|o| o.to_string())
    }

    fn list(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, SelectorError> {
        let selector = label_selector.map(Selector::parse).transpose()?.unwrap_or_default();
        Ok(self
            .objects
            .iter()
            .filter(|(r, o)| {
                r.gvk() == *gvk
                    && namespace.is_none_or(|ns| r.namespace.as_deref() == Some(ns))
                    && selector.matches_object(o)
            })
            .map(|(_, o)| o.to_string())
            .collect())
    }
}
