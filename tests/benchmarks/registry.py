"""Benchmark: the registry commands end to end (promote, tags) against `skopeo copy`.

    python -m tests.benchmarks.registry [--rounds 5] [--layers 4] [--layer-mb 50] [--big-mb 1024]
                                        [--tags 1000] [--phases local,cross,memory,tags] [--first regops|skopeo]

One Redis, the Slack stand-in, one `regops serve`, one `regops worker --registry-only` (no
Docker engine) and Distribution registries, all on free ports and all started before anything
is timed.  The images are assembled in the main registry through its API (ImageWriter):
``bench-app:1.0`` (LAYERS layers of LAYER_MB MB of random bytes, 200 MB by default),
``bench-big:1.0`` (BIG_MB MB in 4 layers) and ``bench-tags`` (one small manifest under TAGS tags).

Phases (each timed run goes to a place where nothing of the image is yet):

* local: ``promote bench-app 1.0 1.0 --to-image bench-app-rN-regops`` (a new repository in the
  same registry: blob mounts + one manifest PUT) against ``skopeo copy`` to ``bench-app-rN-skopeo``.
  Targets: median regops ≤ 0.5 s and below median skopeo.
* cross: ``promote bench-app 1.0 1.0 --to-registry xN-regops`` against ``skopeo copy`` to the
  registry ``xN-skopeo``: a fresh registry for every measurement, so that neither tool finds the
  blobs there (skopeo's blob-info cache would otherwise mount them from an earlier round's
  repository).  Target: median regops / median skopeo ≤ 1.0.
* memory: ``promote bench-big 1.0 1.0 --to-registry mem`` (BIG_MB MB streamed across registries)
  while the worker's process tree (the worker and the work horse rq forks for the job) is
  sampled every 20 ms from /proc/PID/status (VmRSS and VmHWM).  Target: the peak of the process
  that did the copy (the horse) ≤ 150 MB.
* tags: ``tags bench-tags`` (default limit 50) and ``tags bench-tags --limit 100`` (the most), from just
  before the command's POST until the stand-in records the answer on the command's
  response_url.  Target: median of the default ≤ 1.5 s (``--limit 100`` is reported).

regops is timed from just before the signed slash command is POSTed until the Slack stand-in
records the job's final message (``succeeded … job ID``); skopeo is the wall time of the
``skopeo copy`` process.  Rounds alternate which tool goes first; an untimed warm-up of each
(regops jobs and skopeo copies to their own repositories and registries) runs first, so both
start with warm page caches and skopeo with its blob-info cache knowing the source repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import redis
import requests

from tests.benchmarks.common import (
    NAMESPACE,
    SLACK_PATH,
    Services,
    cpu_busy,
    interrupts_as_keyboard_interrupt,
    load_average,
    log_excerpt,
    median,
    new_secrets,
    print_context,
    print_table,
    run_benchmark,
    verdict,
)
from tests.support.registry_images import Blob, ImageWriter, basic
from tests.support.services import RedisServer, Registry
from tests.support.slack_standin import SlackStandIn, sign, slash_command_body
from tests.support.stack import RegopsProcess, ServeProcess, descendants

USER = "U0DEV1"  # a deployer of bench-* (promote, tags, inspect, pull), not an admin
APP, BIG, TAGGED = "bench-app", "bench-big", "bench-tags"
TAG = "1.0"
PHASES = ("local", "cross", "memory", "tags")

TARGET_LOCAL_SECONDS = 0.5
TARGET_CROSS_RATIO = 1.0
TARGET_PEAK_MB = 150.0
TARGET_TAGS_SECONDS = 1.5
JOB_TIMEOUT = 600.0
SAMPLE_SECONDS = 0.02
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ROOT = Path(__file__).resolve().parents[2]


def repo(image: str) -> str:
    return f"{NAMESPACE}/{image}"


def password_env(name: str) -> str:
    return "REGISTRY_PASSWORD_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


class TimedResponses(list[tuple[str, dict[str, Any]]]):
    """The stand-in's record of response_url posts, with the wall-clock time each one arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, float] = {}

    def append(self, item: tuple[str, dict[str, Any]]) -> None:
        self.at.setdefault(item[0], time.time())
        super().append(item)


