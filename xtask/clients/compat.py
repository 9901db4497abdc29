"""Client compatibility: what the Docker SDK for Python and testcontainers-python
do on a user's first day, against whichever engine DOCKER_HOST names.

Run by the VM scenario desktop/client-compat (xtask/src/vmtest/compat.rs)
against hull and against a plain Docker Engine; it prints one JSON record per
check, {"check", "ok", "value"}, with values normalised (no ids, times or
sizes that legitimately vary), and the Rust side compares the two sets.
A check that raises is a record with ok=false and the normalised error.

Environment (set by compat.rs):
  DOCKER_HOST                          the engine
  TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE the engine's socket as a bind source
                                       (what a container mounts)
  COMPAT_BIND_DIR                      a host directory the engine can bind
  COMPAT_RYUK_IMAGE                    testcontainers' reaper image, loaded
                                       without a repository digest
  RYUK_RECONNECTION_TIMEOUT            short, so the reaping check is quick

`compat.py tc-session` is the testcontainers session, run as a child
process so that its exit (which is what Ryuk waits for) really happens.
"""

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import warnings

import docker
import docker.errors

LABEL = "dev.hull.compat"
LABELS = {LABEL: "1"}
BUSYBOX = "busybox:latest"
HEX = re.compile(r"\b(sha256:)?[0-9a-f]{12,64}\b")


def norm(s):
    """Ids and digests out of a message or value."""
    return HEX.sub("<id>", str(s)).strip()


def emit(check, ok, value):
    print(json.dumps({"check": check, "ok": bool(ok), "value": value}, sort_keys=True), flush=True)


def check(name):
    """Runs fn() -> (ok, value); an exception is a failed record."""

    def wrap(fn):
        try:
            ok, value = fn()
        except docker.errors.APIError as e:
            ok, value = False, {"status": e.status_code, "error": norm(e.explanation or e)}
        except Exception as e:  # noqa: BLE001 - every failure is a record
            ok, value = False, {"error": norm(f"{type(e).__name__}: {e}")}
        emit(name, ok, value)
        return fn

    return wrap


def wait_status(c):
    return c.wait(timeout=60)["StatusCode"]


