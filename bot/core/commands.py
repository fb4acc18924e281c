"""The command grammar: text typed after ``/registry`` becomes a :class:`Command` or a UsageError.

Parsing is syntax only.  It knows nothing of the config (whether a ``--registry`` or
``--host`` exists is the service's question) nor of permissions (checked after syntax).
Every error says what was wrong and what would be right, in Slack markdown.

Credentials are refused before anything else is looked at: a message that carries a
password or user option is never turned into a Command and its text is never echoed.
:func:`redact` uses the same detection to give the audit trail a copy of the text
without any credential in it.
"""

from __future__ import annotations

import difflib
import re
import shlex
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from workers.kernel.actions import ACTIONS, JOB_ACTIONS, JOB_COMMANDS, NAME_PATTERN, SELF_SERVICE
from workers.kernel.errors import CredentialsInChat, UsageError
from workers.kernel.references import check_image_name, check_source, check_tag

SLASH_COMMAND = "/registry"


JOBS_DEFAULT_LIMIT = 10
JOBS_MAX_LIMIT = 50

JOB_ID_PATTERN = re.compile(r"[0-9a-f]{6,32}")
"""What a job id looks like (regops makes 12 hex digits; a little slack for ids from elsewhere)."""

CAN_I_ACTIONS: tuple[str, ...] = JOB_ACTIONS
"""The actions ``can-i`` can ask about."""


@dataclass(frozen=True)
class Command:
    """One parsed command; all values are syntactically valid."""

    action: str
    image: str | None = None
    tag: str | None = None
    source: str | None = None
    registry: str | None = None
    host: str | None = None
    topic: str | None = None
    text: str = ""
    subject_action: str | None = None
    """For ``can-i``: the action asked about (``image``/``tag`` are its target)."""
    job_id: str | None = None
    """For ``status`` and ``cancel``: the job asked about."""
    mine: bool = False
    """For ``jobs``: only the user's own jobs."""
    limit: int | None = None
    """For ``jobs``: how many jobs at most."""


@dataclass(frozen=True)
class _Spec:
    """How one command is written and explained."""

    action: str
    arguments: tuple[str, ...]
    optional_arguments: tuple[str, ...]
    """Given all together or not at all, e.g. ``[IMAGE TAG]``."""
    options: tuple[str, ...]
    summary: str
    details: tuple[str, ...]
    examples: tuple[str, ...]


_OPTION_VALUES: Mapping[str, str] = {"source": "REF", "registry": "NAME", "host": "NAME", "mine": "",
                                      "image": "NAME", "limit": "N"}
"""Each option's value placeholder; "" marks a flag, which takes no value."""

_OPTION_HELP: Mapping[str, str] = {
    "source": "the local image to use instead of IMAGE:TAG: a reference like `centos7-elasticsearch:dev` "
    "or an image ID like `0123456789ab`",
    "registry": "a registry from the config (default: the configured default registry)",
    "host": "the Docker host that runs the job (default: the configured default host)",
    "mine": "only the jobs you asked for",
    "image": "only jobs of this image name, e.g. `centos7-elasticsearch`",
    "limit": f"how many jobs to show (default {JOBS_DEFAULT_LIMIT}, at most {JOBS_MAX_LIMIT})",
}

_ARGUMENT_HELP: Mapping[str, str] = {
    "IMAGE": "the image name only, lower-case, e.g. `centos7-elasticsearch`; regops adds REGISTRY/NAMESPACE",
    "TAG": "the tag, e.g. `latest` or `1.4.2`",
    "SOURCE": "the local image: a reference like `centos7-elasticsearch:latest` or an image ID",
    "COMMAND": "a command to explain",
    "ACTION": "the action to check: `push`, `pull`, `tag` or `login`",
    "JOB": "a job id such as `0123456789ab`, as the acknowledgement and the job's message show it",
}