@dataclass
class Measurement:
    phase: str
    round: int
    tool: str
    seconds: float
    digest: str | None = None
    target_digest: str | None = None
    detail: dict[str, float] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return bool(self.target_digest) and self.digest == self.target_digest


# ---- layers ----------------------------------------------------------------------------------


def upload_gzip_layer(base_url: str, username: str, password: str, repository: str, size: int, seed: int) -> Blob:
    """A layer of about ``size`` random bytes as a real gzip stream (stored blocks), streamed up.

    Real gzip, because skopeo compresses a layer that is not (the bytes ImageWriter.big_blob
    sends are not): it would then gzip 200 MB and change the image's digest, not copy it.
    """
    rng = random.Random(seed)
    compressor = zlib.compressobj(0, zlib.DEFLATED, 31)  # level 0, gzip framing: cheap to make
    hashed = hashlib.sha256()
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        left = size
        while left > 0:
            part = compressor.compress(rng.randbytes(min(1024 * 1024, left)))
            left -= 1024 * 1024
            if left <= 0:
                part += compressor.flush()
            if part:
                hashed.update(part)
                sent += len(part)
                yield part

    with requests.Session() as session:
        session.auth = (username, password)
        started = session.post(f"{base_url}/v2/{repository}/blobs/uploads/", timeout=30)
        started.raise_for_status()
        location = urllib.parse.urljoin(base_url + "/", started.headers["Location"])
        patched = session.patch(location, data=body(), headers={"Content-Type": "application/octet-stream"},
                                timeout=(10, 300))
        patched.raise_for_status()
        location = urllib.parse.urljoin(base_url + "/", patched.headers["Location"])
        digest = "sha256:" + hashed.hexdigest()
        session.put(location, params={"digest": digest}, timeout=60).raise_for_status()
    return Blob(digest, sent, OCI_LAYER)


# ---- memory of a process tree ----------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Every process below ``pid``: /proc/PID/task/*/children where the kernel has it, else a /proc scan."""
    found: list[int] = []
    stack = [pid]
    try:
        while stack:
            current = stack.pop()
            for task in Path(f"/proc/{current}/task").iterdir():
                for child in (task / "children").read_text().split():
                    found.append(int(child))
                    stack.append(int(child))
    except FileNotFoundError:
        if current == pid:
            return []
        return found  # a process that exited while read: what was found is still right
    except OSError:
        return descendants(pid)
    return found


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _status_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of ``pid`` in kB; None once it is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return rss, hwm


