//! Leases as `kube-lease-manager` uses them, against the embedded API server over HTTPS:
//! a free Lease is taken with a non-forced server-side apply (a second applier of another
//! holder gets 409 Conflict), renewed with strategic-merge patches, and released (or
//! force-released once expired) with a strategic-merge patch setting the holder fields to
//! null, which must leave no stale field ownership behind for the next holder's apply.

mod common;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Lease duration and grace period of the managers in these tests (seconds): short, so a
/// takeover after expiry takes a few seconds.
const DURATION: u64 = 2;
const GRACE: u64 = 1;

/// One running manager: its holder flag and its task.
struct Contender {
    identity: String,
    holds: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

async fn contender(client: &kube::Client, lease: &str, identity: &str) -> Contender {
    let manager = LeaseManagerBuilder::new(client.clone(), lease)
        .with_identity(identity)
        .with_duration(DURATION)
        .with_grace(GRACE)
        .build()
        .await
        .expect("lease manager starts");
    let (holds, task) = manager.watch().await;
    Contender { identity: identity.to_owned(), holds, task }
}

async fn contenders(client: &kube::Client, lease: &str, names: &[&str]) -> Vec<Contender> {
    let started = names.iter().map(|n| contender(client, lease, n));
    futures::future::join_all(started).await
}

/// Identities of the contenders that believe they hold the lease.
fn holders(cs: &[Contender]) -> Vec<String> {
    cs.iter().filter(|c| *c.holds.borrow()).map(|c| c.identity.clone()).collect()
}

async fn lease_holder(api: &Api<Lease>, name: &str) -> Option<String> {
    api.get(name).await.ok()?.spec?.holder_identity
}

/// Waits until exactly one contender holds the lease and the Lease names it; returns it.
async fn one_holder(api: &Api<Lease>, lease: &str, cs: &[Contender]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if let [one] = holders(cs).as_slice()
            && lease_holder(api, lease).await.as_ref() == Some(one)
        {
            return one.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no single holder of {lease}: {:?} believe they hold it", holders(cs));
}

/// Watches the contenders for `rounds` renew periods: never two holders at once.
async fn never_two_holders(cs: &[Contender], rounds: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(DURATION - GRACE) * rounds;
    while tokio::time::Instant::now() < deadline {
        let now = holders(cs);
        assert!(now.len() <= 1, "two holders at once: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_three_managers_holds_the_lease_and_a_release_hands_it_over() {
    let s = server_with(Default::default()).await;
    let client = s.client();
    let api: Api<Lease> = Api::namespaced(client.clone(), "default");
    let mut cs = contenders(&client, "leader", &["a", "b", "c"]).await;
    let first = one_holder(&api, "leader", &cs).await;
    // The holder renews through several lease durations and keeps it alone.
    never_two_holders(&cs, 4).await;
    assert_eq!(lease_holder(&api, "leader").await.as_deref(), Some(first.as_str()));
    let transitions = api.get("leader").await.expect("lease").spec.and_then(|s| s.lease_transitions);

    // Closing the holder's channel releases the Lease: another takes it.
    let i = cs.iter().position(|c| c.identity == first).expect("the holder is a contender");
    let Contender { holds, task, .. } = cs.remove(i);
    drop(holds);
    task.await.expect("join").expect("the manager releases the lease");
    let second = one_holder(&api, "leader", &cs).await;
    assert_ne!(second, first);
    let lease = api.get("leader").await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.lease_transitions, transitions.map(|t| t + 1));
    // No manager owns a field it no longer sets: the released holder's fields went with it.
    let owners: Vec<String> =
        lease.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert!(!owners.iter().any(|m| m.ends_with(&format!("-{first}"))), "{owners:?}");
    never_two_holders(&cs, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_renewing_loses_the_lease_after_it_expires() {
    let s = server_with(Default::default()).await;
    let client = s.client();
    let api: Api<Lease> = Api::namespaced(client.clone(), "default");
    let mut cs = contenders(&client, "leader", &["a", "b", "c"]).await;
    let first = one_holder(&api, "leader", &cs).await;
    // Stop the holder without a release: its last renewal stands until it expires.
    let i = cs.iter().position(|c| c.identity == first).expect("the holder is a contender");
    let dead = cs.remove(i);
    dead.task.abort();
    let _ = dead.task.await;
    let last = api.get("leader").await.expect("lease").spec.expect("spec");
    let expiry = last.renew_time.expect("renewed").0
        + jiff::SignedDuration::from_secs(last.lease_duration_seconds.expect("duration").into());

    let second = one_holder(&api, "leader", &cs).await;
    assert_ne!(second, first);
    let taken = api.get("leader").await.expect("lease").spec.expect("spec");
    let acquired = taken.acquire_time.expect("acquired").0;
    assert!(acquired >= expiry, "taken over at {acquired}, before the old holder's lease expired at {expiry}");
    never_two_holders(&cs, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_starting_together_on_a_free_lease_elect_one_holder() {
    let s = server_with(Default::default()).await;
    let client = s.client();
    let api: Api<Lease> = Api::namespaced(client.clone(), "default");
    for round in 0..3 {
        let lease = format!("race-{round}");
        let cs = contenders(&client, &lease, &["a", "b", "c", "d", "e"]).await;
        one_holder(&api, &lease, &cs).await;
        never_two_holders(&cs, 2).await;
        for c in cs {
            c.task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_applies_of_different_holders_to_a_free_lease_admit_exactly_one() {
    let s = server_with(Default::default()).await;
    let api: Api<Lease> = Api::namespaced(s.client(), "default");
    for round in 0..5 {
        let name = format!("free-{round}");
        let free: Lease = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {}})).expect("lease");
        api.create(&PostParams::default(), &free).await.expect("create");
        let applies = (0..6).map(|i| {
            let api = api.clone();
            let name = name.clone();
            async move {
                let who = format!("holder-{i}");
                let body = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "spec": {"holderIdentity": who, "leaseDurationSeconds": 2,
                        "acquireTime": "2026-12-01T00:00:00.000000Z", "renewTime": "2026-12-01T00:00:00.000000Z"}});
                let pp = PatchParams::apply(&format!("kube-lease-manager-{who}"));
                api.patch(&name, &pp, &Patch::Apply(body)).await.map(|_| who)
            }
        });
        let results = futures::future::join_all(applies).await;
        let won: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "{results:?}");
        for r in &results {
            if let Err(kube::Error::Api(e)) = r {
                assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{e:?}");
            }
        }
        assert_eq!(lease_holder(&api, &name).await.as_ref(), Some(won[0]));
    }
}