_SPECS: Mapping[str, _Spec] = {
    "push": _Spec(
        "push",
        ("IMAGE", "TAG"),
        (),
        ("source", "registry", "host"),
        "tag a local image with the full registry reference, log in and push it",
        (
            (
                "Tags the local image IMAGE:TAG (or `--source REF`) as REGISTRY/NAMESPACE/IMAGE:TAG, "
                "logs in with the configured registry account and pushes that one tag."
            ),
        ),
        (
            "/registry push centos7-elasticsearch latest",
            "/registry push centos7-elasticsearch 1.4.2 --source 0123456789ab",
        ),
    ),
    "pull": _Spec(
        "pull",
        ("IMAGE", "TAG"),
        (),
        ("registry", "host"),
        "pull an image from the registry onto the Docker host",
        ("Pulls REGISTRY/NAMESPACE/IMAGE:TAG onto the Docker host.",),
        (
            "/registry pull centos7-elasticsearch latest",
            "/registry pull centos7-elasticsearch 1.4.2 --host build-1",
        ),
    ),
    "tag": _Spec(
        "tag",
        ("SOURCE", "IMAGE", "TAG"),
        (),
        ("registry", "host"),
        "only tag a local image with the full registry reference (no push)",
        ("Tags the local image SOURCE as REGISTRY/NAMESPACE/IMAGE:TAG on the Docker host.",),
        (
            "/registry tag 0123456789ab centos7-elasticsearch latest",
            "/registry tag centos7-es:dev centos7-elasticsearch 1.4.2",
        ),
    ),
    "login": _Spec(
        "login",
        (),
        (),
        ("registry", "host"),
        "check that the Docker host can log in to the registry",
        (
            (
                "Logs in with the registry account configured on the workers. "
                "It takes no user name or password: credentials are never taken in chat."
            ),
        ),
        ("/registry login", "/registry login --registry main --host build-1"),
    ),
    "whoami": _Spec(
        "whoami",
        (),
        (),
        (),
        "show your roles, the grants that gave them and what you may do",
        (
            (
                "Shows your roles here, the grants that gave them (by your user ID, `*` for everyone, "
                "or a user group), the channels where they apply and the commands you may run. "
                "Only you see the answer."
            ),
        ),
        ("/registry whoami",),
    ),
    "can-i": _Spec(
        "can-i",
        ("ACTION",),
        ("IMAGE", "TAG"),
        ("registry", "host"),
        "check whether you may run a command here, and whether it needs approval",
        (
            (
                "Answers yes or no with the rule that decides, and whether an approval is needed "
                "(how many, from whom, how long a request stays open). Nothing is run. "
                "`push`, `pull` and `tag` need IMAGE and TAG (for `tag`, the target: no SOURCE); "
                "`login` takes neither."
            ),
        ),
        (
            "/registry can-i push centos7-elasticsearch latest",
            "/registry can-i pull web/app 1.4.2 --host build-1",
            "/registry can-i login --registry main",
        ),
    ),
    "help": _Spec(
        "help",
        (),
        ("COMMAND",),
        (),
        "list the commands, or explain one",
        ("Without COMMAND, lists the commands; with one, shows its usage, options and examples.",),
        ("/registry help", "/registry help push"),
    ),
    "status": _Spec(
        "status",
        ("JOB",),
        (),
        (),
        "show one job: state, who asked, reference, host, timings, progress and outcome",
        (
            (
                "Shows the job's state, requester, full reference, Docker host, when it was queued, "
                "started and finished, its progress or outcome, and any approval. Only you see the answer. "
                "You may see your own jobs, and others' where your role allows `status` on the image."
            ),
        ),
        ("/registry status 0123456789ab",),
    ),
    "jobs": _Spec(
        "jobs",
        (),
        (),
        ("mine", "image", "limit"),
        "list recent jobs, newest first",
        (
            (
                "Lists recent jobs with their state, newest first: your own, and others' where your role "
                "allows `jobs` on the image. Only you see the answer."
            ),
        ),
        ("/registry jobs", "/registry jobs --mine", "/registry jobs --image centos7-elasticsearch --limit 20"),
    ),
    "cancel": _Spec(
        "cancel",
        ("JOB",),
        (),
        (),
        "cancel a job that is queued, running or awaiting approval",
        (
            (
                "A queued job is taken off its queue; a running one is stopped on its Docker host; a request "
                "awaiting approval is closed. A job that has already ended cannot be cancelled. You may cancel "
                "your own jobs, and others' where your role allows `cancel` on the image."
            ),
        ),
        ("/registry cancel 0123456789ab",),
    ),
    "hosts": _Spec(
        "hosts",
        (),
        (),
        (),
        "list the Docker hosts with their live workers, queue length and running job",
        (
            (
                "For each configured Docker host: how many workers are live (by their recent heartbeat), "
                "how many jobs wait in its queue, and which job runs there now."
            ),
        ),
        ("/registry hosts",),
    ),
}

