"""clusters/: launcher YAMLs through Ray's own validator, KubeRay manifests against the CRD's field names, Slurm syntax.

No CRD ships with Ray, so the RayCluster/RayJob v1 fields are written down here from KubeRay's API types
(ray-operator/apis/ray/v1/raycluster_types.go and rayjob_types.go, KubeRay 1.x), together with the
Kubernetes PodTemplateSpec fields our manifests may use. Every key in the manifests must be a known one:
a typo (`minReplica`, `rayStartParam`, `shutdownAfterJobFinish`) fails the test.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).parents[2]
CLUSTERS = REPO / "clusters"
RAY_VERSION = "2.60.0"

# --- the schema: a dict is an object with these keys; [dict] a list of such objects; ANY a free-form value ---
ANY = None
STR_MAP = ANY  # map[string]string: labels, rayStartParams, nodeSelector, ...

RESOURCES = {"requests": STR_MAP, "limits": STR_MAP, "claims": ANY}
ENV_VAR = {"name": ANY, "value": ANY, "valueFrom": {
    "secretKeyRef": {"name": ANY, "key": ANY, "optional": ANY}, "configMapKeyRef": {"name": ANY, "key": ANY, "optional": ANY},
    "fieldRef": {"fieldPath": ANY, "apiVersion": ANY}, "resourceFieldRef": {"resource": ANY, "containerName": ANY, "divisor": ANY}}}
CONTAINER = {
    "name": ANY, "image": ANY, "imagePullPolicy": ANY, "command": ANY, "args": ANY, "workingDir": ANY, "env": [ENV_VAR],
    "envFrom": ANY, "ports": [{"containerPort": ANY, "name": ANY, "protocol": ANY, "hostPort": ANY, "hostIP": ANY}],
    "resources": RESOURCES, "volumeMounts": [{"name": ANY, "mountPath": ANY, "readOnly": ANY, "subPath": ANY}],
    "lifecycle": ANY, "livenessProbe": ANY, "readinessProbe": ANY, "startupProbe": ANY, "securityContext": ANY,
    "stdin": ANY, "tty": ANY, "terminationMessagePath": ANY, "terminationMessagePolicy": ANY,
}
VOLUME = {"name": ANY, "emptyDir": {"medium": ANY, "sizeLimit": ANY}, "persistentVolumeClaim": {"claimName": ANY, "readOnly": ANY},
          "configMap": ANY, "secret": ANY, "hostPath": ANY}
POD_TEMPLATE = {
    "metadata": {"labels": STR_MAP, "annotations": STR_MAP, "name": ANY},
    "spec": {"containers": [CONTAINER], "initContainers": [CONTAINER], "volumes": [VOLUME], "nodeSelector": STR_MAP,
             "tolerations": [{"key": ANY, "operator": ANY, "value": ANY, "effect": ANY, "tolerationSeconds": ANY}],
             "affinity": ANY, "serviceAccountName": ANY, "restartPolicy": ANY, "imagePullSecrets": ANY,
             "priorityClassName": ANY, "schedulerName": ANY, "securityContext": ANY, "hostNetwork": ANY,
             "terminationGracePeriodSeconds": ANY, "runtimeClassName": ANY},
}
HEAD_GROUP = {"serviceType": ANY, "headService": ANY, "enableIngress": ANY, "rayStartParams": STR_MAP, "template": POD_TEMPLATE}
WORKER_GROUP = {"groupName": ANY, "replicas": ANY, "minReplicas": ANY, "maxReplicas": ANY, "numOfHosts": ANY,
                "rayStartParams": STR_MAP, "template": POD_TEMPLATE, "scaleStrategy": {"workersToDelete": ANY},
                "suspend": ANY, "idleTimeoutSeconds": ANY}
RAY_CLUSTER_SPEC = {"headGroupSpec": HEAD_GROUP, "workerGroupSpecs": [WORKER_GROUP], "rayVersion": ANY,
                    "enableInTreeAutoscaling": ANY, "autoscalerOptions": ANY, "headServiceAnnotations": STR_MAP,
                    "suspend": ANY, "managedBy": ANY, "gcsFaultToleranceOptions": ANY}
RAY_JOB_SPEC = {"entrypoint": ANY, "rayClusterSpec": RAY_CLUSTER_SPEC, "clusterSelector": STR_MAP, "runtimeEnvYAML": ANY,
                "jobId": ANY, "metadata": STR_MAP, "shutdownAfterJobFinishes": ANY, "ttlSecondsAfterFinished": ANY,
                "activeDeadlineSeconds": ANY, "backoffLimit": ANY, "submissionMode": ANY, "submitterPodTemplate": POD_TEMPLATE,
                "submitterConfig": {"backoffLimit": ANY}, "entrypointNumCpus": ANY, "entrypointNumGpus": ANY,
                "entrypointResources": ANY, "suspend": ANY, "managedBy": ANY, "deletionStrategy": ANY}
METADATA = {"name": ANY, "namespace": ANY, "labels": STR_MAP, "annotations": STR_MAP, "generateName": ANY}
KINDS = {
    "RayCluster": {"apiVersion": ANY, "kind": ANY, "metadata": METADATA, "spec": RAY_CLUSTER_SPEC},
    "RayJob": {"apiVersion": ANY, "kind": ANY, "metadata": METADATA, "spec": RAY_JOB_SPEC},
}
# Required by the CRD (json tags without omitempty), as paths with [] for every list item.
REQUIRED = {
    "RayCluster": ["apiVersion", "kind", "metadata.name", "spec.headGroupSpec.rayStartParams", "spec.headGroupSpec.template",
                   "spec.workerGroupSpecs[].groupName", "spec.workerGroupSpecs[].rayStartParams",
                   "spec.workerGroupSpecs[].template", "spec.workerGroupSpecs[].minReplicas",
                   "spec.workerGroupSpecs[].maxReplicas"],
    "RayJob": ["apiVersion", "kind", "metadata.name", "spec.entrypoint", "spec.rayClusterSpec.headGroupSpec.rayStartParams",
               "spec.rayClusterSpec.headGroupSpec.template", "spec.rayClusterSpec.workerGroupSpecs[].groupName",
               "spec.rayClusterSpec.workerGroupSpecs[].template"],
}


def unknown_keys(node: Any, schema: Any, path: str = "") -> list[str]:
    """Dotted paths of keys in `node` that `schema` does not know."""
    if schema is ANY:
        return []
    if isinstance(schema, list):
        assert isinstance(node, list), f"{path} must be a list"
        return [k for i, item in enumerate(node) for k in unknown_keys(item, schema[0], f"{path}[{i}]")]
    assert isinstance(node, dict), f"{path} must be a mapping"
    out = []
    for key, value in node.items():
        where = f"{path}.{key}" if path else key
        out += [where] if key not in schema else unknown_keys(value, schema[key], where)
    return out


def missing_keys(node: dict, required: list[str]) -> list[str]:
    def has(n: Any, parts: list[str]) -> bool:
        if not parts:
            return True
        head, rest = parts[0], parts[1:]
        if head.endswith("[]"):
            items = n.get(head[:-2]) if isinstance(n, dict) else None
            return bool(items) and all(has(i, rest) for i in items)
        return isinstance(n, dict) and head in n and has(n[head], rest)
    return [r for r in required if not has(node, r.split("."))]


def manifest(name: str) -> dict:
    return yaml.safe_load((CLUSTERS / "kuberay" / name).read_text())


# --- cluster launcher ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_yaml_passes_rays_validator(name: str) -> None:
    """What `ray up` does before touching the cloud: fill in the provider's defaults, then validate."""
    pytest.importorskip("jsonschema")  # ray's validator needs it (ray[default] brings it)
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((CLUSTERS / name).read_text())
    validate_config(prepare_config(copy.deepcopy(raw)))
    types = raw["available_node_types"]
    assert raw["head_node_type"] in types
    workers = [t for k, t in types.items() if k != raw["head_node_type"]]
    assert workers and all(t["max_workers"] >= 1 for t in workers)
    image = raw["docker"]["image"]
    assert image.startswith(f"rayproject/ray:{RAY_VERSION}-") and image.endswith("-gpu"), image
    assert any(".[gpu]" in cmd for cmd in raw["setup_commands"])
    start = " ".join(raw["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "--metrics-export-port=8080" in start


def test_gcp_declares_gpu_resources() -> None:
    # GCP does not detect resources from the machine type: without GPU here the autoscaler never places GPU roles
    types = yaml.safe_load((CLUSTERS / "gcp.yaml").read_text())["available_node_types"]
    assert types["gpu_workers"]["resources"]["GPU"] >= 1


def test_a_typo_in_a_launcher_yaml_fails_validation() -> None:
    pytest.importorskip("jsonschema")
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((CLUSTERS / "aws.yaml").read_text())
    raw["available_node_types"]["gpu_workers"]["max_worker"] = 4
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(raw))


# --- KubeRay ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kind", [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob")])
def test_kuberay_manifest_uses_only_known_fields(name: str, kind: str) -> None:
    doc = manifest(name)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == kind
    assert unknown_keys(doc, KINDS[kind]) == []
    assert missing_keys(doc, REQUIRED[kind]) == []


def test_the_field_check_catches_typos() -> None:
    doc = manifest("raycluster.yaml")
    doc["spec"]["workerGroupSpecs"][0]["minReplica"] = 1
    doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resource"] = {}
    assert unknown_keys(doc, KINDS["RayCluster"]) == ["spec.headGroupSpec.template.spec.containers[0].resource",
                                                      "spec.workerGroupSpecs[0].minReplica"]
    job = manifest("rayjob.yaml")
    job["spec"]["shutdownAfterJobFinish"] = True
    del job["spec"]["entrypoint"]
    assert unknown_keys(job, KINDS["RayJob"]) == ["spec.shutdownAfterJobFinish"]
    assert missing_keys(job, REQUIRED["RayJob"]) == ["spec.entrypoint"]


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_gpu_workers_and_metrics_port(name: str) -> None:
    doc = manifest(name)
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == RAY_VERSION
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        container = group["template"]["spec"]["containers"][0]
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    head = spec["headGroupSpec"]
    ports = {p["containerPort"] for c in head["template"]["spec"]["containers"] for p in c.get("ports", [])}
    assert {8265, 8080} <= ports
    assert head["rayStartParams"]["metrics-export-port"] == "8080"
    assert all(isinstance(v, str) for g in [head, *spec["workerGroupSpecs"]] for v in g["rayStartParams"].values()), \
        "rayStartParams is map[string]string: quote numbers"


def test_rayjob_runs_rltrain_train_and_matches_the_raycluster() -> None:
    job = manifest("rayjob.yaml")
    assert re.search(r"\brltrain train \S+\.yaml .*ray\.address=auto", job["spec"]["entrypoint"])
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    # one cluster definition in two files: keep them in step
    assert job["spec"]["rayClusterSpec"] == manifest("raycluster.yaml")["spec"]


# --- Slurm and entrypoints ----------------------------------------------------------------------------------

def test_slurm_script_is_valid_bash_and_starts_ray_per_node() -> None:
    script = CLUSTERS / "slurm" / "rltrain.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "ray start --head" in text and "ray start --block --address" in text
    assert text.count("srun ") >= 3  # hostname lookup, head, one per worker node
    assert 'rltrain train "$CONFIG" "$@" ray.address=auto' in text
    assert "ray stop" not in text.replace("no `ray stop`", "")
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-S", "warning", str(script)], check=True)


def test_every_config_an_entrypoint_names_exists() -> None:
    named = set()
    for path in [*CLUSTERS.rglob("*.yaml"), *CLUSTERS.rglob("*.sbatch"), *CLUSTERS.rglob("*.md"), *CLUSTERS.rglob("Dockerfile")]:
        named |= set(re.findall(r"launch/configs/[\w.-]+\.yaml", path.read_text()))
    assert named, "the cluster files should name at least one config"
    assert sorted(c for c in named if not (REPO / c).is_file()) == []
