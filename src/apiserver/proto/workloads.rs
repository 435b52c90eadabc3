//! Protobuf bodies of the workload and network kinds (`apps/v1` Deployment, `v1` Service,
//! `policy/v1` PodDisruptionBudget, `networking.k8s.io/v1` NetworkPolicy) and every message
//! they contain, which kubectl sends for `kubectl create deployment|service|pdb`. Written
//! by `workloads.py` (beside this file) from the `k8s-pb` messages (every field, matched by
//! protobuf tag) and the Go types of `k8s.io/api` (JSON names, `json:",inline"` embedding,
//! and `omitempty`): Go's protobuf always carries a non-pointer bool or number, its JSON
//! leaves it out when zero, so those are `omit_zero`; pointer fields keep an explicit zero
//! (`allowPrivilegeEscalation: false`).

use super::{Json, fields, inlined, omit_zero};
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core_v1;
use k8s_pb::api::networking::v1 as networking;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::Value;

impl Json for apps::Deployment {
    fn json(&self) -> Option<Value> {
        fields([("metadata", self.metadata.json()), ("spec", self.spec.json()), ("status", self.status.json())])
    }
}

impl Json for apps::DeploymentStatus {
    fn json(&self) -> Option<Value> {
        fields([
            ("observedGeneration", omit_zero(self.observed_generation.json())),
            ("replicas", omit_zero(self.replicas.json())),
            ("updatedReplicas", omit_zero(self.updated_replicas.json())),
            ("readyReplicas", omit_zero(self.ready_replicas.json())),
            ("availableReplicas", omit_zero(self.available_replicas.json())),
            ("unavailableReplicas", omit_zero(self.unavailable_replicas.json())),
            ("terminatingReplicas", self.terminating_replicas.json()),
            ("conditions", self.conditions.json()),
            ("collisionCount", self.collision_count.json()),
        ])
    }
}

impl Json for apps::DeploymentCondition {
    fn json(&self) -> Option<Value> {
        fields([
            ("type", self.r#type.json()),
            ("status", self.status.json()),
            ("lastUpdateTime", self.last_update_time.json()),
            ("lastTransitionTime", self.last_transition_time.json()),
            ("reason", self.reason.json()),
            ("message", self.message.json()),
        ])
    }
}

impl Json for apps::DeploymentSpec {
    fn json(&self) -> Option<Value> {
        fields([
            ("replicas", self.replicas.json()),
            ("selector", self.selector.json()),
            ("template", self.template.json()),
            ("strategy", self.strategy.json()),
            ("minReadySeconds", omit_zero(self.min_ready_seconds.json())),
            ("revisionHistoryLimit", self.revision_history_limit.json()),
            ("paused", omit_zero(self.paused.json())),
            ("progressDeadlineSeconds", self.progress_deadline_seconds.json()),
        ])
    }
}

impl Json for apps::DeploymentStrategy {
    fn json(&self) -> Option<Value> {
        fields([("type", self.r#type.json()), ("rollingUpdate", self.rolling_update.json())])
    }
}

impl Json for apps::RollingUpdateDeployment {
    fn json(&self) -> Option<Value> {
        fields([("maxUnavailable", self.max_unavailable.json()), ("maxSurge", self.max_surge.json())])
    }
}

impl Json for core_v1::PodTemplateSpec {
    fn json(&self) -> Option<Value> {
        fields([("metadata", self.metadata.json()), ("spec", self.spec.json())])
    }
}

impl Json for core_v1::PodSpec {
    fn json(&self) -> Option<Value> {
        fields([
            ("volumes", self.volumes.json()),
            ("initContainers", self.init_containers.json()),
            ("containers", self.containers.json()),
            ("ephemeralContainers", self.ephemeral_containers.json()),
            ("restartPolicy", self.restart_policy.json()),
            ("terminationGracePeriodSeconds", self.termination_grace_period_seconds.json()),
            ("activeDeadlineSeconds", self.active_deadline_seconds.json()),
            ("dnsPolicy", self.dns_policy.json()),
            ("nodeSelector", self.node_selector.json()),
            ("serviceAccountName", self.service_account_name.json()),
            ("serviceAccount", self.service_account.json()),
            ("automountServiceAccountToken", self.automount_service_account_token.json()),
            ("nodeName", self.node_name.json()),
            ("hostNetwork", omit_zero(self.host_network.json())),
            ("hostPID", omit_zero(self.host_pid.json())),
            ("hostIPC", omit_zero(self.host_ipc.json())),
            ("shareProcessNamespace", self.share_process_namespace.json()),
            ("securityContext", self.security_context.json()),
            ("imagePullSecrets", self.image_pull_secrets.json()),
            ("hostname", self.hostname.json()),
            ("subdomain", self.subdomain.json()),
            ("affinity", self.affinity.json()),
            ("schedulerName", self.scheduler_name.json()),
            ("tolerations", self.tolerations.json()),
            ("hostAliases", self.host_aliases.json()),
            ("priorityClassName", self.priority_class_name.json()),
            ("priority", self.priority.json()),
            ("dnsConfig", self.dns_config.json()),
            ("readinessGates", self.readiness_gates.json()),
            ("runtimeClassName", self.runtime_class_name.json()),
            ("enableServiceLinks", self.enable_service_links.json()),
            ("preemptionPolicy", self.preemption_policy.json()),
            ("overhead", self.overhead.json()),
            ("topologySpreadConstraints", self.topology_spread_constraints.json()),
            ("setHostnameAsFQDN", self.set_hostname_as_fqdn.json()),
            ("os", self.os.json()),
            ("hostUsers", self.host_users.json()),
            ("schedulingGates", self.scheduling_gates.json()),
            ("resourceClaims", self.resource_claims.json()),
            ("resources", self.resources.json()),
            ("hostnameOverride", self.hostname_override.json()),
            ("workloadRef", self.workload_ref.json()),
        ])
    }
}

impl Json for core_v1::WorkloadReference {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("podGroup", self.pod_group.json()),
            ("podGroupReplicaKey", self.pod_group_replica_key.json()),
        ])
    }
}

impl Json for core_v1::ResourceRequirements {
    fn json(&self) -> Option<Value> {
        fields([("limits", self.limits.json()), ("requests", self.requests.json()), ("claims", self.claims.json())])
    }
}

impl Json for core_v1::ResourceClaim {
    fn json(&self) -> Option<Value> {
        fields([("name", self.name.json()), ("request", self.request.json())])
    }
}

impl Json for core_v1::PodResourceClaim {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("resourceClaimName", self.resource_claim_name.json()),
            ("resourceClaimTemplateName", self.resource_claim_template_name.json()),
        ])
    }
}

