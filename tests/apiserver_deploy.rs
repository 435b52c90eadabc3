//! `kubectl apply` of the kinds a cluster install of kreflex uses (Namespace,
//! ServiceAccount, RBAC, a ConfigMap holding a plugin, Deployment, Service,
//! PodDisruptionBudget, NetworkPolicy) against the embedded API server, with the real
//! kubectl: server-side dry runs (client- and server-side apply) persist nothing, a first
//! apply creates, a second apply of a changed file sends strategic-merge patches that merge
//! containers, env, ports and volumes by key, and `kubectl get` prints each kind's
//! columns. Skipped, with a message, when kubectl is not on PATH, unless
//! `KREFLEX_REQUIRE_KUBECTL=1`.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use kreflex::apiserver::ApiServer;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The objects, in the order `kubectl apply -f` sends them. `WASM_BASE64` stands for the
/// plugin's bytes.
const MANIFESTS: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: kreflex-system
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kreflex
  namespace: kreflex-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kreflex
rules:
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "patch", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kreflex
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kreflex
subjects:
- kind: ServiceAccount
  name: kreflex
  namespace: kreflex-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: kreflex-leases
  namespace: kreflex-system
rules:
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kreflex-leases
  namespace: kreflex-system
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kreflex-leases
subjects:
- kind: ServiceAccount
  name: kreflex
  namespace: kreflex-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kreflex-plugins
  namespace: kreflex-system
binaryData:
  example.wasm: WASM_BASE64
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kreflex
  namespace: kreflex-system
  labels:
    app.kubernetes.io/name: kreflex
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: kreflex
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: kreflex
    spec:
      serviceAccountName: kreflex
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      containers:
      - name: kreflex
        image: kreflex:0.1.0
        args: ["run", "--plugins", "/plugins", "--leader-elect"]
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        ports:
        - name: metrics
          containerPort: 9090
        livenessProbe:
          httpGet:
            path: /healthz
            port: metrics
        readinessProbe:
          httpGet:
            path: /readyz
            port: metrics
        resources:
          requests:
            cpu: 100m
            memory: 128Mi
          limits:
            memory: 512Mi
        securityContext:
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          capabilities:
            drop: ["ALL"]
        volumeMounts:
        - name: plugins
          mountPath: /plugins
        - name: cache
          mountPath: /var/cache/kreflex
      volumes:
      - name: plugins
        configMap:
          name: kreflex-plugins
      - name: cache
        emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: kreflex-metrics
  namespace: kreflex-system
spec:
  selector:
    app.kubernetes.io/name: kreflex
  ports:
  - name: metrics
    port: 9090
    targetPort: metrics
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: kreflex
  namespace: kreflex-system
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: kreflex
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: kreflex
  namespace: kreflex-system
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: kreflex
  policyTypes: ["Ingress", "Egress"]
  ingress:
  - ports:
    - port: 9090
  egress:
  - ports:
    - port: 443
    - port: 6443
  - to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
    ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
"#;

/// A kubeconfig and the manifests (with `edit` applied) in a temporary folder.
struct Workdir {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Workdir {
    fn new(server: &ApiServer) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        Self { dir, kubeconfig }
    }

    /// Writes the manifests, changed by `edit`, and returns their path.
    fn manifests(&self, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
        use base64::Engine;
        // A plugin-sized binary: the wasm header and 64 KiB more.
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend((0..65_536u32).map(|i| (i % 251) as u8));
        let text = MANIFESTS.replace("WASM_BASE64", &base64::engine::general_purpose::STANDARD.encode(&wasm));
        let path = self.dir.path().join(name);
        std::fs::write(&path, edit(text)).expect("write manifests");
        path
    }