class TreeSampler:
    """Polls the RSS (and the kernel's high-water mark) of ``pid`` and its descendants every 20 ms."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb: dict[int, int] = {}
        self.cpu: dict[int, float] = {}  # the last CPU time seen of each process (a horse's, just before it ends)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in (self.pid, *_children(self.pid)):
                status = _status_kb(pid)
                if status is not None:
                    self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), *status)
                cpu = _cpu_seconds(pid)
                if cpu is not None:
                    self.cpu[pid] = cpu
            self.samples += 1
            self._stop.wait(self.interval)


# ---- the benchmark ---------------------------------------------------------------------------


class RegistryBench:
    def __init__(self, args: argparse.Namespace, services: Services, workdir: Path) -> None:
        self.args = args
        self.services = services
        self.workdir = workdir
        self.signing_secret, self.bot_token = new_secrets()
        self.phases = set(args.phases)

    # ---- set-up (not timed) ----------------------------------------------------------------

    def start(self) -> None:
        args = self.args
        print("\nstarting Redis, registries, the Slack stand-in ...", flush=True)
        self.redis_server = self.services.start(RedisServer())
        self.slack = self.services.enter_context(SlackStandIn(self.bot_token))
        self.responses = TimedResponses()
        self.slack.responses = self.responses
        # The main registry holds the sources; every cross-registry measurement gets a fresh one.
        names = ["main"]
        if "cross" in self.phases:
            names += ["xwarm-regops", "xwarm-skopeo"]
            names += [f"x{r}-{tool}" for r in range(1, args.rounds + 1) for tool in ("regops", "skopeo")]
        if "memory" in self.phases:
            names.append("mem")
        self.registries: dict[str, Registry] = {}
        for name in names:
            self.registries[name] = self.services.start(Registry())
        self.config = self._write_config()

        # PYTHONPATH: serve and the worker run in their own directories, where `python -m bot` would
        # import whatever checkout the venv was installed from (a worktree may share another's venv).
        common = {"REDIS_URL": self.redis_server.url, "SLACK_API_URL": self.slack.api_url,
                  "SLACK_BOT_TOKEN": self.bot_token, "SLACK_SIGNING_SECRET": self.signing_secret,
                  "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        worker_env = {**common, **{password_env(name): reg.password for name, reg in self.registries.items()}}
        self.serve = ServeProcess(common, self.config)  # the bot never holds registry passwords
        self.worker = RegopsProcess("worker-registry", ["--config", self.config, "worker", "--registry-only",
                                                        "--log-level", self.args.worker_log_level], worker_env)
        self.services.start(self.serve)
        self.services.start(self.worker)
        if self.args.keep_logs:  # registered after the starts: runs before the stops (newest first)
            self.services.callback(self._keep_logs, Path(self.args.keep_logs))
        self.services.callback(self._kill_left_horses)  # runs after the worker's stop (newest first)
        self.worker_pid = self._pid(self.worker)
        self.redis = redis.Redis.from_url(self.redis_server.url, decode_responses=True)
        self.services.callback(self.redis.close)

        main = self.registries["main"]
        self.writer = self.services.enter_context(ImageWriter(main.base_url, basic(main.username, main.password)))
        self._build_images()
        self._warm_up()

    def _write_config(self) -> str:
        blocks = "".join(
            f"  {name}:\n    server: {reg.server}\n    services_hostname: namespace.example.com\n"
            f"    username: {reg.username}\n    password_env: {password_env(name)}\n"
            for name, reg in self.registries.items())
        path = self.workdir / "regops.yaml"
        path.write_text("registries:\n" + blocks + textwrap.dedent(f"""\
            default_registry: main
            hosts: [build-1]
            limits: {{commands_per_minute: 10000000, queued_per_user: 10000000, queued_per_host: 10000000}}
            access:
              roles:
                admin: {{actions: ["*"]}}
                deployer: {{actions: [pull, promote, tags, inspect, history], images: ["bench-*"]}}
              grants:
                - {{role: admin, users: [U0ADMIN]}}
                - {{role: deployer, users: [{USER}]}}
            """))
        return str(path)

    @staticmethod
    def _pid(process: RegopsProcess) -> int:
        popen = process._process
        if popen is None:
            raise RuntimeError(f"{process.name} is not running")
        return popen.pid

    def _keep_logs(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for process in (self.serve, self.worker):
            (directory / f"{process.name}.log").write_text(process.log_text())
        print(f"logs of serve and the worker kept in {directory}", flush=True)

    def _kill_left_horses(self) -> None:
        """A work horse left behind by a stopped worker (its own process group) is ours: its command line
        names this run's config."""
        for pid in descendants(self.worker_pid) if Path(f"/proc/{self.worker_pid}").exists() else []:
            try:
                if self.config in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass

    def _layered(self, image: str, layers: int, layer_mb: int, seed: int) -> tuple[Blob, ...]:
        main = self.registries["main"]
        return tuple(upload_gzip_layer(main.base_url, main.username, main.password, repo(image),
                                       layer_mb * 1_000_000, seed + number) for number in range(layers))

    def _build_images(self) -> None:
        args = self.args
        started = time.monotonic()
        seed = os.getpid() * 100
        if self.phases & {"local", "cross"}:
            print(f"assembling {APP}:{TAG} in the main registry: {args.layers} layers x {args.layer_mb} MB ...",
                  flush=True)
            layers = self._layered(APP, args.layers, args.layer_mb, seed)
            self.app = self.writer.image(repo(APP), TAG, layers=0, shared_layers=layers)
        if "memory" in self.phases:
            print(f"assembling {BIG}:{TAG}: 4 layers x {args.big_mb // 4} MB ...", flush=True)
            layers = self._layered(BIG, 4, args.big_mb // 4, seed + 50)
            self.big = self.writer.image(repo(BIG), TAG, layers=0, shared_layers=layers)
        if "tags" in self.phases:
            print(f"putting one manifest of {TAGGED} under {args.tags} tags ...", flush=True)
            small = self.writer.image(repo(TAGGED), "t0000")
            self.writer.tags(repo(TAGGED), small.manifest, small.media_type,
                             [f"t{n:04d}" for n in range(1, args.tags)])
        print(f"  images ready in {time.monotonic() - started:.1f} s", flush=True)

    def _warm_up(self) -> None:
        print("warm-up (not timed): a tags query, a promote and a skopeo copy of each kind ...", flush=True)
        if "tags" in self.phases:
            self.measure_tags(0, None)
        if "local" in self.phases:
            self.measure_regops("local", 0, f"promote {APP} {TAG} {TAG} --to-image {APP}-warm-regops",
                                self.registries["main"], repo(f"{APP}-warm-regops"), self.app.digest)
            self.measure_skopeo("local", 0, self.registries["main"], repo(f"{APP}-warm-skopeo"), self.app.digest)
        if "cross" in self.phases:
            self.measure_regops("cross", 0, f"promote {APP} {TAG} {TAG} --to-registry xwarm-regops",
                                self.registries["xwarm-regops"], repo(APP), self.app.digest)
            self.measure_skopeo("cross", 0, self.registries["xwarm-skopeo"], repo(APP), self.app.digest)

    # ---- regops ----------------------------------------------------------------------------

    def _command(self, text: str, response_url: str) -> tuple[dict[str, Any], float]:
        """POST a signed slash command; return (the ack, seconds to it)."""
        body = slash_command_body(text, user_id=USER, channel_id="C0OPS", response_url=response_url)
        request = urllib.request.Request(f"{self.serve.url}{SLACK_PATH}", data=body.encode(),
                                         headers=sign(self.signing_secret, body), method="POST")
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        return answer, time.monotonic() - started

    @staticmethod
    def _job_id(ack: dict[str, Any], text: str) -> str:
        found = re.search(r"(?:job|request) `([0-9a-f]{12})`", ack.get("text", ""))
        if not found:
            raise RuntimeError(f"regops did not queue {text!r}: {ack.get('text')}")
        return found.group(1)

    def _final_call(self, job_id: str, timeout: float) -> Any:
        needle = f"job {job_id}"

        def find() -> Any:
            for call in self.slack.calls:  # wait_for holds the stand-in's lock
                if call.method in ("chat.update", "chat.postMessage") and call.params.get("channel") == "C0OPS":
                    text = call.params.get("text") or ""
                    if needle in text and text.startswith(("succeeded", "failed")):
                        return call
            return None

        return self.slack.wait_for(find, timeout, f"the final message of job {job_id}")

    def measure_regops(self, phase: str, round_no: int, text: str, target: Registry, target_repo: str,
                       source_digest: str) -> Measurement:
        wall0 = time.time()
        ack, acked = self._command(text, self.slack.response_url(f"bench{time.time_ns()}"))
        job_id = self._job_id(ack, text)
        final = self._final_call(job_id, JOB_TIMEOUT)
        seconds = final.at - wall0
        message = final.params.get("text", "")
        if not message.startswith("succeeded"):
            raise RuntimeError(f"regops {text!r} failed: {message}\n--- worker log ---\n"
                               f"{log_excerpt(self.worker.log_text())}")
        record = self.redis.hgetall(f"regops:job:{job_id}")
        queued, started, finished = (float(record.get(k, "nan")) for k in ("queued_at", "started_at", "finished_at"))
        updates = [c for c in self.slack.calls if f"job {job_id}" in (c.params.get("text") or "")]
        detail = {
            "ack": acked,
            "POST→queued": queued - wall0,
            "queued→started": started - queued,
            "started→finished": finished - started,
            "finished→final Slack call": final.at - finished,
            "Slack calls": float(len(updates)),
        }
        return Measurement(phase, round_no, "regops", seconds, source_digest,
                           target.manifest_digest(target_repo, TAG), detail)

    # ---- skopeo ----------------------------------------------------------------------------

    def measure_skopeo(self, phase: str, round_no: int, target: Registry, target_repo: str,
                       source_digest: str) -> Measurement:
        main = self.registries["main"]
        argv = ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                "--src-creds", f"{main.username}:{main.password}", "--dest-creds", f"{target.username}:{target.password}",
                f"docker://{main.server}/{repo(APP)}:{TAG}", f"docker://{target.server}/{target_repo}:{TAG}"]
        started = time.monotonic()
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=JOB_TIMEOUT)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"skopeo copy failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return Measurement(phase, round_no, "skopeo", seconds, source_digest,
                           target.manifest_digest(target_repo, TAG))

    # ---- the phases ------------------------------------------------------------------------

    def _report(self, measurement: Measurement) -> None:
        extra = "".join(f", {k} {ms(v)}" if k != "Slack calls" else f", {int(v)} Slack calls"
                        for k, v in measurement.detail.items())
        check = "digest verified in the target" if measurement.verified else \
            f"DIGEST MISMATCH ({measurement.digest} vs target {measurement.target_digest})"
        print(f"{measurement.seconds:.3f} s{extra}; {check}", flush=True)

    def _order(self, round_no: int) -> list[str]:
        return ["regops", "skopeo"] if (round_no % 2 == 1) == (self.args.first == "regops") else ["skopeo", "regops"]

    def run_copies(self, phase: str) -> list[Measurement]:
        results = []
        main = self.registries["main"]
        for round_no in range(1, self.args.rounds + 1):
            for tool in self._order(round_no):
                print(f"{phase} round {round_no}: {tool} (load {' '.join(f'{x:.2f}' for x in load_average())}) ...",
                      end=" ", flush=True)
                if phase == "local":
                    name = f"{APP}-r{round_no}-{tool}"
                    if tool == "regops":
                        m = self.measure_regops(phase, round_no, f"promote {APP} {TAG} {TAG} --to-image {name}",
                                                main, repo(name), self.app.digest)
                    else:
                        m = self.measure_skopeo(phase, round_no, main, repo(name), self.app.digest)
                else:
                    registry_name = f"x{round_no}-{tool}"
                    target = self.registries[registry_name]
                    if tool == "regops":
                        m = self.measure_regops(phase, round_no, f"promote {APP} {TAG} {TAG} --to-registry "
                                                f"{registry_name}", target, repo(APP), self.app.digest)
                    else:
                        m = self.measure_skopeo(phase, round_no, target, repo(APP), self.app.digest)
                self._report(m)
                results.append(m)
                time.sleep(self.args.pause)
        return results

    def run_memory(self) -> tuple[Measurement, dict[str, float]]:
        print(f"memory: promote of {self.args.big_mb} MB to the registry mem, the worker's process tree sampled "
              f"every {SAMPLE_SECONDS * 1000:.0f} ms ...", end=" ", flush=True)
        before = _status_kb(self.worker_pid) or (0, 0)
        worker_cpu = _cpu_seconds(self.worker_pid) or 0.0
        with TreeSampler(self.worker_pid) as sampler:
            m = self.measure_regops("memory", 1, f"promote {BIG} {TAG} {TAG} --to-registry mem",
                                    self.registries["mem"], repo(BIG), self.big.digest)
        self._report(m)
        horses = {pid: kb for pid, kb in sampler.peak_kb.items() if pid != self.worker_pid}
        figures = {
            "worker RSS before (MB)": before[0] / 1024,
            "worker peak (MB)": sampler.peak_kb.get(self.worker_pid, 0) / 1024,
            "horse peak (MB)": max(horses.values(), default=0) / 1024,
            "horse CPU, user + system (s)": sum(sampler.cpu.get(pid, 0.0) for pid in horses),
            "worker CPU meanwhile (s)": sampler.cpu.get(self.worker_pid, worker_cpu) - worker_cpu,
            "horses seen": float(len(horses)),
            "samples": float(sampler.samples),
            "MB/s": self.args.big_mb / m.seconds,
        }
        if not horses:
            print("  (no work horse was seen: the job ran faster than the sampling interval?)", flush=True)
        return m, figures

    def measure_tags(self, round_no: int, limit: int | None) -> Measurement:
        name = f"tags{time.time_ns()}"
        text = f"tags {TAGGED}" + (f" --limit {limit}" if limit else "")
        path = f"/response/{name}"
        wall0 = time.time()
        ack, acked = self._command(text, self.slack.response_url(name))
        if "for you only" not in ack.get("text", ""):
            raise RuntimeError(f"regops did not take {text!r}: {ack.get('text')}")

        def find() -> dict[str, Any] | None:
            return next((body for p, body in self.slack.responses if p == path), None)

        body = self.slack.wait_for(find, 60, f"the answer on {path}")
        seconds = self.responses.at[path] - wall0
        shown = len(set(re.findall(r"t\d{4}", json.dumps(body))))
        return Measurement("tags", round_no, f"limit {limit or 50}", seconds,
                           detail={"ack": acked, "tags named in the answer": float(shown)})

    def run_tags(self) -> list[Measurement]:
        results = []
        for round_no in range(1, self.args.rounds + 1):
            limits: list[int | None] = [None, 100] if round_no % 2 else [100, None]
            for limit in limits:
                print(f"tags round {round_no}: --limit {limit or 'default (50)'} ...", end=" ", flush=True)
                m = self.measure_tags(round_no, limit)
                print(f"{m.seconds:.3f} s, ack {ms(m.detail['ack'])}, "
                      f"{int(m.detail['tags named in the answer'])} tags named in the answer", flush=True)
                results.append(m)
                time.sleep(self.args.pause)
        return results