CREDENTIALS_WARNING = (
    ":warning: Credentials are never taken in chat. Your message was not stored, logged or echoed, "
    "but it was sent to Slack: rotate that password now. regops logs in with the registry account "
    "configured on the workers."
)

_LOGIN_ARGUMENTS_WARNING = (
    ":warning: `login` takes no arguments: regops logs in with the registry account configured on the "
    "workers (choose one with `--registry NAME`). Your message was not stored, logged or echoed; if it "
    "carried a password, that was sent to Slack: rotate it now."
)

_QUOTE_MAP = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2039\u203a", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u00a0\u202f\u2007", " "),
    # Zero-width characters sneak in from copy and paste and would split or glue words invisibly.
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff", None),
}
_NORMALIZE = str.maketrans(_QUOTE_MAP)

_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
# Chat clients turn a typed "--" into one of these, so one of them means a long option.
_LONG_DASHES = "\u2013\u2014\u2015"
_WRAPPERS = "'\"`\\"

_CREDENTIAL_OPTIONS = ("password", "password-stdin", "passwd", "username", "user")


def normalize(text: str) -> str:
    """Undo what chat clients do to typed text: curly quotes, non-breaking and zero-width spaces."""
    return text.translate(_NORMALIZE).strip()


def _option_form(token: str) -> tuple[int, str] | None:
    """(1 or 2 dashes, the rest) when ``token`` is written as an option, else None."""
    run = len(token) - len(token.lstrip(_DASHES))
    if run == 0:
        return None
    dashes = token[:run]
    long = run >= 2 or any(ch in _LONG_DASHES for ch in dashes)
    return (2 if long else 1), token[run:]


def _is_credential_token(token: str) -> bool:
    # `--source=-pSECRET` hides an option after `=`: every `=`-separated part is looked at,
    # iteratively, so a long chain of `=` cannot exhaust the stack.
    return any(_is_credential_option(part) for part in unicodedata.normalize("NFKC", token).split("="))


def _is_credential_option(text: str) -> bool:
    form = _option_form(text.lstrip(_WRAPPERS))
    if form is None:
        return False
    dashes, rest = form
    name = rest.lstrip(_WRAPPERS).lower()
    if not name:
        return False
    if dashes == 1:
        # Short options take their value attached (`-pSECRET`, `-uNAME`), and Go's flag
        # package accepts `-password` too: any -p… or -u… is a credential.
        return name[0] in "pu"
    name = name.strip(_WRAPPERS).replace("_", "-")
    if name in ("p", "u", "pwd") or name.startswith(("pass", "pasw", "pw", "user", "usr")):
        return True
    return bool(difflib.get_close_matches(name, _CREDENTIAL_OPTIONS, n=1, cutoff=0.75))


def _refuse_credentials(text: str) -> None:
    # Whitespace splitting, not shlex: this must work even when the quoting is broken.
    if any(_is_credential_token(token) for token in text.split()):
        raise CredentialsInChat(CREDENTIALS_WARNING)


REDACTED = "[redacted]"

_VALUE_OPTIONS = frozenset({"--registry", "--host"})


