"""What a ``subscribe`` or ``unsubscribe`` names, resolved against the config: the registry and the image glob.

IMAGE_GLOB may be an image name glob (``centos7-*``), or written under a registry's namespace
(``com.example.namespace/centos7-*``) or its server too
(``dockerhub.example.com:5100/com.example.namespace/centos7-*``): the server picks that
registry, and the namespace is taken off, since routes match the image name within it.  What is
left is checked as the config's image globs are
(:func:`~workers.kernel.config.patterns.check_globs`): a glob that can match no image is refused
with why.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from bot.core.errors import CommandError
from bot.core.grammar.arguments import word
from bot.core.grammar.help import usage
from bot.core.grammar.spec import Command
from bot.core.text import Text, code, codes, markup, t
from workers.kernel.config import Config
from workers.kernel.config.patterns import check_globs
from workers.kernel.config.problems import Problems


@dataclass(frozen=True)
class Target:
    """The images a subscription is about: ``registry`` None for every registry; ``image`` the glob kept."""

    registry: str | None
    image: str


def registry_named(config: Config, name: str | None, action: str) -> str | None:
    """``--registry NAME`` as a configured registry, or CommandError naming the ones there are."""
    if name is None or name in config.registries:
        return name
    close = difflib.get_close_matches(name, list(config.registries), n=1, cutoff=0.6)
    hint = t(" Did you mean {}?", code(close[0])) if close else Text()
    raise CommandError(t("unknown registry {}.{} Configured registries: {}. Leave {} out for every registry. "
                         "Usage: {}", word(name), hint, codes(config.registries), code("--registry"),
                         usage(action)))


def resolve(config: Config, command: Command) -> Target:
    """The registry (``--registry``, or the server IMAGE_GLOB starts with) and the image glob within it."""
    action = command.action
    registry = registry_named(config, command.registry, action)
    glob = command.glob or ""
    first, slash, rest = glob.partition("/")
    server_of = {entry.server.lower(): name for name, entry in config.registries.items()}
    if slash and first.lower() in server_of:
        named = server_of[first.lower()]
        if registry is not None and registry != named:
            raise CommandError(t("{} is in registry {}, but {} names {}: give one of them. Usage: {}", word(glob),
                                 code(named), code("--registry"), code(registry), usage(action)))
        registry, glob = named, rest
    elif slash and ":" in first:
        raise CommandError(t("{} starts with {}, which is no configured registry server ({}). Give the image "
                             "name only, e.g. {}, and the registry with {}. Usage: {}", word(glob), word(first),
                             codes(entry.server for entry in config.registries.values()), code(glob.rpartition("/")[2]),
                             code("--registry NAME"), usage(action)))
    registry, glob = _within_namespace(config, registry, glob, command.registry is None and registry is None)
    problem = image_glob_problem(glob)
    if problem is not None:
        raise CommandError(t("IMAGE_GLOB {}: {}. Usage: {}", word(command.glob or ""), problem, usage(action)))
    return Target(registry, glob)


def _within_namespace(config: Config, registry: str | None, glob: str, pick: bool) -> tuple[str | None, str]:
    """The glob with a registry's namespace taken off; ``pick``: the one registry of that namespace is taken."""
    entries = [config.registries[registry]] if registry is not None else list(config.registries.values())
    owners = [entry for entry in entries if glob.startswith(entry.namespace + "/")]
    if not owners:
        return registry, glob
    glob = glob[len(owners[0].namespace) + 1:]
    if pick and len({entry.name for entry in owners}) == 1 and len(config.registries) > 1:
        registry = owners[0].name
    return registry, glob


def image_glob_problem(glob: str) -> Text | None:
    """Why ``glob`` can match no image name (a tag or digest in it, an empty path component, a glob the config
    would refuse), or None."""
    if not glob:
        return t("names no image (give the image name after the namespace, e.g. `centos7-*`)")
    if ":" in glob or "@" in glob:
        return t("an image glob has no tag or digest: give the tags with {}, e.g. {}", code("--tags"),
                 code("--tags latest"))
    if glob.startswith("/") or glob.endswith("/") or "//" in glob:
        return t("an image name has no empty path component (no `/` first, last or twice in a row)")
    problems = Problems()
    check_globs(problems, [glob], "IMAGE_GLOB", "images")
    if problems.items:
        # The grammar let through only glob characters (no backtick): the config's message may quote it as markup.
        return markup(problems.items[0].partition(": ")[2])
    return None