impl Json for core_v1::PodSchedulingGate {
    fn json(&self) -> Option<Value> {
        fields([("name", self.name.json())])
    }
}

impl Json for core_v1::PodOs {
    fn json(&self) -> Option<Value> {
        fields([("name", self.name.json())])
    }
}

impl Json for core_v1::TopologySpreadConstraint {
    fn json(&self) -> Option<Value> {
        fields([
            ("maxSkew", self.max_skew.json()),
            ("topologyKey", self.topology_key.json()),
            ("whenUnsatisfiable", self.when_unsatisfiable.json()),
            ("labelSelector", self.label_selector.json()),
            ("minDomains", self.min_domains.json()),
            ("nodeAffinityPolicy", self.node_affinity_policy.json()),
            ("nodeTaintsPolicy", self.node_taints_policy.json()),
            ("matchLabelKeys", self.match_label_keys.json()),
        ])
    }
}

impl Json for core_v1::PodReadinessGate {
    fn json(&self) -> Option<Value> {
        fields([("conditionType", self.condition_type.json())])
    }
}

impl Json for core_v1::PodDnsConfig {
    fn json(&self) -> Option<Value> {
        fields([
            ("nameservers", self.nameservers.json()),
            ("searches", self.searches.json()),
            ("options", self.options.json()),
        ])
    }
}

impl Json for core_v1::PodDnsConfigOption {
    fn json(&self) -> Option<Value> {
        fields([("name", self.name.json()), ("value", self.value.json())])
    }
}

impl Json for core_v1::HostAlias {
    fn json(&self) -> Option<Value> {
        fields([("ip", self.ip.json()), ("hostnames", self.hostnames.json())])
    }
}

impl Json for core_v1::Toleration {
    fn json(&self) -> Option<Value> {
        fields([
            ("key", self.key.json()),
            ("operator", self.operator.json()),
            ("value", self.value.json()),
            ("effect", self.effect.json()),
            ("tolerationSeconds", self.toleration_seconds.json()),
        ])
    }
}

impl Json for core_v1::Affinity {
    fn json(&self) -> Option<Value> {
        fields([
            ("nodeAffinity", self.node_affinity.json()),
            ("podAffinity", self.pod_affinity.json()),
            ("podAntiAffinity", self.pod_anti_affinity.json()),
        ])
    }
}

impl Json for core_v1::PodAntiAffinity {
    fn json(&self) -> Option<Value> {
        fields([
            (
                "requiredDuringSchedulingIgnoredDuringExecution",
                self.required_during_scheduling_ignored_during_execution.json(),
            ),
            (
                "preferredDuringSchedulingIgnoredDuringExecution",
                self.preferred_during_scheduling_ignored_during_execution.json(),
            ),
        ])
    }
}

impl Json for core_v1::WeightedPodAffinityTerm {
    fn json(&self) -> Option<Value> {
        fields([("weight", self.weight.json()), ("podAffinityTerm", self.pod_affinity_term.json())])
    }
}

impl Json for core_v1::PodAffinityTerm {
    fn json(&self) -> Option<Value> {
        fields([
            ("labelSelector", self.label_selector.json()),
            ("namespaces", self.namespaces.json()),
            ("topologyKey", self.topology_key.json()),
            ("namespaceSelector", self.namespace_selector.json()),
            ("matchLabelKeys", self.match_label_keys.json()),
            ("mismatchLabelKeys", self.mismatch_label_keys.json()),
        ])
    }
}

impl Json for core_v1::PodAffinity {
    fn json(&self) -> Option<Value> {
        fields([
            (
                "requiredDuringSchedulingIgnoredDuringExecution",
                self.required_during_scheduling_ignored_during_execution.json(),
            ),
            (
                "preferredDuringSchedulingIgnoredDuringExecution",
                self.preferred_during_scheduling_ignored_during_execution.json(),
            ),
        ])
    }
}

impl Json for core_v1::NodeAffinity {
    fn json(&self) -> Option<Value> {
        fields([
            (
                "requiredDuringSchedulingIgnoredDuringExecution",
                self.required_during_scheduling_ignored_during_execution.json(),
            ),
            (
                "preferredDuringSchedulingIgnoredDuringExecution",
                self.preferred_during_scheduling_ignored_during_execution.json(),
            ),
        ])
    }
}