    /// `kubectl ARGS` off the async workers.
    async fn kubectl(&self, args: &[&str]) -> Output {
        let kubeconfig = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || kubectl(&kubeconfig, &args)).await.expect("join")
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "kubectl {args:?} failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
        stdout
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// The kinds and names of the namespaced objects in the manifests.
const NAMESPACED: &str = "sa,role,rolebinding,cm,deploy,svc,pdb,netpol";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dry_runs_accept_the_manifests_and_persist_nothing() {
    if !have_kubectl("the deploy manifest tests") {
        return;
    }
    let s = server_with(Default::default()).await;
    let w = Workdir::new(&s);
    let file = w.manifests("kreflex.yaml", |t| t);
    let file = path(&file);

    // As on a real cluster, a dry run creates nothing, so objects in a namespace the same
    // file creates are refused (kubernetes/kubernetes#83562).
    let fresh = w.kubectl(&["apply", "--dry-run=server", "-f", file]).await;
    assert!(String::from_utf8_lossy(&fresh.stdout).contains("namespace/kreflex-system created (server dry run)"));
    assert!(
        String::from_utf8_lossy(&fresh.stderr).contains("namespaces \"kreflex-system\" not found"),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );

    w.ok(&["create", "namespace", "kreflex-system"]).await;
    let before = s.resource_version();
    let client_side = w.ok(&["apply", "--dry-run=server", "-f", file]).await;
    for object in [
        "serviceaccount/kreflex created (server dry run)",
        "clusterrole.rbac.authorization.k8s.io/kreflex created (server dry run)",
        "clusterrolebinding.rbac.authorization.k8s.io/kreflex created (server dry run)",
        "role.rbac.authorization.k8s.io/kreflex-leases created (server dry run)",
        "rolebinding.rbac.authorization.k8s.io/kreflex-leases created (server dry run)",
        "configmap/kreflex-plugins created (server dry run)",
        "deployment.apps/kreflex created (server dry run)",
        "service/kreflex-metrics created (server dry run)",
        "poddisruptionbudget.policy/kreflex created (server dry run)",
        "networkpolicy.networking.k8s.io/kreflex created (server dry run)",
    ] {
        assert!(client_side.contains(object), "{object} missing from:\n{client_side}");
    }
    let server_side = w.ok(&["apply", "--server-side", "--dry-run=server", "-f", file]).await;
    assert_eq!(server_side.matches("serverside-applied (server dry run)").count(), 11, "{server_side}");
    assert_eq!(s.resource_version(), before, "a dry run wrote something");
    let left = w.ok(&["get", NAMESPACED, "-n", "kreflex-system", "-o", "name"]).await;
    assert_eq!(left.trim(), "", "{left}");
    assert!(!w.kubectl(&["get", "clusterrole", "kreflex"]).await.status.success());

    // A typo is refused (kubectl asks for strict field validation), as on a cluster.
    let typo = w.manifests("typo.yaml", |t| {
        t.replace("        image: kreflex:0.1.0\n", "        image: kreflex:0.1.0\n        imagePulPolicy: Always\n")
    });
    let refused = w.kubectl(&["apply", "--dry-run=server", "-f", path(&typo)]).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(r#"strict decoding error: unknown field "spec.template.spec.containers[0].imagePulPolicy""#),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_patches_deployments_by_merge_key() {
    if !have_kubectl("the deploy manifest tests") {
        return;
    }
    let s = server_with(Default::default()).await;
    let w = Workdir::new(&s);
    let first = w.manifests("v1.yaml", |t| t);
    let created = w.ok(&["apply", "-f", path(&first)]).await;
    assert_eq!(created.matches(" created").count(), 11, "{created}");
    let again = w.ok(&["apply", "-f", path(&first)]).await;
    assert!(again.contains("deployment.apps/kreflex unchanged"), "{again}");

    // v2: a new image and env var, a sidecar, one port and one volume fewer, another
    // rollout strategy, a Service port more.
    let second = w.manifests("v2.yaml", |t| {
        t.replace("image: kreflex:0.1.0", "image: kreflex:0.2.0")
            .replace("        env:\n", "        env:\n        - name: RUST_LOG\n          value: debug\n")
            .replace("      volumes:\n", "      - name: shipper\n        image: shipper:1\n      volumes:\n")
            .replace("      - name: cache\n        emptyDir: {}\n", "")
            .replace("        - name: cache\n          mountPath: /var/cache/kreflex\n", "")
            .replace("    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 0\n", "    type: Recreate\n")
            .replace(
                "    port: 9090\n    targetPort: metrics\n",
                "    port: 9090\n    targetPort: metrics\n  - name: admin\n    port: 9091\n",
            )
    });
    let patched = w.ok(&["apply", "-f", path(&second)]).await;
    let deploys: kube::Api<Deployment> = kube::Api::namespaced(s.client(), "kreflex-system");
    assert!(patched.contains("deployment.apps/kreflex configured"), "{patched}");
    assert!(patched.contains("service/kreflex-metrics configured"), "{patched}");
    // A dry run of a change shows the object as stored, version and all (`kubectl diff`).
    let third = w.manifests("v3.yaml", |t| t.replace("replicas: 2", "replicas: 3"));
    let dry = w.ok(&["apply", "--dry-run=server", "-f", path(&third), "-o", "json"]).await;
    let stored = serde_json::to_value(deploys.get("kreflex").await.expect("deployment")).expect("json");
    let items: Value = serde_json::from_str(&dry).expect("kubectl prints a List");
    let dry_deploy =
        items["items"].as_array().into_iter().flatten().find(|i| i["kind"] == "Deployment").expect("listed");
    assert_eq!(dry_deploy["spec"]["replicas"], 3);
    assert_eq!(dry_deploy["metadata"]["resourceVersion"], stored["metadata"]["resourceVersion"]);
    assert_eq!(stored["spec"]["replicas"], 2);

    let d = serde_json::to_value(deploys.get("kreflex").await.expect("deployment")).expect("json");
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}), "$retainKeys drops rollingUpdate");
    let pod = &d["spec"]["template"]["spec"];
    let names = |list: &Value, key: &str| -> Vec<String> {
        list.as_array().into_iter().flatten().filter_map(|i| i[key].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(names(&pod["containers"], "name"), ["kreflex", "shipper"]);
    let main = &pod["containers"][0];
    assert_eq!(main["image"], "kreflex:0.2.0");
    assert_eq!(names(&main["env"], "name"), ["RUST_LOG", "POD_NAME", "POD_NAMESPACE"]);
    assert_eq!(names(&main["volumeMounts"], "mountPath"), ["/plugins"]);
    assert_eq!(names(&pod["volumes"], "name"), ["plugins"]);
    assert_eq!(main["livenessProbe"]["httpGet"]["path"], "/healthz", "untouched fields stay");

    // Server-side apply takes over from client-side apply without conflicts (same values).
    let ssa = w.ok(&["apply", "--server-side", "-f", path(&second)]).await;
    assert_eq!(ssa.matches("serverside-applied").count(), 11, "{ssa}");
    // kubectl then moves the client-side apply's ownership to itself by writing managedFields.
    let owners: Vec<String> = deploys
        .get("kreflex")
        .await
        .expect("deployment")
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(owners.contains(&"kubectl".to_owned()), "{owners:?}");
    assert!(!owners.contains(&"kubectl-client-side-apply".to_owned()), "{owners:?}");

    let tables = w.ok(&["get", "deploy,svc,pdb,netpol", "-n", "kreflex-system"]).await;
    for header in [
        "NAME                      READY   UP-TO-DATE   AVAILABLE   AGE",
        "TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)",
        "MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS   AGE",
        "POD-SELECTOR",
    ] {
        assert!(tables.contains(header), "{header} missing from:\n{tables}");
    }
    assert!(tables.contains("9090/TCP,9091/TCP"), "{tables}");
    let all = w.ok(&["get", "all", "-n", "kreflex-system", "-o", "name"]).await;
    assert_eq!(all.lines().collect::<Vec<_>>(), ["service/kreflex-metrics", "deployment.apps/kreflex"], "{all}");

    // Status is its own subresource: only a status write moves READY.
    w.ok(&[
        "patch",
        "deploy",
        "kreflex",
        "-n",
        "kreflex-system",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"replicas":2,"readyReplicas":2,"updatedReplicas":2,"availableReplicas":2}}"#,
    ])
    .await;
    let ready = w.ok(&["get", "deploy", "kreflex", "-n", "kreflex-system", "--no-headers"]).await;
    assert!(ready.split_whitespace().collect::<Vec<_>>().starts_with(&["kreflex", "2/2", "2", "2"]), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_sends_workload_kinds_as_protobuf_and_they_are_stored() {
    if !have_kubectl("the deploy manifest tests") {
        return;
    }
    let s = server_with(Default::default()).await;
    let w = Workdir::new(&s);
    // kubectl sends each of these as application/vnd.kubernetes.protobuf.
    w.ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=0", "--port=80"]).await;
    w.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]).await;
    w.ok(&["create", "pdb", "web", "--selector=app=web", "--min-available=50%"]).await;
    let get = |args: &'static [&'static str]| w.ok(args);
    assert_eq!(get(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]).await, "0", "an explicit zero stays");
    assert_eq!(get(&["get", "deploy", "web", "-o", "jsonpath={.spec.selector.matchLabels.app}"]).await, "web");
    assert_eq!(
        get(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]).await,
        "nginx:1.27"
    );
    let template = get(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0]}"]).await;
    assert!(!template.contains("stdin") && !template.contains("tty"), "zero Go fields are left out: {template}");
    assert_eq!(get(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].targetPort}"]).await, "8080");
    assert_eq!(get(&["get", "pdb", "web", "-o", "jsonpath={.spec.minAvailable}"]).await, "50%");
    // `kubectl scale` writes the Deployment's Scale, with its replica count as precondition.
    w.ok(&["scale", "deploy", "web", "--replicas=3"]).await;
    assert_eq!(get(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]).await, "3");
    let stale = w.kubectl(&["scale", "deploy", "web", "--replicas=5", "--current-replicas=2"]).await;
    assert!(!stale.status.success());
    assert_eq!(get(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]).await, "3");
    let table = get(&["get", "pdb", "web", "--no-headers"]).await;
    assert!(table.split_whitespace().collect::<Vec<_>>().starts_with(&["web", "50%", "N/A", "0"]), "{table}");
}

