//! Failover and shard rebalance of `kreflex run` replicas on one embedded API server, with
//! the default Lease timings (lease duration 15 s, renew deadline 10 s, retry period 2 s).
//!
//! - Leader killed (SIGKILL, nothing released) → first action by the new leader: bounded
//!   by the lease duration plus a retry period (the Lease must expire first).
//! - Leader terminated (SIGTERM: drain, release) → first action by the new leader: about
//!   one retry period or less (the standby sees the release on its Lease watch).
//! - Shards: 3 replicas hold 4 shards; one leaves (SIGTERM) → all shards held by the two
//!   left, balanced; a replica joins → it holds a share.
//!
//! Run: `cargo bench --bench failover` (`KREFLEX_BENCH_ROUNDS=N`, default 10).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/guest/mod.rs"]
mod guest;
mod util;

use common::replica::Replica;
use common::*;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use util::pct;

fn replica(dir: &Path, id: &str, extra: &[&str]) -> Replica {
    let cfg = json!({"config": {"tag": id, "generationChangedOnly": true}});
    let plugins = plugin_dir(&[(guest::wasm("fixture_chaos"), "chaos", Some(cfg))]);
    Replica::start(&dir.join("kubeconfig"), &dir.join("cache"), dir, id, plugins, extra)
}

async fn holders(client: &kube::Client, names: &[String]) -> Vec<Option<String>> {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), "default");
    let mut out = Vec::new();
    for n in names {
        out.push(api.get_opt(n).await.ok().flatten().and_then(|l| l.spec?.holder_identity));
    }
    out
}

/// Tag of the replica that last wrote `name`'s status, and the generation it saw.
async fn written_by(client: &kube::Client, name: &str) -> Option<(String, i64)> {
    let o = databases(client).get(name).await.ok()?;
    let msg: Value = serde_json::from_str(o.data.pointer("/status/message")?.as_str()?).ok()?;
    Some((msg["tag"].as_str()?.to_owned(), msg["seenGeneration"].as_i64()?))
}

/// Waits (polling every 20 ms, up to two minutes) until `check` holds; the time it took.
async fn until<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        if check().await {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// One handover: stop the leader (`kill` or SIGTERM), change the object at once, and time
/// until the new leader's write of the new generation lands.
async fn handover(c: &kube::Client, replicas: &mut Vec<Replica>, kill: bool, generation: &mut i64) -> Duration {
    let lease = ["kreflex".to_owned()];
    let leader = holders(c, &lease).await[0].clone().expect("a leader");
    let i = replicas.iter().position(|r| r.id == leader).expect("the leader is ours");
    let old = replicas.remove(i);
    let t = Instant::now();
    // The clock runs from the signal: a terminated leader's drain and release are part of
    // the handover.
    let stopping = if kill {
        old.kill();
        None
    } else {
        Some(tokio::spawn(async move {
            old.terminate().await;
        }))
    };
    let size = format!("{}Gi", *generation + 1);
    databases(c)
        .patch("probe", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": size}})))
        .await
        .expect("patch");
    *generation += 1;
    let want = *generation;
    until("the new leader acts", || async {
        written_by(c, "probe").await.is_some_and(|(tag, g)| tag != leader && g == want)
    })
    .await;
    let took = t.elapsed();
    if let Some(s) = stopping {
        s.await.expect("terminated");
    }
    took
}

fn row(label: &str, s: &mut [Duration]) {
    s.sort();
    println!(
        "  {label:<44} p50 {:>7.2} s   max {:>7.2} s   ({} rounds)",
        pct(s, 0.5).as_secs_f64(),
        s[s.len() - 1].as_secs_f64(),
        s.len()
    );
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("KREFLEX_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    s.write_kubeconfig(&dir.path().join("kubeconfig")).expect("kubeconfig");
    create_database(&c, database("probe", "postgres")).await;
    let elect = ["--leader-elect"];

    println!("failover, default Lease timings (duration 15 s, renew deadline 10 s, retry period 2 s)");
    let mut next = 0;
    let mut start = |extra: &[&str]| {
        next += 1;
        replica(dir.path(), &format!("r{next}"), extra)
    };
    let mut replicas = vec![start(&elect), start(&elect)];
    let mut generation = 1;
    until("a leader acts", || async { written_by(&c, "probe").await.is_some() }).await;
    let (mut killed, mut terminated) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Always a warm standby beside the leader, as in a Deployment of 2.
        replicas.push(start(&elect));
        let ready = replicas.last().expect("new").admin.clone();
        until("the new standby is ready", || async {
            kreflex::plugins::status::fetch_readiness(&ready).await.is_ok_and(|r| r.starts_with("ok"))
        })
        .await;
        let kill = round % 2 == 0 || rounds == 1;
        let took = handover(&c, &mut replicas, kill, &mut generation).await;
        if kill { killed.push(took) } else { terminated.push(took) }
    }
    for r in replicas.drain(..) {
        let _ = r.terminate().await;
    }
    row("leader killed -> first action of the new one", &mut killed);
    if !terminated.is_empty() {
        row("leader SIGTERM -> first action of the new one", &mut terminated);
    }
    println!(
        "  bounds: killed <= lease duration + retry period + 1 s = 18 s; SIGTERM <= retry period (2 s; the standby watches the release)"
    );

    println!("shard rebalance, --shards 4");
    let shards = ["--shards", "4"];
    let lease_names: Vec<String> = (0..4).map(|i| format!("kreflex-shard-{i}")).collect();
    let mut replicas = vec![start(&shards), start(&shards), start(&shards)];
    let balanced = |ids: Vec<String>, at_least: usize| {
        let (c, names) = (c.clone(), lease_names.clone());
        async move {
            let h = holders(&c, &names).await;
            let mut count: BTreeMap<String, usize> = ids.iter().map(|i| (i.clone(), 0)).collect();
            for x in h.iter().flatten() {
                *count.entry(x.clone()).or_default() += 1;
            }
            h.iter().all(|x| x.as_ref().is_some_and(|x| ids.contains(x)))
                && count.values().all(|n| *n <= 2 && *n >= at_least)
        }
    };
    let ids = |rs: &[Replica]| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let t = until("3 replicas hold the 4 shards", || balanced(ids(&replicas), 1)).await;
    println!("  3 replicas start -> 4 shards held, <= 2 each     {:>7.2} s", t.as_secs_f64());
    let leaving = replicas.remove(0);
    let t0 = Instant::now();
    let _ = leaving.terminate().await;
    until("2 replicas hold 2 shards each", || balanced(ids(&replicas), 2)).await;
    println!("  a replica leaves (SIGTERM) -> 2 + 2             {:>7.2} s", t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    replicas.push(start(&shards));
    until("the joining replica holds a shard", || balanced(ids(&replicas), 1)).await;
    println!("  a replica joins -> it holds a shard              {:>7.2} s", t0.elapsed().as_secs_f64());
    let dying = replicas.remove(0);
    let t0 = Instant::now();
    dying.kill();
    until("2 replicas hold 2 shards each", || balanced(ids(&replicas), 2)).await;
    println!("  a replica is killed -> 2 + 2                     {:>7.2} s", t0.elapsed().as_secs_f64());
    for r in replicas {
        let _ = r.terminate().await;
    }
}
