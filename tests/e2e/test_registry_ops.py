"""The registry commands end to end: signed slash commands → serve → the registry queue → a worker → the registry.

One worker (``--host build-1``, which serves the registry queue after its host's) holds both
registries' passwords; the images are assembled in the registries through their API.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import NAMESPACE, Stack, job_id_of, registries_yaml, running_stack
from tests.support.registry_images import OCI_INDEX, ImageWriter, basic
from tests.support.services import DockerEngine, RedisServer, Registry

REGISTRY_DB = 1


@dataclass
class RegistryStack:
    stack: Stack
    main: ImageWriter
    prod: ImageWriter
    prod_registry: Registry


@pytest.fixture(scope="module")
def prod_registry(registry: Registry) -> Iterator[Registry]:
    second = Registry(username="promoter@prod.example.com")
    try:
        second.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield second
    second.stop()


@pytest.fixture(scope="module")
def rstack(redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry,
           prod_registry: Registry) -> Iterator[RegistryStack]:
    config = registries_yaml(registry) + textwrap.dedent(f"""\
          prod:
            server: {prod_registry.server}
            services_hostname: namespace.example.com
            username: {prod_registry.username}
            password_env: PROD_REGISTRY_PASSWORD
        default_registry: main
        hosts: [build-1]
        notify_channel: C0DEPLOYS
        access:
          roles:
            admin: {{actions: ["*"]}}
            deployer: {{actions: [push, pull, promote, rollback, tags, inspect, history], images: ["app-*"]}}
          grants:
            - {{role: admin, users: [U0ADMIN]}}
            - {{role: deployer, users: [U0DEV1]}}
        """)
    with running_stack(redis_server, docker_engine, registry, db=REGISTRY_DB, config_text=config,
                       worker_env={"PROD_REGISTRY_PASSWORD": prod_registry.password}) as stack, \
            ImageWriter(registry.base_url, basic(registry.username, registry.password)) as main, \
            ImageWriter(prod_registry.base_url, basic(prod_registry.username, prod_registry.password)) as prod:
        yield RegistryStack(stack, main, prod, prod_registry)


def _image() -> str:
    return f"app-{uuid.uuid4().hex[:8]}"


def _repo(image: str) -> str:
    return f"{NAMESPACE}/{image}"


def _answer(stack: Stack, response_path: str, timeout: float = 30.0) -> dict:
    """The ephemeral answer a query posted to its response_url."""
    def find() -> dict | None:
        for path, body in stack.slack.responses:
            if path.endswith(response_path):
                return body
        return None
    return stack.slack.wait_for(find, timeout, f"the answer on {response_path}")


def _run(stack: Stack, text: str, user: str = "U0DEV1") -> tuple[str, dict]:
    status, ack = stack.command(text, user=user)
    assert status == 200, ack
    assert ack.get("response_type") == "ephemeral"
    job_id = job_id_of(ack)
    return job_id, stack.final_message(job_id)


def test_tags_are_answered_through_the_response_url_only(rstack: RegistryStack) -> None:
    stack, image = rstack.stack, _image()
    first = rstack.main.image(_repo(image), "1.0")
    for tag in ("1.1", "latest"):
        rstack.main.put_manifest(_repo(image), tag, first.manifest, first.media_type)
    posts_before = len(stack.slack.calls_to("chat.postMessage"))
    name = f"tags-{uuid.uuid4().hex[:6]}"
    status, ack = stack.command(f"tags {image}", response_url=stack.slack.response_url(name))
    assert status == 200 and "for you only" in ack["text"]
    answer = _answer(stack, name)
    assert answer["response_type"] == "ephemeral"
    for tag in ("1.0", "1.1", "latest"):
        assert f"`{tag}`" in answer["text"]
    assert first.digest.partition(":")[2][:12] in answer["text"]
    # A query never posts in the channel.
    assert len(stack.slack.calls_to("chat.postMessage")) == posts_before

    name = f"tags-{uuid.uuid4().hex[:6]}"
    stack.command(f"tags {image} --match '1.*' --limit 1", response_url=stack.slack.response_url(name))
    text = _answer(stack, name)["text"]
    assert "`latest`" not in text and ("`1.0`" in text) != ("`1.1`" in text)  # one of the two matches shown
    assert "1 more" in text


def test_inspect_of_an_index_names_every_platform(rstack: RegistryStack) -> None:
    stack, image = rstack.stack, _image()
    index = rstack.main.index(_repo(image), "multi", media_type=OCI_INDEX)
    name = f"inspect-{uuid.uuid4().hex[:6]}"
    status, _ack = stack.command(f"inspect {image} multi", response_url=stack.slack.response_url(name))
    assert status == 200
    text = _answer(stack, name)["text"]
    assert index.digest.partition(":")[2][:12] in text
    assert "linux/amd64" in text and "linux/arm64" in text


def test_promote_within_the_repository_then_rollback(rstack: RegistryStack) -> None:
    stack, image = rstack.stack, _image()
    staging = rstack.main.image(_repo(image), "staging")
    old = rstack.main.image(_repo(image), "prod")
    job_id, final = _run(stack, f"promote {image} staging prod")
    assert final["text"].startswith("succeeded"), final
    got = rstack.main.get_manifest(_repo(image), "prod")
    assert got is not None and got[2] == staging.digest  # byte-exact: the same digest
    notice = stack.slack.wait_for(lambda: next((c for c in stack.slack.calls_to("chat.postMessage")
                                                if c.params.get("channel") == "C0DEPLOYS"
                                                and job_id in (c.params.get("text") or "")), None),
                                  30, "the deployment notification of the promote")
    assert "Promoted" in notice.params["text"]

    status, history = stack.command(f"history {image} prod")
    assert status == 200 and staging.digest.partition(":")[2][:12] in history["text"]

    _job, final = _run(stack, f"rollback {image} prod")
    assert final["text"].startswith("succeeded"), final
    got = rstack.main.get_manifest(_repo(image), "prod")
    assert got is not None and got[2] == old.digest


def test_promote_to_a_second_registry_copies_the_blobs(rstack: RegistryStack) -> None:
    stack, image = rstack.stack, _image()
    staging = rstack.main.image(_repo(image), "staging", layers=3)
    _job, final = _run(stack, f"promote {image} staging release --to-registry prod")
    assert final["text"].startswith("succeeded"), final
    got = rstack.prod.get_manifest(_repo(image), "release")
    assert got is not None and got[2] == staging.digest
    for blob in staging.blobs:
        assert rstack.prod.has_blob(_repo(image), blob.digest)


def test_delete_names_the_tags_that_share_the_manifest_and_needs_shared(rstack: RegistryStack) -> None:
    stack, image = rstack.stack, _image()
    first = rstack.main.image(_repo(image), "old")
    rstack.main.put_manifest(_repo(image), "old-alias", first.manifest, first.media_type)
    _job, final = _run(stack, f"delete {image} old", user="U0ADMIN")
    assert final["text"].startswith("failed") and "old-alias" in final["text"] and "--shared" in final["text"]
    assert rstack.main.get_manifest(_repo(image), "old") is not None
    _job, final = _run(stack, f"delete {image} old --shared", user="U0ADMIN")
    assert final["text"].startswith("succeeded"), final
    assert rstack.main.get_manifest(_repo(image), "old") is None
    assert rstack.main.get_manifest(_repo(image), "old-alias") is None


def test_a_deployer_may_not_delete_and_nothing_is_queued(rstack: RegistryStack) -> None:
    stack, image = rstack.stack, _image()
    before = stack.job_keys()
    status, ack = stack.command(f"delete {image} old")
    assert status == 200 and "may not" in ack["text"]
    assert stack.job_keys() == before


def test_rollback_to_a_deleted_manifest_fails_and_changes_nothing(rstack: RegistryStack) -> None:
    stack, image = rstack.stack, _image()
    rstack.main.image(_repo(image), "prod")
    _run(stack, f"promote {image} prod keep")  # history: keep → first digest
    gone = rstack.main.image(_repo(image), "doomed")
    _run(stack, f"promote {image} doomed keep")  # keep → the doomed digest, previous the first
    _run(stack, f"promote {image} prod keep")  # back: keep's previous is now the doomed digest
    _run(stack, f"delete {image} doomed", user="U0ADMIN")
    current = rstack.main.get_manifest(_repo(image), "keep")
    _job, final = _run(stack, f"rollback {image} keep")
    assert final["text"].startswith("failed") and gone.digest.partition(":")[2][:12] in final["text"]
    assert rstack.main.get_manifest(_repo(image), "keep") == current