impl Json for core_v1::PreferredSchedulingTerm {
    fn json(&self) -> Option<Value> {
        fields([("weight", self.weight.json()), ("preference", self.preference.json())])
    }
}

impl Json for core_v1::NodeSelectorTerm {
    fn json(&self) -> Option<Value> {
        fields([("matchExpressions", self.match_expressions.json()), ("matchFields", self.match_fields.json())])
    }
}

impl Json for core_v1::NodeSelectorRequirement {
    fn json(&self) -> Option<Value> {
        fields([("key", self.key.json()), ("operator", self.operator.json()), ("values", self.values.json())])
    }
}

impl Json for core_v1::NodeSelector {
    fn json(&self) -> Option<Value> {
        fields([("nodeSelectorTerms", self.node_selector_terms.json())])
    }
}

impl Json for core_v1::PodSecurityContext {
    fn json(&self) -> Option<Value> {
        fields([
            ("seLinuxOptions", self.se_linux_options.json()),
            ("windowsOptions", self.windows_options.json()),
            ("runAsUser", self.run_as_user.json()),
            ("runAsGroup", self.run_as_group.json()),
            ("runAsNonRoot", self.run_as_non_root.json()),
            ("supplementalGroups", self.supplemental_groups.json()),
            ("supplementalGroupsPolicy", self.supplemental_groups_policy.json()),
            ("fsGroup", self.fs_group.json()),
            ("sysctls", self.sysctls.json()),
            ("fsGroupChangePolicy", self.fs_group_change_policy.json()),
            ("seccompProfile", self.seccomp_profile.json()),
            ("appArmorProfile", self.app_armor_profile.json()),
            ("seLinuxChangePolicy", self.se_linux_change_policy.json()),
        ])
    }
}

