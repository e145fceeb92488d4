"""Dispatcher leadership (api.leader) on PostgreSQL and SQLite: one leader at a time; when it lets go
(or its process dies, see tests/test_faults.py fault 5) another takes over."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from api.leader import Leadership, leadership
from pipelines.db import get_engine, normalise_url


def test_one_leader_at_a_time_and_a_successor_when_it_goes(db_url):
    get_engine(db_url)
    url = make_url(normalise_url(db_url))
    a, b = Leadership(url), Leadership(url)  # as two processes would hold them
    try:
        with a.lead() as leading_a:
            assert leading_a
        with b.lead() as leading_b:
            assert not leading_b
        with a.lead() as leading_a:  # the leader stays the leader
            assert leading_a
        a.resign()
        with b.lead() as leading_b:
            assert leading_b
        with a.lead() as leading_a:
            assert not leading_a
    finally:
        a.resign()
        b.resign()


def test_dispatchers_of_one_process_share_its_leadership(db_url):
    engine = get_engine(db_url)
    assert leadership(engine) is leadership(engine)