#[tokio::test]
async fn server_side_apply_owns_a_deployments_containers_by_name() {
    let s = server_with(Default::default()).await;
    let api: kube::Api<Deployment> = kube::Api::namespaced(s.client(), "default");
    let config = |container: &str, image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}})
    };
    let apply = |manager: &'static str, body: Value| {
        let api = api.clone();
        async move { api.patch("web", &kube::api::PatchParams::apply(manager), &kube::api::Patch::Apply(body)).await }
    };
    apply("app", config("app", "app:1")).await.expect("the app's manager creates");
    apply("mesh", config("proxy", "proxy:1")).await.expect("another manager adds its container");
    apply("app", config("app", "app:2")).await.expect("each manager changes its own container");
    let d = serde_json::to_value(api.get("web").await.expect("get")).expect("json");
    let containers: Vec<(&str, &str)> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?, c["image"].as_str()?)))
        .collect();
    assert_eq!(containers, [("app", "app:2"), ("proxy", "proxy:1")], "containers merge by name");
    let err = match apply("mesh", config("app", "app:3")).await {
        Err(kube::Error::Api(e)) => e,
        other => panic!("expected a conflict, got {other:?}"),
    };
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains(r#"conflict with "app": .spec.template.spec.containers[name="app"].image"#),
        "{}",
        err.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_plugin_configmap_needs_server_side_apply() {
    if !have_kubectl("the deploy manifest tests") {
        return;
    }
    let s = server_with(Default::default()).await;
    let w = Workdir::new(&s);
    // 300 KiB of plugin: within a ConfigMap's 1 MiB, but its copy in the last-applied
    // annotation of a client-side apply is beyond the 256 KiB annotations may hold.
    let file = w.dir.path().join("plugins.yaml");
    let wasm = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; 300 << 10])
    };
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plugins\n  namespace: default\nbinaryData:\n  big.wasm: {wasm}\n"
    );
    std::fs::write(&file, cm).expect("write");
    let client_side = w.kubectl(&["apply", "-f", path(&file)]).await;
    assert!(!client_side.status.success());
    assert!(
        String::from_utf8_lossy(&client_side.stderr)
            .contains("metadata.annotations: Too long: must have at most 262144 bytes"),
        "{}",
        String::from_utf8_lossy(&client_side.stderr)
    );
    let server_side = w.ok(&["apply", "--server-side", "-f", path(&file)]).await;
    assert!(server_side.contains("configmap/plugins serverside-applied"), "{server_side}");
    // Beyond 1 MiB the ConfigMap itself is refused.
    let huge = file.with_file_name("huge.yaml");
    let data = "x".repeat((1 << 20) + 1);
    std::fs::write(&huge, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: huge\ndata:\n  a: {data}\n"))
        .expect("write");
    let refused = w.kubectl(&["apply", "--server-side", "-f", path(&huge)]).await;
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Too long: must have at most 1048576 bytes"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
