use super::*;

#[test]
fn shard_of_is_stable_and_spreads() {
    // Fixed forever: these values must never change.
    assert_eq!(
        shard_of(ShardBy::Name, 4, Some("default"), "db-0"),
        shard_of(ShardBy::Name, 4, Some("default"), "db-0")
    );
    assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(shard_of(ShardBy::Name, 1, Some("x"), "y"), 0);
    let mut counts = [0u32; 4];
    for i in 0..1000 {
        counts[shard_of(ShardBy::Name, 4, Some("default"), &format!("db-{i}")) as usize] += 1;
    }
    assert!(counts.iter().all(|c| (180..320).contains(c)), "uneven spread: {counts:?}");
    // By namespace: every object of a namespace in one shard.
    let s = shard_of(ShardBy::Namespace, 8, Some("tenant-a"), "x");
    assert!((0..100).all(|i| shard_of(ShardBy::Namespace, 8, Some("tenant-a"), &format!("o{i}")) == s));
}

/// Replicas applying their plans in turn, with perfect knowledge of each other (what the
/// Leases tell them), until nothing changes.
fn settle(shards: u32, replicas: &[&str], holders: &mut [Option<String>]) -> usize {
    for round in 0..100 {
        let mut changed = false;
        for me in replicas {
            let view = View {
                me,
                members: replicas.iter().copied().collect(),
                holders: holders.iter().map(|h| h.as_deref()).collect(),
                mine: (0..shards).filter(|s| holders[*s as usize].as_deref() == Some(*me)).collect(),
                contending: BTreeSet::new(),
            };
            let plan = view.plan();
            for s in &plan.release {
                holders[*s as usize] = None;
                changed = true;
            }
            // Contending takes a free shard at once in this model.
            for s in &plan.contend {
                if holders[*s as usize].is_none() {
                    holders[*s as usize] = Some(me.to_string());
                    changed = true;
                }
            }
        }
        if !changed {
            return round;
        }
    }
    panic!("no stable assignment after 100 rounds: {holders:?}");
}

fn held_by(holders: &[Option<String>], me: &str) -> usize {
    holders.iter().filter(|h| h.as_deref() == Some(me)).count()
}

#[test]
fn shards_spread_between_replicas_and_all_are_held() {
    for (shards, names) in [
        (4u32, vec!["a", "b", "c"]),
        (1, vec!["a", "b", "c"]),
        (8, vec!["a", "b"]),
        (5, vec!["x"]),
        (3, vec!["a", "b", "c", "d"]),
    ] {
        let mut holders = vec![None; shards as usize];
        settle(shards, &names, &mut holders);
        assert!(holders.iter().all(Option::is_some), "{shards} shards, {names:?}: all held: {holders:?}");
        let ceil = (shards as usize).div_ceil(names.len());
        let floor = shards as usize / names.len();
        for n in &names {
            let c = held_by(&holders, n);
            assert!(c <= ceil && c >= floor, "{n} holds {c} of {shards} with {} replicas: {holders:?}", names.len());
        }
    }
}

#[test]
fn a_replica_that_leaves_loses_its_shards_and_one_that_joins_gets_a_share() {
    let mut holders = vec![None; 4];
    settle(4, &["a", "b", "c"], &mut holders);
    // c dies: its Leases expire, the others see them free.
    for h in holders.iter_mut() {
        if h.as_deref() == Some("c") {
            *h = None;
        }
    }
    settle(4, &["a", "b"], &mut holders);
    assert_eq!((held_by(&holders, "a"), held_by(&holders, "b")), (2, 2));
    // d joins: the richest gives one away until d has its floor.
    settle(4, &["a", "b", "d"], &mut holders);
    assert!(held_by(&holders, "d") >= 1, "{holders:?}");
    assert!(holders.iter().all(Option::is_some));
}

#[test]
fn contenders_stop_when_another_replica_takes_the_shard() {
    let view = View {
        me: "a",
        members: ["a", "b"].into_iter().collect(),
        holders: vec![Some("b"), None],
        mine: BTreeSet::new(),
        contending: [0, 1].into_iter().collect(),
    };
    let plan = view.plan();
    assert_eq!(plan.abandon, vec![0]);
    // Still trying for shard 1: no second attempt is started.
    assert!(plan.contend.is_empty());
}

#[test]
fn leader_election_is_one_shard_everyone_wants_while_free() {
    let free = View {
        me: "a",
        members: ["a"].into_iter().collect(),
        holders: vec![None],
        mine: BTreeSet::new(),
        contending: BTreeSet::new(),
    };
    assert_eq!(free.plan().contend, vec![0]);
    let held = View { holders: vec![Some("b")], ..free.clone() };
    assert_eq!(held.plan(), Plan::default());
    let mine = View { holders: vec![Some("a")], mine: [0].into_iter().collect(), ..free };
    assert_eq!(mine.plan(), Plan::default());
}