# ---- the report ------------------------------------------------------------------------------


def copy_table(title: str, results: list[Measurement], rounds: int) -> tuple[float, float]:
    rows = []
    for round_no in range(1, rounds + 1):
        by_tool = {m.tool: m for m in results if m.round == round_no}
        first = next(m.tool for m in results if m.round == round_no)
        regops, skopeo = by_tool["regops"], by_tool["skopeo"]
        rows.append([round_no, first, f"{regops.seconds:.3f}", f"{skopeo.seconds:.3f}",
                     f"{regops.seconds / skopeo.seconds:.3f}"])
    regops_median = median([m.seconds for m in results if m.tool == "regops"])
    skopeo_median = median([m.seconds for m in results if m.tool == "skopeo"])
    rows.append(["median", "", f"{regops_median:.3f}", f"{skopeo_median:.3f}", f"{regops_median / skopeo_median:.3f}"])
    print_table(title, rows, ["round", "first", "regops", "skopeo copy", "regops/skopeo"])
    regops_runs = [m for m in results if m.tool == "regops"]
    print("regops breakdown (median over rounds):")
    for key in regops_runs[0].detail:
        value = median([m.detail[key] for m in regops_runs])
        print(f"  {key:28s} " + (f"{value:.0f}" if key == "Slack calls" else ms(value)))
    return regops_median, skopeo_median