def redact(text: str) -> str:
    """``text`` with every credential option and its value replaced by ``[redacted]``, for the audit trail.

    Uses the detection that refuses credentials, on whitespace-split words so broken
    quoting cannot hide a secret.  An option and the word after it go together (unless
    the value is attached with ``=``); a quote opened in them runs until it closes, or to
    the end of the text.  Everything after ``login`` except ``--registry``/``--host NAME``
    is redacted too, since ``login`` takes no arguments but a user name and a password.
    When unsure it redacts more; it never raises.
    """
    words = normalize(text).split()
    hidden = [False] * len(words)
    index = 0
    while index < len(words):
        if not _is_credential_token(words[index]):
            index += 1
            continue
        last = index if _has_attached_value(words[index]) else index + 1
        last = _quoted_span_end(words, index, min(last, len(words) - 1))
        for position in range(index, last + 1):
            hidden[position] = True
        index = last + 1
    start = _login_arguments_start(words)
    if start is not None:
        for position, keep in enumerate(_login_options(words[start:]), start):
            hidden[position] = hidden[position] or not keep
    shown: list[str] = []
    for word, secret in zip(words, hidden):
        if not secret:
            shown.append(word)
        elif not shown or shown[-1] != REDACTED:
            shown.append(REDACTED)
    return " ".join(shown)


def _has_attached_value(word: str) -> bool:
    _, equals, value = unicodedata.normalize("NFKC", word).partition("=")
    return bool(equals) and bool(value.strip(_WRAPPERS))


def _quoted_span_end(words: list[str], first: int, last: int) -> int:
    """The last word of the span starting at ``first``, stretched over any quote it leaves open."""
    open_quote: str | None = None
    position = first
    while True:
        word = words[position]
        for char in word:
            if open_quote is None and char in "'\"":
                open_quote = char
            elif char == open_quote:
                open_quote = None
        # A trailing backslash escapes the space: the value goes on in the next word.
        continues = open_quote is not None or word.endswith("\\")
        if position >= last and not continues:
            return position
        if position == len(words) - 1:
            return position
        position += 1


def _login_arguments_start(words: list[str]) -> int | None:
    """Where the arguments of a ``login`` (or ``can-i login``) start, or None for other commands."""
    plain = [word.strip(_WRAPPERS).lower() for word in words]
    position = 1 if plain[:1] == [SLASH_COMMAND] else 0
    if plain[position : position + 1] == ["login"]:
        return position + 1
    if plain[position : position + 1] == ["can-i"] and "login" in plain[position + 1 :]:
        # Options may come before ACTION; any later `login` word counts, since redacting more is safe.
        return plain.index("login", position + 1) + 1
    return None


def _login_options(words: list[str]) -> list[bool]:
    """Which words after ``login`` are kept: only ``--registry``/``--host`` with a plain name."""
    keep = [False] * len(words)
    position = 0
    while position < len(words):
        option, equals, value = _ascii_dashes(unicodedata.normalize("NFKC", words[position])).partition("=")
        option = option.lower()
        if option in ("--help", "-h") and not equals:
            keep[position] = True
        elif option in _VALUE_OPTIONS:
            if equals:
                keep[position] = bool(NAME_PATTERN.fullmatch(value))
            elif position + 1 < len(words) and NAME_PATTERN.fullmatch(words[position + 1]):
                keep[position] = keep[position + 1] = True
                position += 1
        position += 1
    return keep


def _ascii_dashes(token: str) -> str:
    """``—source`` → ``--source``: what the user typed before the chat client replaced it."""
    form = _option_form(token)
    if form is None:
        return token
    dashes, rest = form
    return "-" * dashes + rest


def _code(value: str, limit: int = 64) -> str:
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return "`" + shown.replace("`", "'") + "`"


def _did_you_mean(word: str, candidates: Iterable[str], prefix: str = "") -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean `{prefix}{match[0]}`?" if match else ""


def _option_usage(name: str) -> str:
    value = _OPTION_VALUES[name]
    return f"--{name} {value}" if value else f"--{name}"


def _options_usage(spec: _Spec) -> str:
    return " ".join(f"[{_option_usage(name)}]" for name in spec.options)


