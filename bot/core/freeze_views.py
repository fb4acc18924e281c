"""What ``freeze``, ``unfreeze`` and ``freezes`` answer, and what the notify channel is told, as text.

Only wording.  Answers go to the person who typed the command alone; the notices
(:func:`started_notice`, :func:`ended_notice`) are plain text for the notify channel's outbox.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.guard_rails import until
from bot.core.registry_views import TEXT_BUDGET
from bot.core.text import Text, code, codes, command, lines, plain, t, user, user_input
from workers.kernel.freezes import Freeze
from workers.kernel.guards import FreezeWindow, Scope
from workers.kernel.times import format_duration


def _plain_scope(scope: Scope) -> str:
    """``centos7-* (tags prod, v*) in every registry``: a scope as plain text, for the notices."""
    tags = "" if tuple(scope.tags) == ("*",) else f" (tags {', '.join(scope.tags)})"
    where = "every registry" if tuple(scope.registries) == ("*",) else f"registry {', '.join(scope.registries)}"
    return f"{', '.join(scope.images)}{tags} in {where}"


def describe(scope: Scope) -> Text:
    """``images `centos7-*`, every tag, every registry``."""
    tags = t("every tag") if tuple(scope.tags) == ("*",) else t("tags {}", codes(scope.tags))
    where = t("every registry") if tuple(scope.registries) == ("*",) else t("registry {}", codes(scope.registries))
    return t("images {}, {}, {}", codes(scope.images), tags, where)


def started_text(freeze: Freeze, notify_channel: str | None) -> Text:
    told = t(" Announced in the notify channel.") if notify_channel else Text()
    return t("Freeze {} started: {}, until {} ({}). While it lasts, push, promote, rollback and delete of them are "
             "refused. End it early with {}.{}", code(freeze.id), describe(freeze.scope), code(until(freeze.ends)),
             format_duration(freeze.ends - freeze.starts), command(f"unfreeze {freeze.id}"), told)


def ended_text(freeze: Freeze) -> Text:
    return t("Freeze {} ended ({}); it was {}.", code(freeze.id), describe(freeze.scope), user_input(freeze.reason))


def not_found_text(freeze_id: str) -> Text:
    return t("There is no active or scheduled freeze {}: {} lists them. Nothing changed.", code(freeze_id),
             command("freezes"))


def started_notice(freeze: Freeze) -> str:
    return (f"Freeze {freeze.id} started: {_plain_scope(freeze.scope)}, until {until(freeze.ends)} — "
            f"{freeze.reason}")


def ended_notice(freeze: Freeze) -> str:
    return f"Freeze {freeze.id} ended early: {_plain_scope(freeze.scope)} (it was: {freeze.reason})"


def _freeze_line(freeze: Freeze, now: float) -> Text:
    state = t("active") if freeze.applies(now) else t("scheduled from {}", code(until(freeze.starts)))
    return t("• {} — {} — {}, until {} — by {}: {}", code(freeze.id), describe(freeze.scope), state,
             code(until(freeze.effective_end)), user(freeze.who), user_input(freeze.reason))


def _window_line(index: int, window: FreezeWindow, now: float) -> Text:
    span = window.active(now)
    zone = Text() if window.timezone == "UTC" else t(", time zone {}", code(window.timezone))
    if span is not None:
        when = t("*open now*, until {}", code(until(span[1])))
    else:
        start = window.next_start(now)
        when = t("next from {} until {}", code(until(start)), code(until(start + window.duration)))
    return t("• window {} (guards.freeze_windows[{}]) — {} — cron {} for {}{} — {} — {}", code(window.name), index,
             describe(window.scope), code(window.cron), format_duration(window.duration), zone, when,
             plain(window.reason))


def list_text(freezes: Sequence[Freeze], windows: Sequence[FreezeWindow], now: float) -> Text:
    """The active and scheduled freezes, then the config's windows with their current or next span."""
    out: list[Text] = []
    if freezes:
        out.append(t("*Freezes* ({} active or scheduled):", len(freezes)))
        used = 0
        for index, freeze in enumerate(freezes):
            line = _freeze_line(freeze, now)
            used += len(str(line))
            if used > TEXT_BUDGET // 2:
                out.append(t("… and {} more", len(freezes) - index))
                break
            out.append(line)
    else:
        out.append(t("No freeze started from Slack is active or scheduled."))
    if windows:
        out.append(t("*Freeze windows of the config* (changed in the config):"))
        out += [_window_line(index, window, now) for index, window in enumerate(windows)]
    else:
        out.append(t("The config has no freeze windows."))
    out.append(t("Start one with {}.", command('freeze IMAGE_GLOB --for 2h --reason "…"')))
    return lines(out)