def report(results: dict[str, Any], args: argparse.Namespace) -> bool:
    verdicts: list[list[Any]] = []
    copies: list[Measurement] = []
    size = f"{args.layers * args.layer_mb} MB, {args.layers} layers"
    if "local" in results:
        copies += results["local"]
        regops, skopeo = copy_table(f"promote of {size} to a new repository in the same registry (seconds)",
                                    results["local"], args.rounds)
        verdicts.append(["local promote: median regops", f"{regops:.3f} s", f"<= {TARGET_LOCAL_SECONDS} s",
                         verdict(regops <= TARGET_LOCAL_SECONDS)])
        verdicts.append(["local promote: median regops vs skopeo", f"{regops:.3f} vs {skopeo:.3f} s",
                         "regops < skopeo", verdict(regops < skopeo)])
    if "cross" in results:
        copies += results["cross"]
        regops, skopeo = copy_table(f"promote of {size} to a second (fresh) registry (seconds)",
                                    results["cross"], args.rounds)
        ratio = regops / skopeo
        verdicts.append(["cross promote: median regops / skopeo", f"{ratio:.3f}", f"<= {TARGET_CROSS_RATIO:.2f}",
                         verdict(ratio <= TARGET_CROSS_RATIO)])
    if "memory" in results:
        m, figures = results["memory"]
        copies.append(m)
        print_table(f"worker memory during a {args.big_mb} MB cross-registry promote", [
            [key, f"{value:.1f}" if "MB" in key else f"{value:.2f}" if "(s)" in key else f"{value:.0f}"]
            for key, value in figures.items()
        ] + [["promote, command → final message (s)", f"{m.seconds:.2f}"]], ["figure", "value"])
        peak = figures["horse peak (MB)"] or figures["worker peak (MB)"]
        verdicts.append(["peak RSS of the process that copied", f"{peak:.1f} MB", f"<= {TARGET_PEAK_MB:.0f} MB",
                         verdict(bool(peak) and peak <= TARGET_PEAK_MB)])
    if "tags" in results:
        runs: list[Measurement] = results["tags"]
        rows = []
        for tool in ("limit 50", "limit 100"):
            values = sorted(m.seconds for m in runs if m.tool == tool)
            shown = median([m.detail["tags named in the answer"] for m in runs if m.tool == tool])
            rows.append([tool, f"{median(values):.3f}", f"{values[0]:.3f}", f"{values[-1]:.3f}", f"{shown:.0f}"])
        print_table(f"tags of an image with {args.tags} tags, POST → answer on the response_url (seconds)", rows,
                    ["query", "median", "min", "max", "tags named in the answer"])
        default = median([m.seconds for m in runs if m.tool == "limit 50"])
        verdicts.append(["tags (default limit): median", f"{default:.3f} s", f"<= {TARGET_TAGS_SECONDS} s",
                         verdict(default <= TARGET_TAGS_SECONDS)])
    if copies:
        verified = all(m.verified for m in copies)
        verdicts.append(["every copied digest found in its target", "yes" if verified else "NO", "yes",
                         verdict(verified)])
    print_table("registry benchmark verdict", verdicts, ["figure", "measured", "target", "result"])
    return all(row[-1] == "PASS" for row in verdicts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.registry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of (regops, skopeo) copies and of tags "
                        "queries (default 5)")
    parser.add_argument("--layers", type=int, default=4, help="layers of bench-app (default 4)")
    parser.add_argument("--layer-mb", type=int, default=50, help="MB of random bytes per layer (default 50)")
    parser.add_argument("--big-mb", type=int, default=1000, help="MB of the memory phase's image (default 1000)")
    parser.add_argument("--tags", type=int, default=1000, help="tags of bench-tags (default 1000)")
    parser.add_argument("--phases", type=lambda s: [p.strip() for p in s.split(",") if p.strip()],
                        default=list(PHASES), help=f"comma-separated, of {','.join(PHASES)} (default all)")
    parser.add_argument("--first", choices=("regops", "skopeo"), default="regops",
                        help="which goes first in round 1 (then they alternate; default regops)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of rest after each measurement (default 1)")
    parser.add_argument("--worker-log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"),
                        help="the worker's log level (DEBUG logs every registry request, for profiling; default INFO)")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the logs of serve and the worker into DIR at the end")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    unknown = set(args.phases) - set(PHASES)
    if unknown or not args.phases:
        parser.error(f"--phases: unknown {', '.join(sorted(unknown)) or '(none given)'}; use {','.join(PHASES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if {"local", "cross"} & set(args.phases) and shutil.which("skopeo") is None:
        print("registry benchmark: skopeo is not installed (apt-get install skopeo; run.sh installs it as root)",
              file=sys.stderr)
        return 2
    skopeo_version = "-"
    if shutil.which("skopeo"):
        skopeo_version = subprocess.run(["skopeo", "--version"], capture_output=True, text=True,
                                        check=False).stdout.strip()
    print_context("regops registry benchmark: machine", {
        "CPU busy just before start": cpu_busy(),
        "skopeo": skopeo_version,
        "rounds": args.rounds,
        "phases": ",".join(args.phases),
    })
    results: dict[str, Any] = {}
    with interrupts_as_keyboard_interrupt(), Services() as services:
        workdir = Path(tempfile.mkdtemp(prefix="regops-bench-registry-"))
        services.callback(shutil.rmtree, workdir, True)
        bench = RegistryBench(args, services, workdir)
        bench.start()
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("local", lambda: bench.run_copies("local")), ("cross", lambda: bench.run_copies("cross")),
            ("memory", bench.run_memory), ("tags", bench.run_tags)]
        for phase, step in steps:
            if phase in args.phases:
                print(flush=True)
                results[phase] = step()
        print("\nstopping services ...", flush=True)
    passed = report(results, args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_average())}")
    print("registry benchmark:", "targets met" if passed else "TARGET MISSED")
    return 0 if passed else 1


if __name__ == "__main__":
    run_benchmark(main, "registry")
