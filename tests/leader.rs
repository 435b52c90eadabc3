//! Several `kreflex run` processes on one embedded API server: Lease leader election
//! (exactly one applies; a killed or terminated leader is replaced and every object still
//! converges) and sharding (each object handled only by the holder of its shard; shards
//! move when a replica leaves or joins).
//!
//! Overlap is checked exactly, on the server's own order of writes: every status write a
//! plugin made (seen by a watch, with its resourceVersion) must come from the replica that
//! held the object's shard Lease at that resourceVersion. The plugin (the chaos fixture)
//! writes its replica's tag into `status.message`.

mod common;
mod guest;

use common::replica::Replica;
use common::*;
use futures::StreamExt;
use kreflex::apiserver::ApiServer;
use kreflex::lease::{ShardBy, shard_of};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Lease timings of the tests: short, in client-go's proportions.
const TIMINGS: [&str; 6] =
    ["--lease-duration-seconds", "3", "--renew-deadline-seconds", "2", "--retry-period-seconds", "1"];

/// What the watches saw, in the server's order: plugin status writes and Lease holders.
#[derive(Default)]
struct History {
    /// resourceVersion → (object name, tag of the replica that wrote its status).
    writes: BTreeMap<u64, (String, String)>,
    /// resourceVersion → (Lease name, holder).
    leases: BTreeMap<u64, (String, Option<String>)>,
}

fn rv_of(meta: &kube::api::ObjectMeta) -> u64 {
    meta.resource_version.as_deref().and_then(|v| v.parse().ok()).expect("numeric resourceVersion")
}

fn tag_of(o: &DynamicObject) -> Option<(String, i64)> {
    let msg: Value = serde_json::from_str(o.data.pointer("/status/message")?.as_str()?).ok()?;
    Some((msg["tag"].as_str()?.to_owned(), msg["seenGeneration"].as_i64()?))
}

/// The watches filling a [`History`]; they stop when it is dropped (before the server).
struct Recorder {
    history: Arc<Mutex<History>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Records every change of `status.message` and every Lease holder until the test ends.
fn record(client: &kube::Client) -> Recorder {
    let history = Arc::new(Mutex::new(History::default()));
    let h = history.clone();
    let dbs = databases(client);
    let writes = tokio::spawn(async move {
        let mut last: HashMap<String, String> = HashMap::new();
        let mut s = std::pin::pin!(watcher::watcher(dbs, Default::default()).default_backoff().touched_objects());
        while let Some(item) = s.next().await {
            let Ok(o) = item else { continue };
            let name = o.metadata.name.clone().unwrap_or_default();
            if let Some((tag, _)) = tag_of(&o) {
                let msg = o.data.pointer("/status/message").map(Value::to_string).unwrap_or_default();
                if last.insert(name.clone(), msg.clone()).as_ref() != Some(&msg) {
                    h.lock().writes.insert(rv_of(&o.metadata), (name, tag));
                }
            }
        }
    });
    let h = history.clone();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), "default");
    let leases = tokio::spawn(async move {
        let mut s = std::pin::pin!(watcher::watcher(leases, Default::default()).default_backoff().touched_objects());
        while let Some(item) = s.next().await {
            let Ok(l) = item else { continue };
            let holder = l.spec.as_ref().and_then(|s| s.holder_identity.clone());
            h.lock().leases.insert(rv_of(&l.metadata), (l.metadata.name.clone().unwrap_or_default(), holder));
        }
    });
    Recorder { history, tasks: vec![writes, leases] }
}

use kube::runtime::WatchStreamExt;

/// Every plugin write came from the holder of its object's shard at that point of the
/// server's history. Returns how many writes were checked.
fn assert_no_overlap(history: &History, shards: u32) -> usize {
    let lease_shard = |name: &str| -> Option<u32> {
        if shards == 1 {
            return (name == "kreflex").then_some(0);
        }
        name.strip_prefix("kreflex-shard-")?.parse().ok()
    };
    let mut holder: Vec<Option<String>> = vec![None; shards as usize];
    let mut events: Vec<(u64, bool)> = history.leases.keys().map(|rv| (*rv, true)).collect();
    events.extend(history.writes.keys().map(|rv| (*rv, false)));
    events.sort();
    let mut checked = 0;
    for (rv, is_lease) in events {
        if is_lease {
            let (name, h) = &history.leases[&rv];
            if let Some(s) = lease_shard(name) {
                holder[s as usize] = h.clone();
            }
        } else {
            let (name, tag) = &history.writes[&rv];
            let s = shard_of(ShardBy::Name, shards, Some("default"), name);
            assert_eq!(
                holder[s as usize].as_deref(),
                Some(tag.as_str()),
                "{name} (shard {s}) was written by {tag} at resourceVersion {rv}, when the shard's Lease was held by {:?}",
                holder[s as usize]
            );
            checked += 1;
        }
    }
    checked
}