impl Json for core_v1::AppArmorProfile {
    fn json(&self) -> Option<Value> {
        fields([("type", self.r#type.json()), ("localhostProfile", self.localhost_profile.json())])
    }
}

impl Json for core_v1::SeccompProfile {
    fn json(&self) -> Option<Value> {
        fields([("type", self.r#type.json()), ("localhostProfile", self.localhost_profile.json())])
    }
}

impl Json for core_v1::Sysctl {
    fn json(&self) -> Option<Value> {
        fields([("name", self.name.json()), ("value", self.value.json())])
    }
}

impl Json for core_v1::WindowsSecurityContextOptions {
    fn json(&self) -> Option<Value> {
        fields([
            ("gmsaCredentialSpecName", self.gmsa_credential_spec_name.json()),
            ("gmsaCredentialSpec", self.gmsa_credential_spec.json()),
            ("runAsUserName", self.run_as_user_name.json()),
            ("hostProcess", self.host_process.json()),
        ])
    }
}

impl Json for core_v1::SeLinuxOptions {
    fn json(&self) -> Option<Value> {
        fields([
            ("user", self.user.json()),
            ("role", self.role.json()),
            ("type", self.r#type.json()),
            ("level", self.level.json()),
        ])
    }
}

impl Json for core_v1::EphemeralContainer {
    fn json(&self) -> Option<Value> {
        inlined(
            fields([("targetContainerName", self.target_container_name.json())]),
            [self.ephemeral_container_common.json()],
        )
    }
}

impl Json for core_v1::EphemeralContainerCommon {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("image", self.image.json()),
            ("command", self.command.json()),
            ("args", self.args.json()),
            ("workingDir", self.working_dir.json()),
            ("ports", self.ports.json()),
            ("envFrom", self.env_from.json()),
            ("env", self.env.json()),
            ("resources", self.resources.json()),
            ("resizePolicy", self.resize_policy.json()),
            ("restartPolicy", self.restart_policy.json()),
            ("restartPolicyRules", self.restart_policy_rules.json()),
            ("volumeMounts", self.volume_mounts.json()),
            ("volumeDevices", self.volume_devices.json()),
            ("livenessProbe", self.liveness_probe.json()),
            ("readinessProbe", self.readiness_probe.json()),
            ("startupProbe", self.startup_probe.json()),
            ("lifecycle", self.lifecycle.json()),
            ("terminationMessagePath", self.termination_message_path.json()),
            ("terminationMessagePolicy", self.termination_message_policy.json()),
            ("imagePullPolicy", self.image_pull_policy.json()),
            ("securityContext", self.security_context.json()),
            ("stdin", omit_zero(self.stdin.json())),
            ("stdinOnce", omit_zero(self.stdin_once.json())),
            ("tty", omit_zero(self.tty.json())),
        ])
    }
}

impl Json for core_v1::SecurityContext {
    fn json(&self) -> Option<Value> {
        fields([
            ("capabilities", self.capabilities.json()),
            ("privileged", self.privileged.json()),
            ("seLinuxOptions", self.se_linux_options.json()),
            ("windowsOptions", self.windows_options.json()),
            ("runAsUser", self.run_as_user.json()),
            ("runAsGroup", self.run_as_group.json()),
            ("runAsNonRoot", self.run_as_non_root.json()),
            ("readOnlyRootFilesystem", self.read_only_root_filesystem.json()),
            ("allowPrivilegeEscalation", self.allow_privilege_escalation.json()),
            ("procMount", self.proc_mount.json()),
            ("seccompProfile", self.seccomp_profile.json()),
            ("appArmorProfile", self.app_armor_profile.json()),
        ])
    }
}

impl Json for core_v1::Capabilities {
    fn json(&self) -> Option<Value> {
        fields([("add", self.add.json()), ("drop", self.drop.json())])
    }
}

impl Json for core_v1::Lifecycle {
    fn json(&self) -> Option<Value> {
        fields([
            ("postStart", self.post_start.json()),
            ("preStop", self.pre_stop.json()),
            ("stopSignal", self.stop_signal.json()),
        ])
    }
}

impl Json for core_v1::LifecycleHandler {
    fn json(&self) -> Option<Value> {
        fields([
            ("exec", self.exec.json()),
            ("httpGet", self.http_get.json()),
            ("tcpSocket", self.tcp_socket.json()),
            ("sleep", self.sleep.json()),
        ])
    }
}

impl Json for core_v1::SleepAction {
    fn json(&self) -> Option<Value> {
        fields([("seconds", self.seconds.json())])
    }
}

impl Json for core_v1::TcpSocketAction {
    fn json(&self) -> Option<Value> {
        fields([("port", self.port.json()), ("host", self.host.json())])
    }
}

impl Json for core_v1::HttpGetAction {
    fn json(&self) -> Option<Value> {
        fields([
            ("path", self.path.json()),
            ("port", self.port.json()),
            ("host", self.host.json()),
            ("scheme", self.scheme.json()),
            ("httpHeaders", self.http_headers.json()),
        ])
    }
}

impl Json for core_v1::HttpHeader {
    fn json(&self) -> Option<Value> {
        fields([("name", self.name.json()), ("value", self.value.json())])
    }
}

impl Json for core_v1::ExecAction {
    fn json(&self) -> Option<Value> {
        fields([("command", self.command.json())])
    }
}

impl Json for core_v1::Probe {
    fn json(&self) -> Option<Value> {
        inlined(
            fields([
                ("initialDelaySeconds", omit_zero(self.initial_delay_seconds.json())),
                ("timeoutSeconds", omit_zero(self.timeout_seconds.json())),
                ("periodSeconds", omit_zero(self.period_seconds.json())),
                ("successThreshold", omit_zero(self.success_threshold.json())),
                ("failureThreshold", omit_zero(self.failure_threshold.json())),
                ("terminationGracePeriodSeconds", self.termination_grace_period_seconds.json()),
            ]),
            [self.handler.json()],
        )
    }
}

impl Json for core_v1::ProbeHandler {
    fn json(&self) -> Option<Value> {
        fields([
            ("exec", self.exec.json()),
            ("httpGet", self.http_get.json()),
            ("tcpSocket", self.tcp_socket.json()),
            ("grpc", self.grpc.json()),
        ])
    }
}

impl Json for core_v1::GrpcAction {
    fn json(&self) -> Option<Value> {
        fields([("port", self.port.json()), ("service", self.service.json())])
    }
}

impl Json for core_v1::VolumeDevice {
    fn json(&self) -> Option<Value> {
        fields([("name", self.name.json()), ("devicePath", self.device_path.json())])
    }
}

impl Json for core_v1::VolumeMount {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("readOnly", omit_zero(self.read_only.json())),
            ("recursiveReadOnly", self.recursive_read_only.json()),
            ("mountPath", self.mount_path.json()),
            ("subPath", self.sub_path.json()),
            ("mountPropagation", self.mount_propagation.json()),
            ("subPathExpr", self.sub_path_expr.json()),
        ])
    }
}

impl Json for core_v1::ContainerRestartRule {
    fn json(&self) -> Option<Value> {
        fields([("action", self.action.json()), ("exitCodes", self.exit_codes.json())])
    }
}

impl Json for core_v1::ContainerRestartRuleOnExitCodes {
    fn json(&self) -> Option<Value> {
        fields([("operator", self.operator.json()), ("values", self.values.json())])
    }
}

impl Json for core_v1::ContainerResizePolicy {
    fn json(&self) -> Option<Value> {
        fields([("resourceName", self.resource_name.json()), ("restartPolicy", self.restart_policy.json())])
    }
}

impl Json for core_v1::EnvVar {
    fn json(&self) -> Option<Value> {
        fields([("name", self.name.json()), ("value", self.value.json()), ("valueFrom", self.value_from.json())])
    }
}

impl Json for core_v1::EnvVarSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("fieldRef", self.field_ref.json()),
            ("resourceFieldRef", self.resource_field_ref.json()),
            ("configMapKeyRef", self.config_map_key_ref.json()),
            ("secretKeyRef", self.secret_key_ref.json()),
            ("fileKeyRef", self.file_key_ref.json()),
        ])
    }
}

impl Json for core_v1::FileKeySelector {
    fn json(&self) -> Option<Value> {
        fields([
            ("volumeName", self.volume_name.json()),
            ("path", self.path.json()),
            ("key", self.key.json()),
            ("optional", self.optional.json()),
        ])
    }
}

impl Json for core_v1::SecretKeySelector {
    fn json(&self) -> Option<Value> {
        inlined(
            fields([("key", self.key.json()), ("optional", self.optional.json())]),
            [self.local_object_reference.json()],
        )
    }
}

impl Json for core_v1::ConfigMapKeySelector {
    fn json(&self) -> Option<Value> {
        inlined(
            fields([("key", self.key.json()), ("optional", self.optional.json())]),
            [self.local_object_reference.json()],
        )
    }
}

impl Json for core_v1::ResourceFieldSelector {
    fn json(&self) -> Option<Value> {
        fields([
            ("containerName", self.container_name.json()),
            ("resource", self.resource.json()),
            ("divisor", self.divisor.json()),
        ])
    }
}

impl Json for core_v1::ObjectFieldSelector {
    fn json(&self) -> Option<Value> {
        fields([("apiVersion", self.api_version.json()), ("fieldPath", self.field_path.json())])
    }
}

