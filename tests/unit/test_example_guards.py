"""The example config's commented `guards:` section is a valid one once uncommented."""

from __future__ import annotations

from pathlib import Path

import yaml

from workers.kernel.config import parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "regops.example.yaml"


def test_the_commented_guards_example_parses_once_uncommented() -> None:
    text = EXAMPLE.read_text()
    start = text.index("# guards:")
    block = "\n".join(line[2:] for line in text[start:].splitlines() if line.startswith("# "))
    document = yaml.safe_load(text)
    document.update(yaml.safe_load(block))
    guards = parse_config(document).guards
    assert [rule.scope.tags for rule in guards.immutable] == [("v[0-9]*", "[0-9]*.[0-9]*.[0-9]*")]
    [window] = guards.freeze_windows
    assert (window.name, window.cron, window.duration, window.timezone) == ("weekend", "0 18 * * FRI", 62 * 3600,
                                                                            "Europe/Paris")
    assert guards.promotion_paths[0].stages == ("dev", "staging", "prod")
