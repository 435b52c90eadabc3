//! The Table columns kube-apiserver prints for the built-in workload and network kinds
//! (`pkg/printers/internalversion/printers.go`), so `kubectl get deploy,svc,pdb,netpol`
//! looks as on a cluster. In: a stored object; out: its cells (`table` adds NAME first and
//! wraps them in rows).

use serde_json::{Value, json};

/// One column: header, type, and priority (1: only with `-o wide`).
pub struct Column {
    /// Header.
    pub name: &'static str,
    /// `string` or `integer`.
    pub kind: &'static str,
    /// 0 always shown, 1 with `-o wide`.
    pub priority: u8,
}

const fn col(name: &'static str, kind: &'static str, priority: u8) -> Column {
    Column { name, kind, priority }
}

const DEPLOYMENT: &[Column] = &[
    col("Ready", "string", 0),
    col("Up-to-date", "integer", 0),
    col("Available", "integer", 0),
    col("Age", "string", 0),
    col("Containers", "string", 1),
    col("Images", "string", 1),
    col("Selector", "string", 1),
];
const SERVICE: &[Column] = &[
    col("Type", "string", 0),
    col("Cluster-IP", "string", 0),
    col("External-IP", "string", 0),
    col("Port(s)", "string", 0),
    col("Age", "string", 0),
    col("Selector", "string", 1),
];
const POD_DISRUPTION_BUDGET: &[Column] = &[
    col("Min Available", "string", 0),
    col("Max Unavailable", "string", 0),
    col("Allowed Disruptions", "integer", 0),
    col("Age", "string", 0),
];
const NETWORK_POLICY: &[Column] = &[col("Pod-Selector", "string", 0), col("Age", "string", 0)];

/// The columns after NAME of a kind with a printer here, or `None`.
pub fn columns(kind: &str) -> Option<&'static [Column]> {
    match kind {
        "Deployment" => Some(DEPLOYMENT),
        "Service" => Some(SERVICE),
        "PodDisruptionBudget" => Some(POD_DISRUPTION_BUDGET),
        "NetworkPolicy" => Some(NETWORK_POLICY),
        _ => None,
    }
}

/// The cells after NAME of `o`, matching [`columns`]; `age` is the object's age as printed.
pub fn cells(kind: &str, o: &Value, age: String) -> Vec<Value> {
    let int = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    match kind {
        "Deployment" => {
            let containers = o.pointer("/spec/template/spec/containers").and_then(Value::as_array);
            let joined = |field: &str| {
                containers
                    .map(|cs| cs.iter().filter_map(|c| c.get(field)?.as_str()).collect::<Vec<_>>().join(","))
                    .unwrap_or_default()
            };
            vec![
                json!(format!("{}/{}", int("/status/readyReplicas"), int("/spec/replicas"))),
                json!(int("/status/updatedReplicas")),
                json!(int("/status/availableReplicas")),
                json!(age),
                json!(joined("name")),
                json!(joined("image")),
                json!(label_selector(o.pointer("/spec/selector"))),
            ]
        }
        "Service" => {
            let text = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
            let kind = match text("/spec/type") {
                t if t.is_empty() => "ClusterIP".to_owned(),
                t => t,
            };
            let cluster_ip = match text("/spec/clusterIP") {
                ip if ip.is_empty() => "<none>".to_owned(),
                ip => ip,
            };
            vec![
                json!(kind),
                json!(cluster_ip),
                json!(external_ip(o, &kind)),
                json!(ports(o)),
                json!(age),
                json!(match_labels(o.pointer("/spec/selector"))),
            ]
        }
        "PodDisruptionBudget" => {
            let bound = |p: &str| match o.pointer(p) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => "N/A".to_owned(),
            };
            vec![
                json!(bound("/spec/minAvailable")),
                json!(bound("/spec/maxUnavailable")),
                json!(int("/status/disruptionsAllowed")),
                json!(age),
            ]
        }
        "NetworkPolicy" => vec![json!(label_selector(o.pointer("/spec/podSelector"))), json!(age)],
        _ => vec![json!(age)],
    }
}

/// A map of labels as `labels.FormatLabels` prints it: `a=b,c=d`, or `<none>`.
fn match_labels(labels: Option<&Value>) -> String {
    let pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    if pairs.is_empty() { "<none>".into() } else { pairs.join(",") }
}

/// A `LabelSelector` as `metav1.FormatLabelSelector` prints it (`app=a,tier in (x,y)`), or
/// `<none>` when it selects everything.
fn label_selector(selector: Option<&Value>) -> String {
    let s = selector.map(selector_string).unwrap_or_default();
    if s.is_empty() { "<none>".into() } else { s }
}

/// A `LabelSelector` as a selector string, as `metav1.LabelSelectorAsSelector(…).String()`
/// writes it (`app=web,tier in (a,b)`; empty when it selects everything): what tables print
/// and what a Scale's `status.selector` carries.
pub(super) fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> =
            e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        parts.push(match e.get("operator").and_then(Value::as_str).unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    parts.join(",")
}

/// EXTERNAL-IP as kubectl shows it for each Service type.
fn external_ip(o: &Value, kind: &str) -> String {
    let strings = |p: &str| -> Vec<String> {
        o.pointer(p)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let external = strings("/spec/externalIPs");
    match kind {
        "ExternalName" => o.pointer("/spec/externalName").and_then(Value::as_str).unwrap_or_default().to_owned(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i.get("ip").or_else(|| i.get("hostname")).and_then(Value::as_str).map(str::to_owned))
                .collect();
            ips.extend(external);
            if ips.is_empty() { "<pending>".into() } else { ips.join(",") }
        }
        _ if external.is_empty() => "<none>".into(),
        _ => external.join(","),
    }
}

/// PORT(S): `80/TCP`, `80:30080/TCP` with a node port, or `<none>`.
fn ports(o: &Value) -> String {
    let list: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(node) => format!("{port}:{node}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if list.is_empty() { "<none>".into() } else { list.join(",") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_cells_count_replicas_and_list_containers() {
        let d = json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "k"}},
            "template": {"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}},
            "status": {"readyReplicas": 1, "updatedReplicas": 2}});
        let cells = cells("Deployment", &d, "5s".into());
        assert_eq!(
            cells,
            [json!("1/2"), json!(2), json!(0), json!("5s"), json!("a,b"), json!("a:1,b:1"), json!("app=k")]
        );
        assert_eq!(cells.len(), columns("Deployment").map_or(0, <[Column]>::len));
    }

    #[test]
    fn service_and_policy_cells_read_as_kubectl_prints_them() {
        let svc = json!({"spec": {"ports": [{"port": 9090, "protocol": "TCP"}, {"port": 53, "protocol": "UDP", "nodePort": 30053}],
            "selector": {"app": "k"}}});
        assert_eq!(
            cells("Service", &svc, "1m".into()),
            [
                json!("ClusterIP"),
                json!("<none>"),
                json!("<none>"),
                json!("9090/TCP,53:30053/UDP"),
                json!("1m"),
                json!("app=k")
            ]
        );
        let pdb = json!({"spec": {"minAvailable": 1}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(cells("PodDisruptionBudget", &pdb, "1m".into()), [json!("1"), json!("N/A"), json!(1), json!("1m")]);
        let everything = json!({"spec": {"podSelector": {}}});
        assert_eq!(cells("NetworkPolicy", &everything, "1m".into())[0], "<none>");
        let tiers = json!({"spec": {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}});
        assert_eq!(cells("NetworkPolicy", &tiers, "1m".into())[0], "tier in (a,b)");
    }
}
