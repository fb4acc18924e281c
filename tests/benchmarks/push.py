"""Benchmark: end-to-end push of a 100 MB image through regops versus `docker push`.

    python -m tests.benchmarks.push [--rounds 3] [--layers 4] [--layer-mb 25] [--first regops|docker]

One private dockerd (its own DockerEngine), one Redis, the Slack stand-in, one
`regops serve` and one `regops worker --host build-1`, all started before anything is
timed.  The image ``centos7-bench:bench`` (FROM scratch, LAYERS layers of random bytes)
is built once in that engine.

Every measurement pushes to its own fresh, empty registry (a new port, so the engine
has no cached knowledge of which layers that registry holds).  All registries are
started up front and listed in regops' one config, so serve and worker stay running
(and warm) across rounds; regops picks each with ``--registry NAME``.

* regops: from just before the signed slash command is POSTed until the Slack stand-in
  records the job's final message ("succeeded ... job ID", the relay's chat.update),
  so the ack, the queue, the worker's tag + login + push, the events and the relay all
  count.
* docker: ``docker push REF`` (the docker CLI, DOCKER_HOST = the same engine), after
  ``docker login`` to that registry and ``docker tag`` (neither timed).

Rounds alternate which one goes first.  Target (issue 2): median regops / median docker ≤ 1.10.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.benchmarks.common import (
    HOST,
    NAMESPACE,
    PUSH_USER,
    SLACK_PATH,
    RegistryEntry,
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
    write_config,
)
from tests.support.services import DockerEngine, RedisServer, Registry, build_image
from tests.support.slack_standin import SlackStandIn, sign, slash_command_body
from tests.support.stack import ServeProcess, WorkerProcess

IMAGE = "centos7-bench"
TAG = "bench"
TARGET_RATIO = 1.10
JOB_TIMEOUT = 600.0


@dataclass
class Measurement:
    round: int
    tool: str
    seconds: float
    digest: str | None
    registry_digest: str | None
    detail: dict[str, float]

    @property
    def verified(self) -> bool:
        return bool(self.digest) and self.digest == self.registry_digest


class PushBench:
    def __init__(self, args: argparse.Namespace, services: Services, workdir: Path) -> None:
        self.args = args
        self.services = services
        self.workdir = workdir
        self.signing_secret, self.bot_token = new_secrets()
        self.docker_config = workdir / "docker-cli"
        self.docker_config.mkdir()

    # ---- set-up (not timed) ----------------------------------------------------------------

    def start(self) -> None:
        args = self.args
        print("\nstarting dockerd, Redis, registries, the Slack stand-in ...", flush=True)
        self.engine = self.services.start(DockerEngine())
        self.redis_server = self.services.start(RedisServer())
        self.slack = self.services.enter_context(SlackStandIn(self.bot_token))
        # One registry for the warm-up job, then one per measurement.
        self.registries: dict[str, Registry] = {}
        names = ["warmup"] + [f"round{r}-{tool}" for r in range(1, args.rounds + 1) for tool in ("regops", "docker")]
        for name in names:
            self.registries[name] = self.services.start(Registry())
        entries = [RegistryEntry(name, reg.server, reg.username, self._password_env(name))
                   for name, reg in self.registries.items() if not name.endswith("-docker")]
        self.config = str(write_config(self.workdir, entries, push_timeout="30m"))

        size = args.layers * args.layer_mb
        print(f"building {IMAGE}:{TAG}: {args.layers} layers x {args.layer_mb} MB of random bytes "
              f"({size} MB) ...", flush=True)
        started = time.monotonic()
        self.image_id = build_image(self.engine.host, IMAGE, TAG, layers=args.layers,
                                    layer_size=args.layer_mb * 1024 * 1024, seed=f"bench-{os.getpid()}")
        print(f"  built {self.image_id[:19]} in {time.monotonic() - started:.1f} s", flush=True)

        common = {"REDIS_URL": self.redis_server.url, "SLACK_API_URL": self.slack.api_url,
                  "SLACK_BOT_TOKEN": self.bot_token, "SLACK_SIGNING_SECRET": self.signing_secret}
        worker_env = {**common, "DOCKER_HOST": self.engine.host,
                      **{self._password_env(name): reg.password for name, reg in self.registries.items()
                         if not name.endswith("-docker")}}
        self.serve = ServeProcess(common, self.config)  # the bot never holds registry passwords
        self.worker = WorkerProcess(worker_env, self.config, HOST)
        for process in (self.serve, self.worker):
            self.services.start(process)
        self.redis = redis.Redis.from_url(self.redis_server.url, decode_responses=True)
        self.services.callback(self.redis.close)

        print("warm-up: a regops login job and a docker CLI call (not timed) ...", flush=True)
        job_id, _ack = self._command("login --registry warmup")
        final = self._final_call(job_id, 120.0)
        if not final.params.get("text", "").startswith("succeeded"):
            raise RuntimeError(f"warm-up login job failed: {final.params.get('text')}\n"
                               f"{log_excerpt(self.worker.log_text())}")
        self._docker("version", "--format", "{{.Server.Version}}")

    @staticmethod
    def _password_env(name: str) -> str:
        return "REGISTRY_PASSWORD_" + "".join(c if c.isalnum() else "_" for c in name).upper()

    def _docker(self, *argv: str, stdin: str | None = None, timeout: float = JOB_TIMEOUT) -> str:
        env = {**os.environ, "DOCKER_HOST": self.engine.host, "DOCKER_CONFIG": str(self.docker_config)}
        done = subprocess.run(["docker", *argv], check=False, input=stdin, env=env, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"docker {argv[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout

    # ---- regops ----------------------------------------------------------------------------

    def _command(self, text: str) -> tuple[str, float]:
        """POST a signed slash command; return (job id, seconds to the ack)."""
        body = slash_command_body(text, user_id=PUSH_USER, channel_id="C0OPS",
                                  response_url=self.slack.response_url(f"bench{time.time_ns()}"))
        request = urllib.request.Request(f"{self.serve.url}{SLACK_PATH}", data=body.encode(),
                                         headers=sign(self.signing_secret, body), method="POST")
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        acked = time.monotonic() - started
        text_out = answer.get("text", "")
        marker = "as job `"
        if marker not in text_out:
            raise RuntimeError(f"regops did not queue {text!r}: {text_out}")
        return text_out.split(marker, 1)[1][:12], acked

    def _final_call(self, job_id: str, timeout: float) -> Any:
        """The stand-in's record of the chat call that made the job's message final."""
        needle = f"job {job_id}"

        def find() -> Any:
            for call in self.slack.calls:  # wait_for holds the stand-in's lock
                if call.method in ("chat.update", "chat.postMessage") and call.params.get("channel") == "C0OPS":
                    text = call.params.get("text") or ""
                    if needle in text and text.startswith(("succeeded", "failed")):
                        return call
            return None

        return self.slack.wait_for(find, timeout, f"the final message of job {job_id}")

    def measure_regops(self, round_no: int) -> Measurement:
        name = f"round{round_no}-regops"
        registry = self.registries[name]
        wall0 = time.time()
        job_id, acked = self._command(f"push {IMAGE} {TAG} --registry {name}")
        final = self._final_call(job_id, JOB_TIMEOUT)
        seconds = final.at - wall0
        text = final.params.get("text", "")
        if not text.startswith("succeeded"):
            raise RuntimeError(f"regops push failed: {text}\n--- worker log ---\n{log_excerpt(self.worker.log_text())}")
        record = self.redis.hgetall(f"regops:job:{job_id}")
        queued, started, finished = (float(record.get(k, "nan")) for k in ("queued_at", "started_at", "finished_at"))
        updates = [c for c in self.slack.calls if f"job {job_id}" in (c.params.get("text") or "")]
        detail = {
            "ack": acked,
            "queue→start": started - queued,
            "job (tag+login+push)": finished - started,
            "finish→final Slack call": final.at - finished,
            "Slack calls": float(len(updates)),
        }
        return Measurement(round_no, "regops", seconds, record.get("digest"),
                           registry.manifest_digest(f"{NAMESPACE}/{IMAGE}", TAG), detail)

    # ---- docker push -----------------------------------------------------------------------

    def measure_docker(self, round_no: int) -> Measurement:
        registry = self.registries[f"round{round_no}-docker"]
        reference = f"{registry.server}/{NAMESPACE}/{IMAGE}:{TAG}"
        self._docker("login", "--username", registry.username, "--password-stdin", registry.server,
                     stdin=registry.password)
        self._docker("tag", f"{IMAGE}:{TAG}", reference)
        started = time.monotonic()
        output = self._docker("push", reference)
        seconds = time.monotonic() - started
        digest = None
        for line in output.splitlines():
            if "digest: " in line:
                digest = line.split("digest: ", 1)[1].split()[0]
        return Measurement(round_no, "docker", seconds, digest,
                           registry.manifest_digest(f"{NAMESPACE}/{IMAGE}", TAG), {})

    # ---- the run ---------------------------------------------------------------------------

    def run(self) -> list[Measurement]:
        results = []
        first = self.args.first
        for round_no in range(1, self.args.rounds + 1):
            order = ["regops", "docker"] if (round_no % 2 == 1) == (first == "regops") else ["docker", "regops"]
            for tool in order:
                print(f"round {round_no}: {tool} push (load average "
                      f"{' '.join(f'{x:.2f}' for x in load_average())}) ...", end=" ", flush=True)
                measurement = self.measure_regops(round_no) if tool == "regops" else self.measure_docker(round_no)
                results.append(measurement)
                extra = "".join(f", {k} {v:.3f} s" if k != "Slack calls" else f", {int(v)} Slack calls"
                                for k, v in measurement.detail.items())
                check = "digest verified in the registry" if measurement.verified else \
                    f"DIGEST MISMATCH ({measurement.digest} vs registry {measurement.registry_digest})"
                print(f"{measurement.seconds:.2f} s{extra}; {check}", flush=True)
                time.sleep(self.args.pause)
        return results


def report(results: list[Measurement], args: argparse.Namespace) -> bool:
    rows = []
    for round_no in range(1, args.rounds + 1):
        by_tool = {m.tool: m for m in results if m.round == round_no}
        first = next(m.tool for m in results if m.round == round_no)
        regops, docker = by_tool.get("regops"), by_tool.get("docker")
        ratio = regops.seconds / docker.seconds if regops and docker else float("nan")
        rows.append([round_no, first, f"{regops.seconds:.2f}" if regops else "-",
                     f"{docker.seconds:.2f}" if docker else "-", f"{ratio:.3f}"])
    regops_median = median([m.seconds for m in results if m.tool == "regops"])
    docker_median = median([m.seconds for m in results if m.tool == "docker"])
    ratio = regops_median / docker_median
    rows.append(["median", "", f"{regops_median:.2f}", f"{docker_median:.2f}", f"{ratio:.3f}"])
    size = args.layers * args.layer_mb
    print_table(f"end-to-end push of {size} MB ({args.layers} x {args.layer_mb} MB layers) to an empty registry "
                f"(seconds)", rows, ["round", "first", "regops", "docker push", "regops/docker"])
    verified = all(m.verified for m in results)
    digests = {m.digest for m in results}
    print(f"manifest digests pushed: {', '.join(sorted(str(d) for d in digests))} "
          f"({'the same image both ways' if len(digests) == 1 else 'they differ between pushes'})")
    passed = ratio <= TARGET_RATIO and verified
    regops_runs = [m for m in results if m.tool == "regops"]
    if regops_runs:
        print("regops breakdown (median over rounds):")
        for key in regops_runs[0].detail:
            value = median([m.detail[key] for m in regops_runs])
            print(f"  {key:28s} {value:.3f}" + ("" if key == "Slack calls" else " s"))
    print_table("push benchmark verdict", [
        ["median regops / median docker push", f"{ratio:.3f}", f"<= {TARGET_RATIO:.2f}",
         verdict(ratio <= TARGET_RATIO)],
        ["every pushed digest found in its registry", "yes" if verified else "NO", "yes", verdict(verified)],
    ], ["figure", "measured", "target", "result"])
    return passed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (regops, docker) pushes (default 3)")
    parser.add_argument("--layers", type=int, default=4, help="image layers (default 4)")
    parser.add_argument("--layer-mb", type=int, default=25, help="MB of random bytes per layer (default 25)")
    parser.add_argument("--first", choices=("regops", "docker"), default="regops",
                        help="which goes first in round 1 (then they alternate; default regops)")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds of rest after each push (default 2)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("docker") is None:
        print("push benchmark: the docker CLI is not installed (apt-get install docker.io)", file=sys.stderr)
        return 2
    print_context("regops push benchmark: machine", {
        "CPU busy just before start": cpu_busy(),
        "rounds": args.rounds,
    })
    with interrupts_as_keyboard_interrupt(), Services() as services:
        workdir = Path(tempfile.mkdtemp(prefix="regops-bench-push-"))
        services.callback(shutil.rmtree, workdir, True)
        bench = PushBench(args, services, workdir)
        bench.start()
        results = bench.run()
        print("\nstopping services ...", flush=True)
    passed = report(results, args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_average())}")
    print("push benchmark:", "target met" if passed else "TARGET MISSED")
    return 0 if passed else 1


if __name__ == "__main__":
    run_benchmark(main, "push")
