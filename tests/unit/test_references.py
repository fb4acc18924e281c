"""The naming rule and the Docker reference grammar (workers.kernel.references)."""

from __future__ import annotations

import pytest

from workers.kernel.errors import UsageError
from workers.kernel.references import (
    check_hostname,
    check_image_name,
    check_namespace,
    check_server,
    check_source,
    check_tag,
    full_reference,
    is_registry_host,
    reverse_hostname,
)

HEX64 = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "name",
    [
        "centos7-elasticsearch",
        "a",
        "0",
        "web/app",
        "team/web/app",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "x" * 255,
    ],
)
def test_valid_image_names_are_returned_unchanged(name: str) -> None:
    assert check_image_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Centos7-Elasticsearch", "upper-case letters are not allowed: use `centos7-elasticsearch`"),
        ("Foo_", "upper-case letters are not allowed, and"),
        ("-centos", "must not start or end with a separator"),
        ("centos-", "must not start or end with a separator"),
        ("web/_app", "must not start or end with a separator"),
        ("a..b", "separators `..` cannot be combined"),
        ("a._b", "separators `._` cannot be combined"),
        ("a___b", "separators `___` cannot be combined"),
        ("a//b", "empty path component"),
        ("/a", "empty path component"),
        ("a/", "empty path component"),
        ("", "the image name is empty"),
        ("x" * 256, "too long: 256 characters, at most 255"),
        ("centos7:latest", "contains a tag: give the tag separately, e.g. `centos7 latest`"),
        (
            "localhost/app",
            "contains a registry host: give only the image name, regops adds REGISTRY/NAMESPACE",
        ),
        (
            "dockerhub.example.com:5100/com.example.namespace/centos7-elasticsearch:latest",
            "contains a registry host",
        ),
        ("com.example.namespace/centos7", "contains a registry host"),
        ("LOCALHOST/app", "contains a registry host"),
        # Upper case alone makes Docker read a host, but here the fix is the lower-case name.
        ("Team/app", "upper-case letters are not allowed: use `team/app`"),
        (f"centos7@sha256:{HEX64}", "contains a digest"),
        ("centos 7", "not allowed"),
        ("cent$os", "`$` not allowed"),
    ],
)
def test_invalid_image_names_name_the_broken_rule(name: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        check_image_name(name)
    assert fragment in info.value.user_message


def test_a_huge_image_name_is_not_echoed_in_full() -> None:
    with pytest.raises(UsageError) as info:
        check_image_name("x" * 5000)
    assert len(info.value.user_message) < 300


@pytest.mark.parametrize("tag", ["latest", "1.4.2", "_x", "V1", "a-b.c_d", "a" * 128])
def test_valid_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ("", "the tag is empty"),
        (".hidden", "must start with a letter, digit or `_`, not `.`"),
        ("-rc1", "must start with a letter, digit or `_`, not `-`"),
        ("1.0+build", "`+` not allowed"),
        ("a:b", "`:` not allowed"),
        ("a" * 129, "too long: 129 characters, at most 128"),
    ],
)
def test_invalid_tags_name_the_rule(tag: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        check_tag(tag)
    assert fragment in info.value.user_message


@pytest.mark.parametrize(
    "ref",
    [
        "0123456789ab",
        HEX64,
        f"sha256:{HEX64}",
        "sha256:0123456789ab",
        "centos7-elasticsearch",
        "centos7-elasticsearch:latest",
        "team/app:1.0",
        "localhost/app",
        "localhost:5000/app:dev",
        "dockerhub.example.com:5100/com.example.namespace/centos7-elasticsearch:latest",
        f"app@sha256:{HEX64}",
        f"app:1@sha256:{HEX64}",
        "127.0.0.1:5000/app",
        "[::1]:5000/app:1",
    ],
)
def test_valid_sources(ref: str) -> None:
    assert check_source(ref) == ref


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("", "the source image is empty"),
        ("Centos7", "upper-case letters are not allowed"),
        ("app:-x", "must start with a letter, digit or `_`"),
        ("app@sha256:1234", "the digest must be `sha256:` and 64 lower-case hex digits"),
        (f"app@md5:{HEX64}", "the digest must be"),
        ("host:99999/app", "port `99999` is not a number from 1 to 65535"),
        ("a//b", "empty path component"),
        ("app..x:1", "cannot be combined"),
        (":latest", "has no image name"),
        ("app:1:2", "not allowed"),
    ],
)
def test_invalid_sources(ref: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        check_source(ref)
    assert fragment in info.value.user_message


@pytest.mark.parametrize(
    "hostname", ["namespace.example.com", "localhost", "a-b.example", "x1", "A.Example.COM"]
)
def test_valid_hostnames(hostname: str) -> None:
    assert check_hostname(hostname) == hostname


@pytest.mark.parametrize(
    ("hostname", "fragment"),
    [
        ("namespace.example.com:443", "has a port"),
        ("https://namespace.example.com", "has a scheme"),
        ("a..b", "empty label"),
        (".a", "empty label"),
        ("-a.example", "label `-a` is not valid"),
        ("a_b.example", "label `a_b` is not valid"),
        ("x" * 64 + ".example", "is not valid"),
        ("", "the hostname is empty"),
    ],
)
def test_invalid_hostnames(hostname: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        check_hostname(hostname)
    assert fragment in info.value.user_message


@pytest.mark.parametrize(
    "server",
    [
        "dockerhub.example.com:5100",
        "dockerhub.example.com",
        "localhost:5000",
        "10.0.0.1:443",
        "[::1]:5000",
        "[fe80::1]",
    ],
)
def test_valid_servers(server: str) -> None:
    assert check_server(server) == server


@pytest.mark.parametrize(
    ("server", "fragment"),
    [
        ("https://dockerhub.example.com", "has a scheme"),
        ("dockerhub.example.com/v2", "has a path"),
        ("dockerhub.example.com:0", "port `0` is not a number from 1 to 65535"),
        ("dockerhub.example.com:65536", "port `65536`"),
        ("dockerhub.example.com:http", "port `http`"),
        ("[zz::1]:5000", "not a valid IPv6 address"),
        ("", "the server is empty"),
        ("dock er", "is not valid"),
    ],
)
def test_invalid_servers(server: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        check_server(server)
    assert fragment in info.value.user_message
    assert "host[:port]" in info.value.user_message


@pytest.mark.parametrize(
    ("hostname", "namespace"),
    [
        ("namespace.example.com", "com.example.namespace"),
        ("Namespace.Example.COM", "com.example.namespace"),
        ("a-b.example.org", "org.example.a-b"),
        ("localhost", "localhost"),
    ],
)
def test_the_namespace_is_the_services_hostname_reversed(hostname: str, namespace: str) -> None:
    assert reverse_hostname(hostname) == namespace
    assert check_namespace(namespace) == namespace


def test_reverse_hostname_rejects_a_hostname_with_a_port() -> None:
    with pytest.raises(UsageError, match="has a port"):
        reverse_hostname("namespace.example.com:80")


@pytest.mark.parametrize(
    ("namespace", "fragment"),
    [
        ("Com.Example", "upper-case letters are not allowed: use `com.example`"),
        ("com..example", "cannot be combined"),
        ("", "the namespace is empty"),
        ("com.example/", "empty path component"),
    ],
)
def test_invalid_namespaces(namespace: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        check_namespace(namespace)
    assert fragment in info.value.user_message


def test_full_reference_follows_the_naming_rule() -> None:
    assert (
        full_reference(
            "dockerhub.example.com:5100", "com.example.namespace", "centos7-elasticsearch", "latest"
        )
        == "dockerhub.example.com:5100/com.example.namespace/centos7-elasticsearch:latest"
    )


def test_full_reference_allows_a_name_of_exactly_255_characters() -> None:
    server, namespace = "r.example:5000", "com.example"
    image = "a" * (255 - len(server) - len(namespace) - 2)
    reference = full_reference(server, namespace, image, "1")
    assert len(reference.rpartition(":")[0]) == 255


def test_full_reference_rejects_a_name_over_255_characters() -> None:
    server, namespace = "r.example:5000", "com.example"
    image = "a" * (256 - len(server) - len(namespace) - 2)
    with pytest.raises(UsageError) as info:
        full_reference(server, namespace, image, "1")
    assert "too long: 256 characters before the tag, at most 255" in info.value.user_message


@pytest.mark.parametrize(
    ("parts", "fragment"),
    [
        (("https://r.example", "com.example", "app", "1"), "registry server"),
        (("r.example", "Com", "app", "1"), "namespace `Com`"),
        (("r.example", "com.example", "App", "1"), "image name `App`"),
        (("r.example", "com.example", "app", ".1"), "tag `.1`"),
    ],
)
def test_full_reference_validates_every_part(parts: tuple[str, str, str, str], fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        full_reference(*parts)
    assert fragment in info.value.user_message


@pytest.mark.parametrize(
    ("component", "host"),
    [
        ("dockerhub.example.com:5100", True),
        ("dockerhub.example.com", True),
        ("registry:5000", True),
        ("localhost", True),
        ("127.0.0.1", True),
        ("[::1]:5000", True),
        ("Registry", True),  # the engine reads an upper-case component as a host
        ("team", False),
        ("com_example", False),
        ("local-host", False),
    ],
)
def test_the_one_rule_for_a_registry_host(component: str, host: bool) -> None:
    assert is_registry_host(component) is host