impl Json for core_v1::EnvFromSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("prefix", self.prefix.json()),
            ("configMapRef", self.config_map_ref.json()),
            ("secretRef", self.secret_ref.json()),
        ])
    }
}

impl Json for core_v1::SecretEnvSource {
    fn json(&self) -> Option<Value> {
        inlined(fields([("optional", self.optional.json())]), [self.local_object_reference.json()])
    }
}

impl Json for core_v1::ConfigMapEnvSource {
    fn json(&self) -> Option<Value> {
        inlined(fields([("optional", self.optional.json())]), [self.local_object_reference.json()])
    }
}

impl Json for core_v1::ContainerPort {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("hostPort", omit_zero(self.host_port.json())),
            ("containerPort", self.container_port.json()),
            ("protocol", self.protocol.json()),
            ("hostIP", self.host_ip.json()),
        ])
    }
}

impl Json for core_v1::Container {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("image", self.image.json()),
            ("command", self.command.json()),
            ("args", self.args.json()),
            ("workingDir", self.working_dir.json()),
            ("ports", self.ports.json()),
            ("envFrom", self.env_from.json()),
            ("env", self.env.json()),
            ("resources", self.resources.json()),
            ("resizePolicy", self.resize_policy.json()),
            ("restartPolicy", self.restart_policy.json()),
            ("restartPolicyRules", self.restart_policy_rules.json()),
            ("volumeMounts", self.volume_mounts.json()),
            ("volumeDevices", self.volume_devices.json()),
            ("livenessProbe", self.liveness_probe.json()),
            ("readinessProbe", self.readiness_probe.json()),
            ("startupProbe", self.startup_probe.json()),
            ("lifecycle", self.lifecycle.json()),
            ("terminationMessagePath", self.termination_message_path.json()),
            ("terminationMessagePolicy", self.termination_message_policy.json()),
            ("imagePullPolicy", self.image_pull_policy.json()),
            ("securityContext", self.security_context.json()),
            ("stdin", omit_zero(self.stdin.json())),
            ("stdinOnce", omit_zero(self.stdin_once.json())),
            ("tty", omit_zero(self.tty.json())),
        ])
    }
}

impl Json for core_v1::Volume {
    fn json(&self) -> Option<Value> {
        inlined(fields([("name", self.name.json())]), [self.volume_source.json()])
    }
}

impl Json for core_v1::VolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("hostPath", self.host_path.json()),
            ("emptyDir", self.empty_dir.json()),
            ("gcePersistentDisk", self.gce_persistent_disk.json()),
            ("awsElasticBlockStore", self.aws_elastic_block_store.json()),
            ("gitRepo", self.git_repo.json()),
            ("secret", self.secret.json()),
            ("nfs", self.nfs.json()),
            ("iscsi", self.iscsi.json()),
            ("glusterfs", self.glusterfs.json()),
            ("persistentVolumeClaim", self.persistent_volume_claim.json()),
            ("rbd", self.rbd.json()),
            ("flexVolume", self.flex_volume.json()),
            ("cinder", self.cinder.json()),
            ("cephfs", self.cephfs.json()),
            ("flocker", self.flocker.json()),
            ("downwardAPI", self.downward_api.json()),
            ("fc", self.fc.json()),
            ("azureFile", self.azure_file.json()),
            ("configMap", self.config_map.json()),
            ("vsphereVolume", self.vsphere_volume.json()),
            ("quobyte", self.quobyte.json()),
            ("azureDisk", self.azure_disk.json()),
            ("photonPersistentDisk", self.photon_persistent_disk.json()),
            ("projected", self.projected.json()),
            ("portworxVolume", self.portworx_volume.json()),
            ("scaleIO", self.scale_io.json()),
            ("storageos", self.storageos.json()),
            ("csi", self.csi.json()),
            ("ephemeral", self.ephemeral.json()),
            ("image", self.image.json()),
        ])
    }
}

impl Json for core_v1::ImageVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([("reference", self.reference.json()), ("pullPolicy", self.pull_policy.json())])
    }
}

impl Json for core_v1::EphemeralVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([("volumeClaimTemplate", self.volume_claim_template.json())])
    }
}

impl Json for core_v1::PersistentVolumeClaimTemplate {
    fn json(&self) -> Option<Value> {
        fields([("metadata", self.metadata.json()), ("spec", self.spec.json())])
    }
}

impl Json for core_v1::PersistentVolumeClaimSpec {
    fn json(&self) -> Option<Value> {
        fields([
            ("accessModes", self.access_modes.json()),
            ("selector", self.selector.json()),
            ("resources", self.resources.json()),
            ("volumeName", self.volume_name.json()),
            ("storageClassName", self.storage_class_name.json()),
            ("volumeMode", self.volume_mode.json()),
            ("dataSource", self.data_source.json()),
            ("dataSourceRef", self.data_source_ref.json()),
            ("volumeAttributesClassName", self.volume_attributes_class_name.json()),
        ])
    }
}

impl Json for core_v1::TypedObjectReference {
    fn json(&self) -> Option<Value> {
        fields([
            ("apiGroup", self.api_group.json()),
            ("kind", self.kind.json()),
            ("name", self.name.json()),
            ("namespace", self.namespace.json()),
        ])
    }
}

impl Json for core_v1::TypedLocalObjectReference {
    fn json(&self) -> Option<Value> {
        fields([("apiGroup", self.api_group.json()), ("kind", self.kind.json()), ("name", self.name.json())])
    }
}