def main():
    client = docker.from_env(timeout=120)
    api = client.api
    sock = os.environ["TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE"]
    bind_dir = os.environ["COMPAT_BIND_DIR"]
    ryuk = os.environ["COMPAT_RYUK_IMAGE"]
    t0 = int(time.time()) - 1

    @check("engine.ping")
    def _():
        return client.ping() is True, "pong"

    @check("engine.version")
    def _():
        v = client.version()
        # Engine versions may differ (hull ships Debian's, the host has its
        # own): what a client negotiates with is the API's shape.
        return bool(v.get("ApiVersion")), {"Os": v.get("Os"), "Arch": v.get("Arch"), "has_min_api": "MinAPIVersion" in v}

    @check("engine.info")
    def _():
        i = client.info()
        return i.get("OSType") == "linux", {
            "OSType": i.get("OSType"),
            "DefaultRuntime": i.get("DefaultRuntime"),
            "LoggingDriver": i.get("LoggingDriver"),
            "has_security_options": isinstance(i.get("SecurityOptions"), list),
        }

    @check("images.list")
    def _():
        tags = sorted(t for im in client.images.list() for t in im.tags if t in (BUSYBOX, ryuk))
        return tags == sorted([BUSYBOX, ryuk]), tags

    @check("images.inspect")
    def _():
        a = client.images.get(BUSYBOX).attrs
        return True, {"Os": a.get("Os"), "Architecture": a.get("Architecture"), "Cmd": a["Config"].get("Cmd")}

    @check("images.tag-remove")
    def _():
        im = client.images.get(BUSYBOX)
        im.tag("compat/busybox", "t1")
        same = client.images.get("compat/busybox:t1").id == im.id
        gone = client.images.remove("compat/busybox:t1")
        return same, {"removed": gone}

    def socket_ping():
        out = client.containers.run(
            ryuk,
            # hull-probe exits 1 when the request went through.
            entrypoint=["/bin/sh", "-c", "/bin/hull-probe http /var/run/docker.sock GET /_ping; true"],
            volumes={sock: {"bind": "/var/run/docker.sock", "mode": "rw"}},
            labels=LABELS,
            remove=True,
        )
        return True, out.decode().splitlines()[0]

    # An image allowed by name, but with no repository digest (loaded, not
    # pulled): hull's allow-list matches digests only.
    check("socket.ryuk-undigested")(socket_ping)

    @check("socket.client-path")
    def _():
        # The socket as the client names it (DOCKER_HOST), which is what
        # testcontainers binds into Ryuk without the override.
        path = urllib.parse.urlparse(os.environ["DOCKER_HOST"]).path
        out = client.containers.run(
            BUSYBOX,
            ["sh", "-c", "test -S /var/run/docker.sock && echo socket || echo not-a-socket"],
            volumes={path: {"bind": "/var/run/docker.sock", "mode": "rw"}},
            labels=LABELS,
            remove=True,
        )
        return True, out.decode().strip()

    @check("images.pull-mirror")
    def _():
        im = client.images.pull(ryuk.rsplit(":", 1)[0], tag=ryuk.rsplit(":", 1)[1])
        return True, {"RepoDigests": [norm(d) for d in im.attrs.get("RepoDigests", [])], "tags": im.tags}

    check("socket.ryuk-pulled")(socket_ping)

    # The day-one container: detached, env, a published port, a named
    # volume, a bind of a host directory, labels.
    host_file = os.path.join(bind_dir, "from-host")
    with open(host_file, "w") as f:
        f.write("host-data\n")
    state = {}

    @check("containers.run")
    def _():
        c = client.containers.run(
            BUSYBOX,
            ["sh", "-c", "echo $GREETING > /vol/greeting; echo ready; mkdir -p /www; cat /data/from-host > /www/index.html; echo made > /data/from-container; exec httpd -f -p 8080 -h /www"],
            detach=True,
            environment={"GREETING": "hello-compat"},
            ports={"8080/tcp": ("127.0.0.1", None)},
            volumes={"compat-vol": {"bind": "/vol", "mode": "rw"}, bind_dir: {"bind": "/data", "mode": "rw"}},
            labels=LABELS,
            name="compat-web",
        )
        state["c"] = c
        for _ in range(50):
            c.reload()
            if b"ready" in c.logs():
                break
            time.sleep(0.2)
        return c.status == "running", {"status": c.status, "labels": c.labels.get(LABEL)}

    c = state.get("c")
    if c is None:
        emit("containers.run.aborted", False, "no container: later checks skipped")
        return cleanup(client)

    @check("containers.port")
    def _():
        c.reload()
        p = c.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]
        body = b""
        for _ in range(30):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{p['HostPort']}/", timeout=5).read()
                break
            except OSError:
                time.sleep(0.3)
        return body == b"host-data\n", {"HostIp": p["HostIp"], "body": body.decode()}

    @check("containers.logs")
    def _():
        return True, c.logs().decode()

    @check("containers.exec-env")
    def _():
        r = c.exec_run(["sh", "-c", "echo $GREETING; cat /vol/greeting; id -u"])
        return r.exit_code == 0, {"exit": r.exit_code, "out": r.output.decode()}

    @check("containers.exec-uid-map")
    def _():
        r = c.exec_run(["cat", "/proc/self/uid_map"])
        return r.exit_code == 0, " ".join(r.output.decode().split())

    @check("containers.bind")
    def _():
        p = os.path.join(bind_dir, "from-container")
        for _ in range(20):
            if os.path.exists(p):
                break
            time.sleep(0.2)
        st = os.stat(p)
        with open(p) as f:
            return True, {"content": f.read(), "host_uid": st.st_uid, "host_gid": st.st_gid}

    @check("containers.top")
    def _():
        t = c.top()
        cmds = sorted(p[-1].split()[0] for p in t["Processes"])
        return "PID" in t["Titles"], {"Titles": t["Titles"], "commands": cmds}

    @check("containers.stats")
    def _():
        s = c.stats(stream=False)
        return s.get("memory_stats", {}).get("usage", 0) > 0, {
            "keys": sorted(k for k in s if k != "networks"),
            "has_networks": "networks" in s,
            "memory_usage": s.get("memory_stats", {}).get("usage", 0) > 0,
        }

    @check("containers.put-get-archive")
    def _():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = b"put-data\n"
            info = tarfile.TarInfo("put.txt")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        put = c.put_archive("/tmp", buf.getvalue())
        stream, stat = c.get_archive("/tmp/put.txt")
        got = io.BytesIO(b"".join(stream))
        with tarfile.open(fileobj=got) as t:
            content = t.extractfile("put.txt").read().decode()
        return put, {"name": stat["name"], "size": stat["size"], "content": content}

    @check("networks.create-connect-disconnect")
    def _():
        n = client.networks.create("compat-net", driver="bridge", labels=LABELS)
        n.connect(c, aliases=["web"])
        c.reload()
        joined = sorted(c.attrs["NetworkSettings"]["Networks"])
        n.disconnect(c)
        c.reload()
        left = sorted(c.attrs["NetworkSettings"]["Networks"])
        n.reload()
        return True, {"joined": joined, "left": left, "driver": n.attrs["Driver"]}

    @check("containers.commit")
    def _():
        im = c.commit("compat/committed", "1", changes=["LABEL dev.hull.compat=1"])
        out = client.containers.run("compat/committed:1", ["cat", "/tmp/put.txt"], remove=True, labels=LABELS)
        return True, {"tags": im.tags, "out": out.decode()}

    @check("containers.stop-wait-remove")
    def _():
        c.stop(timeout=2)
        code = wait_status(c)
        c.remove(v=False)
        return True, {"exit": code}

    @check("volumes")
    def _():
        v = client.volumes.create("compat-vol2", labels=LABELS)
        listed = sorted(x.name for x in client.volumes.list(filters={"label": LABEL}))
        got = client.volumes.get("compat-vol")
        v.remove()
        return True, {"listed": listed, "driver": got.attrs["Driver"], "mountpoint": bool(got.attrs["Mountpoint"])}

    @check("containers.wait-exit-code")
    def _():
        w = client.containers.run(BUSYBOX, ["sh", "-c", "exit 3"], detach=True, labels=LABELS)
        code = wait_status(w)
        w.remove()
        return code == 3, {"exit": code}

    @check("build.fileobj")
    def _():
        df = b"FROM busybox:latest\nLABEL dev.hull.compat=1\nENV BUILT=fileobj\nCMD [\"sh\", \"-c\", \"echo $BUILT\"]\n"
        im, _log = client.images.build(fileobj=io.BytesIO(df), tag="compat/built-fileobj:1", rm=True)
        return True, {"tags": im.tags, "Cmd": im.attrs["Config"]["Cmd"]}

    @check("build.path")
    def _():
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "Dockerfile"), "w") as f:
                f.write("FROM busybox:latest\nLABEL dev.hull.compat=1\nCOPY msg /msg\nRUN cat /msg > /built\nCMD [\"cat\", \"/built\"]\n")
            with open(os.path.join(d, "msg"), "w") as f:
                f.write("built-from-path\n")
            im, _log = client.images.build(path=d, tag="compat/built-path:1", rm=True)
        out = client.containers.run("compat/built-path:1", remove=True, labels=LABELS)
        return True, {"tags": im.tags, "out": out.decode()}

    @check("events")
    def _():
        evs = client.events(
            since=t0, until=int(time.time()) + 1, decode=True, filters={"type": "container", "label": LABEL}
        )
        actions = sorted({e["Action"].split(":")[0] for e in evs})
        want = {"create", "start", "die", "destroy", "exec_create", "exec_start", "exec_die", "kill", "stop", "commit"}
        return want <= set(actions), actions

    @check("prune")
    def _():
        dead = client.containers.create(BUSYBOX, ["true"], labels=LABELS)
        pc = client.containers.prune(filters={"label": LABEL})
        pn = client.networks.prune(filters={"label": LABEL})
        client.volumes.create("compat-vol3", labels=LABELS)
        # API 1.42 (Docker 23) made volume prune spare named volumes unless
        # `all`; 1.41 engines do not know that filter. Clients that mean
        # "unused volumes" pass it where the engine has it.
        vf = {"label": LABEL}
        if tuple(int(x) for x in client.api.api_version.split(".")) >= (1, 42):
            vf["all"] = "true"
        pv = client.volumes.prune(filters=vf)
        # Only this script's images: other scenarios share the engine.
        pi = client.images.prune(filters={"dangling": True, "label": LABEL})
        return dead.id in (pc.get("ContainersDeleted") or []), {
            "dead_container_pruned": dead.id in (pc.get("ContainersDeleted") or []),
            "networks": sorted(pn.get("NetworksDeleted") or []),
            "volumes": sorted(pv.get("VolumesDeleted") or []),
            "images_key": "ImagesDeleted" in pi,
        }

    testcontainers(client)
    cleanup(client)


