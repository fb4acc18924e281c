"""What ``subscribe``, ``unsubscribe`` and ``subscriptions`` answer, as structured text.

Only wording: the store decides, this module says it.  Every answer is for the person who typed
the command alone (the front ends show it ephemerally), and says what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.core.registry_views import TEXT_BUDGET
from bot.core.subscriptions import Subscription
from bot.core.text import Text, channel, code, codes, command, join, lines, t, user
from workers.kernel.config.model import EVENT_KINDS, NotificationRoute
from workers.kernel.times import iso_time

_MORE_RESERVE = 200
"""Room kept under :data:`TEXT_BUDGET` for the static routes and the line saying how many were left out."""


def _events(events: Iterable[str]) -> str:
    kinds = [kind for kind in EVENT_KINDS if kind in set(events)]
    return " and ".join({"push": "pushes", "delete": "deletes"}[kind] for kind in kinds)


def _scope(images: Sequence[str], tags: Sequence[str], events: Iterable[str], registries: Text) -> Text:
    """``pushes of `centos7-*`, every tag, every registry``."""
    tag_words = t("every tag") if tuple(tags) == ("*",) else t("tags {}", codes(tags))
    return t("{} of {}, {}, {}", _events(events), codes(images), tag_words, registries)


def describe(subscription: Subscription) -> Text:
    """What one subscription announces."""
    registry = t("registry {}", code(subscription.registry)) if subscription.registry else t("every registry")
    return _scope(subscription.images, subscription.tags, subscription.events, registry)


def _route(route: NotificationRoute) -> Text:
    registries = t("every registry") if tuple(route.registries) == ("*",) else t("registries {}",
                                                                                  codes(route.registries))
    return _scope(route.images, route.tags, route.events, registries)


def _line(subscription: Subscription) -> Text:
    return t("• {} — {} — by {}, {}", code(subscription.id), describe(subscription), user(subscription.who),
             iso_time(subscription.at))


def no_channel_text(action: str) -> Text:
    return t("{} is about a channel's announcements, and this command came from no channel: type it in the "
             "channel the announcements are for. Nothing changed.", code(action))


def subscribed_text(subscription: Subscription, quiet_registries: Sequence[str]) -> Text:
    """Subscribed; ``quiet_registries``: registries it covers that send regops no notifications."""
    text = t("Subscribed {} as {}: {}. Remove it with {}; {} lists what is announced here.",
             channel(subscription.channel), code(subscription.id), describe(subscription),
             command(f"unsubscribe {subscription.id}"), command("subscriptions"))
    if quiet_registries:
        text += t(" Note: {} {} no events token (`events_token_env` or `events_token_file`), so regops hears "
                  "there only of the changes it makes itself.", codes(quiet_registries),
                  "has" if len(quiet_registries) == 1 else "have")
    return text


def already_text(existing: Subscription) -> Text:
    return t("{} already has this subscription: {} ({}). Nothing changed.", channel(existing.channel),
             code(existing.id), describe(existing))


def too_many_text(channel_id: str, limit: int) -> Text:
    return t("{} has {} subscriptions already, the most one channel may have. Nothing changed: remove one with "
             "{} (see {}), or make one glob cover more, like `centos7-*` or `team/**`.", channel(channel_id), limit,
             command("unsubscribe ID"), command("subscriptions"))


def other_channel_text(subscription: Subscription, here: str) -> Text:
    return t("{} is a subscription of {}, not of {}: only a channel's own subscriptions are removed there. "
             "Type {} in {}. Nothing changed.", code(subscription.id), channel(subscription.channel), channel(here),
             command(f"unsubscribe {subscription.id}"), channel(subscription.channel))


def removed_text(removed: Sequence[Subscription]) -> Text:
    if len(removed) == 1:
        return t("Removed {} from {}: {}.", code(removed[0].id), channel(removed[0].channel), describe(removed[0]))
    return lines([t("Removed {} subscriptions from {}:", len(removed), channel(removed[0].channel)),
                  *(t("• {} — {}", code(item.id), describe(item)) for item in removed)])


def nothing_removed_text(channel_id: str, asked: str, *, by_id: bool, routes_here: bool) -> Text:
    """Nothing matched ``asked`` (an id, or an image glob as kept)."""
    if by_id:
        text = t("There is no subscription {} (it may have been removed already). Nothing changed.", code(asked))
    else:
        text = t("{} has no subscription with the image glob {}. Nothing changed.", channel(channel_id), code(asked))
        if asked[:1] == "s" and asked[1:].isdigit():
            text += t(" Subscription ids start with a capital S, like {}.", code(asked.upper()))
    if routes_here:
        text += t(" Static routes of the config are changed in the config, by an operator.")
    return text + t(" {} lists what is announced here.", command("subscriptions"))


def list_text(channel_id: str, subscriptions: Sequence[Subscription],
              routes: Sequence[tuple[int, NotificationRoute]], every_push: bool) -> Text:
    """This channel's subscriptions (as many as fit, then how many more), then the config's routes to it."""
    static = [t("• {}: {}", code(f"notifications.routes[{index}]"), _route(route)) for index, route in routes]
    if every_push:
        static.append(t("• {}: every push, of every image and tag, in every registry", code("notify_channel")))
    if not subscriptions and not static:
        return t("Nothing is announced in {}: it has no subscription, and no route of the config posts here. "
                 "Subscribe it with {}.", channel(channel_id), command("subscribe IMAGE_GLOB"))
    out = [t("*Announced in {}*", channel(channel_id))]
    if subscriptions:
        out.append(t("Subscriptions ({}), removed with {}:", len(subscriptions), command("unsubscribe ID")))
        budget = TEXT_BUDGET - _MORE_RESERVE - sum(len(line.plain()) + 1 for line in static)
        used = len(out[0].plain()) + len(out[1].plain())
        shown = 0
        for subscription in subscriptions:
            line = _line(subscription)
            if used + len(line.plain()) + 1 > budget:
                break
            out.append(line)
            used += len(line.plain()) + 1
            shown += 1
        if shown < len(subscriptions):
            out.append(t("… and {} more.", len(subscriptions) - shown))
    else:
        out.append(t("No subscriptions (add one with {}).", command("subscribe IMAGE_GLOB")))
    if static:
        out.append(t("From the config (an operator changes these):"))
        out.extend(static)
    return lines(out)


def subscription_outcome(subscriptions: Sequence[Subscription], verb: str) -> str:
    """The audit entry's outcome: ``subscribed S3: …`` in plain words."""
    return join("; ", (t("{} {}: {}", verb, item.id, describe(item)) for item in subscriptions)).plain()