/// Shards held per replica (`ids`, and any other holder seen).
fn spread(holders: &[Option<String>], ids: &[String]) -> BTreeMap<String, usize> {
    let mut count: BTreeMap<String, usize> = ids.iter().map(|i| (i.clone(), 0)).collect();
    for h in holders.iter().flatten() {
        *count.entry(h.clone()).or_default() += 1;
    }
    count
}

/// Polls `check` for up to two minutes (a bound against hangs, not a performance figure).
async fn within<F, Fut>(what: &str, context: impl Fn() -> String, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}:\n{}", context());
}

/// Tag and generation each Database's status reports, by name.
async fn tags(client: &kube::Client) -> BTreeMap<String, (Option<String>, i64, i64)> {
    let list = databases(client).list(&Default::default()).await.expect("list databases");
    list.items
        .iter()
        .map(|o| {
            let seen = tag_of(o);
            (
                o.metadata.name.clone().unwrap_or_default(),
                (seen.as_ref().map(|s| s.0.clone()), seen.map_or(0, |s| s.1), o.metadata.generation.unwrap_or(0)),
            )
        })
        .collect()
}

async fn holders(client: &kube::Client, shards: u32) -> Vec<Option<String>> {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), "default");
    let mut out = Vec::new();
    for s in 0..shards {
        let name = if shards == 1 { "kreflex".to_owned() } else { format!("kreflex-shard-{s}") };
        out.push(api.get_opt(&name).await.ok().flatten().and_then(|l| l.spec?.holder_identity));
    }
    out
}

