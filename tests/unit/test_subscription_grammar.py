"""The grammar of subscribe, unsubscribe and subscriptions (syntax only), and resolving IMAGE_GLOB against a config."""

from __future__ import annotations

import pytest

from bot.core.errors import CommandError
from bot.core.grammar.help import help_text, usage
from bot.core.grammar.parser import parse
from bot.core.grammar.spec import SPECS, Command
from bot.core.subscription_requests import Target, image_glob_problem, resolve
from tests.support.texts import slack
from workers.kernel.config import parse_config

SUBSCRIBE_USAGE = "`/registry subscribe IMAGE_GLOB [--tags GLOB] [--events EVENTS] [--registry NAME]`"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("subscribe centos7-*", Command("subscribe", glob="centos7-*", text="subscribe 'centos7-*'")),
        ("/registry subscribe team/** --registry main",
         Command("subscribe", glob="team/**", registry="main", text="subscribe 'team/**' --registry main")),
        ("subscribe app --tags latest,v* --events delete,push",
         Command("subscribe", glob="app", tag_globs=("latest", "v*"), events=("delete", "push"),
                 text="subscribe app --tags 'latest,v*' --events delete,push")),
        ("subscribe app --events=PUSH,push --tags=v1,v1",
         Command("subscribe", glob="app", tag_globs=("v1",), events=("push",),
                 text="subscribe app --tags v1 --events push")),
        ("subscribe `dockerhub.example.com:5100/com.example.namespace/app`",
         Command("subscribe", glob="dockerhub.example.com:5100/com.example.namespace/app",
                 text="subscribe dockerhub.example.com:5100/com.example.namespace/app")),
        ("unsubscribe S12", Command("unsubscribe", subscription_id="S12", text="unsubscribe S12")),
        ("unsubscribe `S3`", Command("unsubscribe", subscription_id="S3", text="unsubscribe S3")),
        # Image names are lower-case: `s3` is an image glob, not an id.
        ("unsubscribe s3", Command("unsubscribe", glob="s3", text="unsubscribe s3")),
        ("unsubscribe centos7-*", Command("unsubscribe", glob="centos7-*", text="unsubscribe 'centos7-*'")),
        ("subscriptions", Command("subscriptions", text="subscriptions")),
        ("can-i subscribe", Command("can-i", subject_action="subscribe", text="can-i subscribe")),
        ("can-i subscribe --registry main",
         Command("can-i", subject_action="subscribe", registry="main", text="can-i subscribe --registry main")),
        ("subscribe --help", Command("help", topic="subscribe", text="help subscribe")),
    ],
)
def test_subscription_commands_parse(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("subscribe", ["`subscribe` is missing IMAGE_GLOB", SUBSCRIBE_USAGE]),
        ("subscribe a b", ["unexpected extra argument(s) `b`"]),
        ("subscribe a,b", ["one IMAGE_GLOB a subscription"]),
        ("subscribe ``", ["IMAGE_GLOB is empty"]),
        ("subscribe a+b", ["`+` can never be in an image name"]),
        ("subscribe " + "a" * 401, ["401 characters long; at most 400"]),
        ("subscribe a --events", ["option `--events` needs a value"]),
        ("subscribe a --events pull", ["regops announces `push`, `delete` only, not `pull`"]),
        ("subscribe a --events psuh", ["Did you mean `push`?"]),
        ("subscribe a --events push,,delete", ["has an empty entry"]),
        ("subscribe a --tags v1/x", ["`/` can never be in a tag"]),
        ("subscribe a --tags v1:x", ["`:` can never be in a tag"]),
        ("subscribe a --tags v[1", ["never closed"]),
        ("subscribe a --tags [z-a]", ["`[z-a]` is not a valid class"]),
        ("subscribe a --tags latest,", ["has an empty entry"]),
        ("subscribe a --tags " + "v" * 201, ["at most 200"]),
        ("subscribe a --host build-1", ["`--host` is not an option of `subscribe`"]),
        ("subscribe a --registry 'bad name'", ["is not a valid name"]),
        ("unsubscribe", ["`unsubscribe` is missing ID or IMAGE_GLOB"]),
        ("unsubscribe S1 S2", ["unexpected extra argument(s) `S2`"]),
        ("unsubscribe S1 --tags x", ["`--tags` is not an option of `unsubscribe`"]),
        ("unsubscribe a#b", ["`#` can never be in an image name"]),
        ("subscriptions all", ["unexpected extra argument(s) `all`"]),
        ("can-i subscribe app", ["unexpected extra argument(s) `app` for `can-i subscribe`"]),
        ("can-i subscribe --host build-1", ["`--host` is for"]),
        ("can-i unsubscribe", ["`can-i` cannot check `unsubscribe`"]),
    ],
)
def test_bad_subscription_commands_say_what_would_be_right(text: str, fragments: list[str]) -> None:
    with pytest.raises(CommandError) as info:
        parse(text)
    for fragment in fragments:
        assert fragment in slack(info.value), slack(info.value)


