"""The command grammar: text typed after ``/registry`` becomes a :class:`Command` or a CommandError.

Parsing is syntax only.  It knows nothing of the config (whether a ``--registry`` or
``--host`` exists is the service's question) nor of permissions (checked after syntax).
Every error says what was wrong and what would be right.  Credentials are refused before
anything else is looked at (:mod:`bot.core.grammar.credentials`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from bot.core.errors import CommandError, TextTooLong
from bot.core.grammar.arguments import (
    canonical_text,
    check_count,
    check_limit,
    checked,
    named,
    word,
)
from bot.core.grammar.credentials import ascii_dashes, normalize, readable_part, refuse_credentials
from bot.core.grammar.freezes import override_of, parse_freeze_command
from bot.core.grammar.help import (
    did_you_mean,
    option_usage,
    short_overview,
    spec_of,
    unknown_command,
    usage_line,
)
from bot.core.grammar.registry import REGISTRY_COMMANDS, option_hint, parse_registry_command
from bot.core.grammar.spec import (
    CAN_I_ACTIONS,
    CAN_I_TARGETS,
    COMMAND_WORD,
    JOB_ID_PATTERN,
    JOBS_DEFAULT_LIMIT,
    JOBS_MAX_LIMIT,
    MAX_TEXT_LENGTH,
    OPTION_VALUES,
    SPECS,
    Command,
    Spec,
)
from bot.core.grammar.subscriptions import parse_subscription_command
from bot.core.text import Text, code, codes, command, t
from workers.kernel.actions import FREEZE_COMMANDS, HOST_ACTIONS, JOB_COMMANDS, SELF_SERVICE, SUBSCRIPTION_COMMANDS
from workers.kernel.references import check_image_name, check_source, check_tag


def _tokenize(text: str) -> list[str]:
    try:
        tokens = shlex.split(text, posix=True)
    except ValueError:
        raise CommandError(t(
            "unbalanced quotes: close every `\"` and `'` you open, or leave the quotes out "
            "(no value regops takes needs them). See {}.", command("help"))) from None
    tokens = [ascii_dashes(token) for token in tokens]
    if tokens and tokens[0].lower() == COMMAND_WORD:
        tokens = tokens[1:]
    return tokens


def _takes(spec: Spec) -> Text:
    return t("{} takes {}. Usage: {}", code(spec.action),
             codes(option_usage(name) for name in spec.options) if spec.options else t("no options"),
             usage_line(spec))


def _split_options(spec: Spec, tokens: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional arguments and ``{option: value}``; options may come anywhere."""
    positionals: list[str] = []
    options: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("-") or token == "-":
            positionals.append(token)
            continue
        if not token.startswith("--"):
            name = token[1:].partition("=")[0].lower()
            hint = t(" Options take two dashes: {}.", code(f"--{name}")) if name in spec.options else Text()
            raise CommandError(t("unknown option {} for {}.{} {}", word(token.partition("=")[0]),
                                 code(spec.action), hint, _takes(spec)))
        name, equals, value = token[2:].partition("=")
        name = name.lower()
        if name not in spec.options:
            if name in OPTION_VALUES:
                problem = t("{} is not an option of {}", code(f"--{name}"), code(spec.action))
                hint = option_hint(spec.action, name)
            else:
                problem = t("unknown option {} for {}", word("--" + name), code(spec.action))
                hint = did_you_mean(name, spec.options, prefix="--") or option_hint(spec.action, name)
            raise CommandError(t("{}.{} {}", problem, hint, _takes(spec)))
        if not OPTION_VALUES[name]:
            if equals:
                raise CommandError(t("{} takes no value. Usage: {}", code(f"--{name}"), usage_line(spec)))
            _once(spec, name, options)
            options[name] = ""
            continue
        # Values never start with "-", so "--host --registry x" is a missing value, not host "--registry".
        if not equals and index < len(tokens) and not tokens[index].startswith("-"):
            value = tokens[index]
            index += 1
        if not value:
            raise CommandError(t("option {} needs a value: {}. Usage: {}", code(f"--{name}"),
                                 code(option_usage(name)), usage_line(spec)))
        _once(spec, name, options)
        options[name] = value
    return positionals, options


def _once(spec: Spec, name: str, options: Mapping[str, str]) -> None:
    if name in options:
        raise CommandError(t("option {} is given twice: give it once. Usage: {}", code(f"--{name}"),
                             usage_line(spec)))


def _subject_action(word_: str, usage: Text) -> str:
    """The ACTION of ``can-i``: one of :data:`CAN_I_ACTIONS`."""
    action = word_.lower()
    if action in CAN_I_ACTIONS:
        return action
    choices = codes(CAN_I_ACTIONS)
    if action in SELF_SERVICE:
        raise CommandError(t("{} is open to everyone, so there is nothing to check: `can-i` checks {}. "
                             "Usage: {}", code(action), choices, usage))
    raise CommandError(t("`can-i` cannot check {}.{} It checks {}. Usage: {}", code(word_, 64),
                         did_you_mean(action, CAN_I_ACTIONS), choices, usage))


