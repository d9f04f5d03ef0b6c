"""The Dockerfile and Kubernetes manifests: linted, schema-valid, and consistent with the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from voice_server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.37.0"


def _manifests() -> dict[str, list[dict]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def _containers(kind: str | None = None):
    for docs in _manifests().values():
        for doc in docs:
            if doc["kind"] in ("Deployment", "StatefulSet") and kind in (None, doc["kind"]):
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    yield doc, container


def test_dockerfile_passes_hadolint():
    result = subprocess.run([str(BIN / "hadolint"), str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_runs_unprivileged_with_a_healthcheck_on_live():
    text = (ROOT / "Dockerfile").read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in text and "/live" in text
    assert 'ENTRYPOINT ["coachline"]' in text and 'CMD ["serve"]' in text


def test_manifests_are_valid_against_current_kubernetes_in_strict_mode():
    files = [str(K8S / name) for name in _manifests()]
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *files],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == sum(len(d) for d in _manifests().values())


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(_manifests())


def test_probes_point_at_the_app_probes_and_grace_outlasts_the_drain():
    config = next(doc for docs in _manifests().values() for doc in docs if doc["kind"] == "ConfigMap")
    drain_s = float(config["data"]["COACHLINE_SHUTDOWN_GRACE_S"])
    seen = 0
    for workload, container in _containers():
        seen += 1
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/live"
        pre_stop_s = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace_s = workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace_s > drain_s + pre_stop_s
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert "requests" in container["resources"] and "limits" in container["resources"]
    assert seen >= 2


def test_every_variable_the_manifests_set_is_a_setting_coachline_reads():
    known = {"DATABASE_URL", "REDIS_URL"} | {f"COACHLINE_{name.upper()}" for name in Settings.model_fields}
    names = set()
    for docs in _manifests().values():
        for doc in docs:
            if doc["kind"] == "ConfigMap":
                names |= set(doc["data"])
    for _, container in _containers():
        names |= {env["name"] for env in container.get("env", [])}
    unknown = sorted(names - known)
    assert not unknown, f"manifests set variables no setting reads: {unknown}"


def test_the_configmap_is_a_valid_configuration():
    from voice_server.settings import load_settings

    config = next(doc for docs in _manifests().values() for doc in docs if doc["kind"] == "ConfigMap")
    environ = {**config["data"], "DATABASE_URL": "postgresql://db/coachline", "REDIS_URL": "redis://redis:6379/0"}
    settings = load_settings(environ)
    assert settings.event_bus_kind == "redis"
    assert settings.host == "0.0.0.0"


@pytest.mark.parametrize("rtp", ["networkpolicy.yaml", "sip-service.yaml"])
def test_rtp_ranges_agree_with_the_sip_pods(rtp):
    env = {e["name"]: e.get("value") for _, c in _containers("StatefulSet") for e in c.get("env", [])}
    low, high = int(env["COACHLINE_RTP_PORT_MIN"]), int(env["COACHLINE_RTP_PORT_MAX"])
    doc = _manifests()[rtp][0]
    if doc["kind"] == "Service":
        ports = {p["port"] for p in doc["spec"]["ports"] if p["name"].startswith("rtp-")}
        assert ports == set(range(low, high + 1))
    else:
        ranges = [(p["port"], p.get("endPort")) for rule in doc["spec"]["ingress"]
                  for p in rule.get("ports", []) if p.get("endPort")]
        assert ranges == [(low, high)]
