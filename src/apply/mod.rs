//! Applying validated actions to the cluster, through the plugin's own client, with
//! transient failures retried with jittered exponential backoff and every outcome
//! classified in one place ([`classify`]).
//!
//! Last stage of the data path: [`crate::actions::Action`] in, a request to the API server
//! out, an [`Applied`] outcome or an [`ApplyError`] that says whether to retry, re-run the
//! plugin on a fresh object (409) or give up (400/403/404/422). Alongside: the audit line
//! of every action ([`audit`]) and the finalizer writes kreflex makes with its own identity
//! ([`Finalizers`]).

pub mod audit;
pub mod classify;
mod client;
#[cfg(test)]
pub(crate) mod fake;
mod finalizer;

pub use client::{Applied, Applier, ApplyError, EventTarget, ScopedClients, record_event};
pub use finalizer::Finalizers;
