"""The library's log events through the binding (``shoal_set_log_callback``)."""

from __future__ import annotations

import logging
import uuid

import shoal


def test_library_events_reach_python_logging(app, shoal_server, caplog):
    """``shoal_set_log_callback`` through the binding: the core's events arrive in the
    ``shoal.<category>`` loggers at their level, and set_level filters them in the library."""
    with caplog.at_level(logging.INFO, logger="shoal"):
        user = app.login(shoal.Credentials.password(f"log-{uuid.uuid4().hex[:8]}", "pw", register=True), shoal_server.auth_url)
    logins = [r for r in caplog.records if r.name == "shoal.app" and "logged in" in r.getMessage()]
    assert logins and logins[0].levelno == logging.INFO, [r.name for r in caplog.records]
    assert user.identity in logins[0].getMessage()
    caplog.clear()
    shoal.log.set_level(logging.ERROR)
    try:
        with caplog.at_level(logging.DEBUG, logger="shoal"):
            user.logout()
        assert not [r for r in caplog.records if r.name.startswith("shoal.") and r.levelno < logging.ERROR]
    finally:
        shoal.log.set_level(logging.INFO)
