"""How each command is written: its arguments, options, summary, details and examples.

Data only.  The texts are written by regops with backticks for code spans; examples are
written without the front end's prefix (``push IMAGE TAG``, not ``/registry push …``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from workers.kernel.actions import FREEZE, HOST_ACTIONS, READ_ACTIONS, REGISTRY_ACTIONS, SUBSCRIBE

COMMAND_WORD = "/registry"
"""The command's own name, which a person may type before the action (Slack's slash command)."""

MAX_TEXT_LENGTH = 4000
"""The longest text regops reads: longer ones are refused before anything is parsed.

Slack's clients send at most 4,000 characters in a message (Slack's RTM documentation: "Clients
should limit messages sent to channels to 4000 characters", https://api.slack.com/rtm; the
slash command's text is typed in that same message composer), and Slack's own tools split or
truncate longer text (https://api.slack.com/changelog/2018-04-truncating-really-long-messages).
The longest valid command (a 255-character image name, a 128-character tag, a source reference
with a digest and both options) is under 1,000 characters, so nothing valid is refused.
"""

JOBS_DEFAULT_LIMIT = 10
JOBS_MAX_LIMIT = 50

TAGS_DEFAULT_LIMIT = 50
TAGS_MAX_LIMIT = 100
"""``tags --limit``: how many tags one answer lists at most, about what one Slack message shows (the
text is cut further to fit); a longer list is narrowed with ``--match``, not paged through."""

EXAMPLE_DIGEST = "sha256:" + "0123456789abcdef" * 4
"""A digest for the examples in help (any 64 hex digits are well formed)."""

MATCH_MAX_LENGTH = 200
"""The longest ``--match`` glob (a tag is at most 128 characters; classes like ``[0-9]`` make a glob longer)."""

JOB_ID_PATTERN = re.compile(r"[0-9a-f]{6,32}")
"""What a job id looks like (regops makes 12 hex digits; a little slack for ids from elsewhere)."""

CAN_I_ACTIONS: tuple[str, ...] = (*HOST_ACTIONS, *REGISTRY_ACTIONS, *READ_ACTIONS, SUBSCRIBE, FREEZE)
"""The actions ``can-i`` can ask about: every one with a target (``login``'s is the registry, ``subscribe``'s
the channel)."""

CAN_I_TARGETS: Mapping[str, tuple[str, ...]] = {
    **{action: ("IMAGE", "TAG") for action in CAN_I_ACTIONS},
    "login": (),
    "tags": ("IMAGE",),
    SUBSCRIBE: (),
    FREEZE: (),
}
"""The arguments ``can-i ACTION`` takes for each action: the target the check is about (for ``promote``,
the tag TO that would be written)."""

SUBSCRIPTION_ID_PATTERN = re.compile(r"S[1-9][0-9]{0,17}")
"""What a subscription id looks like: ``S`` and a number (a capital S: image names are lower-case)."""

TAG_GLOBS_MAX = 20
"""How many ``--tags`` globs one subscription takes (so that every subscription fits a line of the list)."""

IMAGE_GLOB_MAX_LENGTH = 400
"""The longest IMAGE_GLOB read (a registry server, a namespace and a 255-character name, with some classes)."""

FREEZE_ID_PATTERN = re.compile(r"F[1-9][0-9]{0,17}")
"""What a freeze id looks like: ``F`` and a number (a capital F: image names are lower-case)."""

REASON_MAX_LENGTH = 200
"""The longest ``--reason`` of a freeze: a sentence, shown in every refusal it causes."""

FREEZE_MAX_SECONDS = 90 * 86400
"""The longest freeze one command starts (a longer one is a config window, or another freeze later)."""


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
    """For ``jobs`` and ``tags``: how many at most."""
    digest: str | None = None
    """``sha256:…``: what ``inspect IMAGE@DIGEST`` looks at, what ``promote IMAGE @DIGEST TO`` copies,
    where ``rollback --to`` points the tag."""
    target_image: str | None = None
    """For ``promote``: the image the tag TO is made in (``--to-image``, default ``image``)."""
    target_tag: str | None = None
    """For ``promote``: the tag TO."""
    to_registry: str | None = None
    """For ``promote``: the registry of TO (``--to-registry``, default the source's)."""
    shared: bool = False
    """For ``delete``: also when other tags share the manifest (they go too)."""
    match: str | None = None
    """For ``tags``: a glob the tags must match (``--match``)."""
    glob: str | None = None
    """For ``subscribe`` and ``unsubscribe``: IMAGE_GLOB as typed (an image name glob, or one under a registry
    server and namespace: the service resolves it against the config)."""
    tag_globs: tuple[str, ...] = ()
    """For ``subscribe``: the ``--tags`` globs (none given: every tag)."""
    events: tuple[str, ...] = ()
    """For ``subscribe``: the ``--events`` kinds, sorted (none given: pushes only)."""
    subscription_id: str | None = None
    """For ``unsubscribe``: the subscription id (``S3``), when one was given instead of IMAGE_GLOB."""
    freeze_id: str | None = None
    """For ``unfreeze``: the freeze id (``F3``)."""
    duration: int | None = None
    """For ``freeze --for``: how long, in seconds."""
    until: str | None = None
    """For ``freeze --until``: the end as typed, checked (``2026-12-24T18:00Z`` or ``18:00``): the service reads
    it against its clock (:func:`bot.core.grammar.freezes.until_time`)."""
    reason: str | None = None
    """For ``freeze``: why (``--reason``), one line of at most :data:`REASON_MAX_LENGTH` characters."""
    override: str | None = None
    """For push, promote, rollback and delete: the break-glass reason (``--override``), checked as a reason."""


@dataclass(frozen=True)
class Spec:
    """How one command is written and explained."""

    action: str
    arguments: tuple[str, ...]
    optional_arguments: tuple[str, ...]
    """Given all together or not at all, e.g. ``[IMAGE TAG]``."""
    options: tuple[str, ...]
    summary: str
    details: tuple[str, ...]
    examples: tuple[str, ...]
    forms: tuple[str, ...] = ()
    """The ways the arguments may be written, when there is more than one (``IMAGE TAG``, ``IMAGE@DIGEST``)."""
    option_help: Mapping[str, str] = field(default_factory=dict)
    """What an option means for this command, where it differs from :data:`OPTION_HELP`."""


OPTION_VALUES: Mapping[str, str] = {"source": "REF", "registry": "NAME", "host": "NAME", "mine": "",
                                      "image": "NAME", "limit": "N", "match": "GLOB", "to-image": "NAME",
                                      "to-registry": "NAME", "shared": "", "to": "DIGEST", "tags": "GLOB",
                                      "events": "EVENTS", "for": "DURATION", "until": "TIME", "reason": "TEXT",
                                      "override": "REASON"}
"""Each option's value placeholder; "" marks a flag, which takes no value."""

OPTION_HELP: Mapping[str, str] = {
    "source": "the local image to use instead of IMAGE:TAG: a reference like `centos7-elasticsearch:dev` "
    "or an image ID like `0123456789ab`",
    "registry": "a registry from the config (default: the configured default registry)",
    "host": "the Docker host that runs the job (default: the configured default host)",
    "mine": "only the jobs you asked for",
    "image": "only jobs of this image name, e.g. `centos7-elasticsearch`",
    "limit": f"how many jobs to show (default {JOBS_DEFAULT_LIMIT}, at most {JOBS_MAX_LIMIT})",
    "match": "only tags matching this glob: `*` any run of characters, `?` one, `[0-9]` one of a class, "
    "e.g. `v1.*` or `release-[0-9]*`",
    "to-image": "the image to make the tag TO in (default: IMAGE itself), e.g. `centos7-elasticsearch-prod`",
    "to-registry": "the registry to make the tag TO in (default: the registry of FROM)",
    "shared": "delete also when other tags point at the same manifest: they are deleted with it",
    "to": "the digest to point the tag at, one it had before (see `history`) — default: the one before "
    "its last change",
    "tags": "only changes of tags matching these globs, comma-separated, e.g. `latest,v*` (default: every tag, "
    "`*`); `*` any run of characters, `?` one, `[0-9]` one of a class",
    "events": "which changes to announce: `push`, `delete`, or `push,delete` (default: `push`)",
    "for": "how long the freeze lasts from now: `90m`, `2h`, `1d` (at most 90 days)",
    "until": "when the freeze ends, in UTC: `2026-12-24T18:00Z`, or `18:00` for today (a time already past "
    "today is refused: give the date)",
    "override": "break-glass, in quotes: write what a freeze or a promotion path refuses (never an immutable "
    "tag), if your role allows `freeze` and a second such person approves; announced and audited with the reason",
    "reason": "why, in quotes: every refusal the freeze causes shows it, e.g. `--reason \"release week\"`",
}

ARGUMENT_HELP: Mapping[str, str] = {
    "IMAGE": "the image name only, lower-case, e.g. `centos7-elasticsearch`; regops adds REGISTRY/NAMESPACE",
    "TAG": "the tag, e.g. `latest` or `1.4.2`",
    "SOURCE": "the local image: a reference like `centos7-elasticsearch:latest` or an image ID",
    "COMMAND": "a command to explain",
    "ACTION": "the action to check: `push`, `pull`, `tag`, `login`, `promote`, `delete`, `rollback`, `tags`, "
    "`inspect`, `history`, `subscribe` or `freeze`",
    "JOB": "a job id such as `0123456789ab`, as the acknowledgement and the job's message show it",
    "FROM": "the tag to copy, e.g. `staging`, or a digest written `@sha256:…` (64 hex digits)",
    "TO": "the tag to make (or move), e.g. `prod`",
    "DIGEST": "a manifest digest: `sha256:` and 64 hex digits, as `inspect` and `history` show it",
    "IMAGE_GLOB": "the images to announce: an image name or a glob of them, e.g. `centos7-elasticsearch`, "
    "`centos7-*` or `team/**` (`*` stops at `/`, `**` does not); a full repository path like "
    "`REGISTRY/NAMESPACE/centos7-*` works too and picks that registry",
    "ID": "a subscription id such as `S3`, as `subscriptions` shows it (for `unfreeze`: a freeze id such as "
    "`F3`, as `freezes` shows it)",
}

SPECS: Mapping[str, Spec] = {
    "push": Spec(
        "push",
        ("IMAGE", "TAG"),
        (),
        ("source", "registry", "host", "override"),
        "tag a local image with the full registry reference, log in and push it",
        (
            (
                "Tags the local image IMAGE:TAG (or `--source REF`) as REGISTRY/NAMESPACE/IMAGE:TAG, "
                "logs in with the configured registry account and pushes that one tag."
            ),
        ),
        (
            "push centos7-elasticsearch latest",
            "push centos7-elasticsearch 1.4.2 --source 0123456789ab",
        ),
    ),
    "pull": Spec(
        "pull",
        ("IMAGE", "TAG"),
        (),
        ("registry", "host"),
        "pull an image from the registry onto the Docker host",
        ("Pulls REGISTRY/NAMESPACE/IMAGE:TAG onto the Docker host.",),
        (
            "pull centos7-elasticsearch latest",
            "pull centos7-elasticsearch 1.4.2 --host build-1",
        ),
    ),
    "tag": Spec(
        "tag",
        ("SOURCE", "IMAGE", "TAG"),
        (),
        ("registry", "host"),
        "only tag a local image with the full registry reference (no push)",
        ("Tags the local image SOURCE as REGISTRY/NAMESPACE/IMAGE:TAG on the Docker host.",),
        (
            "tag 0123456789ab centos7-elasticsearch latest",
            "tag centos7-es:dev centos7-elasticsearch 1.4.2",
        ),
    ),
    "login": Spec(
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
        ("login", "login --registry main --host build-1"),
    ),
    "promote": Spec(
        "promote",
        ("IMAGE", "FROM", "TO"),
        (),
        ("to-image", "registry", "to-registry", "override"),
        "make tag TO point at exactly the manifest FROM points at (no Docker host, no rebuild)",
        (
            (
                "Copies the manifest of IMAGE:FROM (or IMAGE@DIGEST) to the tag TO, byte for byte, so TO serves "
                "exactly what FROM serves. TO may be in another image (`--to-image`) or another registry "
                "(`--to-registry`). The job's message names the digest and who promoted it; `history` keeps it. "
                "`FROM@DIGEST` (`staging@sha256:…`) promotes from the tag FROM but only if it still points at "
                "DIGEST when the job runs."
            ),
        ),
        (
            "promote centos7-elasticsearch staging prod",
            f"promote centos7-elasticsearch @{EXAMPLE_DIGEST} prod",
            f"promote centos7-elasticsearch staging@{EXAMPLE_DIGEST} prod",
            "promote centos7-elasticsearch 1.4.2 1.4.2 --to-registry prod",
        ),
        option_help={"registry": "the registry of FROM (default: the configured default registry)"},
    ),
    "delete": Spec(
        "delete",
        ("IMAGE", "TAG"),
        (),
        ("shared", "registry", "override"),
        "delete a tag from the registry",
        (
            (
                "The registry deletes manifests, not tags: deleting IMAGE:TAG removes every tag that points at the "
                "same manifest. When other tags share it, the job names them and deletes nothing unless you give "
                "`--shared`. The tag's `history` keeps the digest it had."
            ),
        ),
        ("delete centos7-elasticsearch 1.4.2-rc1", "delete centos7-elasticsearch old --shared"),
    ),
    "rollback": Spec(
        "rollback",
        ("IMAGE", "TAG"),
        (),
        ("to", "registry", "override"),
        "point a tag back at the digest it had before its last change",
        (
            (
                "Points IMAGE:TAG back at the digest it had before its last change, as `history` shows it, "
                "or with `--to DIGEST` at an earlier one from its history."
            ),
        ),
        (
            "rollback centos7-elasticsearch prod",
            f"rollback centos7-elasticsearch prod --to {EXAMPLE_DIGEST}",
        ),
    ),
    "tags": Spec(
        "tags",
        ("IMAGE",),
        (),
        ("match", "limit", "registry"),
        "list an image's tags in the registry, each with its digest",
        (
            (
                "Lists the tags of IMAGE with their short digests: newest first where regops knows when a tag "
                "last moved, then alphabetically, and says how many more there are. Only you see the answer."
            ),
        ),
        ("tags centos7-elasticsearch", "tags centos7-elasticsearch --match v1.* --limit 20"),
        option_help={"limit": f"how many tags to show (default {TAGS_DEFAULT_LIMIT}, at most {TAGS_MAX_LIMIT})"},
    ),
    "inspect": Spec(
        "inspect",
        ("IMAGE", "TAG"),
        (),
        ("registry",),
        "show a tag's manifest: digest, type, size, layers, platforms, labels and its recent history",
        (
            (
                "Shows the digest, the manifest type, the compressed size and the layer count; for a "
                "multi-platform image every platform with its digest; the config's creation time and labels; "
                "and the tag's last changes. Give IMAGE@DIGEST to look at a manifest by digest. "
                "Only you see the answer."
            ),
        ),
        (
            "inspect centos7-elasticsearch latest",
            f"inspect centos7-elasticsearch@{EXAMPLE_DIGEST}",
        ),
        forms=("IMAGE TAG", "IMAGE@DIGEST"),
    ),
    "history": Spec(
        "history",
        ("IMAGE", "TAG"),
        (),
        ("registry",),
        "show every digest a tag has pointed at, newest first: when, who and how",
        (
            (
                "Lists the tag's changes that regops knows of, newest first: when, the digest and the one before, "
                "who (a Slack user, or the registry account for changes made outside regops), how (push, promote, "
                "rollback, delete, registry event) and the job. Only you see the answer."
            ),
        ),
        ("history centos7-elasticsearch prod",),
    ),
    "whoami": Spec(
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
        ("whoami",),
    ),
    "can-i": Spec(
        "can-i",
        ("ACTION",),
        ("IMAGE", "TAG"),
        ("source", "registry", "host"),
        "check whether you may run a command here, and whether it needs approval",
        (
            (
                "Answers yes or no with the rule that decides, and whether an approval is needed "
                "(how many, from whom, how long a request stays open). Nothing is run. "
                "Every action but `login` and `tags` needs IMAGE and TAG: for `tag`, the target; for `promote`, "
                "the tag TO it would make. `tags` takes IMAGE only; `login` neither. "
                "For `push` and `tag`, `--source REF` also checks the local image the command would start from; "
                "`--host` is only for the actions that run on a Docker host (`push`, `pull`, `tag`, `login`)."
            ),
        ),
        (
            "can-i push centos7-elasticsearch latest",
            "can-i tag centos7-elasticsearch 1.4.2 --source centos7-es:dev",
            "can-i pull web/app 1.4.2 --host build-1",
            "can-i promote centos7-elasticsearch prod",
            "can-i tags centos7-elasticsearch",
            "can-i login --registry main",
        ),
    ),
    "help": Spec(
        "help",
        (),
        ("COMMAND",),
        (),
        "list the commands, or explain one",
        ("Without COMMAND, lists the commands; with one, shows its usage, options and examples.",),
        ("help", "help push"),
    ),
    "status": Spec(
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
        ("status 0123456789ab",),
    ),
    "jobs": Spec(
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
        ("jobs", "jobs --mine", "jobs --image centos7-elasticsearch --limit 20"),
    ),
    "cancel": Spec(
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
        ("cancel 0123456789ab",),
    ),
    "hosts": Spec(
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
        ("hosts",),
    ),
    "subscribe": Spec(
        "subscribe",
        ("IMAGE_GLOB",),
        (),
        ("tags", "events", "registry"),
        "announce the registry's changes of matching images in this channel",
        (
            (
                "Subscribes the channel you type it in: every push (and with `--events push,delete`, every delete) "
                "of a matching image and tag, whoever made it — regops, CI or someone's laptop — is announced "
                "here, once per change, whatever else matches. Every registry, or the one `--registry` names. "
                "Needs the `subscribe` action (admins by default)."
            ),
        ),
        (
            "subscribe centos7-*",
            "subscribe centos7-elasticsearch --tags latest,v* --events push,delete",
            "subscribe team/** --registry main",
        ),
        option_help={"registry": "only changes in this registry from the config (default: every registry)"},
    ),
    "unsubscribe": Spec(
        "unsubscribe",
        ("ID",),
        (),
        (),
        "stop a subscription of this channel",
        (
            (
                "Removes the subscription ID, or every subscription of this channel whose IMAGE_GLOB is the one "
                "given. Only a channel's own subscriptions can be removed there; static routes from the config "
                "are changed in the config. Needs the `subscribe` action."
            ),
        ),
        ("unsubscribe S3", "unsubscribe centos7-*"),
        forms=("ID", "IMAGE_GLOB"),
    ),
    "subscriptions": Spec(
        "subscriptions",
        (),
        (),
        (),
        "list what is announced in this channel: its subscriptions and the config's routes to it",
        (
            (
                "Lists this channel's subscriptions — id, image and tag globs, events, registry, who made it and "
                "when — and the static routes of the config that post here. Only you see the answer."
            ),
        ),
        ("subscriptions",),
    ),
    "freeze": Spec(
        "freeze",
        ("IMAGE_GLOB",),
        (),
        ("tags", "registry", "for", "until", "reason"),
        "start a change freeze: nothing writes matching tags until it ends",
        (
            (
                "While the freeze lasts, `push`, `promote`, `rollback` and `delete` of a matching image and tag are "
                "refused at once, naming the freeze, its reason and its end; a job queued before it began fails "
                "when it starts. Reads and pulls go on. Give `--for DURATION` or `--until TIME` (UTC), and "
                "`--reason`. Every registry, or the one `--registry` names. Announced in the notify channel. "
                "Needs the `freeze` action (admins by default)."
            ),
        ),
        (
            'freeze * --for 2h --reason "release week"',
            'freeze centos7-* --tags prod --until 18:00 --reason "incident 42"',
            'freeze team/** --registry main --until 2026-12-24T18:00Z --reason "holidays"',
        ),
        option_help={"registry": "only this registry from the config (default: every registry)",
                     "tags": "only tags matching these globs, comma-separated, e.g. `prod,v*` (default: every tag)"},
    ),
    "unfreeze": Spec(
        "unfreeze",
        ("ID",),
        (),
        (),
        "end a change freeze early",
        (
            (
                "Ends the freeze ID (`F3`, as `freezes` shows it) now; a scheduled one never starts. A freeze "
                "window of the config is changed in the config. Announced in the notify channel. Needs the "
                "`freeze` action."
            ),
        ),
        ("unfreeze F3",),
    ),
    "freezes": Spec(
        "freezes",
        (),
        (),
        (),
        "list the change freezes: active and scheduled ones, and the config's freeze windows",
        (
            (
                "Lists each freeze started from Slack that is active or scheduled — id, images, tags, registry, "
                "who started it, why and until when — and each freeze window of the config with its current or "
                "next span. Only you see the answer."
            ),
        ),
        ("freezes",),
    ),
}
