//! The metrics an operator of controllers expects, read from a running engine's `/metrics`
//! over HTTP: per-plugin queue wait and work histograms, queue gauges at scrape time (depth,
//! oldest waiting event, longest-running call), retries and requeues, and every API request
//! counted by verb, resource and code.

mod common;
mod guest;

use common::*;
use http_body_util::BodyExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// `GET /metrics` of a running engine.
async fn scrape(admin: std::net::SocketAddr) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: hyper::Uri = format!("http://{admin}/metrics").parse().expect("uri");
    let resp = client.get(uri).await.expect("/metrics answers");
    assert!(resp.status().is_success());
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(body.to_vec()).expect("UTF-8")
}

/// Sum of the samples of `name` whose labels include every `(label, value)` of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_engine_exports_queue_work_and_api_request_metrics_with_plausible_values() {
    let s = server().await;
    let c = s.client();
    // The generation filter keeps the plugins' status patches from re-running the slow call.
    let chaos = json!({"callTimeoutMs": 10000, "config": {"generationChangedOnly": true}});
    let dir = plugin_dir(&[
        (guest::wasm("fixture_chaos"), "chaos", Some(chaos)),
        (guest::wasm("database_status"), "database-status", None),
    ]);
    let e = start_engine(&s, dir.path(), |c| c.admin_addr = Some(([127, 0, 0, 1], 0).into())).await;
    let admin = e.admin_addr.expect("admin served");
    let chaos = [("plugin", "chaos")];

    // A call that runs for 3 s, and a change of its object queued behind it.
    let mut slow = database("slow", "postgres");
    slow["metadata"]["annotations"] = json!({"kreflex.test/do": "sleep:3000"});
    create_database(&c, slow).await;
    eventually("the slow call shows as running", || async {
        sample(&scrape(admin).await, "kreflex_workqueue_longest_running_processor_seconds", &chaos) > 0.2
    })
    .await;
    databases(&c)
        .patch("slow", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "2Gi"}})))
        .await
        .expect("change while the call runs");
    eventually("the change waits behind the running call", || async {
        let m = scrape(admin).await;
        sample(&m, "kreflex_workqueue_depth", &chaos) == 1.0
            && sample(&m, "kreflex_workqueue_oldest_waiting_seconds", &chaos) > 0.1
    })
    .await;
    let m = scrape(admin).await;
    assert_eq!(sample(&m, "kreflex_active_workers", &chaos), 1.0, "{m}");
    assert!(sample(&m, "kreflex_workqueue_unfinished_work_seconds", &chaos) > 0.2, "{m}");
    assert!(
        m.lines().any(|l| l.starts_with("kreflex_workqueue_depth{plugin=\"database-status\"}")),
        "every loaded plugin has its gauges: {m}"
    );

    // Once both calls are done: two waits (the second through most of the first call) and
    // two calls of 3 s each.
    eventually("both calls of the slow object finished", || async {
        let m = scrape(admin).await;
        sample(&m, "kreflex_workqueue_work_duration_seconds_count", &chaos) >= 2.0
            && sample(&m, "kreflex_active_workers", &chaos) == 0.0
    })
    .await;
    let m = scrape(admin).await;
    assert!(sample(&m, "kreflex_workqueue_work_duration_seconds_sum", &chaos) >= 6.0, "{m}");
    assert!(sample(&m, "kreflex_workqueue_queue_duration_seconds_count", &chaos) >= 2.0, "{m}");
    assert!(sample(&m, "kreflex_workqueue_queue_duration_seconds_sum", &chaos) > 1.0, "{m}");
    assert_eq!(sample(&m, "kreflex_workqueue_longest_running_processor_seconds", &chaos), 0.0, "{m}");

    // Retries (a retryable plugin error) and requeues (the example plugin while provisioning).
    let mut flaky = database("flaky", "postgres");
    flaky["metadata"]["annotations"] = json!({"kreflex.test/do": "retry-error"});
    create_database(&c, flaky).await;
    create_database(&c, database("orders", "postgres")).await;
    eventually("orders is Ready", || async { state_of(&c, "orders").await.as_deref() == Some("Ready") }).await;
    eventually("retries and requeues are counted", || async {
        let m = scrape(admin).await;
        sample(&m, "kreflex_workqueue_retries_total", &chaos) >= 1.0
            && sample(&m, "kreflex_workqueue_requeues_total", &[("plugin", "database-status")]) >= 1.0
    })
    .await;

    // Every request is counted by verb, resource and code: the informer's list and watch,
    // the plugins' status patches, and discovery.
    let m = scrape(admin).await;
    let db = |verb: &'static str, resource: &'static str| {
        [("verb", verb), ("group", "stable.example.com"), ("resource", resource), ("code", "200")]
    };
    assert!(sample(&m, "kreflex_rest_client_requests_total", &db("list", "databases")) >= 1.0, "{m}");
    assert!(sample(&m, "kreflex_rest_client_requests_total", &db("watch", "databases")) >= 1.0, "{m}");
    assert!(sample(&m, "kreflex_rest_client_requests_total", &db("patch", "databases/status")) >= 3.0, "{m}");
    assert!(sample(&m, "kreflex_rest_client_requests_total", &[("verb", "get"), ("resource", "")]) >= 1.0, "{m}");
    let latency = [("verb", "patch"), ("group", "stable.example.com"), ("resource", "databases/status")];
    assert_eq!(
        sample(&m, "kreflex_rest_client_request_duration_seconds_count", &latency),
        sample(&m, "kreflex_rest_client_requests_total", &latency),
        "each request timed once: {m}"
    );
    assert!(!m.contains("name=\"") && !m.contains("slow"), "no object name in any label");
    e.shutdown().await;
}

