"""The subscription commands on the service path: `subscribe`, `unsubscribe`, `subscriptions`, `can-i subscribe`.

Always about the channel the command was typed in (a command from no channel is refused), and Redis
only: nothing slow happens before the acknowledgement.  Syntax and the config come first
(:mod:`bot.core.subscription_requests`), then the policy, then the store; each answer is audited, and
a change is audited in the transaction that makes it.

A subscription without ``--registry`` covers every configured registry, so it needs the ``subscribe``
action on each of them; removing one needs what making it needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import redis

from bot.core import subscription_views
from bot.core.access import Decision, Policy
from bot.core.explain import can_i_text
from bot.core.grammar.spec import Command
from bot.core.replies import Reply, ReplyKind, Request
from bot.core.subscription_requests import registry_named, resolve
from bot.core.subscriptions import (
    AlreadySubscribed,
    OtherChannel,
    Subscription,
    SubscriptionStore,
    TooManySubscriptions,
)
from bot.core.text import Icon, Text, channel, code, icon, t
from workers.kernel.actions import SUBSCRIBE
from workers.kernel.config import Config

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """The service's audit (and metrics) of one command: :meth:`bot.core.service.Service._record`."""

    def __call__(self, request: Request, decision: str, rule: str, job_id: str = "",
                 pipeline: redis.client.Pipeline | None = None, outcome: str = "") -> None: ...


class Refused(Exception):
    """Raised inside the store's transaction when the person may not remove what it would: nothing is."""

    def __init__(self, subscription: Subscription, decision: Decision) -> None:
        super().__init__(decision.rule)
        self.subscription = subscription
        self.decision = decision