def testcontainers(client):
    """A testcontainers session in a child process, then: did Ryuk reap it?"""
    p = subprocess.run([sys.executable, __file__, "tc-session"], capture_output=True, text=True, timeout=300)
    session = None
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec["check"] == "tc.session":
                session = rec.pop("session", None)
            print(json.dumps(rec, sort_keys=True), flush=True)
    if p.returncode != 0 or session is None:
        emit("tc.session-exit", False, {"code": p.returncode, "stderr": norm(p.stderr[-800:])})
        return

    @check("tc.reaped")
    def _():
        left = []
        for _ in range(60):
            left = client.containers.list(all=True, filters={"label": f"org.testcontainers.session-id={session}"})
            ryuk = client.containers.list(all=True, filters={"name": f"testcontainers-ryuk-{session}"})
            if not left and not ryuk:
                return True, "session containers and reaper gone"
            time.sleep(0.5)
        return False, {"left": sorted(x.name.split("-")[0] for x in left)}


def tc_session():
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.labels import SESSION_ID
    from testcontainers.core.waiting_utils import wait_for_logs

    c = (
        DockerContainer(BUSYBOX)
        .with_command(["sh", "-c", "mkdir /www; echo tc-hello > /www/index.html; echo tc-ready; exec httpd -f -p 8080 -h /www"])
        .with_exposed_ports(8080)
    )
    try:
        c.start()
    except Exception as e:  # noqa: BLE001
        emit("tc.start", False, {"error": norm(f"{type(e).__name__}: {e}")})
        print(json.dumps({"check": "tc.session", "ok": True, "value": "started", "session": SESSION_ID}))
        return
    emit("tc.start", True, "started")

    @check("tc.wait-for-logs")
    def _():
        with warnings.catch_warnings():
            # 4.15 deprecates string predicates, which day-one code still uses.
            warnings.simplefilter("ignore", DeprecationWarning)
            wait_for_logs(c, "tc-ready", timeout=30)
        return True, "tc-ready"

    @check("tc.exposed-port-fetch")
    def _():
        host = c.get_container_host_ip()
        port = c.get_exposed_port(8080)
        body = b""
        for _ in range(30):
            try:
                body = urllib.request.urlopen(f"http://{host}:{port}/", timeout=5).read()
                break
            except OSError:
                time.sleep(0.3)
        return body == b"tc-hello\n", {"host": host, "body": body.decode()}

    # Left running on purpose, and the process ends as a crashed test run
    # does (no atexit): testcontainers-python's atexit hook force-removes
    # the reaper, so Ryuk's reaping is for a session that died; its
    # connection closes with the process, and Ryuk must remove the rest.
    print(json.dumps({"check": "tc.session", "ok": True, "value": "started", "session": SESSION_ID}), flush=True)
    sys.stdout.flush()
    os._exit(0)


def cleanup(client):
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        c.remove(force=True)
    for n in client.networks.list(filters={"label": LABEL}):
        n.remove()
    for name in ("compat-vol", "compat-vol2", "compat-vol3"):
        try:
            client.volumes.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
    for tag in ("compat/committed:1", "compat/built-fileobj:1", "compat/built-path:1"):
        try:
            client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass


if __name__ == "__main__":
    if sys.argv[1:] == ["tc-session"]:
        tc_session()
    else:
        main()
