"""`GET /metrics` on a running `serve`: every family declared up front, values that move with the work."""

from __future__ import annotations

import urllib.request

from tests.e2e.conftest import Stack, job_id_of

FAMILIES = ("regops_commands_total", "regops_jobs_total", "regops_job_duration_seconds", "regops_queue_length",
            "regops_relay_lag_seconds", "regops_slack_api_errors_total")


def scrape(stack: Stack) -> tuple[str, dict[str, float]]:
    with urllib.request.urlopen(f"{stack.serve.url}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return text, samples


def test_every_family_is_declared_before_its_samples(stack: Stack) -> None:
    text, _ = scrape(stack)
    lines = text.splitlines()
    for family in FAMILIES:
        type_line = next(i for i, line in enumerate(lines) if line.startswith(f"# TYPE {family} "))
        samples = [i for i, line in enumerate(lines) if line.startswith(family) and not line.startswith("#")]
        assert all(i > type_line for i in samples), family
    assert 'regops_queue_length{host="build-1"}' in text and 'regops_queue_length{host="build-bad"}' in text


def test_metrics_move_as_commands_and_jobs_run(stack: Stack) -> None:
    _, before = scrape(stack)
    stack.command("help", user="U0DEV1")
    stack.command("push nginx 1", user="U0NOBODY")
    _, body = stack.command("login", user="U0ADMIN")
    job_id = job_id_of(body)
    stack.final_message(job_id)
    stack.slack.wait_for(lambda: True, 0.1)
    _, after = scrape(stack)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert delta('regops_commands_total{action="help",decision="answered"}') == 1
    assert delta('regops_commands_total{action="push",decision="denied"}') == 1
    assert delta('regops_commands_total{action="login",decision="queued"}') == 1
    for _ in range(50):  # the relay counts the job's end right after it relays it
        if delta('regops_jobs_total{action="login",outcome="succeeded"}') == 1:
            break
        _, after = scrape(stack)
    assert delta('regops_jobs_total{action="login",outcome="succeeded"}') == 1
    assert delta('regops_job_duration_seconds_count{action="login"}') == 1
    assert delta('regops_job_duration_seconds_bucket{action="login",le="+Inf"}') == 1
    assert after["regops_relay_lag_seconds"] >= 0