def _parse_can_i(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage = usage_line(spec)
    if not positionals:
        raise CommandError(t("`can-i` is missing ACTION. Usage: {}", usage))
    subject = _subject_action(positionals[0], usage)
    target = positionals[1:]
    check_count(f"can-i {subject}", CAN_I_TARGETS[subject], 0, target, usage)
    _check_can_i_options(subject, options, usage)
    return Command(
        action="can-i",
        subject_action=subject,
        image=checked(check_image_name, target[0]) if target else None,
        tag=checked(check_tag, target[1]) if len(target) > 1 else None,
        source=options.get("source"),
        text=canonical_text("can-i", [subject, *target], options),
        registry=named(options, "registry"),
        host=named(options, "host"),
    )


def _check_can_i_options(subject: str, options: Mapping[str, str], usage: Text) -> None:
    """``--source`` only for push and tag (and valid), ``--host`` only for the actions on a Docker host."""
    source = options.get("source")
    if source is not None:
        if subject not in ("push", "tag"):
            raise CommandError(t("`--source` is for `can-i push` and `can-i tag`: {} starts from no local image. "
                                 "Usage: {}", code(subject), usage))
        checked(check_source, source)
    if "host" in options and subject not in HOST_ACTIONS:
        raise CommandError(t("`--host` is for {}: {} needs no Docker host. Usage: {}",
                             codes(f"can-i {action}" for action in HOST_ACTIONS), code(subject), usage))


def check_job_id(value: str, usage: Text) -> str:
    """A job id as typed (backticks from a copied message are fine), or CommandError."""
    job_id = value.strip("`").lower()
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise CommandError(t("{} is not a job id: a job id is hex digits such as `0123456789ab`, as the "
                             "acknowledgement and the job's message show it. Usage: {}", word(value), usage))
    return job_id


def _parse_jobs_command(spec: Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage = usage_line(spec)
    check_count(spec.action, spec.arguments, len(spec.optional_arguments), positionals, usage)
    text = canonical_text(spec.action, positionals, options)
    if spec.action in ("status", "cancel"):
        return Command(action=spec.action, job_id=check_job_id(positionals[0], usage), text=text)
    if spec.action == "jobs":
        return Command(
            action="jobs",
            image=checked(check_image_name, options["image"]) if "image" in options else None,
            mine="mine" in options,
            limit=check_limit(options["limit"], JOBS_MAX_LIMIT, usage) if "limit" in options else JOBS_DEFAULT_LIMIT,
            text=text,
        )
    return Command(action=spec.action, text=text)


def _parse_help(positionals: list[str]) -> Command:
    topic = positionals[0].lower() if positionals else None
    if topic is not None:
        spec_of(topic)
    return Command(action="help", topic=topic, text=canonical_text("help", [topic] if topic else [], {}))


def parse(text: str) -> Command:
    """Parse what the person typed (``/registry`` optional) into a Command, or raise CommandError.

    A text longer than :data:`MAX_TEXT_LENGTH` is refused at once (TextTooLong): only its first
    words are looked at, for credentials, whose warning comes first.
    """
    if len(text) > MAX_TEXT_LENGTH:
        refuse_credentials(normalize(readable_part(text)))
        raise TextTooLong(len(text), MAX_TEXT_LENGTH)
    normalized = normalize(text)
    refuse_credentials(normalized)
    tokens = _tokenize(normalized)
    if not tokens:
        raise CommandError(t("no command given. Commands: {}, e.g. {}. See {}.", short_overview(),
                             command("push centos7-elasticsearch latest"), command("help")))
    word, rest = tokens[0], tokens[1:]
    action = "help" if word.lower() in ("--help", "-h") else word.lower()
    if action not in SPECS:
        raise unknown_command(word)
    spec = SPECS[action]
    if any(token.lower() in ("--help", "-h") for token in rest):
        return Command(action="help", topic=action, text=f"help {action}")

    positionals, options = _split_options(spec, rest)
    if action == "can-i":
        return _parse_can_i(spec, positionals, options)
    if action in (*JOB_COMMANDS, "hosts"):
        return _parse_jobs_command(spec, positionals, options)
    if action in REGISTRY_COMMANDS:
        return parse_registry_command(spec, positionals, options)
    if action in SUBSCRIPTION_COMMANDS:
        return parse_subscription_command(spec, positionals, options)
    if action in FREEZE_COMMANDS:
        return parse_freeze_command(spec, positionals, options)
    check_count(spec.action, spec.arguments, len(spec.optional_arguments), positionals, usage_line(spec))
    if action == "help":
        return _parse_help(positionals)

    checks = {"SOURCE": check_source, "IMAGE": check_image_name, "TAG": check_tag}
    values = {name: checked(checks[name], value) for name, value in zip(spec.arguments, positionals, strict=False)}
    if "source" in options:
        checked(check_source, options["source"])
    return Command(
        action=action,
        image=values.get("IMAGE"),
        tag=values.get("TAG"),
        source=values.get("SOURCE") or options.get("source"),
        text=canonical_text(action, positionals, options),
        registry=named(options, "registry"),
        host=named(options, "host"),
        override=override_of(options, usage_line(spec)),
    )
