"""Who exists in the generated demo data: the generator (jobs/datagen.py) and every client that
sends requests for known users (traffic, soak, benchmarks) follow this one rule."""

from __future__ import annotations

# The seed's example users; they exist in every generated data set so the README's curl works.
SEED_USER_IDS = ("4686-GEFRM", "U0001")


def user_id(index: int) -> str:
    """The id of the index-th generated user: U0000 is renamed to the seed's 4686-GEFRM (U0001 keeps its id)."""
    return SEED_USER_IDS[0] if index == 0 else f"U{index:04d}"
