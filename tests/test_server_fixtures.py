"""The test harness's own logic: a daemon that never comes up is stopped, not left running, and its log is quoted.

A unit test of ``server_fixtures.start_daemon`` with a stand-in command (a process that writes a line and never
binds, ignoring SIGTERM): the real daemon's start is what every daemon test already exercises.
"""

from __future__ import annotations

import os
import sys

import pytest
import server_fixtures

# Stays up, never binds, says that it got SIGTERM and carries on: only SIGKILL ends it.
NEVER_BINDS = ("import os, signal, time\n"
               "signal.signal(signal.SIGTERM, lambda *_: print('got SIGTERM, staying', flush=True))\n"
               "open('pid', 'w').write(str(os.getpid()))\n"
               "print('loading, never binding', flush=True)\n"
               "while True: time.sleep(0.1)\n")


def test_a_daemon_that_never_answers_is_terminated_then_killed_and_its_log_quoted(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(server_fixtures, "daemon_command", lambda *_, **__: [sys.executable, "-c", NEVER_BINDS])
    with pytest.raises(AssertionError) as failure:
        server_fixtures.start_daemon(tmp_path, timeout=8.0)  # ample for the handler to be set
    message = str(failure.value)
    assert "did not answer within 8.0s" in message
    assert "loading, never binding" in message  # the log's tail
    assert "got SIGTERM, staying" in message  # SIGTERM came first…
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):  # …and SIGKILL after it: the process is gone (and reaped)
        os.kill(pid, 0)


def test_a_daemon_that_exits_early_is_reported_with_its_exit_code_and_log(tmp_path, monkeypatch) -> None:
    script = "print('bad option --nope', flush=True); raise SystemExit(2)"
    monkeypatch.setattr(server_fixtures, "daemon_command", lambda *_, **__: [sys.executable, "-c", script])
    with pytest.raises(AssertionError) as failure:
        server_fixtures.start_daemon(tmp_path, timeout=30.0)
    message = str(failure.value)
    assert "daemon exited with 2" in message and "bad option --nope" in message