impl Json for core_v1::VolumeResourceRequirements {
    fn json(&self) -> Option<Value> {
        fields([("limits", self.limits.json()), ("requests", self.requests.json())])
    }
}

impl Json for core_v1::CSIVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("driver", self.driver.json()),
            ("readOnly", self.read_only.json()),
            ("fsType", self.fs_type.json()),
            ("volumeAttributes", self.volume_attributes.json()),
            ("nodePublishSecretRef", self.node_publish_secret_ref.json()),
        ])
    }
}

impl Json for core_v1::StorageOsVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("volumeName", self.volume_name.json()),
            ("volumeNamespace", self.volume_namespace.json()),
            ("fsType", self.fs_type.json()),
            ("readOnly", omit_zero(self.read_only.json())),
            ("secretRef", self.secret_ref.json()),
        ])
    }
}

impl Json for core_v1::ScaleIoVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("gateway", self.gateway.json()),
            ("system", self.system.json()),
            ("secretRef", self.secret_ref.json()),
            ("sslEnabled", omit_zero(self.ssl_enabled.json())),
            ("protectionDomain", self.protection_domain.json()),
            ("storagePool", self.storage_pool.json()),
            ("storageMode", self.storage_mode.json()),
            ("volumeName", self.volume_name.json()),
            ("fsType", self.fs_type.json()),
            ("readOnly", omit_zero(self.read_only.json())),
        ])
    }
}

impl Json for core_v1::PortworxVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("volumeID", self.volume_id.json()),
            ("fsType", self.fs_type.json()),
            ("readOnly", omit_zero(self.read_only.json())),
        ])
    }
}

impl Json for core_v1::ProjectedVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([("sources", self.sources.json()), ("defaultMode", self.default_mode.json())])
    }
}

impl Json for core_v1::VolumeProjection {
    fn json(&self) -> Option<Value> {
        fields([
            ("secret", self.secret.json()),
            ("downwardAPI", self.downward_api.json()),
            ("configMap", self.config_map.json()),
            ("serviceAccountToken", self.service_account_token.json()),
            ("clusterTrustBundle", self.cluster_trust_bundle.json()),
            ("podCertificate", self.pod_certificate.json()),
        ])
    }
}

impl Json for core_v1::PodCertificateProjection {
    fn json(&self) -> Option<Value> {
        fields([
            ("signerName", self.signer_name.json()),
            ("keyType", self.key_type.json()),
            ("maxExpirationSeconds", self.max_expiration_seconds.json()),
            ("credentialBundlePath", self.credential_bundle_path.json()),
            ("keyPath", self.key_path.json()),
            ("certificateChainPath", self.certificate_chain_path.json()),
            ("userAnnotations", self.user_annotations.json()),
        ])
    }
}

impl Json for core_v1::ClusterTrustBundleProjection {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("signerName", self.signer_name.json()),
            ("labelSelector", self.label_selector.json()),
            ("optional", self.optional.json()),
            ("path", self.path.json()),
        ])
    }
}

impl Json for core_v1::ServiceAccountTokenProjection {
    fn json(&self) -> Option<Value> {
        fields([
            ("audience", self.audience.json()),
            ("expirationSeconds", self.expiration_seconds.json()),
            ("path", self.path.json()),
        ])
    }
}

impl Json for core_v1::ConfigMapProjection {
    fn json(&self) -> Option<Value> {
        inlined(
            fields([("items", self.items.json()), ("optional", self.optional.json())]),
            [self.local_object_reference.json()],
        )
    }
}

impl Json for core_v1::KeyToPath {
    fn json(&self) -> Option<Value> {
        fields([("key", self.key.json()), ("path", self.path.json()), ("mode", self.mode.json())])
    }
}

impl Json for core_v1::DownwardAPIProjection {
    fn json(&self) -> Option<Value> {
        fields([("items", self.items.json())])
    }
}

impl Json for core_v1::DownwardAPIVolumeFile {
    fn json(&self) -> Option<Value> {
        fields([
            ("path", self.path.json()),
            ("fieldRef", self.field_ref.json()),
            ("resourceFieldRef", self.resource_field_ref.json()),
            ("mode", self.mode.json()),
        ])
    }
}

impl Json for core_v1::SecretProjection {
    fn json(&self) -> Option<Value> {
        inlined(
            fields([("items", self.items.json()), ("optional", self.optional.json())]),
            [self.local_object_reference.json()],
        )
    }
}

impl Json for core_v1::PhotonPersistentDiskVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([("pdID", self.pd_id.json()), ("fsType", self.fs_type.json())])
    }
}

impl Json for core_v1::AzureDiskVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("diskName", self.disk_name.json()),
            ("diskURI", self.disk_uri.json()),
            ("cachingMode", self.caching_mode.json()),
            ("fsType", self.fs_type.json()),
            ("readOnly", self.read_only.json()),
            ("kind", self.kind.json()),
        ])
    }
}

impl Json for core_v1::QuobyteVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("registry", self.registry.json()),
            ("volume", self.volume.json()),
            ("readOnly", omit_zero(self.read_only.json())),
            ("user", self.user.json()),
            ("group", self.group.json()),
            ("tenant", self.tenant.json()),
        ])
    }
}

impl Json for core_v1::VsphereVirtualDiskVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("volumePath", self.volume_path.json()),
            ("fsType", self.fs_type.json()),
            ("storagePolicyName", self.storage_policy_name.json()),
            ("storagePolicyID", self.storage_policy_id.json()),
        ])
    }
}

