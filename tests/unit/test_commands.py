"""The command grammar (bot.core.grammar): forms, errors, did-you-mean, credential refusal."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bot.core.errors import CredentialsInChat, TextTooLong
from bot.core.grammar import parser, registry
from bot.core.grammar.credentials import REDACTED, audit_text, normalize, readable_part, redact
from bot.core.grammar.help import help_text, usage
from bot.core.grammar.parser import parse
from bot.core.grammar.spec import MAX_TEXT_LENGTH, Command
from tests.support.texts import slack
from workers.kernel.actions import ACTIONS
from workers.kernel.errors import UsageError

PUSH_USAGE = "`/registry push IMAGE TAG [--source REF] [--registry NAME] [--host NAME] [--override REASON]`"
PULL_USAGE = "`/registry pull IMAGE TAG [--registry NAME] [--host NAME]`"
TAG_USAGE = "`/registry tag SOURCE IMAGE TAG [--registry NAME] [--host NAME]`"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "push centos7-elasticsearch latest",
            Command("push", "centos7-elasticsearch", "latest", text="push centos7-elasticsearch latest"),
        ),
        (
            "/registry push centos7-elasticsearch latest",
            Command("push", "centos7-elasticsearch", "latest", text="push centos7-elasticsearch latest"),
        ),
        ("  /registry   push  a   b  ", Command("push", "a", "b", text="push a b")),
        ("PUSH a b", Command("push", "a", "b", text="push a b")),
        (
            "push centos7-elasticsearch 1.4.2 --source 0123456789ab",
            Command(
                "push",
                "centos7-elasticsearch",
                "1.4.2",
                source="0123456789ab",
                text="push centos7-elasticsearch 1.4.2 --source 0123456789ab",
            ),
        ),
        (
            "push --source=app:dev a b",
            Command("push", "a", "b", source="app:dev", text="push a b --source app:dev"),
        ),
        (
            "push --host=build-1 a --registry main b",
            Command(
                "push",
                "a",
                "b",
                registry="main",
                host="build-1",
                text="push a b --registry main --host build-1",
            ),
        ),
        ("pull web/app 1.0", Command("pull", "web/app", "1.0", text="pull web/app 1.0")),
        (
            "pull a b --host build-2",
            Command("pull", "a", "b", host="build-2", text="pull a b --host build-2"),
        ),
        (
            "tag 0123456789ab centos7-elasticsearch latest",
            Command(
                "tag",
                "centos7-elasticsearch",
                "latest",
                source="0123456789ab",
                text="tag 0123456789ab centos7-elasticsearch latest",
            ),
        ),
        (
            "tag --registry=main localhost:5000/app:dev app 1",
            Command(
                "tag",
                "app",
                "1",
                source="localhost:5000/app:dev",
                registry="main",
                text="tag localhost:5000/app:dev app 1 --registry main",
            ),
        ),
        ("login", Command("login", text="login")),
        (
            "login --registry main --host build-1",
            Command("login", registry="main", host="build-1", text="login --registry main --host build-1"),
        ),
        ("help", Command("help", text="help")),
        ("help push", Command("help", topic="push", text="help push")),
        ("help TAG", Command("help", topic="tag", text="help tag")),
        ("--help", Command("help", text="help")),
        ("-h", Command("help", text="help")),
        ("push --help", Command("help", topic="push", text="help push")),
        ("pull a b -h", Command("help", topic="pull", text="help pull")),
        # What Slack does to typed text: curly quotes, non-breaking spaces, "--" turned into a dash.
        ("push \u201ca\u201d \u2018b\u2019", Command("push", "a", "b", text="push a b")),
        ("push\u00a0a\u00a0b", Command("push", "a", "b", text="push a b")),
        ("push a b \u2014source c:1", Command("push", "a", "b", source="c:1", text="push a b --source c:1")),
        ("push a b \u2013host=h1", Command("push", "a", "b", host="h1", text="push a b --host h1")),
        ("push a\u200b b", Command("push", "a", "b", text="push a b")),
    ],
)
def test_every_command_form_parses(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["no command given", "`push`", "`/registry help`"]),
        ("   ", ["no command given"]),
        ("/registry", ["no command given"]),
        ("psuh a b", ["unknown command `psuh`. Did you mean `push`? See `/registry help`."]),
        ("pul a b", ["unknown command `pul`", "Did you mean `pull`?"]),
        ("lgoin", ["Did you mean `login`?"]),
        ("deploy a b", ["unknown command `deploy`. See `/registry help`."]),
        ("push", ["`push` is missing IMAGE and TAG", PUSH_USAGE]),
        ("push centos7-elasticsearch", ["`push` is missing TAG", PUSH_USAGE]),
        ("pull a", ["`pull` is missing TAG", PULL_USAGE]),
        ("tag 0123456789ab app", ["`tag` is missing TAG", TAG_USAGE]),
        ("tag", ["`tag` is missing SOURCE and IMAGE and TAG"]),
        ("push centos7-elasticsearch:latest", ["contains a tag: give the tag separately", PUSH_USAGE]),
        ("push a b c d", ["unexpected extra argument(s) `c` `d` for `push`", PUSH_USAGE]),
        ("help push pull", ["unexpected extra argument(s) `pull` for `help`"]),
        (
            "push a b --foo",
            ["unknown option `--foo` for `push`", "`--source REF`, `--registry NAME`, `--host NAME`"],
        ),
        ("push a b --sorce x", ["unknown option `--sorce`", "Did you mean `--source`?"]),
        ("pull a b --regsitry main", ["Did you mean `--registry`?"]),
        ("push a b -x", ["unknown option `-x`"]),
        ("push a b -host h", ["Options take two dashes: `--host`"]),
        (
            "pull a b --source app",
            ["`--source` is not an option of `pull`", "`--registry NAME`, `--host NAME`", PULL_USAGE],
        ),
        ("login --source app", ["`--source` is not an option of `login`"]),
        ("help --host h", ["`--host` is not an option of `help`", "takes no options"]),
        ("push a b --host", ["option `--host` needs a value: `--host NAME`"]),
        ("push a b --source=", ["option `--source` needs a value: `--source REF`"]),
        ("push a b --host --registry main", ["option `--host` needs a value"]),
        ("push a b --host h1 --host h2", ["option `--host` is given twice: give it once"]),
        ("push a b --host=h1 --host h1", ["is given twice"]),
        ("push Centos7 latest", ["upper-case letters are not allowed: use `centos7`"]),
        ("push a- latest", ["must not start or end with a separator"]),
        ("push a .b", ["tag `.b` must start with a letter, digit or `_`"]),
        ("pull a b+c", ["`+` not allowed"]),
        ("push a b --source Bad", ["source `Bad`", "upper-case"]),
        ("tag not//valid app 1", ["source `not//valid`", "empty path component"]),
        ("push dockerhub.example.com:5100/ns/app latest", ["contains a registry host"]),
        ("push a b --host 'build 1'", ["`--host` `build 1` is not a valid name"]),
        ('push "a b', ["unbalanced quotes"]),
        ("push a 'b", ["unbalanced quotes"]),
        ("help psuh", ["unknown command `psuh`", "Did you mean `push`?"]),
    ],
)
def test_bad_input_says_what_was_wrong_and_what_would_be_right(text: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        parse(text)
    assert not isinstance(info.value, CredentialsInChat)
    for fragment in fragments:
        assert fragment in slack(info.value)


SECRET = "Hunter2Secret"

CREDENTIAL_SPELLINGS = [
    f"login -p {SECRET}",
    f"login -p{SECRET}",
    f"login -P {SECRET}",
    f"login --password {SECRET}",
    f"login --password={SECRET}",
    f"login --PASSWORD={SECRET}",
    f"login --password-stdin {SECRET}",
    f"login -u {SECRET}",
    f"login -u{SECRET}",
    f"login --username {SECRET}",
    f"login --username={SECRET}",
    f"push app latest -p {SECRET}",
    f"/registry login -u user001 -p {SECRET}",
    f"login \u2014password {SECRET}",  # em dash: what Slack makes of a typed "--"
    f"login \u2013password {SECRET}",  # en dash
    f"login \u2212p {SECRET}",  # minus sign
    f"login \u2010\u2010password {SECRET}",  # two Unicode hyphens
    f"login \u2014p {SECRET}",
    f"login \uff0d\uff50 {SECRET}",  # full-width "-p"
    f'login "--password" {SECRET}',
    f"login \u201c-p{SECRET}\u201d",
    f"login '--password={SECRET}'",
    f'login --password="{SECRET}',  # broken quoting must not hide it
    f"push a b --passwd {SECRET}",
    f"push a b --pasword {SECRET}",  # a typo is still a password
    f"push a b --pwd {SECRET}",
    f"push a b --user {SECRET}",
    f"push a b --pass_word {SECRET}",
    f"push a b -password {SECRET}",
    f"push a b --source=-p{SECRET}",
    f"psuh a b -p {SECRET}",  # even before the subcommand is recognised
    f"-p {SECRET}",
    f"login user001 {SECRET}",  # login takes no arguments: they can only be credentials
    f"can-i login user001 {SECRET}",
    f"can-i push a b -p {SECRET}",
    f"whoami --password {SECRET}",
    # Options regops does not know, named like credentials (issue 9): refused all the same.
    f"push a b --registry-password {SECRET}",
    f"push a b --docker-password {SECRET}",
    f"push a b --login-password={SECRET}",
    f"push a b --token {SECRET}",
    f"push a b --secret {SECRET}",
    f"push a b --api-key {SECRET}",
    f"push a b --API_KEY {SECRET}",
    f"push a b --credentials {SECRET}",
    f"push a b --cred {SECRET}",
    f"push a b --auth {SECRET}",
    f"push a b --access-token={SECRET}",
    f"push a b \u2014token {SECRET}",
    f"push a b -token {SECRET}",  # Go's flags take one dash
    f"push a b -apikey {SECRET}",
    f"push a b --source=--token={SECRET}",
    f"push a b --source=-p {SECRET}",
    # NAME=VALUE with a credential's NAME.
    f"push a b REGISTRY_PASSWORD={SECRET}",
    f"REGISTRY_PASSWORD={SECRET} push a b",
    f"push a b TOKEN= {SECRET}",
    f"push a b api_key={SECRET}",
    f'push a b "DOCKER_AUTH={SECRET}"',
    f"push a b --source=token={SECRET}",
    # A password in a reference or a URL.
    f"push a b --source user001:{SECRET}@host/x",
    f"push a b --source=user001:{SECRET}@registry.example.com:5000/x:1",
    f"tag user001:{SECRET}@host/x app 1",
    f"push a b --source https://user001:{SECRET}@registry.example.com/x",
    f"push a b <https://user001:{SECRET}@registry.example.com/x|registry.example.com/x>",
    f"push a b --source :{SECRET}@host/x",
]


@pytest.mark.parametrize("text", CREDENTIAL_SPELLINGS)
def test_credentials_are_refused_and_never_echoed(text: str) -> None:
    with pytest.raises(CredentialsInChat) as info:
        parse(text)
    error = info.value
    assert "rotate" in slack(error)
    assert "registry account configured on the workers" in slack(error)
    for shown in (str(error), repr(error), slack(error), *map(str, error.args)):
        assert SECRET not in shown
        assert SECRET.lower() not in shown.lower()
        assert "user001" not in shown
    assert error.__cause__ is None
    assert error.__context__ is None


@pytest.mark.parametrize("text", CREDENTIAL_SPELLINGS)
def test_no_command_text_is_built_when_credentials_are_refused(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []

    def record(*args: Any, **kwargs: Any) -> None:
        built.append((args, kwargs))

    for module in (parser, registry):
        monkeypatch.setattr(module, "canonical_text", record)
        monkeypatch.setattr(module, "Command", record)
    with pytest.raises(CredentialsInChat):
        parse(text)
    assert built == []


@pytest.mark.parametrize(
    "text",
    [
        "push p1 p1",
        "push pp latest",
        "push u u",
        "pull user/app u1",
        "push password-manager latest",
        "push pw-tool p-1",
        "push app latest --source user/app:1",
        "push app latest --source password-manager:1",
        "push app latest --registry pass",
        "push app latest --host u-build",
        "tag pw-tool:1 app 1",
        "tag 0123456789ab user 1",
        # Only option names, NAME=VALUE and user:password@ count: values named like credentials are fine.
        "push keycloak latest",
        "push auth-service token-1",
        "pull secret-app pass-1",
        "push credentials-api 1 --host auth-1",
        "push team/keystore key-2 --registry tokens",
        "push app latest --source keycloak:1",
        "push app latest --source auth/token:secret",
        "push app latest --source=keycloak:1",
        f"push app latest --source centos7:latest@sha256:{'a' * 64}",
        f"push app latest --source localhost:5000/app@sha256:{'b' * 64}",
        "tag token-1 app 1",
        "jobs --image keycloak",
        "can-i push auth-service latest --host auth-1",
    ],
)
def test_credential_lookalikes_are_accepted(text: str) -> None:
    assert parse(text).action in ACTIONS


@pytest.mark.parametrize(
    "text", ["push a b --pull", "push a b \u2014pull", "push a b --push", "push a b --usage"]
)
def test_option_lookalikes_are_plain_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(text)
    assert not isinstance(info.value, CredentialsInChat)
    assert "unknown option" in slack(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "push a b <@U0ADMIN>",  # a mention, not userinfo
        "push a b user@example.com",  # a user name alone carries no password
        "push a b <mailto:someone@example.com|someone@example.com>",
        "push a b x=1",
        "push a b --source name@sha256:abc",  # a short digest: a mistake, not a password
    ],
)
def test_credential_shaped_only_in_part_is_a_plain_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(text)
    assert not isinstance(info.value, CredentialsInChat)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\u2018a\u2019 \u201cb\u201d", "'a' \"b\""),
        ("\u201ab\u201e \u00abc\u00bb", '\'b" "c"'),
        ("a\u00a0b\u202fc", "a b c"),
        ("  a b \n", "a b"),
        ("a\u200bb\ufeff", "ab"),
        ("plain --text", "plain --text"),
    ],
)
def test_normalize_undoes_chat_typography(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("action", "line"),
    [
        ("push", PUSH_USAGE),
        ("pull", PULL_USAGE),
        ("tag", TAG_USAGE),
        ("login", "`/registry login [--registry NAME] [--host NAME]`"),
        ("help", "`/registry help [COMMAND]`"),
        ("whoami", "`/registry whoami`"),
        ("can-i", "`/registry can-i ACTION [IMAGE TAG] [--source REF] [--registry NAME] [--host NAME]`"),
    ],
)
def test_usage_lines(action: str, line: str) -> None:
    assert slack(usage(action)) == line


def test_usage_of_an_unknown_command_suggests_the_closest() -> None:
    with pytest.raises(UsageError) as info:
        usage("psuh")
    assert "Did you mean `push`" in slack(info.value)


def test_overall_help_lists_every_command_with_an_example() -> None:
    text = slack(help_text())
    for action in ACTIONS:
        assert slack(usage(action)) in text
    assert "`/registry push centos7-elasticsearch latest`" in text


@pytest.mark.parametrize(
    ("actions", "shown", "hidden"),
    [
        (["pull"], ["pull", "help", "whoami", "can-i"], ["push", "tag", "login"]),
        ([], ["help", "whoami", "can-i"], ["push", "pull", "tag", "login"]),
        (["push", "login", "not-a-command"], ["push", "login", "help"], ["pull", "tag"]),
        (["pull", "whoami", "can-i", "help", "status", "jobs"], ["pull", "whoami", "can-i"], ["push", "tag"]),
    ],
)
def test_overall_help_can_show_only_the_given_actions(
    actions: list[str], shown: list[str], hidden: list[str]
) -> None:
    text = slack(help_text(actions=actions))
    for action in shown:
        assert slack(usage(action)) in text
    for action in hidden:
        assert slack(usage(action)) not in text


@pytest.mark.parametrize(
    ("topic", "fragments"),
    [
        ("push", [PUSH_USAGE, "`--source REF`", "`/registry push centos7-elasticsearch latest`"]),
        ("pull", [PULL_USAGE, "`/registry pull centos7-elasticsearch latest`"]),
        ("tag", [TAG_USAGE, "`/registry tag 0123456789ab centos7-elasticsearch latest`"]),
        ("login", ["credentials are never taken in chat", "`/registry login`"]),
        ("help", ["`/registry help push`"]),
        ("PUSH", [PUSH_USAGE]),
        ("whoami", ["`/registry whoami`", "the grants that gave them", "Only you see the answer"]),
        (
            "can-i",
            [
                "`/registry can-i ACTION [IMAGE TAG] [--source REF] [--registry NAME] [--host NAME]`",
                ("`ACTION`: the action to check: `push`, `pull`, `tag`, `login`, `promote`, `delete`, `rollback`, "
                "`tags`, `inspect`, `history`, `subscribe` or `freeze`"),
                "`IMAGE`",
                "`--registry NAME`",
                "`/registry can-i push centos7-elasticsearch latest`",
                "`/registry can-i login --registry main`",
                "whether an approval is needed",
            ],
        ),
    ],
)
def test_command_help_has_usage_and_examples(topic: str, fragments: list[str]) -> None:
    text = slack(help_text(topic))
    for fragment in fragments:
        assert fragment in text


@pytest.mark.parametrize(
    ("topic", "fragment"),
    [("psuh", "Did you mean `push`?"), ("lgin", "Did you mean `login`?"), ("zzz", "See `/registry help`")],
)
def test_help_for_an_unknown_topic_is_a_usage_error(topic: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        slack(help_text(topic))
    assert f"unknown command `{topic}`" in slack(info.value)
    assert fragment in slack(info.value)


def test_zzz_has_no_did_you_mean() -> None:
    with pytest.raises(UsageError) as info:
        slack(help_text("zzz"))
    assert "Did you mean" not in slack(info.value)


# --- whoami and can-i ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("whoami", Command("whoami", text="whoami")),
        ("/registry WhoAmI", Command("whoami", text="whoami")),
        ("whoami --help", Command("help", topic="whoami", text="help whoami")),
        ("help whoami", Command("help", topic="whoami", text="help whoami")),
        ("help can-i", Command("help", topic="can-i", text="help can-i")),
        (
            "can-i push centos7-elasticsearch latest",
            Command(
                "can-i",
                "centos7-elasticsearch",
                "latest",
                subject_action="push",
                text="can-i push centos7-elasticsearch latest",
            ),
        ),
        (
            "CAN-I PULL web/app 1.0",
            Command("can-i", "web/app", "1.0", subject_action="pull", text="can-i pull web/app 1.0"),
        ),
        ("can-i tag app 1", Command("can-i", "app", "1", subject_action="tag", text="can-i tag app 1")),
        ("can-i login", Command("can-i", subject_action="login", text="can-i login")),
        (
            "can-i login --registry main --host build-1",
            Command(
                "can-i",
                subject_action="login",
                registry="main",
                host="build-1",
                text="can-i login --registry main --host build-1",
            ),
        ),
        (
            "can-i --host=build-2 push a b --registry prod",
            Command(
                "can-i",
                "a",
                "b",
                registry="prod",
                host="build-2",
                subject_action="push",
                text="can-i push a b --registry prod --host build-2",
            ),
        ),
        (
            "can-i push a b \u2014host h1",
            Command("can-i", "a", "b", host="h1", subject_action="push", text="can-i push a b --host h1"),
        ),
        ("can-i push a b -h", Command("help", topic="can-i", text="help can-i")),
    ],
)
def test_self_service_forms_parse(text: str, expected: Command) -> None:
    assert parse(text) == expected


CAN_I_USAGE = "`/registry can-i ACTION [IMAGE TAG] [--source REF] [--registry NAME] [--host NAME]`"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("whoami me", ["unexpected extra argument(s) `me` for `whoami`", "`/registry whoami`"]),
        ("whoami --host h", ["`--host` is not an option of `whoami`", "takes no options"]),
        ("whomai", ["unknown command `whomai`. Did you mean `whoami`?"]),
        ("cani push a b", ["unknown command `cani`. Did you mean `can-i`?"]),
        ("can-i", ["`can-i` is missing ACTION", CAN_I_USAGE]),
        ("can-i --host h", ["`can-i` is missing ACTION"]),
        (
            "can-i psuh a b",
            ["`can-i` cannot check `psuh`. Did you mean `push`?", "It checks `push`, `pull`, `tag`, `login`"],
        ),
        ("can-i deploy a b", ["`can-i` cannot check `deploy`. It checks"]),
        ("can-i help", ["`help` is open to everyone, so there is nothing to check"]),
        ("can-i whoami", ["`whoami` is open to everyone"]),
        ("can-i push", ["`can-i push` is missing IMAGE and TAG", CAN_I_USAGE]),
        ("can-i pull a", ["`can-i pull` is missing TAG"]),
        ("can-i push centos7:latest", ["contains a tag: give the tag separately", CAN_I_USAGE]),
        ("can-i push a b c", ["unexpected extra argument(s) `c` for `can-i push`", CAN_I_USAGE]),
        ("can-i tag 0123456789ab app 1", ["unexpected extra argument(s) `1` for `can-i tag`"]),
        ("can-i push Centos7 latest", ["upper-case letters are not allowed"]),
        ("can-i push a .b", ["tag `.b` must start with a letter, digit or `_`"]),
        ("can-i pull a b --source x", ["`--source` is for `can-i push` and `can-i tag`"]),
        ("can-i login --source x", ["`--source` is for `can-i push` and `can-i tag`"]),
        ("can-i push a b --source 'x y'", ["source `x y`"]),
        ("can-i push a b --host 'build 1'", ["`--host` `build 1` is not a valid name"]),
        ("can-i push a b --regsitry x", ["Did you mean `--registry`?"]),
    ],
)
def test_self_service_errors(text: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        parse(text)
    assert not isinstance(info.value, CredentialsInChat)
    for fragment in fragments:
        assert fragment in slack(info.value)


def test_can_i_login_with_arguments_is_refused_as_credentials() -> None:
    with pytest.raises(CredentialsInChat) as info:
        parse("can-i login admin hunter2")
    assert "hunter2" not in slack(info.value)
    assert "rotate" in slack(info.value)


def test_the_overview_lists_self_service_commands_in_order() -> None:
    text = slack(help_text())
    positions = [text.index(slack(usage(action))) for action in ACTIONS]
    assert positions == sorted(positions)
    assert ACTIONS == ("push", "pull", "tag", "login", "promote", "delete", "rollback", "tags", "inspect", "history",
                       "whoami", "can-i", "help", "status", "jobs", "cancel", "hosts", "subscribe", "unsubscribe",
                       "subscriptions", "freeze", "unfreeze", "freezes")


# --- redact -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", CREDENTIAL_SPELLINGS)
def test_redact_removes_every_credential_spelling(text: str) -> None:
    redacted = redact(text)
    assert SECRET.lower() not in redacted.lower()
    assert "user001" not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login -u admin -p hunter2", "login [redacted]"),
        ("/registry login -u admin -p hunter2", "/registry login [redacted]"),
        ("push a b -p hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b --password=hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b --password= hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b -phunter2", "push a b [redacted]"),
        # An attached short value may still be a Go-style `-password VALUE`: the next word goes too.
        ("push a b -phunter2 --host h1", "push a b [redacted] h1"),
        ('push a b --password "correct horse battery" --host h1', "push a b [redacted] --host h1"),
        ("push a b --password 'correct horse' --host h1", "push a b [redacted] --host h1"),
        (r"push a b -p correct\ horse --host h1", "push a b [redacted] --host h1"),
        # Broken quoting: everything after the credential goes.
        ('push a b --password "correct horse --host h1', "push a b [redacted]"),
        ('login --password="a b c', "login [redacted]"),
        ("push a b --source=-phunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b \u2014password hunter2", "push a b [redacted]"),
        ("push a b \uff0d\uff50 hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b \u201c-phunter2\u201d", "push a b [redacted]"),
        # login takes no arguments: anything but --registry/--host NAME is a user name or password.
        ("login user001 hunter2", "login [redacted]"),
        ("LOGIN user001 hunter2", "LOGIN [redacted]"),
        ("login --registry main user001 hunter2", "login --registry main [redacted]"),
        ("login user001 --host=build-1 hunter2", "login [redacted] --host=build-1 [redacted]"),
        ("login --registry", "login [redacted]"),
        ("can-i login user001 hunter2", "can-i login [redacted]"),
        ("can-i --host h login user001 hunter2", "can-i --host h login [redacted]"),
        # Credential-shaped options regops does not know, NAME=VALUE, and passwords in references.
        ("push a b --api-key hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b -token hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b --registry-password=hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b REGISTRY_PASSWORD=hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b REGISTRY_PASSWORD= hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push a b --source user:hunter2@host/x --host h1", "push a b --source [redacted] --host h1"),
        ("push a b --source=-p hunter2 --host h1", "push a b [redacted] --host h1"),
        ("push keycloak token-1 --host auth-1", "push keycloak token-1 --host auth-1"),
        # Nothing to hide: unchanged apart from chat typography.
        (
            "push centos7-elasticsearch latest --host build-1",
            "push centos7-elasticsearch latest --host build-1",
        ),
        ("login --registry main --host build-1", "login --registry main --host build-1"),
        ("can-i login --registry main", "can-i login --registry main"),
        ("help login", "help login"),
        ("push \u201ca\u201d b", 'push "a" b'),
        ("", ""),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "push p1 p1",
        "push password-manager latest",
        "push app latest --source user/app:1",
        "push app latest --registry pass",
        "tag pw-tool:1 app 1",
        "can-i push u u",
        "whoami",
    ],
)
def test_redact_keeps_credential_lookalikes(text: str) -> None:
    assert redact(text) == text


def _noise(rng: random.Random) -> str:
    alphabet = "ab-=\"'`\\\u2014\u201c\u201d\u00a0\u200b :/@p"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


@pytest.mark.parametrize("seed", range(300))
def test_redact_never_raises_and_never_leaks_whatever_surrounds_the_secret(seed: int) -> None:
    rng = random.Random(seed)
    form = rng.choice(
        [f"-p {SECRET}", f"--password={SECRET}", f"--password {SECRET}", f"-p{SECRET}", f'-p "{SECRET}']
    )
    text = f"{_noise(rng)} push a b {_noise(rng)} {form} {_noise(rng)}"
    if rng.random() < 0.5:
        text = f"login {_noise(rng)} {SECRET}"
    assert SECRET not in redact(text)
    assert isinstance(redact(_noise(rng) * 3), str)


def test_redact_and_parse_survive_pathological_input() -> None:
    chain = "--x=" * 5000 + f"-p{SECRET}"
    assert SECRET not in redact(chain)
    # Within what regops reads, the credential at the end of the chain is found…
    with pytest.raises(CredentialsInChat):
        parse(chain[-MAX_TEXT_LENGTH:])
    # …and a longer text is refused unread, its words past the limit never looked at or echoed.
    with pytest.raises(TextTooLong) as info:
        parse(chain)
    assert SECRET not in slack(info.value) and f"{len(chain):,} characters" in slack(info.value)
    assert redact('"' * 1000 + " -p " + SECRET) == '"' * 1000 + " " + REDACTED


# --- the length limit and the audit trail's text --------------------------------------------------


def test_a_text_longer_than_slack_sends_is_refused_unread() -> None:
    with pytest.raises(TextTooLong) as info:
        parse("a" * (MAX_TEXT_LENGTH + 1))
    text = slack(info.value)
    assert f"{MAX_TEXT_LENGTH + 1:,} characters" in text and f"{MAX_TEXT_LENGTH:,}" in text
    assert "aaaa" not in text and "nothing was run" in text
    # At the limit it is read (and here found to be no command).
    with pytest.raises(UsageError) as within:
        parse("a" * MAX_TEXT_LENGTH)
    assert not isinstance(within.value, TextTooLong)


def test_a_credential_in_a_too_long_text_still_gets_the_rotate_warning() -> None:
    with pytest.raises(CredentialsInChat):
        parse(f"push a b -p {SECRET} " + "x" * MAX_TEXT_LENGTH)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("push a b", "push a b"),
        (f"push a b -p {SECRET}", f"push a b {REDACTED}"),
        ("a" * 1_048_576, "… [1048576 characters]"),
        # Cut at a space within the first 300 characters.
        ("psuh " + "x " * 400, "psuh" + " x" * 147 + "… [805 characters]"),
        (f"push a b --token {SECRET} " + "y" * 1000, f"push a b {REDACTED}… [1031 characters]"),
    ],
)
def test_audit_text_is_redacted_and_bounded_with_the_original_length(text: str, expected: str) -> None:
    assert audit_text(text) == expected
    assert len(audit_text(text)) <= 300 + len(f"… [{len(text)} characters]")


def test_audit_text_never_shows_half_a_credential_cut_at_the_limit() -> None:
    # The limit falls inside `user:SECRET@host/x`: cut there, `user:SECRE` alone would not look like one.
    head = "push a b --source "
    text = head + "x" * (MAX_TEXT_LENGTH - len(head) - 8 - 1) + " user:" + SECRET + "@host/x"
    assert MAX_TEXT_LENGTH - 8 < text.index(SECRET) < MAX_TEXT_LENGTH
    assert SECRET[:3] not in readable_part(text)[-20:]
    assert SECRET[:3] not in audit_text(text, None) and audit_text(text, None).endswith(f"[{len(text)} characters]")


def test_audit_text_without_a_limit_keeps_a_valid_command_whole() -> None:
    text = "push " + "a" * 255 + " " + "t" * 128 + " --host build-1"
    assert audit_text(text, None) == text
