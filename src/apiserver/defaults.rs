//! The defaults kube-apiserver sets on built-in kinds when they are written
//! (`SetDefaults_*` in `pkg/apis/*/v1/defaults.go`) and the values its Service registry
//! allocates, so that stored objects read back as on a cluster: a Secret's `type`; a
//! Deployment's replicas, rollout strategy, history and progress deadline, and its pod
//! template's restart, DNS and scheduling settings, container termination messages, pull
//! policy, port protocols and probe timings; a Service's type, session affinity, port
//! protocols and target ports, IP family, and a cluster IP and node ports from the ranges
//! of a default cluster (`10.96.0.0/12`, `30000-32767`), kept across updates that leave
//! them out; a NetworkPolicy's policy types and port protocols. In: the object being
//! written, the stored one (on updates) and what Services already hold; out: the object
//! with its defaults (a pure function; `store::write` calls it on every create and update).

use super::resources::ResourceDef;
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// Cluster IPs and node ports held by stored Services (other than the one written).
#[derive(Debug, Default)]
pub struct Allocated {
    /// `spec.clusterIP`s.
    pub cluster_ips: HashSet<String>,
    /// `spec.ports[].nodePort`s.
    pub node_ports: HashSet<i64>,
}

impl Allocated {
    /// What the Services `services` hold.
    pub fn of<'a>(services: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut a = Self::default();
        for s in services {
            if let Some(ip) = s.pointer("/spec/clusterIP").and_then(Value::as_str) {
                a.cluster_ips.insert(ip.to_owned());
            }
            for p in s.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
                if let Some(n) = p.get("nodePort").and_then(Value::as_i64) {
                    a.node_ports.insert(n);
                }
            }
        }
        a
    }
}

/// Sets the defaults of `obj`, a `def` being written over `old` (if it exists).
pub fn apply(def: &ResourceDef, obj: &mut Value, old: Option<&Value>, allocated: &Allocated) {
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Secret") if obj.get("type").and_then(Value::as_str).is_none_or(str::is_empty) => {
            obj["type"] = json!("Opaque");
        }
        ("apps", "Deployment") => deployment(obj),
        ("", "Service") => service(obj, old, allocated),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(obj),
        _ => {}
    }
}

/// The object at `key` of `parent` (made an empty one if missing or not an object).
fn object<'a>(parent: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !parent.get(key).is_some_and(Value::is_object) {
        parent[key] = json!({});
    }
    parent[key].as_object_mut().expect("just made an object")
}

fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_owned(), value);
    }
}

fn items<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
}

fn deployment(obj: &mut Value) {
    let spec = object(obj, "spec");
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    let spec = &mut obj["spec"];
    let strategy = object(spec, "strategy");
    default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let rolling = object(&mut spec["strategy"], "rollingUpdate");
        default(rolling, "maxUnavailable", json!("25%"));
        default(rolling, "maxSurge", json!("25%"));
    }
    object(spec, "template");
    pod_spec(&mut spec["template"]["spec"]);
}

/// `SetDefaults_PodSpec` and what it implies for containers, probes and volumes.
fn pod_spec(pod: &mut Value) {
    let m = match pod.as_object_mut() {
        Some(m) => m,
        None => {
            *pod = json!({});
            pod.as_object_mut().expect("just made an object")
        }
    };
    default(m, "restartPolicy", json!("Always"));
    default(m, "terminationGracePeriodSeconds", json!(30));
    default(m, "dnsPolicy", json!("ClusterFirst"));
    default(m, "securityContext", json!({}));
    default(m, "schedulerName", json!("default-scheduler"));
    for list in ["initContainers", "containers"] {
        for c in items(pod, list) {
            container(c);
        }
    }
    for v in items(pod, "volumes") {
        for source in ["configMap", "secret"] {
            if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
                default(s, "defaultMode", json!(420));
            }
        }
    }
}

fn container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    default(m, "terminationMessagePath", json!("/dev/termination-log"));
    default(m, "terminationMessagePolicy", json!("File"));
    let image = m.get("image").and_then(Value::as_str).unwrap_or_default();
    // The tag is what follows the last `:` after the last `/`; none or `latest` pulls always.
    let tag = image.rsplit('/').next().and_then(|last| last.split('@').next()).and_then(|n| n.rsplit_once(':'));
    let pull = match tag {
        _ if image.contains('@') => "IfNotPresent",
        None | Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    };
    default(m, "imagePullPolicy", json!(pull));
    for p in items(c, "ports") {
        if let Some(p) = p.as_object_mut() {
            default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                default(h, "scheme", json!("HTTP"));
            }
        }
    }
}

