"""The registry commands' grammar: promote, delete, rollback, tags, inspect, history; can-i about them; their help."""

from __future__ import annotations

import pytest

from bot.core.errors import CredentialsInChat
from bot.core.grammar.help import GROUPS, help_text, usage
from bot.core.grammar.parser import parse
from bot.core.grammar.spec import (
    ARGUMENT_HELP,
    CAN_I_ACTIONS,
    OPTION_HELP,
    OPTION_VALUES,
    SPECS,
    TAGS_DEFAULT_LIMIT,
    Command,
)
from tests.support.texts import slack
from workers.kernel.actions import ACTIONS, READ_ACTIONS, REGISTRY_ACTIONS
from workers.kernel.errors import UsageError

DIGEST = "sha256:" + "0123456789abcdef" * 4
OTHER = "sha256:" + "fedcba9876543210" * 4
PROMOTE_USAGE = "`/registry promote IMAGE FROM TO [--to-image NAME] [--registry NAME] [--to-registry NAME] [--override REASON]`"
DELETE_USAGE = "`/registry delete IMAGE TAG [--shared] [--registry NAME] [--override REASON]`"
ROLLBACK_USAGE = "`/registry rollback IMAGE TAG [--to DIGEST] [--registry NAME] [--override REASON]`"
TAGS_USAGE = "`/registry tags IMAGE [--match GLOB] [--limit N] [--registry NAME]`"
INSPECT_USAGE = ("`/registry inspect IMAGE TAG [--registry NAME]` or "
                 "`/registry inspect IMAGE@DIGEST [--registry NAME]`")