@pytest.mark.parametrize(
    ("action", "line"),
    [
        ("subscribe", SUBSCRIBE_USAGE),
        ("unsubscribe", "`/registry unsubscribe ID` or `/registry unsubscribe IMAGE_GLOB`"),
        ("subscriptions", "`/registry subscriptions`"),
    ],
)
def test_subscription_usage_lines(action: str, line: str) -> None:
    assert slack(usage(action)) == line


@pytest.mark.parametrize("action", ["subscribe", "unsubscribe", "subscriptions"])
def test_every_subscription_example_parses_and_help_explains_its_words(action: str) -> None:
    for example in SPECS[action].examples:
        assert parse(example).action == action, example
    text = slack(help_text(action))
    for word in ("IMAGE_GLOB", "ID", "--tags GLOB", "--events EVENTS"):
        if word in slack(usage(action)):
            assert f"`{word}`:" in text


def test_help_groups_the_subscription_commands() -> None:
    text = slack(help_text())
    group = next(part for part in text.split("\n\n") if part.startswith("*Announcements in this channel*"))
    for action in ("subscribe", "unsubscribe", "subscriptions"):
        assert slack(usage(action)) in group
    overview = slack(help_text(actions=("push",)))
    assert "`/registry subscribe IMAGE_GLOB" not in overview


CONFIG = parse_config({
    "registries": {
        "main": {"server": "dockerhub.example.com:5100", "services_hostname": "namespace.example.com",
                 "username": "u", "password_env": "P"},
        "prod": {"server": "prod.example.com", "services_hostname": "namespace.example.com",
                 "username": "u", "password_env": "P"},
        "other": {"server": "other.example.com", "services_hostname": "svc.example.org",
                  "username": "u", "password_env": "P"},
    },
    "default_registry": "main",
    "hosts": ["build-1"],
})


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("subscribe centos7-*", Target(None, "centos7-*")),
        ("subscribe centos7-* --registry prod", Target("prod", "centos7-*")),
        ("subscribe dockerhub.example.com:5100/com.example.namespace/centos7-*", Target("main", "centos7-*")),
        ("subscribe DockerHub.example.com:5100/com.example.namespace/web/**", Target("main", "web/**")),
        ("subscribe prod.example.com/com.example.namespace/app --registry prod", Target("prod", "app")),
        # A namespace two registries share picks neither; one only one has picks it.
        ("subscribe com.example.namespace/app", Target(None, "app")),
        ("subscribe org.example.svc/app", Target("other", "app")),
        ("subscribe com.example.namespace/app --registry other", Target("other", "com.example.namespace/app")),
        # A repository outside the namespace is matched by its whole path.
        ("subscribe other.team/app", Target(None, "other.team/app")),
    ],
)
def test_image_globs_resolve_to_a_registry_and_a_glob_within_its_namespace(text: str, target: Target) -> None:
    assert resolve(CONFIG, parse(text)) == target


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("subscribe app --registry mian", ["unknown registry `mian`", "Did you mean `main`?", "`other`"]),
        ("subscribe prod.example.com/app --registry main", ["is in registry `prod`", "names `main`"]),
        ("subscribe localhost:5000/app", ["no configured registry server", "`prod.example.com`", "`app`"]),
        ("subscribe app:latest", ["no tag or digest", "`--tags latest`"]),
        ("subscribe app@sha256:abc", ["no tag or digest"]),
        ("subscribe App", ["lower-case", "use `app`"]),
        ("subscribe app-[", ["never closed"]),
        ("subscribe app-[9-0]", ["`[9-0]` is not a valid class"]),
        ("subscribe /app", ["empty path component"]),
        ("subscribe prod.example.com/com.example.namespace/", ["names no image"]),
    ],
)
def test_image_globs_that_can_match_nothing_are_refused_with_why(text: str, fragments: list[str]) -> None:
    with pytest.raises(CommandError) as info:
        resolve(CONFIG, parse(text))
    for fragment in fragments:
        assert fragment in slack(info.value), slack(info.value)


@pytest.mark.parametrize("glob", ["centos7-*", "web/**", "a?c", "app-[0-9]", "app-[!x]", "**", "a.b_c-d/e"])
def test_good_image_globs_have_no_problem(glob: str) -> None:
    assert image_glob_problem(glob) is None