impl Json for core_v1::ConfigMapVolumeSource {
    fn json(&self) -> Option<Value> {
        inlined(
            fields([
                ("items", self.items.json()),
                ("defaultMode", self.default_mode.json()),
                ("optional", self.optional.json()),
            ]),
            [self.local_object_reference.json()],
        )
    }
}

impl Json for core_v1::AzureFileVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("secretName", self.secret_name.json()),
            ("shareName", self.share_name.json()),
            ("readOnly", omit_zero(self.read_only.json())),
        ])
    }
}

impl Json for core_v1::FcVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("targetWWNs", self.target_ww_ns.json()),
            ("lun", self.lun.json()),
            ("fsType", self.fs_type.json()),
            ("readOnly", omit_zero(self.read_only.json())),
            ("wwids", self.wwids.json()),
        ])
    }
}

impl Json for core_v1::DownwardAPIVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([("items", self.items.json()), ("defaultMode", self.default_mode.json())])
    }
}

impl Json for core_v1::FlockerVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([("datasetName", self.dataset_name.json()), ("datasetUUID", self.dataset_uuid.json())])
    }
}

impl Json for core_v1::CephFsVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("monitors", self.monitors.json()),
            ("path", self.path.json()),
            ("user", self.user.json()),
            ("secretFile", self.secret_file.json()),
            ("secretRef", self.secret_ref.json()),
            ("readOnly", omit_zero(self.read_only.json())),
        ])
    }
}

impl Json for core_v1::CinderVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("volumeID", self.volume_id.json()),
            ("fsType", self.fs_type.json()),
            ("readOnly", omit_zero(self.read_only.json())),
            ("secretRef", self.secret_ref.json()),
        ])
    }
}

impl Json for core_v1::FlexVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("driver", self.driver.json()),
            ("fsType", self.fs_type.json()),
            ("secretRef", self.secret_ref.json()),
            ("readOnly", omit_zero(self.read_only.json())),
            ("options", self.options.json()),
        ])
    }
}

impl Json for core_v1::RbdVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("monitors", self.monitors.json()),
            ("image", self.image.json()),
            ("fsType", self.fs_type.json()),
            ("pool", self.pool.json()),
            ("user", self.user.json()),
            ("keyring", self.keyring.json()),
            ("secretRef", self.secret_ref.json()),
            ("readOnly", omit_zero(self.read_only.json())),
        ])
    }
}

impl Json for core_v1::PersistentVolumeClaimVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([("claimName", self.claim_name.json()), ("readOnly", omit_zero(self.read_only.json()))])
    }
}

impl Json for core_v1::GlusterfsVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("endpoints", self.endpoints.json()),
            ("path", self.path.json()),
            ("readOnly", omit_zero(self.read_only.json())),
        ])
    }
}

impl Json for core_v1::IscsiVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("targetPortal", self.target_portal.json()),
            ("iqn", self.iqn.json()),
            ("lun", self.lun.json()),
            ("iscsiInterface", self.iscsi_interface.json()),
            ("fsType", self.fs_type.json()),
            ("readOnly", omit_zero(self.read_only.json())),
            ("portals", self.portals.json()),
            ("chapAuthDiscovery", omit_zero(self.chap_auth_discovery.json())),
            ("chapAuthSession", omit_zero(self.chap_auth_session.json())),
            ("secretRef", self.secret_ref.json()),
            ("initiatorName", self.initiator_name.json()),
        ])
    }
}

impl Json for core_v1::NfsVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("server", self.server.json()),
            ("path", self.path.json()),
            ("readOnly", omit_zero(self.read_only.json())),
        ])
    }
}

impl Json for core_v1::SecretVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("secretName", self.secret_name.json()),
            ("items", self.items.json()),
            ("defaultMode", self.default_mode.json()),
            ("optional", self.optional.json()),
        ])
    }
}

impl Json for core_v1::GitRepoVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("repository", self.repository.json()),
            ("revision", self.revision.json()),
            ("directory", self.directory.json()),
        ])
    }
}

impl Json for core_v1::AwsElasticBlockStoreVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("volumeID", self.volume_id.json()),
            ("fsType", self.fs_type.json()),
            ("partition", omit_zero(self.partition.json())),
            ("readOnly", omit_zero(self.read_only.json())),
        ])
    }
}

impl Json for core_v1::GcePersistentDiskVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([
            ("pdName", self.pd_name.json()),
            ("fsType", self.fs_type.json()),
            ("partition", omit_zero(self.partition.json())),
            ("readOnly", omit_zero(self.read_only.json())),
        ])
    }
}

impl Json for core_v1::EmptyDirVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([("medium", self.medium.json()), ("sizeLimit", self.size_limit.json())])
    }
}

