"""Adversarial texts and globs: how long parsing, redaction and glob matching take at their limits.

Every text is as long as regops reads (``MAX_TEXT_LENGTH``), in the shapes that make naive
parsers slow: one long word, runs of ``=``, dashes, quotes, backslashes, ``@``, many options,
many credentials.  Each is parsed, redacted for the audit trail and checked for credentials;
the median of several runs is what counts.  Then the same for the image globs of a role,
matched against 255-character image names, the longest Docker allows, and the one-megabyte
text a Slack stand-in can send (refused unread).  Each figure is the median of several runs.  Run it from the repository root:

    .venv/bin/python -m tests.benchmarks.grammar [--runs N] [--budget-ms MS]

It prints a table and exits 1 when any case takes longer than the budget (default 50 ms: a
command must be answered well within Slack's 3 seconds, with the rest of the work still to do).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable

from bot.core.errors import CommandError
from bot.core.grammar.credentials import audit_text, redact, refuse_credentials
from bot.core.grammar.parser import parse
from bot.core.grammar.spec import MAX_TEXT_LENGTH
from workers.kernel.config.patterns import glob_match

N = MAX_TEXT_LENGTH


def _fill(prefix: str, unit: str, suffix: str = "") -> str:
    """``prefix`` + ``unit`` repeated + ``suffix``, exactly :data:`N` characters."""
    room = N - len(prefix) - len(suffix)
    return prefix + (unit * (room // len(unit) + 1))[:room] + suffix


def texts() -> dict[str, str]:
    rng = random.Random(9)
    noise = "".join(rng.choice("ab-=\"'`\\\u2014\u201c\u201d\u00a0\u200b :/@p") for _ in range(N))
    return {
        "one word": _fill("", "a"),
        "push + one long word": _fill("push ", "a"),
        "=": _fill("", "="),
        "--x= chain + -p": _fill("", "--x=", " -pSECRET"),
        "dashes": _fill("", "-"),
        "em dashes": _fill("", "\u2014"),
        'double quotes': _fill("", '"'),
        "single quotes": _fill("", "'"),
        "backslashes": _fill("", "\\"),
        "backticks": _fill("", "`"),
        "@": _fill("", "@"),
        "u:p@ chain": _fill("", "u:p@"),
        "image a-a-a…!": _fill("push ", "a-", "! 1"),
        "image a_a_a…": _fill("push ", "a_", " 1"),
        "image a/a/a…": _fill("push ", "a/", " 1"),
        "tag A.A.A…": _fill("push app ", "A."),
        "source a/a…": _fill("push app 1 --source ", "a/"),
        "source a:a:…": _fill("push app 1 --source ", "a:"),
        "source hex": _fill("push app 1 --source ", "0"),
        "many words": _fill("", "a "),
        "many -p": _fill("", "-p "),
        "many --token": _fill("push a b ", "--token "),
        "many TOKEN=": _fill("push a b ", "TOKEN= "),
        'open quote + -p': _fill('push a b -p "', "x "),
        "many --host": _fill("push a b ", "--host "),
        "many unknown options": _fill("push a b ", "--hots "),
        "login + words": _fill("login ", "x "),
        "can-i + login words": _fill("can-i ", "login "),
        "help + long topic": _fill("help ", "x"),
        "zero-width spaces": _fill("push a b ", "\u200b"),
        "noise": noise,
    }


def _median(function: Callable[[str], object], text: str, runs: int) -> float:
    """The median of ``runs`` timings, in ms: on a shared machine the slowest run is the scheduler's."""
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        try:
            function(text)
        except CommandError:
            pass
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def _audit(text: str) -> str:
    return audit_text(text, 300)


GLOBS = ("centos7-*", "web/**", "*-*-*-*-*-*-*-*x", "**-*-**-*-**-*x", "**/**/**/**/x", "a/**/b/**/c/**/*",
         "*a*a*a*a*a*a*b", "[a-z]*[0-9]?*x")
NAMES = ("-" * 255, "a" * 255, "/".join(["a"] * 128)[:255], ("a-" * 128)[:255], ("a-/" * 85)[:255])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--budget-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    over = []
    print(f"texts of {N} characters, median of {args.runs} runs (ms):")
    print(f"  {'shape':<26} {'parse':>8} {'audit':>8} {'redact':>8} {'creds':>8}")
    for name, text in texts().items():
        assert len(text) == N, (name, len(text))
        row = [_median(parse, text, args.runs), _median(_audit, text, args.runs),
               _median(redact, text, args.runs), _median(refuse_credentials, text, args.runs)]
        over += [name for value in row if value > args.budget_ms]
        print(f"  {name:<26} " + " ".join(f"{value:8.2f}" for value in row))
    huge = "a" * 1_048_576
    row = [_median(parse, huge, args.runs), _median(_audit, huge, args.runs)]
    over += ["1 MB word" for value in row if value > args.budget_ms]
    print(f"  {'1 MB word (refused)':<26} " + " ".join(f"{value:8.2f}" for value in row))
    print(f"globs against 255-character names, slowest name, median of {args.runs} runs (ms):")
    for pattern in GLOBS:
        glob_match("", pattern)  # compiled once, as the policy's cache does
        worst = max(_median(lambda name, p=pattern: glob_match(name, p), name, args.runs) for name in NAMES)
        over += [pattern] if worst > args.budget_ms else []
        print(f"  {pattern:<26} {worst:8.3f}")
    if over:
        print(f"over the {args.budget_ms:g} ms budget: {', '.join(dict.fromkeys(over))}")
        return 1
    print(f"every case within {args.budget_ms:g} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