def _usage_line(spec: _Spec) -> str:
    parts = [SLASH_COMMAND, spec.action, *spec.arguments]
    if spec.optional_arguments:
        parts.append(f"[{' '.join(spec.optional_arguments)}]")
    if spec.options:
        parts.append(_options_usage(spec))
    return "`" + " ".join(parts) + "`"


def _spec(action: str) -> _Spec:
    spec = _SPECS.get(action)
    if spec is None:
        raise UsageError(
            f"unknown command {_code(action)}.{_did_you_mean(action.lower(), _SPECS)} "
            f"See `{SLASH_COMMAND} help`."
        )
    return spec


def usage(action: str) -> str:
    """The usage line of one command, e.g. ``/registry pull IMAGE TAG [--registry NAME] [--host NAME]``."""
    return _usage_line(_spec(action))


def help_text(topic: str | None = None, actions: Iterable[str] | None = None) -> str:
    """The overall help (only ``actions`` when given) or one command's help.

    The self-service commands (``whoami``, ``can-i``, ``help``) and the job commands
    (``status``, ``jobs``, ``cancel``: everyone may use them on their own jobs) are always
    listed.  ``actions`` filters the overview only: explaining a named command
    is never refused here.
    """
    if topic is not None:
        return _command_help(_spec(topic.lower()))
    shown = set(ACTIONS if actions is None else actions) | set(SELF_SERVICE) | set(JOB_COMMANDS)
    lines = ["*regops* drives the Docker registry from Slack. Commands:"]
    for spec in _SPECS.values():
        if spec.action in shown:
            lines.append(f"• {_usage_line(spec)} — {spec.summary}")
    lines.append(
        "Give only the image name and the tag: regops builds `REGISTRY/NAMESPACE/IMAGE:TAG` itself, "
        f"e.g. `{SLASH_COMMAND} push centos7-elasticsearch latest`."
    )
    lines.append(
        "Credentials are never taken in chat: the workers log in with the configured registry account."
    )
    lines.append(f"`{SLASH_COMMAND} help COMMAND` explains one command.")
    return "\n".join(lines)


def _command_help(spec: _Spec) -> str:
    lines = [f"*{spec.action}*: {spec.summary}.", f"Usage: {_usage_line(spec)}", *spec.details]
    names = [*spec.arguments, *spec.optional_arguments]
    if names:
        lines.append("Arguments:")
        lines.extend(f"• `{name}`: {_ARGUMENT_HELP[name]}" for name in names)
    if spec.options:
        lines.append("Options:")
        lines.extend(f"• `{_option_usage(name)}`: {_OPTION_HELP[name]}" for name in spec.options)
    lines.append("Examples:")
    lines.extend(f"• `{example}`" for example in spec.examples)
    return "\n".join(lines)


def _short_overview() -> str:
    return ", ".join(f"`{action}`" for action in ACTIONS)


def _tokenize(text: str) -> list[str]:
    try:
        tokens = shlex.split(text, posix=True)
    except ValueError:
        raise UsageError(
            "unbalanced quotes: close every `\"` and `'` you open, or leave the quotes out "
            f"(no value regops takes needs them). See `{SLASH_COMMAND} help`."
        ) from None
    tokens = [_ascii_dashes(token) for token in tokens]
    if tokens and tokens[0].lower() == SLASH_COMMAND:
        tokens = tokens[1:]
    return tokens


