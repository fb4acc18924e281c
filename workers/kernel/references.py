"""Image references: the registry's naming rule and the Docker reference grammar.

A reference that the registry accepts is ``REGISTRY/NAMESPACE/IMAGE_NAME:TAG``, e.g.
``dockerhub.example.com:5100/com.example.namespace/centos7-elasticsearch:latest``.
Users give only the image name and the tag; regops builds the rest.  The grammar is
the one of Docker's distribution ``reference`` package::

    reference       := name [ ":" tag ] [ "@" digest ]
    name            := [domain "/"] path-component ["/" path-component]*
    domain          := host [":" port]
    path-component  := alpha-numeric [separator alpha-numeric]*
    alpha-numeric   := [a-z0-9]+
    separator       := [_.] | __ | [-]+
    tag             := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}

Every check returns its input unchanged or raises :class:`UsageError` naming the rule
that was broken and, where one exists, a corrected value.
"""

from __future__ import annotations

import ipaddress
import re

from workers.kernel.errors import UsageError

NAME_TOTAL_LENGTH_MAX = 255
"""Longest reference name (everything before ``:tag``) Docker accepts."""

TAG_LENGTH_MAX = 128

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")
_COMPONENT_CHARS = re.compile(r"[a-z0-9._-]+")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_TAG_CHARS = re.compile(r"[A-Za-z0-9_.-]+")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HEX_ID = re.compile(r"(?:sha256:)?[a-f0-9]{12,64}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_PORT = re.compile(r"[0-9]{1,5}")

_TAG_RULE = "a tag is 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
_NAME_RULE = (
    "an image name is one or more lower-case components separated by `/`; a component is "
    "letters and digits, optionally joined by one `.`, one or two `_`, or any number of `-`"
)


def _show(value: str, limit: int = 64) -> str:
    """``value`` shortened for an error message, so a huge input does not flood the chat."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _component_problem(component: str) -> str | None:
    """Why one lower-cased path component breaks the grammar, or None if it does not."""
    if not component:
        return "empty path component (a `/` at the start or end, or `//`)"
    if _PATH_COMPONENT.fullmatch(component):
        return None
    bad = sorted({ch for ch in component if not _COMPONENT_CHARS.fullmatch(ch)})
    if bad:
        shown = " ".join(f"`{ch}`" if ch.strip() else repr(ch) for ch in bad)
        return (
            f"character(s) {shown} not allowed: only lower-case letters, digits, "
            "and the separators `.`, `_`, `__`, `-` may appear"
        )
    if component[0] in "._-" or component[-1] in "._-":
        return f"`{_show(component)}` must not start or end with a separator (`.`, `_`, `-`)"
    # Only left: separators run together in a way the grammar forbids, such as `..` or `._`.
    run = re.search(r"[._-]{2,}", component)
    shown_run = run.group(0) if run else component
    return (
        f"separators `{shown_run}` cannot be combined: use one `.`, one or two `_`, "
        "or any number of `-` between letters and digits"
    )


def _path_problem(path: str) -> str | None:
    """Why a lower-case ``a/b/c`` path breaks the grammar, or None."""
    for component in path.split("/"):
        problem = _component_problem(component)
        if problem:
            return problem
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        return f"too long: {len(path)} characters, at most {NAME_TOTAL_LENGTH_MAX}"
    return None


def is_registry_host(component: str) -> bool:
    """Whether the first ``/``-separated component of a reference names a registry host.

    The Docker engine's own rule (distribution's ``splitDockerDomain``): a component with a
    ``.`` or a ``:``, ``localhost``, or one with an upper-case letter (repository path
    components are lower-case) is a host; anything else is the first path component of a
    Docker Hub name.  The engine sends a push's or pull's credentials to that host.
    """
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def check_image_name(name: str) -> str:
    """Validate an image name as users type it: no registry, no namespace, no tag."""
    if not name:
        raise UsageError(f"the image name is empty: {_NAME_RULE}, e.g. `centos7-elasticsearch`")
    first, slash, _ = name.partition("/")
    # Docker reads such a first component as a registry host, and so will the user.  Judged on the
    # lower-cased component: upper case alone is reported below, with the lower-case name to use.
    if slash and is_registry_host(first.lower()):
        raise UsageError(
            f"image name `{_show(name)}` contains a registry host: give only the image name, "
            "regops adds REGISTRY/NAMESPACE"
        )
    if "@" in name:
        raise UsageError(
            f"image name `{_show(name)}` contains a digest: give the image name and a tag, "
            "e.g. `centos7-elasticsearch latest`"
        )
    if ":" in name:
        image, _, tag = name.rpartition(":")
        raise UsageError(
            f"image name `{_show(name)}` contains a tag: give the tag separately, "
            f"e.g. `{_show(image)} {_show(tag)}`"
        )
    lowered = name.lower()
    problem = _path_problem(lowered)
    if lowered != name:
        if problem is None:
            raise UsageError(
                f"image name `{_show(name)}`: upper-case letters are not allowed: use `{_show(lowered)}`"
            )
        raise UsageError(f"image name `{_show(name)}`: upper-case letters are not allowed, and {problem}")
    if problem:
        raise UsageError(f"image name `{_show(name)}`: {problem}")
    return name


def check_namespace(namespace: str) -> str:
    """Validate a registry namespace: lower-case Docker path components, e.g. ``com.example.namespace``."""
    if not namespace:
        raise UsageError(
            "the namespace is empty: give lower-case path components, e.g. `com.example.namespace`"
        )
    lowered = namespace.lower()
    problem = _path_problem(lowered)
    if lowered != namespace:
        detail = f": use `{_show(lowered)}`" if problem is None else f", and {problem}"
        raise UsageError(f"namespace `{_show(namespace)}`: upper-case letters are not allowed{detail}")
    if problem:
        raise UsageError(f"namespace `{_show(namespace)}`: {problem}")
    return namespace


def check_tag(tag: str) -> str:
    """Validate a tag: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``."""
    if _TAG.fullmatch(tag):
        return tag
    if not tag:
        raise UsageError(f"the tag is empty: {_TAG_RULE}, e.g. `latest` or `1.4.2`")
    bad = sorted({ch for ch in tag if not _TAG_CHARS.fullmatch(ch)})
    if bad:
        shown = " ".join(f"`{ch}`" if ch.strip() else repr(ch) for ch in bad)
        raise UsageError(f"tag `{_show(tag)}`: character(s) {shown} not allowed: {_TAG_RULE}")
    if tag[0] in ".-":
        raise UsageError(
            f"tag `{_show(tag)}` must start with a letter, digit or `_`, not `{tag[0]}`: {_TAG_RULE}"
        )
    raise UsageError(f"tag `{_show(tag, 24)}` is too long: {len(tag)} characters, at most {TAG_LENGTH_MAX}")


def _host_problem(host: str) -> str | None:
    """Why ``host`` is not a DNS name, IPv4 address or bracketed IPv6 address, or None."""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"`{host}` is not a valid IPv6 address"
        return None
    return _hostname_problem(host)


def _hostname_problem(hostname: str) -> str | None:
    if not hostname:
        return "the hostname is empty"
    if len(hostname) > 253:
        return f"the hostname is too long: {len(hostname)} characters, at most 253"
    for label in hostname.split("."):
        if not label:
            return f"`{_show(hostname)}` has an empty label (a `.` at the start or end, or `..`)"
        if not _DNS_LABEL.fullmatch(label):
            return (
                f"label `{label}` is not valid: labels are letters, digits and `-` "
                "(not first or last), at most 63 characters"
            )
    return None


def check_hostname(hostname: str) -> str:
    """Validate a DNS hostname without a port, e.g. ``namespace.example.com``."""
    if "://" in hostname:
        raise UsageError(
            f"hostname `{_show(hostname)}` has a scheme: give only the name, e.g. `namespace.example.com`"
        )
    if ":" in hostname:
        raise UsageError(
            f"hostname `{_show(hostname)}` has a port: give only the name, e.g. `namespace.example.com`"
        )
    problem = _hostname_problem(hostname)
    if problem:
        raise UsageError(f"hostname `{_show(hostname)}`: {problem}; e.g. `namespace.example.com`")
    return hostname


def _server_problem(server: str) -> str | None:
    if not server:
        return "the server is empty"
    if "://" in server:
        return "it has a scheme: give only host[:port]"
    if "/" in server:
        return "it has a path: give only host[:port]"
    if server.startswith("["):
        host, bracket, port = server.partition("]")
        host += bracket
        if port and not port.startswith(":"):
            return "unexpected characters after the IPv6 address"
        port = port[1:] if port else ""
        has_port = bool(bracket) and server != host
    else:
        host, colon, port = server.partition(":")
        has_port = bool(colon)
    problem = _host_problem(host)
    if problem:
        return problem
    if has_port and not (_PORT.fullmatch(port) and 0 < int(port) < 65536):
        return f"port `{port}` is not a number from 1 to 65535"
    return None


def check_server(server: str) -> str:
    """Validate a registry server: ``host[:port]`` (DNS name, IPv4 or ``[IPv6]``)."""
    problem = _server_problem(server)
    if problem:
        raise UsageError(
            f"registry server `{_show(server)}`: {problem}; "
            "expected host[:port], e.g. `dockerhub.example.com:5100`"
        )
    return server


def check_source(ref: str) -> str:
    """Validate a local image: an image ID, or ``[host[:port]/]name[:tag][@sha256:<hex>]``."""
    expected = (
        "expected an image ID (12 to 64 hex digits, optionally with `sha256:`) or a local reference "
        "like `centos7-elasticsearch:latest`"
    )
    if not ref:
        raise UsageError(f"the source image is empty: {expected}")
    if _HEX_ID.fullmatch(ref):
        return ref
    rest, at, digest = ref.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise UsageError(f"source `{_show(ref)}`: the digest must be `sha256:` and 64 lower-case hex digits")
    first, slash, path = rest.partition("/")
    if slash and is_registry_host(first):
        problem = _server_problem(first)
        if problem:
            raise UsageError(f"source `{_show(ref)}`: registry host `{first}`: {problem}")
        domain_length = len(first) + 1
    else:
        path, domain_length = rest, 0
    # The tag follows a `:` in the last component only, so a registry port is never taken for it.
    name, colon, tag = path.rpartition(":") if ":" in path.rpartition("/")[2] else (path, "", "")
    if colon:
        try:
            check_tag(tag)
        except UsageError as exc:
            raise UsageError(f"source `{_show(ref)}`: {exc.user_message}") from None
    if not name:
        raise UsageError(f"source `{_show(ref)}` has no image name: {expected}")
    if name.lower() != name:
        raise UsageError(
            f"source `{_show(ref)}`: upper-case letters are not allowed in image names; {expected}"
        )
    problem = _path_problem(name)
    if problem:
        raise UsageError(f"source `{_show(ref)}`: {problem}")
    if domain_length + len(name) > NAME_TOTAL_LENGTH_MAX:
        raise UsageError(
            f"source `{_show(ref)}` is too long: a name is at most {NAME_TOTAL_LENGTH_MAX} characters"
        )
    return ref


def reverse_hostname(hostname: str) -> str:
    """The namespace a services hostname implies: ``namespace.example.com`` → ``com.example.namespace``."""
    check_hostname(hostname)
    # DNS names are case-insensitive but repository names must be lower-case.
    return ".".join(reversed(hostname.lower().split(".")))


def repository_name(server: str, namespace: str, image: str) -> str:
    """``server/namespace/image``, with every part and the total name length validated."""
    check_server(server)
    check_namespace(namespace)
    check_image_name(image)
    name = f"{server}/{namespace}/{image}"
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise UsageError(
            f"the reference `{_show(name)}` is too long: {len(name)} characters before the tag, "
            f"at most {NAME_TOTAL_LENGTH_MAX}; use a shorter image name"
        )
    return name


def full_reference(server: str, namespace: str, image: str, tag: str) -> str:
    """``server/namespace/image:tag``, with every part and the total name length validated."""
    name = repository_name(server, namespace, image)
    check_tag(tag)
    return f"{name}:{tag}"


def digest_reference(server: str, namespace: str, image: str, digest: str) -> str:
    """``server/namespace/image@sha256:…``, validated."""
    if not _DIGEST.fullmatch(digest):
        raise UsageError(f"`{_show(digest)}` is not a digest: a digest is `sha256:` and 64 hex digits")
    return f"{repository_name(server, namespace, image)}@{digest}"


def split_reference(reference: str) -> tuple[str, str, str]:
    """``(server, repository, tag or digest)`` of a full reference a job carries.

    ``server/ns/image:tag`` gives ``("server", "ns/image", "tag")``; ``…@sha256:…`` gives the
    digest as the third part; a bare ``server/ns/image`` gives ``""`` there.
    """
    server, _, rest = reference.partition("/")
    if "@" in rest:
        repository, _, ref = rest.partition("@")
        return server, repository, ref
    repository, colon, tag = rest.rpartition(":")
    if not colon or "/" in tag:
        return server, rest, ""
    return server, repository, tag
