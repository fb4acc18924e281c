"""Registry events tokens and ``notifications.routes`` in the config: values, defaults, summary, problems by key path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.slack.identities import SLACK_IDENTITIES
from workers.kernel.config import NotificationRoute, parse_config
from workers.kernel.errors import ConfigError


def _base(**top: Any) -> dict[str, Any]:
    registry = {"services_hostname": "namespace.example.com", "username": "ci", "password_env": "REGISTRY_PASSWORD"}
    return {"registries": {"main": {"server": "dockerhub.example.com:5100", **registry,
                                    "events_token_env": "MAIN_EVENTS_TOKEN"},
                           "prod": {"server": "prod.example.com:5000", **registry}},
            "default_registry": "main", "hosts": ["build-1"], **top}


def _problems(data: object) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, SLACK_IDENTITIES)
    return info.value.problems


def test_the_routes_of_the_issue_load_with_their_defaults() -> None:
    config = parse_config(_base(notifications={"routes": [
        {"channel": "C0SEARCH", "images": ["centos7-elasticsearch", "centos7-kibana"], "tags": ["*"],
         "events": ["push", "delete"]},
        {"channel": "C0RELEASES", "images": ["*"], "tags": ["v*", "latest"]},
        {"channel": "C0ALL"},
        {"channel": "C0PROD", "registries": ["prod"], "events": ["delete"]},
    ]}), SLACK_IDENTITIES)
    assert config.routes == (
        NotificationRoute("C0SEARCH", ("centos7-elasticsearch", "centos7-kibana"), ("*",), frozenset({"push", "delete"})),
        NotificationRoute("C0RELEASES", ("*",), ("v*", "latest")),
        NotificationRoute("C0ALL", ("**",), ("*",), frozenset({"push"}), ("*",)),
        NotificationRoute("C0PROD", registries=("prod",), events=frozenset({"delete"})),
    )


def test_no_section_no_routes_and_an_empty_section_is_valid() -> None:
    assert parse_config(_base()).routes == ()
    assert parse_config(_base(notifications=None)).routes == ()
    assert parse_config(_base(notifications={})).routes == ()
    assert parse_config(_base(notifications={"routes": []})).routes == ()


def test_events_tokens_are_read_into_the_registry_and_enable_its_events() -> None:
    data = _base()
    data["registries"]["prod"]["events_token_file"] = "/run/secrets/prod-events-token"
    config = parse_config(data)
    main, prod = config.registries["main"], config.registries["prod"]
    assert (main.events_token_env, main.events_token_file, main.events_enabled) == ("MAIN_EVENTS_TOKEN", None, True)
    assert (prod.events_token_env, prod.events_token_file, prod.events_enabled) == (
        None, "/run/secrets/prod-events-token", True)
    del data["registries"]["prod"]["events_token_file"]
    assert parse_config(data).registries["prod"].events_enabled is False


def test_the_summary_names_the_senders_and_the_routes_but_no_token() -> None:
    summary = parse_config(_base(notifications={"routes": [
        {"channel": "C0SEARCH", "images": ["centos7-*"], "events": ["delete", "push"]}]})).summary()
    assert ("registry events (POST /registry/events): main (token from environment variable MAIN_EVENTS_TOKEN); "
            "not prod") in summary
    assert "notification routes: 1\n  routes[0] to C0SEARCH: push, delete of images centos7-*; tags *; " \
           "registries *" in summary
    quiet = parse_config({**_base(), "registries": {"prod": _base()["registries"]["prod"]},
                          "default_registry": "prod"}).summary()
    assert "registry events (POST /registry/events): none" in quiet and "notification routes: none" in quiet


def _route(**fields: Any) -> dict[str, Any]:
    return _base(notifications={"routes": [{"channel": "C0OK"}, {"channel": "C0TWO", **fields}]})


def _registry(**fields: Any) -> dict[str, Any]:
    data = _base()
    data["registries"]["prod"].update(fields)
    return data


CASES = [
    (_registry(events_token_env="s3cr3t-t0ken value"), ("registries.prod.events_token_env: is not an environment "
     "variable name (value not shown)")),
    (_registry(events_token_env=""), "registries.prod.events_token_env: must not be empty"),
    (_registry(events_token_env=7), "registries.prod.events_token_env: must be a string"),
    (_registry(events_token_file="run/token"), "registries.prod.events_token_file: must be an absolute path"),
    (_registry(events_token_env="A", events_token_file="/a"), ("registries.prod: give at most one of "
     "`events_token_env`")),
    (_registry(events_token_env="MAIN_EVENTS_TOKEN"), ("registries.prod.events_token_env: is also where registry "
     "`main` reads its events token")),
    (_registry(events_token="abc"), ("registries.prod.events_token: unknown key; the token this registry's "
     "notifications carry is never kept in the config")),
    (_registry(events_tokn_env="A"), ("registries.prod.events_tokn_env: unknown key; did you mean "
     "`events_token_env`?")),
    (_base(notifications=[]), "notifications: must be a mapping with keys `routes`; got an empty list"),
    (_base(notifications={"route": []}), "notifications.route: unknown key; did you mean `routes`?"),
    (_base(notifications={"routes": {"channel": "C0A"}}), "notifications.routes: must be a list of routes"),
    (_base(notifications={"routes": ["C0A"]}), "notifications.routes[0]: must be a mapping with keys `channel`"),
    (_route(), None),
    (_route(channel=None), "notifications.routes[1].channel: must be a string"),
    (_base(notifications={"routes": [{"images": ["*"]}]}), "notifications.routes[0].channel: is required"),
    (_route(channel="releases channel"), ("notifications.routes[1].channel: `releases channel` is not a Slack "
     "channel")),
    (_route(chanel="C0A"), "notifications.routes[1].chanel: unknown key; did you mean `channel`?"),
    (_route(events=["push", "delet"]), ("notifications.routes[1].events[1]: `delet` is no event kind; did you mean "
     "`delete`? give `push`, `delete`")),
    (_route(events=["pull"]), "notifications.routes[1].events[0]: `pull` is no event kind"),
    (_route(events="push"), "notifications.routes[1].events: must be a list"),
    (_route(events=[]), "notifications.routes[1].events: must not be empty"),
    (_route(images=["Centos7-*"]), ("notifications.routes[1].images[0]: `Centos7-*` can never match: image names "
     "are lower-case")),
    (_route(images=["centos7:latest"]), "notifications.routes[1].images[0]: `centos7:latest` can never match"),
    (_route(images=["[abc"]), "notifications.routes[1].images[0]: `[abc`: a `[` is never closed"),
    (_route(tags=["v1/x"]), "notifications.routes[1].tags[0]: `v1/x` can never match: a tag has no `/`"),
    (_route(tags=[3]), "notifications.routes[1].tags[0]: must be a string"),
    (_route(registries=["prd"]), ("notifications.routes[1].registries[0]: `prd` matches no configured registry; "
     "did you mean `prod`?")),
    (_route(registries="main"), "notifications.routes[1].registries: must be a list"),
]


@pytest.mark.parametrize("data,problem", CASES)
def test_each_problem_is_reported_with_its_key_path(data: dict[str, Any], problem: str | None) -> None:
    if problem is None:
        assert len(parse_config(data, SLACK_IDENTITIES).routes) == 2
        return
    problems = _problems(data)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
    assert "s3cr3t" not in problems[0]


def test_every_problem_of_every_route_is_reported_at_once() -> None:
    data = _base(notifications={"routes": [
        {"channel": "C0A", "events": ["psh"]},
        {"channel": "C0B", "registries": ["nowhere"], "tags": ["a:b"]},
        {"channel": "bad channel"},
    ]})
    data["registries"]["prod"]["events_token_file"] = "relative"
    problems = _problems(data)
    assert [p.split(":")[0] for p in problems] == [
        "registries.prod.events_token_file", "notifications.routes[0].events[0]", "notifications.routes[1].tags[0]",
        "notifications.routes[1].registries[0]", "notifications.routes[2].channel"]


def test_route_registries_are_not_checked_against_a_broken_registries_section() -> None:
    data = _base(notifications={"routes": [{"channel": "C0A", "registries": ["anything"]}]})
    data["registries"] = "oops"
    assert not any("notifications" in p for p in _problems(data))


def test_the_kernel_alone_takes_any_word_as_a_route_channel() -> None:
    data = _route(channel="whatever-channel")
    assert parse_config(data).routes[1].channel == "whatever-channel"
    with pytest.raises(ConfigError) as info:
        parse_config(_route(channel="two words"))
    assert info.value.problems[0].startswith("notifications.routes[1].channel: `two words` is not a channel")


def test_the_input_document_is_not_changed() -> None:
    data = _route(events=["delete"])
    before = copy.deepcopy(data)
    parse_config(data)
    assert data == before