/// Changes every Database's spec (a new generation for the plugins to handle).
async fn bump(client: &kube::Client, names: &[String], size: &str) {
    let api = databases(client);
    for n in names {
        api.patch(n, &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": size}})))
            .await
            .expect("patch database");
    }
}

/// All Databases handled at their current generation, each by the holder of its shard.
async fn converged(client: &kube::Client, shards: u32) -> bool {
    let holders = holders(client, shards).await;
    tags(client).await.iter().all(|(name, (tag, seen, generation))| {
        let s = shard_of(ShardBy::Name, shards, Some("default"), name) as usize;
        tag.is_some() && *tag == holders[s] && seen == generation
    })
}

struct Setup {
    /// Serves the test; dropped last.
    _server: ApiServer,
    client: kube::Client,
    dir: tempfile::TempDir,
    names: Vec<String>,
}

impl Setup {
    async fn new(objects: usize) -> Self {
        let server = server().await;
        let client = server.client();
        let dir = tempfile::tempdir().expect("tempdir");
        server.write_kubeconfig(&dir.path().join("kubeconfig")).expect("kubeconfig");
        let mut names = Vec::new();
        for i in 0..objects {
            let n = format!("db-{i}");
            create_database(&client, database(&n, "postgres")).await;
            names.push(n);
        }
        Self { _server: server, client, dir, names }
    }

    fn replica(&self, id: &str, extra: &[&str]) -> Replica {
        let d = self.dir.path();
        let cfg = json!({"config": {"tag": id, "generationChangedOnly": true}});
        let plugins = plugin_dir(&[(guest::wasm("fixture_chaos"), "chaos", Some(cfg))]);
        let extra: Vec<&str> = TIMINGS.iter().chain(extra).copied().collect();
        Replica::start(&d.join("kubeconfig"), &d.join("cache"), d, id, plugins, &extra)
    }

    fn logs(&self, replicas: &[&Replica]) -> String {
        replicas.iter().map(|r| format!("--- {} ---\n{}", r.id, r.log_text())).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_leader_applies_and_a_killed_or_terminated_leader_is_replaced() {
    let setup = Setup::new(10).await;
    let c = setup.client.clone();
    let history = record(&c);
    let mut replicas: Vec<Replica> =
        ["e1", "e2", "e3"].iter().map(|id| setup.replica(id, &["--leader-elect"])).collect();

    let logs = |rs: &[Replica]| setup.logs(&rs.iter().collect::<Vec<_>>());
    within("one leader handles every Database", || logs(&replicas), || converged(&c, 1)).await;
    let leader = holders(&c, 1).await[0].clone().expect("a leader");
    // Everyone is ready; exactly one says it leads, the others that they stand by.
    within(
        "every replica is ready",
        || logs(&replicas),
        || async {
            futures::future::join_all(replicas.iter().map(|r| r.readyz()))
                .await
                .iter()
                .all(|r| r.as_deref().is_some_and(|r| r.starts_with("ok")))
        },
    )
    .await;
    for r in &replicas {
        let ready = r.readyz().await.unwrap_or_default();
        let role = if r.id == leader { "ok (leader)" } else { "ok (standby" };
        assert!(ready.starts_with(role), "{}: /readyz says {ready:?}", r.id);
        let applied = r.metric("kreflex_actions_total").await;
        assert_eq!(applied > 0.0, r.id == leader, "{} applied {applied} actions (leader {leader})", r.id);
        assert_eq!(r.metric("kreflex_leader").await, f64::from(r.id == leader), "{}", r.id);
    }

    // The leader dies without releasing its Lease: another takes over once it expires.
    let i = replicas.iter().position(|r| r.id == leader).expect("leader is ours");
    replicas.remove(i).kill();
    bump(&c, &setup.names, "2Gi").await;
    within("a new leader handles the change", || logs(&replicas), || converged(&c, 1)).await;
    let second = holders(&c, 1).await[0].clone().expect("a leader");
    assert_ne!(second, leader);

    // The new leader is terminated: it drains, releases, and the last replica takes over.
    let i = replicas.iter().position(|r| r.id == second).expect("leader is ours");
    let log = replicas.remove(i).terminate().await;
    assert!(!log.contains("did not finish in time"), "the terminated leader drained:\n{log}");
    bump(&c, &setup.names, "3Gi").await;
    within("the last replica handles the change", || logs(&replicas), || converged(&c, 1)).await;
    assert_eq!(holders(&c, 1).await[0].as_deref(), Some(replicas[0].id.as_str()));

    let checked = assert_no_overlap(&history.history.lock(), 1);
    assert!(checked >= 30, "every Database written under three leaders: {checked} writes seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_spread_over_replicas_move_when_one_leaves_and_rebalance_when_one_joins() {
    let setup = Setup::new(500).await;
    let c = setup.client.clone();
    let history = record(&c);
    let shards = ["--shards", "4"];
    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"].iter().map(|id| setup.replica(id, &shards)).collect();
    let logs = |rs: &[Replica]| setup.logs(&rs.iter().collect::<Vec<_>>());

    within("500 Databases handled by the holders of their shards", || logs(&replicas), || converged(&c, 4)).await;
    let ids: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
    within(
        "at most ⌈4/3⌉ = 2 shards each",
        || logs(&replicas),
        || async {
            let h = holders(&c, 4).await;
            h.iter().all(Option::is_some) && spread(&h, &ids).values().all(|n| *n <= 2)
        },
    )
    .await;
    within(
        "every replica is ready and says which shards it holds",
        || logs(&replicas),
        || async {
            let all = futures::future::join_all(replicas.iter().map(|r| r.readyz())).await;
            all.iter().all(|r| r.as_deref().is_some_and(|r| r.starts_with("ok (holding")))
        },
    )
    .await;

    // The replica holding the most leaves: its shards move, every object converges.
    let h = holders(&c, 4).await;
    let busiest = spread(&h, &ids).into_iter().max_by_key(|(_, n)| *n).map(|(id, _)| id).expect("one");
    let i = replicas.iter().position(|r| r.id == busiest).expect("ours");
    let log = replicas.remove(i).terminate().await;
    assert!(!log.contains("did not finish in time"), "the leaving replica drained:\n{log}");
    bump(&c, &setup.names, "2Gi").await;
    let ids: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
    within(
        "the leaving replica's shards moved and all 500 converged",
        || logs(&replicas),
        || async {
            let h = holders(&c, 4).await;
            h.iter().all(|x| x.as_ref().is_some_and(|x| ids.contains(x))) && converged(&c, 4).await
        },
    )
    .await;
    assert!(spread(&holders(&c, 4).await, &ids).values().all(|n| *n == 2));

    // A replica joins: the others give it a share.
    replicas.push(setup.replica("r4", &shards));
    let ids: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
    within(
        "the new replica gets a shard",
        || logs(&replicas),
        || async {
            let h = holders(&c, 4).await;
            let count = spread(&h, &ids);
            h.iter().all(Option::is_some) && count["r4"] >= 1 && count.values().all(|n| *n <= 2)
        },
    )
    .await;
    bump(&c, &setup.names, "3Gi").await;
    within("all 500 converged after the rebalance", || logs(&replicas), || converged(&c, 4)).await;

    let checked = assert_no_overlap(&history.history.lock(), 4);
    assert!(checked >= 1500, "500 Databases written three times: {checked} writes seen");
}
