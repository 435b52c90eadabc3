use super::*;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
struct Item(Vec<u32>);

impl Coalesce for Item {
    fn coalesce(mut self, newer: Self) -> Self {
        self.0.extend(newer.0);
        self
    }
}

/// Test keys are `tenant:object` (or just `tenant`).
impl<'a> Tenant for &'a str {
    type Id = &'a str;
    fn tenant(&self) -> &'a str {
        self.split_once(':').map_or(self, |(tenant, _)| tenant)
    }
}

fn queue(capacity: usize) -> WorkQueue<&'static str, Item> {
    WorkQueue::new(
        capacity,
        Backoff { min: Duration::from_millis(100), max: Duration::from_secs(10), factor: 2.0, attempts: 3 },
    )
}

async fn take(q: &WorkQueue<&'static str, Item>) -> (&'static str, Item) {
    let taken = take_timed(q).await;
    (taken.key, taken.item)
}

async fn take_timed(q: &WorkQueue<&'static str, Item>) -> Taken<&'static str, Item> {
    tokio::time::timeout(Duration::from_secs(3600), q.next()).await.expect("an item in time").expect("open")
}

async fn nothing_ready(q: &WorkQueue<&'static str, Item>, within: Duration) -> bool {
    tokio::time::timeout(within, q.next()).await.is_err()
}

#[tokio::test(start_paused = true)]
async fn one_item_per_key_in_flight_and_keys_run_in_parallel() {
    let q = queue(10);
    q.push("a", Item(vec![1])).await;
    q.push("b", Item(vec![2])).await;
    let (k1, _) = take(&q).await;
    let (k2, _) = take(&q).await;
    assert_eq!((k1, k2), ("a", "b"));
    q.push("a", Item(vec![3])).await;
    assert!(nothing_ready(&q, Duration::from_secs(1)).await, "a is in flight: its next item waits");
    q.done(&"a", Outcome::Completed);
    assert_eq!(take(&q).await, ("a", Item(vec![3])));
}

#[tokio::test(start_paused = true)]
async fn coalesces_updates_while_a_key_is_busy() {
    let q = queue(10);
    q.push("a", Item(vec![0])).await;
    let _ = take(&q).await;
    for i in 1..=50 {
        q.push("a", Item(vec![i])).await;
    }
    q.done(&"a", Outcome::Completed);
    let (_, item) = take(&q).await;
    assert_eq!(item.0, (1..=50).collect::<Vec<_>>(), "one delivery carrying every change in order");
    assert_eq!(q.stats().coalesced, 49);
    assert!(nothing_ready(&q, Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn requeue_after_redelivers_unless_a_newer_item_supersedes_it() {
    let q = queue(10);
    q.push("a", Item(vec![1])).await;
    let _ = take(&q).await;
    q.done(&"a", Outcome::RequeueAfter(Duration::from_secs(5), Item(vec![99])));
    assert!(nothing_ready(&q, Duration::from_secs(4)).await);
    assert_eq!(take(&q).await.1, Item(vec![99]));
    q.done(&"a", Outcome::RequeueAfter(Duration::from_secs(5), Item(vec![99])));
    q.push("a", Item(vec![2])).await;
    let started = Instant::now();
    assert_eq!(take(&q).await.1, Item(vec![99, 2]));
    assert!(started.elapsed() < Duration::from_secs(1), "the real change did not wait for the timer");
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_and_reset_on_success() {
    let q = queue(10);
    q.push("a", Item(vec![1])).await;
    let _ = take(&q).await;
    let mut waits = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        q.done(&"a", Outcome::Retry(Item(vec![1])));
        let _ = take(&q).await;
        waits.push(t.elapsed());
    }
    // Full jitter: each wait is within [min, min·2ⁿ].
    for (n, w) in waits.iter().enumerate() {
        assert!(*w >= Duration::from_millis(100) && *w <= Duration::from_millis(100 << n), "{n}: {w:?}");
    }
    assert_eq!(q.stats().retries, 3);
    q.done(&"a", Outcome::Completed);
    q.push("a", Item(vec![2])).await;
    let t = Instant::now();
    let _ = take(&q).await;
    assert!(t.elapsed() < Duration::from_millis(1), "success reset the backoff");
}

#[tokio::test(start_paused = true)]
async fn a_failing_key_does_not_delay_others() {
    let q = queue(10);
    q.push("bad", Item(vec![1])).await;
    let _ = take(&q).await;
    q.done(&"bad", Outcome::Retry(Item(vec![1])));
    q.push("good", Item(vec![2])).await;
    let t = Instant::now();
    assert_eq!(take(&q).await.0, "good");
    assert!(t.elapsed() < Duration::from_millis(1));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_applies_backpressure_instead_of_dropping() {
    let q = queue(2);
    q.push("a", Item(vec![1])).await;
    q.push("b", Item(vec![2])).await;
    // A known key still coalesces when full.
    q.push("a", Item(vec![3])).await;
    let pusher = tokio::spawn({
        let q = q.clone();
        async move { q.push("c", Item(vec![4])).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!pusher.is_finished(), "push waits for room");
    let (k, _) = take(&q).await;
    q.done(&k, Outcome::Completed);
    assert!(pusher.await.expect("join"), "push completes once room frees up");
    assert_eq!(q.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn close_stops_intake_and_hand_out() {
    let q = queue(10);
    q.push("a", Item(vec![1])).await;
    let (k, _) = take(&q).await;
    q.close();
    assert!(!q.push("b", Item(vec![2])).await);
    assert!(q.next().await.is_none());
    q.done(&k, Outcome::Completed);
    assert_eq!(q.in_flight(), 0);
}

fn fair_queue(fairness: Fairness) -> WorkQueue<&'static str, Item> {
    WorkQueue::with_fairness(
        1000,
        Backoff { min: Duration::from_millis(100), max: Duration::from_secs(10), factor: 2.0, attempts: 3 },
        fairness,
    )
}

#[tokio::test(start_paused = true)]
async fn tenants_take_turns_however_many_keys_one_has_ready() {
    let q = queue(1000);
    for key in ["hog:1", "hog:2", "hog:3", "hog:4"] {
        q.push(key, Item(vec![1])).await;
    }
    q.push("meek:1", Item(vec![2])).await;
    q.push("hog:5", Item(vec![1])).await;
    let mut taken = Vec::new();
    for _ in 0..3 {
        taken.push(take(&q).await.0);
    }
    assert_eq!(taken, ["hog:1", "meek:1", "hog:2"]);
}

#[tokio::test(start_paused = true)]
async fn a_tenant_holds_at_most_its_share_of_workers() {
    let q = fair_queue(Fairness { max_in_flight: 2, ..Fairness::unlimited() });
    for key in ["hog:1", "hog:2", "hog:3", "hog:4"] {
        q.push(key, Item(vec![1])).await;
    }
    let (a, b) = (take(&q).await.0, take(&q).await.0);
    assert_eq!((a, b), ("hog:1", "hog:2"));
    assert!(nothing_ready(&q, Duration::from_secs(60)).await, "hog holds its two workers");
    q.push("meek:1", Item(vec![2])).await;
    assert_eq!(take(&q).await.0, "meek:1", "another tenant is not held back");
    q.done(&"hog:1", Outcome::Completed);
    assert_eq!(take(&q).await.0, "hog:3");
    assert_eq!(q.in_flight(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_tenants_redeliveries_wait_for_its_bucket_and_its_new_items_do_not() {
    let rate = Rate { per_second: 10.0, burst: 3 };
    let q = fair_queue(Fairness { rate: Some(rate), ..Fairness::unlimited() });
    let start = tokio::time::Instant::now();
    let ms = || (start.elapsed().as_millis() as u64).div_ceil(10) * 10;
    q.push("spinner:1", Item(vec![1])).await;
    let mut at = Vec::new();
    for _ in 0..6 {
        let (key, item) = take(&q).await;
        at.push(ms());
        q.done(&key, Outcome::RequeueAfter(Duration::ZERO, item));
    }
    assert_eq!(at, [0, 0, 0, 0, 100, 200], "a burst of 3 requeues, then one every 100 ms");
    q.push("spinner:2", Item(vec![2])).await;
    let (key, item) = take(&q).await;
    assert_eq!((key, ms()), ("spinner:2", 200), "a new item does not wait for a token");
    q.done(&key, Outcome::Retry(item));
    q.push("meek:1", Item(vec![3])).await;
    assert_eq!((take(&q).await.0, ms()), ("meek:1", 200), "another tenant has its own bucket");
    assert_eq!((take(&q).await.0, ms()), ("spinner:1", 300), "one token a tenth of a second");
    assert_eq!((take(&q).await.0, ms()), ("spinner:2", 400), "a retry waits for the next token too");
}

#[tokio::test(start_paused = true)]
async fn a_penalized_tenant_pauses_longer_each_time_while_others_go_on() {
    let q = fair_queue(Fairness::unlimited());
    let start = tokio::time::Instant::now();
    q.push("burner:1", Item(vec![1])).await;
    q.push("burner:2", Item(vec![1])).await;
    let (a, b) = (take(&q).await.0, take(&q).await.0);
    assert_eq!(q.penalize(&a), Some(Duration::from_secs(1)));
    assert_eq!(q.penalize(&b), None, "calls that failed together count once");
    q.done(&a, Outcome::Retry(Item(vec![1])));
    q.done(&b, Outcome::Retry(Item(vec![1])));
    q.push("meek:1", Item(vec![2])).await;
    assert_eq!(take(&q).await.0, "meek:1");
    assert_eq!(start.elapsed(), Duration::ZERO, "the others go on at once");

    let (key, _) = take(&q).await;
    assert!(key.starts_with("burner"));
    assert_eq!(start.elapsed(), Duration::from_secs(1), "the burner waits out its pause, not just its backoff");
    assert_eq!(q.penalize(&key), Some(Duration::from_secs(2)), "a penalty in a row pauses longer");
    q.done(&key, Outcome::Retry(Item(vec![1])));
    let (key, _) = take(&q).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    q.done(&key, Outcome::Completed);
    let (key, _) = take(&q).await;
    assert_eq!(q.penalize(&key), Some(Duration::from_secs(1)), "a call that did not fail ends the row");
    assert_eq!(q.stats().penalties, 3);
}

#[tokio::test(start_paused = true)]
async fn an_item_waits_from_its_first_push_and_a_coalesced_one_keeps_it() {
    let q = queue(10);
    q.push("a", Item(vec![1])).await;
    tokio::time::advance(Duration::from_secs(2)).await;
    q.push("a", Item(vec![2])).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let taken = take_timed(&q).await;
    assert_eq!((taken.item, taken.waited), (Item(vec![1, 2]), Duration::from_secs(3)));

    // Pushed while its key is in flight: it waits from its push, through the busy key.
    q.push("a", Item(vec![3])).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    q.done(&"a", Outcome::Completed);
    assert_eq!(take_timed(&q).await.waited, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_requeue_waits_from_the_end_of_its_delay_unless_a_push_supersedes_it() {
    let q = queue(10);
    q.push("a", Item(vec![1])).await;
    let _ = take(&q).await;
    q.done(&"a", Outcome::RequeueAfter(Duration::from_secs(5), Item(vec![1])));
    let taken = take_timed(&q).await;
    assert_eq!(taken.waited, Duration::ZERO, "the requeue delay is not time spent waiting for a worker");

    q.done(&"a", Outcome::RequeueAfter(Duration::from_secs(5), Item(vec![1])));
    tokio::time::advance(Duration::from_secs(1)).await;
    q.push("b", Item(vec![9])).await;
    q.push("a", Item(vec![2])).await;
    let _ = take(&q).await;
    tokio::time::advance(Duration::from_millis(300)).await;
    let taken = take_timed(&q).await;
    assert_eq!((taken.key, taken.waited), ("a", Duration::from_millis(300)), "waits from the push");
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_from_the_end_of_its_backoff_and_a_push_behind_it_from_the_push() {
    let q = queue(10);
    q.push("a", Item(vec![1])).await;
    let _ = take(&q).await;
    q.done(&"a", Outcome::Retry(Item(vec![1])));
    assert_eq!(take_timed(&q).await.waited, Duration::ZERO);

    q.push("a", Item(vec![2])).await;
    tokio::time::advance(Duration::from_millis(50)).await;
    let before = Instant::now();
    q.done(&"a", Outcome::Retry(Item(vec![1])));
    let taken = take_timed(&q).await;
    assert_eq!(taken.item, Item(vec![1, 2]));
    assert_eq!(taken.waited, Duration::from_millis(50) + before.elapsed(), "the push waited through the backoff");
}

#[tokio::test(start_paused = true)]
async fn tenant_stats_report_depth_oldest_wait_and_work_in_progress_per_tenant() {
    let q = queue(100);
    q.push("slow:1", Item(vec![1])).await;
    q.push("slow:2", Item(vec![2])).await;
    q.push("fast:1", Item(vec![3])).await;
    let first = take(&q).await.0;
    assert_eq!(first, "slow:1");
    tokio::time::advance(Duration::from_secs(2)).await;
    let second = take(&q).await.0;
    assert_eq!(second, "fast:1");
    tokio::time::advance(Duration::from_secs(1)).await;
    q.push("fast:2", Item(vec![4])).await;
    q.done(&"fast:1", Outcome::RequeueAfter(Duration::from_secs(10), Item(vec![3])));

    let stats = q.tenant_stats();
    assert_eq!(q.len(), 3, "the depth of all tenants: due and delayed");
    assert_eq!(
        stats["slow"],
        TenantStats {
            waiting: 1,
            delayed: 0,
            oldest_waiting: Duration::from_secs(3),
            in_flight: 1,
            in_flight_total: Duration::from_secs(3),
            longest_in_flight: Duration::from_secs(3),
        }
    );
    assert_eq!(
        stats["fast"],
        TenantStats { waiting: 1, delayed: 1, oldest_waiting: Duration::ZERO, ..TenantStats::default() },
        "a requeue before its delay ends is delayed, not waiting; fast:2 was just pushed"
    );

    tokio::time::advance(Duration::from_secs(4)).await;
    let slow2 = take(&q).await;
    assert_eq!(slow2.0, "slow:2");
    let stats = q.tenant_stats();
    assert_eq!(
        (
            stats["slow"].waiting,
            stats["slow"].in_flight,
            stats["slow"].in_flight_total,
            stats["slow"].longest_in_flight
        ),
        (0, 2, Duration::from_secs(7), Duration::from_secs(7))
    );
    q.done(&"slow:1", Outcome::Completed);
    q.done(&"slow:2", Outcome::Retry(Item(vec![2])));
    q.remove_where(|k| k.starts_with("fast"));
    assert_eq!(q.len(), 1, "slow:2 waits for its retry; fast's items are gone");
    let _ = take(&q).await;
    q.done(&"slow:2", Outcome::Completed);
    assert!(q.tenant_stats().is_empty(), "a tenant with nothing waiting or in flight is left out");
    assert_eq!(q.len(), 0);
}