fn service(obj: &mut Value, old: Option<&Value>, allocated: &Allocated) {
    let spec = object(obj, "spec");
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_owned();
    let spec = &mut obj["spec"];
    for p in items(spec, "ports") {
        let Some(p) = p.as_object_mut() else { continue };
        default(p, "protocol", json!("TCP"));
        if let Some(port) = p.get("port").cloned() {
            default(p, "targetPort", port);
        }
    }
    if kind == "ExternalName" {
        return;
    }
    let m = spec.as_object_mut().expect("spec is an object");
    default(m, "internalTrafficPolicy", json!("Cluster"));
    // An update that leaves out what the registry allocated keeps it.
    let old_spec = old.and_then(|o| o.get("spec"));
    if let Some(ip) =
        old_spec.and_then(|s| s.get("clusterIP")).filter(|_| m.get("clusterIP").is_none_or(Value::is_null))
    {
        m.insert("clusterIP".into(), ip.clone());
    }
    if m.get("clusterIP").is_none_or(Value::is_null) {
        m.insert("clusterIP".into(), json!(free_cluster_ip(&allocated.cluster_ips)));
    }
    let ip = m.get("clusterIP").cloned().unwrap_or(Value::Null);
    if ip.as_str() != Some("None") || !m.contains_key("clusterIPs") {
        m.insert("clusterIPs".into(), json!([ip]));
    }
    default(m, "ipFamilies", json!(["IPv4"]));
    default(m, "ipFamilyPolicy", json!("SingleStack"));
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        default(m, "externalTrafficPolicy", json!("Cluster"));
        let old_ports: Vec<Value> =
            old_spec.and_then(|s| s.get("ports")).and_then(Value::as_array).cloned().unwrap_or_default();
        let mut taken = allocated.node_ports.clone();
        for p in items(spec, "ports") {
            let Some(p) = p.as_object_mut() else { continue };
            if p.get("nodePort").is_some_and(|n| !n.is_null()) {
                continue;
            }
            let kept = old_ports
                .iter()
                .find(|o| o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol"))
                .and_then(|o| o.get("nodePort").and_then(Value::as_i64));
            let port = kept.unwrap_or_else(|| (30000..=32767).find(|n| !taken.contains(n)).unwrap_or(32767));
            taken.insert(port);
            p.insert("nodePort".into(), json!(port));
        }
    }
}

/// The lowest free address of `10.96.0.0/12` after the `kubernetes` Service's `10.96.0.1`.
fn free_cluster_ip(taken: &HashSet<String>) -> String {
    let base = u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0));
    (2..(1u32 << 20) - 1)
        .map(|i| std::net::Ipv4Addr::from(base + i).to_string())
        .find(|ip| !taken.contains(ip))
        .unwrap_or_else(|| "10.111.255.254".into())
}

fn network_policy(obj: &mut Value) {
    let spec = object(obj, "spec");
    if spec.get("policyTypes").and_then(Value::as_array).is_none_or(|t| t.is_empty()) {
        let mut types = vec![json!("Ingress")];
        if spec.contains_key("egress") {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    let spec = &mut obj["spec"];
    for direction in ["ingress", "egress"] {
        for rule in items(spec, direction) {
            for p in items(rule, "ports") {
                if let Some(p) = p.as_object_mut() {
                    default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;

    fn def(kind: &str) -> ResourceDef {
        builtins().into_iter().find(|d| d.kind == kind).expect("built in")
    }

    #[test]
    fn a_deployment_gets_the_defaults_of_its_spec_template_and_containers() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}], "readinessProbe": {"httpGet": {"port": 80}}},
            {"name": "b", "image": "registry:5000/b:1.2"}],
            "volumes": [{"name": "p", "configMap": {"name": "p"}}]}}}});
        apply(&def("Deployment"), &mut d, None, &Allocated::default());
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!((pod["restartPolicy"].clone(), pod["dnsPolicy"].clone()), (json!("Always"), json!("ClusterFirst")));
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["containers"][0]["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(pod["volumes"][0]["configMap"]["defaultMode"], 420);
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}, "template": {}}});
        apply(&def("Deployment"), &mut recreate, None, &Allocated::default());
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn services_get_free_addresses_and_keep_them_across_updates() {
        let taken = Allocated::of(&[json!({"spec": {"clusterIP": "10.96.0.2", "ports": [{"nodePort": 30000}]}})]);
        let mut s = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        apply(&def("Service"), &mut s, None, &taken);
        assert_eq!(s["spec"]["clusterIP"], "10.96.0.3");
        assert_eq!(s["spec"]["clusterIPs"], json!(["10.96.0.3"]));
        assert_eq!(s["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30001}));
        let mut update = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        apply(&def("Service"), &mut update, Some(&s), &Allocated::default());
        assert_eq!(
            (update["spec"]["clusterIP"].clone(), update["spec"]["ports"][0]["nodePort"].clone()),
            (json!("10.96.0.3"), json!(30001))
        );
    }

    #[test]
    fn a_network_policy_with_egress_rules_covers_egress() {
        let mut p = json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}});
        apply(&def("NetworkPolicy"), &mut p, None, &Allocated::default());
        assert_eq!(p["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(p["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
    }
}