impl Json for core_v1::HostPathVolumeSource {
    fn json(&self) -> Option<Value> {
        fields([("path", self.path.json()), ("type", self.r#type.json())])
    }
}

impl Json for core_v1::Service {
    fn json(&self) -> Option<Value> {
        fields([("metadata", self.metadata.json()), ("spec", self.spec.json()), ("status", self.status.json())])
    }
}

impl Json for core_v1::ServiceStatus {
    fn json(&self) -> Option<Value> {
        fields([("loadBalancer", self.load_balancer.json()), ("conditions", self.conditions.json())])
    }
}

impl Json for meta::Condition {
    fn json(&self) -> Option<Value> {
        fields([
            ("type", self.r#type.json()),
            ("status", self.status.json()),
            ("observedGeneration", omit_zero(self.observed_generation.json())),
            ("lastTransitionTime", self.last_transition_time.json()),
            ("reason", self.reason.json()),
            ("message", self.message.json()),
        ])
    }
}

impl Json for core_v1::LoadBalancerStatus {
    fn json(&self) -> Option<Value> {
        fields([("ingress", self.ingress.json())])
    }
}

impl Json for core_v1::LoadBalancerIngress {
    fn json(&self) -> Option<Value> {
        fields([
            ("ip", self.ip.json()),
            ("hostname", self.hostname.json()),
            ("ipMode", self.ip_mode.json()),
            ("ports", self.ports.json()),
        ])
    }
}

impl Json for core_v1::PortStatus {
    fn json(&self) -> Option<Value> {
        fields([("port", self.port.json()), ("protocol", self.protocol.json()), ("error", self.error.json())])
    }
}

impl Json for core_v1::ServiceSpec {
    fn json(&self) -> Option<Value> {
        fields([
            ("ports", self.ports.json()),
            ("selector", self.selector.json()),
            ("clusterIP", self.cluster_ip.json()),
            ("clusterIPs", self.cluster_ips.json()),
            ("type", self.r#type.json()),
            ("externalIPs", self.external_ips.json()),
            ("sessionAffinity", self.session_affinity.json()),
            ("loadBalancerIP", self.load_balancer_ip.json()),
            ("loadBalancerSourceRanges", self.load_balancer_source_ranges.json()),
            ("externalName", self.external_name.json()),
            ("externalTrafficPolicy", self.external_traffic_policy.json()),
            ("healthCheckNodePort", omit_zero(self.health_check_node_port.json())),
            ("publishNotReadyAddresses", omit_zero(self.publish_not_ready_addresses.json())),
            ("sessionAffinityConfig", self.session_affinity_config.json()),
            ("ipFamilies", self.ip_families.json()),
            ("ipFamilyPolicy", self.ip_family_policy.json()),
            ("allocateLoadBalancerNodePorts", self.allocate_load_balancer_node_ports.json()),
            ("loadBalancerClass", self.load_balancer_class.json()),
            ("internalTrafficPolicy", self.internal_traffic_policy.json()),
            ("trafficDistribution", self.traffic_distribution.json()),
        ])
    }
}

impl Json for core_v1::SessionAffinityConfig {
    fn json(&self) -> Option<Value> {
        fields([("clientIP", self.client_ip.json())])
    }
}

impl Json for core_v1::ClientIpConfig {
    fn json(&self) -> Option<Value> {
        fields([("timeoutSeconds", self.timeout_seconds.json())])
    }
}

impl Json for core_v1::ServicePort {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("protocol", self.protocol.json()),
            ("appProtocol", self.app_protocol.json()),
            ("port", self.port.json()),
            ("targetPort", self.target_port.json()),
            ("nodePort", omit_zero(self.node_port.json())),
        ])
    }
}

impl Json for policy::PodDisruptionBudget {
    fn json(&self) -> Option<Value> {
        fields([("metadata", self.metadata.json()), ("spec", self.spec.json()), ("status", self.status.json())])
    }
}

impl Json for policy::PodDisruptionBudgetStatus {
    fn json(&self) -> Option<Value> {
        fields([
            ("observedGeneration", omit_zero(self.observed_generation.json())),
            ("disruptedPods", self.disrupted_pods.json()),
            ("disruptionsAllowed", self.disruptions_allowed.json()),
            ("currentHealthy", self.current_healthy.json()),
            ("desiredHealthy", self.desired_healthy.json()),
            ("expectedPods", self.expected_pods.json()),
            ("conditions", self.conditions.json()),
        ])
    }
}

impl Json for policy::PodDisruptionBudgetSpec {
    fn json(&self) -> Option<Value> {
        fields([
            ("minAvailable", self.min_available.json()),
            ("selector", self.selector.json()),
            ("maxUnavailable", self.max_unavailable.json()),
            ("unhealthyPodEvictionPolicy", self.unhealthy_pod_eviction_policy.json()),
        ])
    }
}

impl Json for networking::NetworkPolicy {
    fn json(&self) -> Option<Value> {
        fields([("metadata", self.metadata.json()), ("spec", self.spec.json())])
    }
}

impl Json for networking::NetworkPolicySpec {
    fn json(&self) -> Option<Value> {
        fields([
            ("podSelector", self.pod_selector.json()),
            ("ingress", self.ingress.json()),
            ("egress", self.egress.json()),
            ("policyTypes", self.policy_types.json()),
        ])
    }
}

impl Json for networking::NetworkPolicyEgressRule {
    fn json(&self) -> Option<Value> {
        fields([("ports", self.ports.json()), ("to", self.to.json())])
    }
}

impl Json for networking::NetworkPolicyPeer {
    fn json(&self) -> Option<Value> {
        fields([
            ("podSelector", self.pod_selector.json()),
            ("namespaceSelector", self.namespace_selector.json()),
            ("ipBlock", self.ip_block.json()),
        ])
    }
}

impl Json for networking::IpBlock {
    fn json(&self) -> Option<Value> {
        fields([("cidr", self.cidr.json()), ("except", self.except.json())])
    }
}

impl Json for networking::NetworkPolicyPort {
    fn json(&self) -> Option<Value> {
        fields([("protocol", self.protocol.json()), ("port", self.port.json()), ("endPort", self.end_port.json())])
    }
}

impl Json for networking::NetworkPolicyIngressRule {
    fn json(&self) -> Option<Value> {
        fields([("ports", self.ports.json()), ("from", self.from.json())])
    }
}
