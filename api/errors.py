"""What the serving layer raises; the routes turn each into its HTTP answer (503 and 404)."""

from __future__ import annotations


class ServiceUnavailable(Exception):
    """A dependency of /predict is not ready; the message says which and why."""


class UnknownUser(Exception):
    """The online store has no features for this user."""
