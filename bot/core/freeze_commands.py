"""The freeze commands on the service path: `freeze`, `unfreeze`, `freezes` and `can-i freeze`.

Redis only, nothing slow before the acknowledgement.  Syntax comes first (the grammar), then what
IMAGE_GLOB names in the config (as for subscriptions: :func:`bot.core.subscription_requests.resolve`),
then the policy (``freeze`` on the registry, or on every registry when none is named; ``unfreeze`` needs
what starting that freeze needed), then the write: the freeze, its audit entry and its notice in the
notify channel's outbox go in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import redis

from bot.core import freeze_views, outbox
from bot.core.access import Decision, Policy
from bot.core.announcements import Announcement
from bot.core.explain import can_i_text
from bot.core.grammar.freezes import until_time
from bot.core.grammar.spec import Command
from bot.core.replies import Reply, ReplyKind, Request
from bot.core.subscription_commands import Recorder
from bot.core.subscription_requests import registry_named, resolve
from bot.core.text import Icon, Text, code, command, icon, t
from workers.kernel.actions import FREEZE
from workers.kernel.config import Config
from workers.kernel.config.patterns import matches_any
from workers.kernel.freezes import KEEP_ENDED_SECONDS, Freeze, listed, read_freezes
from workers.kernel.guards import Scope
from workers.kernel.keys import FREEZE_IDS_KEY, FREEZES_KEY

log = logging.getLogger(__name__)


class FreezeCommands:
    def __init__(self, config: Config, policy: Policy, connection: redis.Redis, record: Recorder,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._policy = policy
        self._redis = connection
        self._record = record
        self._clock = clock

    def handle(self, request: Request, command: Command) -> Reply:
        if command.action == "can-i":
            registry = registry_named(self._config, command.registry, "can-i")
            decision = self.decide(request, FREEZE, [registry] if registry else list(self._config.registries))
            self._record(request, "answered", decision.rule)
            target: Text = t("registry {}", code(registry)) if registry else t("every registry")
            return Reply(ReplyKind.ANSWER, can_i_text(decision, FREEZE, target))
        if command.action == "freezes":
            return self._list(request)
        if command.action == "freeze":
            return self._freeze(request, command)
        return self._unfreeze(request, command.freeze_id or "")

    def whoami_note(self) -> Text:
        """A line for ``whoami``: how many freezes (and open windows of the config) apply now."""
        now = self._clock()
        active = [freeze for freeze in read_freezes(self._redis) if freeze.applies(now)]
        windows = [window for window in self._config.guards.freeze_windows if window.active(now) is not None]
        if not active and not windows:
            return t("\nNo change freeze applies now ({} lists the freezes and the config's windows).",
                     command("freezes"))
        return t("\nChange freezes now: {} from Slack and {} window(s) of the config; while one covers a target, "
                 "push, promote, rollback and delete of it are refused. See {}.", len(active), len(windows),
                 command("freezes"))

    def decide(self, request: Request, action: str, registries: Sequence[str]) -> Decision:
        """``action`` on each of ``registries`` (the first refusal, if any)."""
        decisions = [self._policy.decide(request.user_id, action, channel=request.channel_id, registry=name)
                     for name in registries] or [self._policy.decide(request.user_id, action,
                                                                     channel=request.channel_id)]
        return next((decision for decision in decisions if not decision.allowed), decisions[0])

    def _denied(self, request: Request, decision: Decision) -> Reply:
        log.info("command denied user=%s channel=%s rule=%r", request.user_id, request.channel_id, decision.rule)
        self._record(request, "denied", decision.rule)
        return Reply(ReplyKind.DENIED, icon(Icon.DENIED) + decision.reason)

    def _covered(self, scope: Scope) -> list[str]:
        """The configured registries a freeze's scope covers."""
        return [name for name in self._config.registries if matches_any(name, scope.registries)]

    def _freeze(self, request: Request, command: Command) -> Reply:
        target = resolve(self._config, command)
        now = self._clock()
        ends = now + command.duration if command.duration is not None else until_time(command.until or "", now)
        scope = Scope(images=(target.image,), tags=command.tag_globs or ("*",),
                      registries=(target.registry,) if target.registry else ("*",))
        decision = self.decide(request, FREEZE, self._covered(scope))
        if not decision.allowed:
            return self._denied(request, decision)
        freeze = Freeze(id=f"F{int(self._redis.incr(FREEZE_IDS_KEY))}", scope=scope, starts=now, ends=ends,
                        reason=command.reason or "", who=request.user_id)
        stale = [f.id for f in read_freezes(self._redis) if f.effective_end < now - KEEP_ENDED_SECONDS]
        pipe = self._redis.pipeline()
        pipe.hset(FREEZES_KEY, freeze.id, freeze.to_json())
        if stale:
            pipe.hdel(FREEZES_KEY, *stale)
        self._announce(pipe, freeze_views.started_notice(freeze), request.user_id, now)
        self._record(request, "allowed", decision.rule, pipeline=pipe, outcome=f"started {freeze.id}")
        pipe.execute()
        log.info("freeze started id=%s user=%s images=%s tags=%s registries=%s ends=%.0f", freeze.id,
                 request.user_id, ",".join(scope.images), ",".join(scope.tags), ",".join(scope.registries), ends)
        return Reply(ReplyKind.ANSWER, freeze_views.started_text(freeze, self._config.notify_channel))

    def _unfreeze(self, request: Request, freeze_id: str) -> Reply:
        # Whether the person may end freezes at all comes before what is kept.
        decision = self._policy.decide(request.user_id, "unfreeze", channel=request.channel_id)
        if not decision.allowed:
            return self._denied(request, decision)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(FREEZES_KEY)
                    raw = pipe.hget(FREEZES_KEY, freeze_id)
                    now = self._clock()
                    freeze = Freeze.from_json(raw) if raw is not None else None
                    if freeze is None or freeze.effective_end <= now:
                        pipe.unwatch()
                        self._record(request, "answered", "no such freeze")
                        return Reply(ReplyKind.ANSWER, freeze_views.not_found_text(freeze_id))
                    decision = self.decide(request, "unfreeze", self._covered(freeze.scope))
                    if not decision.allowed:
                        pipe.unwatch()
                        return self._denied(request, decision)
                    ended = replace(freeze, ended_at=now, ended_by=request.user_id)
                    pipe.multi()
                    pipe.hset(FREEZES_KEY, freeze_id, ended.to_json())
                    self._announce(pipe, freeze_views.ended_notice(ended), request.user_id, now)
                    self._record(request, "allowed", decision.rule, pipeline=pipe, outcome=f"ended {freeze_id}")
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        log.info("freeze ended id=%s user=%s", freeze_id, request.user_id)
        return Reply(ReplyKind.ANSWER, freeze_views.ended_text(ended))

    def _announce(self, pipe: redis.client.Pipeline, text: str, who: str, now: float) -> None:
        if self._config.notify_channel:
            outbox.put(pipe, self._config.notify_channel, Announcement.notice(text, now, who), now)

    def _list(self, request: Request) -> Reply:
        decision = self._policy.decide(request.user_id, "freezes", channel=request.channel_id)
        if not decision.allowed:
            return self._denied(request, decision)
        now = self._clock()
        text = freeze_views.list_text(listed(read_freezes(self._redis), now), self._config.guards.freeze_windows, now)
        self._record(request, "answered", decision.rule)
        return Reply(ReplyKind.ANSWER, text)