/// Every name the engine exports, with the series suffixes of counters and histograms (a
/// family is exported once it has a series: each gets one).
fn exported_names() -> std::collections::BTreeSet<String> {
    use kreflex::ops::*;
    let metrics = Metrics::new();
    let plugin = PluginLabel { plugin: "p".into() };
    let gvk = GvkLabel { gvk: "v1/ConfigMap".into() };
    metrics.events.get_or_create(&EventLabels { gvk: gvk.gvk.clone(), kind: "added".into() }).inc();
    metrics.watch_errors.get_or_create(&gvk).inc();
    for family in [
        &metrics.dispatched,
        &metrics.coalesced,
        &metrics.retries,
        &metrics.requeues_raised,
        &metrics.plugin_pauses,
        &metrics.log_dropped,
        &metrics.queue_retries,
        &metrics.queue_requeues,
    ] {
        family.get_or_create(&plugin).inc();
    }
    for family in [&metrics.call_duration, &metrics.queue_duration, &metrics.work_duration] {
        family.get_or_create(&plugin).observe(0.1);
    }
    metrics.plugin_error("p", "trap");
    metrics.action("p", "patch", "applied");
    metrics.reloads.get_or_create(&ReloadLabels { result: "ok".into() }).inc();
    let request = RequestKind::of(&http::Method::GET, "/api/v1/configmaps", None);
    metrics.api_request(
        ApiRequestLabels {
            verb: request.verb.into(),
            group: request.group,
            resource: request.resource,
            code: "200".into(),
        },
        std::time::Duration::from_millis(5),
    );
    metrics.observe_queues(|| vec![PluginQueueGauges { plugin: "p".into(), ..Default::default() }]);
    let mut names = std::collections::BTreeSet::new();
    for line in metrics.encode().lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').expect("# TYPE NAME KIND");
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["", "_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

#[test]
fn the_dashboard_and_service_monitor_match_what_kreflex_exports_and_serves() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring");
    let exported = exported_names();
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("kreflex-dashboard.json")).expect("dashboard")).expect("JSON");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().expect("a PromQL expression"))
        .collect();
    assert!(exprs.len() >= 10, "a panel per metric group");
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        assert_eq!(expr.matches('(').count(), expr.matches(')').count(), "unbalanced: {expr}");
        assert_eq!(expr.matches('{').count(), expr.matches('}').count(), "unbalanced: {expr}");
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("kreflex_") {
                assert!(exported.contains(word), "the dashboard queries {word}, which kreflex does not export");
                used.insert(word.to_owned());
            }
        }
    }
    for wanted in [
        "kreflex_workqueue_queue_duration_seconds_bucket",
        "kreflex_workqueue_work_duration_seconds_bucket",
        "kreflex_workqueue_depth",
        "kreflex_workqueue_oldest_waiting_seconds",
        "kreflex_workqueue_longest_running_processor_seconds",
        "kreflex_workqueue_retries_total",
        "kreflex_rest_client_requests_total",
        "kreflex_rest_client_request_duration_seconds_bucket",
    ] {
        assert!(used.contains(wanted), "no panel shows {wanted}");
    }

    let monitor: serde_yaml::Value =
        serde_yaml::from_slice(&std::fs::read(dir.join("servicemonitor.yaml")).expect("ServiceMonitor")).expect("YAML");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"][0], "kreflex-system");
    assert_eq!(monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], "kreflex");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let kustomization: serde_yaml::Value =
        serde_yaml::from_slice(&std::fs::read(dir.join("kustomization.yaml")).expect("kustomization")).expect("YAML");
    let files = &kustomization["configMapGenerator"][0]["files"];
    assert_eq!(files[0], "kreflex-dashboard.json");
}

#[test]
fn the_readme_lists_every_metric_kreflex_exports_and_no_other() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    let section = readme.split("### Metrics").nth(1).expect("a Metrics section").split("\n### ").next().unwrap_or("");
    let listed: std::collections::BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `kreflex_"))
        .filter_map(|l| l.split_once('`'))
        .map(|(name, _)| format!("kreflex_{name}"))
        .collect();
    let exported = exported_names();
    for name in &listed {
        assert!(exported.contains(name), "the README lists {name}, which kreflex does not export");
    }
    let series_of_listed = |n: &String| {
        listed.contains(n)
            || ["_bucket", "_sum", "_count"].iter().any(|s| n.strip_suffix(s).is_some_and(|b| listed.contains(b)))
    };
    let missing: Vec<&String> = exported.iter().filter(|n| !series_of_listed(n)).collect();
    assert!(missing.is_empty(), "exported but not in the README's table: {missing:?}");
}