def _split_options(spec: _Spec, tokens: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional arguments and ``{option: value}``; options may come anywhere."""
    positionals: list[str] = []
    options: dict[str, str] = {}
    taken = ", ".join(f"`{_option_usage(name)}`" for name in spec.options) or "no options"
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("-") or token == "-":
            positionals.append(token)
            continue
        if not token.startswith("--"):
            name = token[1:].partition("=")[0].lower()
            hint = f" Options take two dashes: `--{name}`." if name in spec.options else ""
            raise UsageError(
                f"unknown option {_code(token.partition('=')[0])} for `{spec.action}`.{hint} "
                f"`{spec.action}` takes {taken}. Usage: {_usage_line(spec)}"
            )
        name, equals, value = token[2:].partition("=")
        name = name.lower()
        if name not in spec.options:
            if name in _OPTION_VALUES:
                problem = f"`--{name}` is not an option of `{spec.action}`"
                hint = ""
            else:
                problem = f"unknown option {_code('--' + name)} for `{spec.action}`"
                hint = _did_you_mean(name, spec.options, prefix="--")
            raise UsageError(f"{problem}.{hint} `{spec.action}` takes {taken}. Usage: {_usage_line(spec)}")
        if not _OPTION_VALUES[name]:
            if equals:
                raise UsageError(f"`--{name}` takes no value. Usage: {_usage_line(spec)}")
            if name in options:
                raise UsageError(f"option `--{name}` is given twice: give it once. Usage: {_usage_line(spec)}")
            options[name] = ""
            continue
        # Values never start with "-", so "--host --registry x" is a missing value, not host "--registry".
        if not equals and index < len(tokens) and not tokens[index].startswith("-"):
            value = tokens[index]
            index += 1
        if not value:
            raise UsageError(
                f"option `--{name}` needs a value: `--{name} {_OPTION_VALUES[name]}`. "
                f"Usage: {_usage_line(spec)}"
            )
        if name in options:
            raise UsageError(f"option `--{name}` is given twice: give it once. Usage: {_usage_line(spec)}")
        options[name] = value
    return positionals, options


def _check_arity(spec: _Spec, positionals: list[str]) -> None:
    _check_count(spec.action, spec.arguments, len(spec.optional_arguments), positionals, _usage_line(spec))


def _check_count(
    label: str, arguments: tuple[str, ...], optional: int, positionals: list[str], usage_line: str
) -> None:
    """Raise unless ``positionals`` fills ``arguments`` (plus at most ``optional`` more)."""
    wanted = len(arguments) + optional
    if len(positionals) < len(arguments):
        given = len(positionals)
        if given and arguments[given - 1] == "IMAGE" and ":" in positionals[-1]:
            # `push centos7:latest` is the commonest slip: explain the split instead of "missing TAG".
            try:
                check_image_name(positionals[-1])
            except UsageError as exc:
                raise UsageError(f"{exc.user_message}. Usage: {usage_line}") from None
        missing = " and ".join(arguments[given:])
        raise UsageError(f"`{label}` is missing {missing}. Usage: {usage_line}")
    if len(positionals) > wanted:
        if label.split()[-1] == "login":
            # The only words someone adds to `login` are a user name and a password.
            raise CredentialsInChat(_LOGIN_ARGUMENTS_WARNING)
        extra = " ".join(_code(word) for word in positionals[wanted:])
        raise UsageError(f"unexpected extra argument(s) {extra} for `{label}`. Usage: {usage_line}")


def _subject_action(word: str, usage_line: str) -> str:
    """The ACTION of ``can-i``: one of :data:`CAN_I_ACTIONS`."""
    action = word.lower()
    if action in CAN_I_ACTIONS:
        return action
    choices = ", ".join(f"`{name}`" for name in CAN_I_ACTIONS)
    if action in SELF_SERVICE:
        raise UsageError(
            f"`{action}` is open to everyone, so there is nothing to check: `can-i` checks {choices}. "
            f"Usage: {usage_line}"
        )
    raise UsageError(
        f"`can-i` cannot check {_code(word)}.{_did_you_mean(action, CAN_I_ACTIONS)} "
        f"It checks {choices}. Usage: {usage_line}"
    )


def _parse_can_i(spec: _Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage_line = _usage_line(spec)
    if not positionals:
        raise UsageError(f"`can-i` is missing ACTION. Usage: {usage_line}")
    subject = _subject_action(positionals[0], usage_line)
    target = positionals[1:]
    needed = () if subject == "login" else ("IMAGE", "TAG")
    _check_count(f"can-i {subject}", needed, 0, target, usage_line)
    image = check_image_name(target[0]) if target else None
    tag = check_tag(target[1]) if target else None
    return Command(
        action="can-i",
        subject_action=subject,
        image=image,
        tag=tag,
        registry=_check_name("registry", options["registry"]) if "registry" in options else None,
        host=_check_name("host", options["host"]) if "host" in options else None,
        text=_canonical_text("can-i", [subject, *target], options),
    )


def _check_name(option: str, value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise UsageError(
            f"`--{option}` {_code(value)} is not a valid name: names are letters, digits, `_`, `.` and `-`, "
            "starting with a letter or digit"
        )
    return value


def _canonical_text(action: str, positionals: list[str], options: Mapping[str, str]) -> str:
    words = [action, *positionals]
    for name in _OPTION_VALUES:
        if name in options:
            words += [f"--{name}", options[name]] if _OPTION_VALUES[name] else [f"--{name}"]
    return shlex.join(words)


def check_job_id(word: str, usage_line: str) -> str:
    """A job id as typed (backticks from a copied message are fine), or UsageError."""
    job_id = word.strip("`").lower()
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise UsageError(
            f"{_code(word)} is not a job id: a job id is hex digits such as `0123456789ab`, as the "
            f"acknowledgement and the job's message show it. Usage: {usage_line}"
        )
    return job_id


def _check_limit(value: str, usage_line: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= JOBS_MAX_LIMIT:
        raise UsageError(
            f"`--limit` {_code(value)} is not a number from 1 to {JOBS_MAX_LIMIT}. Usage: {usage_line}"
        )
    return int(value)


def _parse_jobs_command(spec: _Spec, positionals: list[str], options: Mapping[str, str]) -> Command:
    usage_line = _usage_line(spec)
    _check_arity(spec, positionals)
    text = _canonical_text(spec.action, positionals, options)
    if spec.action in ("status", "cancel"):
        return Command(action=spec.action, job_id=check_job_id(positionals[0], usage_line), text=text)
    if spec.action == "jobs":
        return Command(
            action="jobs",
            image=check_image_name(options["image"]) if "image" in options else None,
            mine="mine" in options,
            limit=_check_limit(options["limit"], usage_line) if "limit" in options else JOBS_DEFAULT_LIMIT,
            text=text,
        )
    return Command(action=spec.action, text=text)


def parse(text: str) -> Command:
    """Parse what the user typed (``/registry`` optional) into a Command, or raise UsageError."""
    normalized = normalize(text)
    _refuse_credentials(normalized)
    tokens = _tokenize(normalized)
    if not tokens:
        raise UsageError(
            f"no command given. Commands: {_short_overview()}, "
            f"e.g. `{SLASH_COMMAND} push centos7-elasticsearch latest`. See `{SLASH_COMMAND} help`."
        )
    word, rest = tokens[0], tokens[1:]
    action = "help" if word.lower() in ("--help", "-h") else word.lower()
    if action not in _SPECS:
        raise UsageError(
            f"unknown command {_code(word)}.{_did_you_mean(action, _SPECS)} See `{SLASH_COMMAND} help`."
        )
    spec = _SPECS[action]
    if any(token.lower() in ("--help", "-h") for token in rest):
        return Command(action="help", topic=action, text=f"help {action}")

    positionals, options = _split_options(spec, rest)
    if action == "can-i":
        return _parse_can_i(spec, positionals, options)
    if action in (*JOB_COMMANDS, "hosts"):
        return _parse_jobs_command(spec, positionals, options)
    _check_arity(spec, positionals)

    if action == "help":
        topic = positionals[0].lower() if positionals else None
        if topic is not None:
            _spec(topic)
        return Command(action="help", topic=topic, text=_canonical_text("help", [topic] if topic else [], {}))

    checks = {"SOURCE": check_source, "IMAGE": check_image_name, "TAG": check_tag}
    values = {name: checks[name](value) for name, value in zip(spec.arguments, positionals)}
    source = values.get("SOURCE") or options.get("source")
    if "source" in options:
        check_source(options["source"])
    return Command(
        action=action,
        image=values.get("IMAGE"),
        tag=values.get("TAG"),
        source=source,
        registry=_check_name("registry", options["registry"]) if "registry" in options else None,
        host=_check_name("host", options["host"]) if "host" in options else None,
        text=_canonical_text(action, positionals, options),
    )