HISTORY_USAGE = "`/registry history IMAGE TAG [--registry NAME]`"
REGISTRY_COMMANDS = (*REGISTRY_ACTIONS, *READ_ACTIONS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "promote centos7-es staging prod",
            Command("promote", "centos7-es", "staging", target_tag="prod", text="promote centos7-es staging prod"),
        ),
        (
            f"promote app @{DIGEST} prod",
            Command("promote", "app", digest=DIGEST, target_tag="prod", text=f"promote app @{DIGEST} prod"),
        ),
        (
            f"promote app @{DIGEST.upper().replace('SHA', 'sha')} prod",
            Command("promote", "app", digest=DIGEST, target_tag="prod", text=f"promote app @{DIGEST} prod"),
        ),
        (
            f"promote app {DIGEST} prod",  # without the `@`: a tag never has a `:`
            Command("promote", "app", digest=DIGEST, target_tag="prod", text=f"promote app @{DIGEST} prod"),
        ),
        (
            "promote --to-registry=prod app 1.4.2 1.4.2 --registry main --to-image app-prod",
            Command("promote", "app", "1.4.2", registry="main", target_image="app-prod", target_tag="1.4.2",
                    to_registry="prod",
                    text="promote app 1.4.2 1.4.2 --registry main --to-image app-prod --to-registry prod"),
        ),
        (
            "promote app staging staging --to-registry prod",
            Command("promote", "app", "staging", target_tag="staging", to_registry="prod",
                    text="promote app staging staging --to-registry prod"),
        ),
        (
            "PROMOTE web/app rc \u2014to-image web/app-prod prod",
            Command("promote", "web/app", "rc", target_image="web/app-prod", target_tag="prod",
                    text="promote web/app rc prod --to-image web/app-prod"),
        ),
        ("delete app 1.0-rc1", Command("delete", "app", "1.0-rc1", text="delete app 1.0-rc1")),
        (
            "delete --shared app old --registry main",
            Command("delete", "app", "old", registry="main", shared=True, text="delete app old --registry main --shared"),
        ),
        ("rollback app prod", Command("rollback", "app", "prod", text="rollback app prod")),
        (
            f"rollback app prod --to {DIGEST.upper().replace('SHA', 'sha')}",
            Command("rollback", "app", "prod", digest=DIGEST, text=f"rollback app prod --to {DIGEST}"),
        ),
        (
            f"rollback app prod --to=@{DIGEST} --registry prod",
            Command("rollback", "app", "prod", registry="prod", digest=DIGEST,
                    text=f"rollback app prod --registry prod --to {DIGEST}"),
        ),
        ("tags app", Command("tags", "app", limit=TAGS_DEFAULT_LIMIT, text="tags app")),
        (
            "tags web/app --limit 100 --match v1.* --registry prod",
            Command("tags", "web/app", registry="prod", limit=100, match="v1.*",
                    text="tags web/app --registry prod --limit 100 --match 'v1.*'"),
        ),
        (
            "tags app --match release-[0-9]?[!a-c]",
            Command("tags", "app", limit=50, match="release-[0-9]?[!a-c]",
                    text="tags app --match 'release-[0-9]?[!a-c]'"),
        ),
        ("inspect app latest", Command("inspect", "app", "latest", text="inspect app latest")),
        (f"inspect app@{DIGEST}", Command("inspect", "app", digest=DIGEST, text=f"inspect app@{DIGEST}")),
        (
            f"inspect web/app@{DIGEST.upper().replace('SHA', 'SHA')} --registry prod",
            Command("inspect", "web/app", registry="prod", digest=DIGEST,
                    text=f"inspect web/app@{DIGEST} --registry prod"),
        ),
        (f"inspect app @{DIGEST}", Command("inspect", "app", digest=DIGEST, text=f"inspect app@{DIGEST}")),
        ("history app prod", Command("history", "app", "prod", text="history app prod")),
        (
            "/registry history app prod --registry main",
            Command("history", "app", "prod", registry="main", text="history app prod --registry main"),
        ),
        ("promote --help", Command("help", topic="promote", text="help promote")),
        ("help tags", Command("help", topic="tags", text="help tags")),
    ],
)
def test_every_registry_command_parses(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("action", REGISTRY_COMMANDS)
def test_no_registry_command_takes_a_host(action: str) -> None:
    arguments = {"promote": "app a b", "tags": "app", "inspect": "app a"}.get(action, "app a")
    with pytest.raises(UsageError) as info:
        parse(f"{action} {arguments} --host build-1")
    text = slack(info.value)
    assert f"`--host` is not an option of `{action}`" in text
    assert f"`{action}` needs no Docker host" in text
    assert "`--host NAME`" not in text.partition("takes")[2].partition("Usage")[0]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("promote", ["`promote` is missing IMAGE and FROM and TO", PROMOTE_USAGE]),
        ("promote app staging", ["`promote` is missing TO", PROMOTE_USAGE]),
        ("promote app:staging prod", ["image name `app:staging` contains a tag: give the tag separately"]),
        ("promote app a b c", ["unexpected extra argument(s) `c` for `promote`"]),
        ("promote app staging staging", ["would make `app:staging` point at itself", "`--to-image NAME`"]),
        ("promote app staging staging --to-image app", ["point at itself"]),
        ("promote app staging .prod", ["tag `.prod` must start with a letter, digit or `_`"]),
        (f"promote app staging @{DIGEST}", ["TO of `promote` is a tag", "a digest names content"]),
        ("promote app @sha256:0123456789ab prod",
         ["FROM `@sha256:0123456789ab` has 12 hex digits where a `sha256` digest has 64",
          "`tags` shows only the first 12", "`inspect IMAGE TAG` shows the whole digest", PROMOTE_USAGE]),
        (f"promote app @sha512:{'a' * 128} prod", ["is not a `sha256` digest", "not `sha512`"]),
        ("promote app @ prod", ["FROM is missing: a digest is `sha256:` and 64 hex digits"]),
        ("promote app a b --to-image App", ["image name `App`: upper-case letters are not allowed: use `app`"]),
        ("promote app a b --to-registry 'x y'", ["`--to-registry` `x y` is not a valid name"]),
        ("promote app a b --to-registry", ["option `--to-registry` needs a value: `--to-registry NAME`"]),
        ("promote app a b --to c", ["`--to` is not an option of `promote`", "TO is the third argument"]),
        ("promote app a b --to_image c", ["unknown option `--to_image`", "Did you mean `--to-image`?"]),
        ("promote app a b --shared", ["`--shared` is not an option of `promote`"]),
        ("delete app", ["`delete` is missing TAG", DELETE_USAGE]),
        (f"delete app {DIGEST}", ["TAG of `delete` is a tag", "give the tag to delete", DELETE_USAGE]),
        (f"delete app@{DIGEST}", ["contains a digest"]),
        ("delete app a --force", ["unknown option `--force`", "give `--shared`"]),
        ("delete app a --shared=yes", ["`--shared` takes no value", DELETE_USAGE]),
        ("delete app a --shared --shared", ["option `--shared` is given twice"]),
        ("rollback app", ["`rollback` is missing TAG", ROLLBACK_USAGE]),
        (f"rollback app {DIGEST}", ["TAG of `rollback` is a tag", "with `--to`"]),
        ("rollback app a --to", ["option `--to` needs a value: `--to DIGEST`"]),
        ("rollback app a --to 0123456789ab", ["`--to` `0123456789ab` is not a digest", ROLLBACK_USAGE]),
        ("rollback app a --to md5:abc", ["is not a `sha256` digest", "not `md5`"]),
        (f"rollback app a --to sha256:{'g' * 64}", ["has `g`: not hex digit(s)"]),
        (f"rollback app a --to {DIGEST}0", ["has 65 hex digits where a `sha256` digest has 64"]),
        (f"rollback app a --digest {DIGEST}", ["unknown option `--digest`", "Give the digest with `--to`"]),
        ("tags", ["`tags` is missing IMAGE", TAGS_USAGE]),
        ("tags app latest", ["unexpected extra argument(s) `latest` for `tags`", TAGS_USAGE]),
        ("tags app:latest", ["contains a tag"]),
        ("tags app --limit 0", ["`--limit` `0` is not a number from 1 to 100", TAGS_USAGE]),
        ("tags app --limit 101", ["from 1 to 100"]),
        ("tags app --limit ten", ["`--limit` `ten` is not a number"]),
        ("tags app --match", ["option `--match` needs a value: `--match GLOB`"]),
        ("tags app --match 'v 1'", ["`--match` `v 1`: `' '` can never be in a tag"]),
        ("tags app --match v1:*", ["`:` can never be in a tag"]),
        ("tags app --match [0-9", ["a `[` is never closed"]),
        ("tags app --match [9-0]", ["`[9-0]` is not a valid class: give ranges low to high"]),
        ("tags app --match []", ["`[]` is not a class of tag characters"]),
        ("tags app --match [!]", ["`[!]` is not a class of tag characters"]),
        ("tags app --match !v1", ["a `!` outside a class"]),
        ("tags app --match v1]", ["a `]` outside a class"]),
        (f"tags app --match {'v' * 201}", ["`--match` is 201 characters long; at most 200"]),
        ("tags app --host h", ["`tags` needs no Docker host"]),
        ("inspect app", ["`inspect` is missing TAG", INSPECT_USAGE]),
        ("inspect app a b", ["unexpected extra argument(s) `b` for `inspect`"]),
        ("inspect app@sha256:abc", ["the digest `sha256:abc` has 3 hex digits", INSPECT_USAGE]),
        ("inspect app@", ["the digest is missing"]),
        ("inspect App@" + DIGEST, ["upper-case letters are not allowed: use `app`"]),
        (f"inspect app@{DIGEST} latest", ["contains a digest"]),
        ("inspect app --digest x", ["unknown option `--digest`", "`inspect IMAGE@sha256:…`"]),
        ("history app", ["`history` is missing TAG", HISTORY_USAGE]),
        (f"history app {DIGEST}", ["TAG of `history` is a tag", "regops keeps a history per tag"]),
        ("history app prod --match x", ["`--match` is not an option of `history`"]),
        ("histroy app prod", ["unknown command `histroy`. Did you mean `history`?"]),
        ("promte app a b", ["Did you mean `promote`?"]),
        ("inpsect app a", ["Did you mean `inspect`?"]),
    ],
)
def test_bad_registry_commands_say_what_was_wrong_and_what_would_be_right(text: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        parse(text)
    assert not isinstance(info.value, CredentialsInChat)
    for fragment in fragments:
        assert fragment in slack(info.value), slack(info.value)


@pytest.mark.parametrize(
    "text",
    [
        f"inspect app@{DIGEST}",
        f"promote app @{DIGEST} prod",
        f"rollback app prod --to {DIGEST}",
        "promote app a b --to-registry tokens",
        "tags passwords --match pass*",
        "delete app a --shared",
    ],
)
def test_registry_commands_are_not_taken_for_credentials(text: str) -> None:
    assert parse(text).action == text.split()[0]


@pytest.mark.parametrize(
    "text",
    [
        "promote app a b --to-password hunter2",
        "tags app --token hunter2",
        "inspect user:hunter2@host/app",
        "delete app a -p hunter2",
    ],
)
def test_credentials_in_registry_commands_are_refused(text: str) -> None:
    with pytest.raises(CredentialsInChat) as info:
        parse(text)
    assert "hunter2" not in slack(info.value)


# ---- can-i -----------------------------------------------------------------------------------------------


def test_can_i_checks_every_action_with_a_target() -> None:
    assert CAN_I_ACTIONS == ("push", "pull", "tag", "login", "promote", "delete", "rollback", "tags", "inspect",
                             "history", "subscribe", "freeze")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("can-i promote app prod", Command("can-i", "app", "prod", subject_action="promote", text="can-i promote app prod")),
        ("can-i delete app old", Command("can-i", "app", "old", subject_action="delete", text="can-i delete app old")),
        (
            "can-i rollback app prod --registry prod",
            Command("can-i", "app", "prod", registry="prod", subject_action="rollback",
                    text="can-i rollback app prod --registry prod"),
        ),
        ("can-i tags web/app", Command("can-i", "web/app", subject_action="tags", text="can-i tags web/app")),
        ("can-i inspect app a", Command("can-i", "app", "a", subject_action="inspect", text="can-i inspect app a")),
        ("can-i HISTORY app a", Command("can-i", "app", "a", subject_action="history", text="can-i history app a")),
    ],
)
def test_can_i_asks_about_the_registry_commands(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("can-i promote app", ["`can-i promote` is missing TAG"]),
        ("can-i promote app staging prod", ["unexpected extra argument(s) `prod` for `can-i promote`"]),
        ("can-i tags", ["`can-i tags` is missing IMAGE"]),
        ("can-i tags app latest", ["unexpected extra argument(s) `latest` for `can-i tags`"]),
        ("can-i history app", ["`can-i history` is missing TAG"]),
        ("can-i promote app prod --host build-1", ["`--host` is for `can-i push`", "`promote` needs no Docker host"]),
        ("can-i delete app a --source x", ["`--source` is for `can-i push` and `can-i tag`"]),
        ("can-i promote app prod --to-image b", ["`--to-image` is not an option of `can-i`"]),
        ("can-i promot app prod", ["`can-i` cannot check `promot`. Did you mean `promote`?", "`history`"]),
        ("can-i status app a", ["`can-i` cannot check `status`", "It checks `push`"]),
    ],
)
def test_can_i_errors_about_the_registry_commands(text: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        parse(text)
    for fragment in fragments:
        assert fragment in slack(info.value), slack(info.value)


def test_can_i_still_takes_a_host_for_docker_host_actions() -> None:
    assert parse("can-i pull app a --host build-1").host == "build-1"
    assert parse("can-i login --host build-1").host == "build-1"


# ---- specs and help --------------------------------------------------------------------------------------


def test_the_specs_follow_the_catalogue_of_actions() -> None:
    assert tuple(SPECS) == ACTIONS


@pytest.mark.parametrize("action", REGISTRY_COMMANDS)
def test_every_registry_spec_explains_its_words_and_its_examples_parse(action: str) -> None:
    spec = SPECS[action]
    assert "host" not in spec.options
    for option in spec.options:
        assert option in OPTION_VALUES
        assert option in OPTION_HELP
    for name in (*spec.arguments, *spec.optional_arguments):
        assert name in ARGUMENT_HELP
    assert spec.examples
    for example in spec.examples:
        assert parse(example).action == action, example


@pytest.mark.parametrize(
    ("action", "line"),
    [
        ("promote", PROMOTE_USAGE),
        ("delete", DELETE_USAGE),
        ("rollback", ROLLBACK_USAGE),
        ("tags", TAGS_USAGE),
        ("inspect", INSPECT_USAGE),
        ("history", HISTORY_USAGE),
    ],
)
def test_registry_usage_lines(action: str, line: str) -> None:
    assert slack(usage(action)) == line


@pytest.mark.parametrize(
    ("topic", "fragments"),
    [
        (
            "promote",
            [PROMOTE_USAGE, "`FROM`: the tag to copy", "`TO`: the tag to make", "`--to-image NAME`: the image",
             "`--registry NAME`: the registry of FROM", "`--to-registry NAME`: the registry to make the tag TO in",
             "`/registry promote centos7-elasticsearch staging prod`"],
        ),
        ("delete", [DELETE_USAGE, "`--shared`: delete also when other tags", "removes every tag"]),
        ("rollback", [ROLLBACK_USAGE, "`--to DIGEST`", f"`/registry rollback centos7-elasticsearch prod --to {DIGEST}`"]),
        ("tags", [TAGS_USAGE, "`--limit N`: how many tags to show (default 50, at most 100)", "`--match GLOB`"]),
        ("inspect", [INSPECT_USAGE, "`DIGEST`: a manifest digest", "`TAG`: the tag"]),
        ("history", [HISTORY_USAGE, "registry event", "Only you see the answer"]),
        ("jobs", ["`--limit N`: how many jobs to show (default 10, at most 50)"]),
        ("can-i", ["`/registry can-i promote centos7-elasticsearch prod`", "`/registry can-i tags centos7-elasticsearch`",
                   "`tags` takes IMAGE only"]),
    ],
)
def test_registry_command_help(topic: str, fragments: list[str]) -> None:
    text = slack(help_text(topic))
    for fragment in fragments:
        assert fragment in text, text


def test_the_overview_groups_every_command_once_in_the_catalogue_order() -> None:
    grouped = [action for _title, members, _featured in GROUPS for action in members]
    assert tuple(grouped) == ACTIONS
    for _title, members, featured in GROUPS:
        assert set(featured) <= set(members)


def test_the_overview_puts_the_registry_commands_together_with_examples() -> None:
    text = slack(help_text())
    paragraphs = text.split("\n\n")
    registry = next(paragraph for paragraph in paragraphs if paragraph.startswith("*In the registry"))
    for action in REGISTRY_COMMANDS:
        assert slack(usage(action)) in registry
    assert "`/registry promote centos7-elasticsearch staging prod`" in registry.splitlines()[0]
    assert "`/registry tags centos7-elasticsearch`" in registry.splitlines()[0]
    host = next(paragraph for paragraph in paragraphs if paragraph.startswith("*On a Docker host"))
    assert slack(usage("promote")) not in host
    # Slack shows at most 3,000 characters a section; the reply is split at blank lines.
    assert max(len(paragraph) for paragraph in paragraphs) < 3000


def test_the_overview_leaves_out_a_group_with_nothing_allowed() -> None:
    text = slack(help_text(actions=["push"]))
    assert "*In the registry" not in text
    assert "*On a Docker host* — e.g. `/registry push centos7-elasticsearch latest`\n" in text
    shown = slack(help_text(actions=["history"]))
    assert "*In the registry (no Docker host needed)* — e.g. `/registry history centos7-elasticsearch prod`" in shown
    assert slack(usage("promote")) not in shown
