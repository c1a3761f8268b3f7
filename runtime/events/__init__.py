"""Runtime events: typed facts on path-like topics, filters, and the in-process exchange.

``types`` defines the events and their dict form, ``filters`` the containerd-style filter
language, ``exchange`` the fan-out with bounded per-subscriber queues. Pure asyncio, no I/O.
"""

from runtime.events.exchange import Exchange, SubscriberDropped, Subscription
from runtime.events.filters import Filter, parse, parse_any
from runtime.events.types import EVENT_TYPES, Envelope, Event, event_from_dict, event_to_dict

__all__ = [
    "EVENT_TYPES",
    "Envelope",
    "Event",
    "Exchange",
    "Filter",
    "SubscriberDropped",
    "Subscription",
    "event_from_dict",
    "event_to_dict",
    "parse",
    "parse_any",
]