class SubscriptionCommands:
    def __init__(self, config: Config, policy: Policy, store: SubscriptionStore, record: Recorder,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._policy = policy
        self._store = store
        self._record = record
        self._clock = clock

    def handle(self, request: Request, command: Command) -> Reply:
        here = request.channel_id
        action = f"can-i {SUBSCRIBE}" if command.action == "can-i" else command.action
        if not here:
            self._record(request, "invalid", "no channel")
            return Reply(ReplyKind.USAGE_ERROR, subscription_views.no_channel_text(action))
        if command.action == "can-i":
            return self._can_i(request, here, registry_named(self._config, command.registry, "can-i"))
        if command.action == "subscriptions":
            return self._list(request, here)
        target = resolve(self._config, command) if command.glob is not None else None
        if command.action == "subscribe":
            assert target is not None  # the grammar requires IMAGE_GLOB
            decision = self.decide(request.user_id, here, SUBSCRIBE, target.registry)
            if not decision.allowed:
                return self._denied(request, decision, every_registry=target.registry is None)
            return self._subscribe(request, command, here, target.registry, target.image, decision.rule)
        # Whether the person may unsubscribe at all here comes before what this channel has.
        decision = self._policy.decide(request.user_id, command.action, channel=here)
        if not decision.allowed:
            return self._denied(request, decision)
        asked = command.subscription_id or (target.image if target is not None else "")
        return self._unsubscribe(request, here, asked, by_id=command.subscription_id is not None)

    def decide(self, user_id: str, here: str, action: str, registry: str | None) -> Decision:
        """``action`` on ``registry``, or on every configured registry when None (the first refusal, if any)."""
        names = [registry] if registry is not None else list(self._config.registries)
        decisions = [self._policy.decide(user_id, action, channel=here, registry=name) for name in names]
        return next((decision for decision in decisions if not decision.allowed), decisions[0])

    def _denied(self, request: Request, decision: Decision, *, every_registry: bool = False) -> Reply:
        log.info("command denied user=%s channel=%s rule=%r", request.user_id, request.channel_id, decision.rule)
        self._record(request, "denied", decision.rule)
        reason = decision.reason
        if every_registry and len(self._config.registries) > 1:
            reason += t("; without {}, a subscription covers every registry", code("--registry NAME"))
        return Reply(ReplyKind.DENIED, icon(Icon.DENIED) + reason)

    def _subscribe(self, request: Request, command: Command, here: str, registry: str | None, image: str,
                   rule: str) -> Reply:
        def audit(pipe: redis.client.Pipeline, made: list[Subscription]) -> None:
            self._record(request, "allowed", rule, pipeline=pipe,
                         outcome=subscription_views.subscription_outcome(made, "subscribed"))

        try:
            made = self._store.add(here, (image,), command.tag_globs, command.events, registry, request.user_id,
                                   self._clock(), on_write=audit)
        except AlreadySubscribed as exc:
            self._record(request, "answered", f"already subscribed as {exc.existing.id}")
            return Reply(ReplyKind.ANSWER, subscription_views.already_text(exc.existing))
        except TooManySubscriptions as exc:
            self._record(request, "answered", f"at most {exc.limit} subscriptions a channel")
            return Reply(ReplyKind.ANSWER, subscription_views.too_many_text(here, exc.limit))
        covered = [registry] if registry is not None else list(self._config.registries)
        quiet = [name for name in covered if not self._config.registries[name].events_enabled]
        return Reply(ReplyKind.ANSWER, subscription_views.subscribed_text(made, quiet))

    def _unsubscribe(self, request: Request, here: str, asked: str, *, by_id: bool) -> Reply:
        rules: list[str] = []

        def check(found: Sequence[Subscription]) -> None:
            """Removing needs what making needed: ``subscribe`` on each one's registry (or on every one)."""
            rules.clear()
            for subscription in found:
                decision = self.decide(request.user_id, here, "unsubscribe", subscription.registry)
                if not decision.allowed:
                    raise Refused(subscription, decision)
                rules.append(decision.rule)

        def audit(pipe: redis.client.Pipeline, removed: list[Subscription]) -> None:
            self._record(request, "allowed", rules[0] if rules else "", pipeline=pipe,
                         outcome=subscription_views.subscription_outcome(removed, "unsubscribed"))

        try:
            removed = self._store.remove(here, asked, before=check, on_write=audit)
        except OtherChannel as exc:
            self._record(request, "denied", f"{exc.subscription.id} is a subscription of another channel")
            return Reply(ReplyKind.DENIED, icon(Icon.DENIED) + subscription_views.other_channel_text(
                exc.subscription, here))
        except Refused as exc:
            self._record(request, "denied", exc.decision.rule)
            return Reply(ReplyKind.DENIED, icon(Icon.DENIED) + t("{} ({}): {}. Nothing was removed.", code(
                exc.subscription.id), subscription_views.describe(exc.subscription), exc.decision.reason))
        if removed:
            return Reply(ReplyKind.ANSWER, subscription_views.removed_text(removed))
        self._record(request, "answered", "no such subscription")
        routes_here = any(route.channel == here for route in self._config.routes) or \
            self._config.notify_channel == here
        return Reply(ReplyKind.ANSWER, subscription_views.nothing_removed_text(here, asked, by_id=by_id,
                                                                              routes_here=routes_here))

    def _list(self, request: Request, here: str) -> Reply:
        decision = self._policy.decide(request.user_id, "subscriptions", channel=here)
        if not decision.allowed:
            self._record(request, "denied", decision.rule)
            return Reply(ReplyKind.DENIED, icon(Icon.DENIED) + decision.reason)
        routes = [(index, route) for index, route in enumerate(self._config.routes) if route.channel == here]
        text = subscription_views.list_text(here, self._store.for_channel(here), routes,
                                            self._config.notify_channel == here)
        self._record(request, "answered", decision.rule)
        return Reply(ReplyKind.ANSWER, text)

    def _can_i(self, request: Request, here: str, registry: str | None) -> Reply:
        """``can-i subscribe [--registry NAME]``: about the channel it is typed in."""
        decision = self.decide(request.user_id, here, SUBSCRIBE, registry)
        self._record(request, "answered", decision.rule)
        target: Text = channel(here)
        target = t("{} to registry {}", target, code(registry)) if registry is not None else \
            t("{} to every registry", target)
        return Reply(ReplyKind.ANSWER, can_i_text(decision, SUBSCRIBE, target))
