"""`vigil dev up|status|down` with the real launcher: idempotent, and leaves nothing behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams import launcher

pytestmark = pytest.mark.services


def vigil(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def ports(exports: str) -> tuple[int, int]:
    kafka = re.search(r"VIGIL_KAFKA_BOOTSTRAP=127\.0\.0\.1:(\d+)", exports)
    redis = re.search(r"VIGIL_REDIS_URL=redis://127\.0\.0\.1:(\d+)/0", exports)
    assert kafka and redis, exports
    return int(kafka.group(1)), int(redis.group(1))


def test_dev_up_twice_then_down_leaves_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_KAFKA")}
    env.pop("VIGIL_REDIS_URL", None)
    env["VIGIL_DEV_DIR"] = str(tmp_path / "dev")

    first = vigil("dev", "up", env=env)
    assert first.returncode == 0, first.stderr
    kafka_port, redis_port = ports(first.stdout)
    try:
        state = launcher.LocalServices.from_json((tmp_path / "dev" / "services.json").read_text())
        pids = (state.kafka.pid, state.redis.pid)
        assert launcher.port_open(kafka_port) and launcher.port_open(redis_port)

        second = vigil("dev", "up", env=env)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        assert ports(second.stdout) == (kafka_port, redis_port)

        status = vigil("dev", "status", env=env)
        assert status.returncode == 0 and ports(status.stdout) == (kafka_port, redis_port)

        configured = {
            **env,
            "VIGIL_DEV_DIR": str(tmp_path / "other"),
            "VIGIL_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
            "VIGIL_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        }
        reuse = vigil("dev", "up", env=configured)
        assert reuse.returncode == 0 and "starting nothing" in reuse.stderr
        assert ports(reuse.stdout) == (kafka_port, redis_port)
        assert not (tmp_path / "other" / "services.json").exists()
    finally:
        down = vigil("dev", "down", env=env)
    assert down.returncode == 0, down.stderr

    for pid in pids:
        assert not _running(pid), f"process {pid} still running"
    assert not launcher.port_open(kafka_port)
    assert not launcher.port_open(redis_port)
    assert not any((tmp_path / "dev").glob("run-*")), "data left behind"
    assert vigil("dev", "status", env=env).returncode == 1
    again = vigil("dev", "down", env=env)
    assert again.returncode == 0 and "nothing was running" in again.stderr


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_commands_fail_with_one_line_reason_when_kafka_is_absent() -> None:
    env = {**os.environ, "VIGIL_KAFKA_BOOTSTRAP": f"127.0.0.1:{launcher.free_port()}"}
    result = vigil("worker", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil: Kafka at"), result.stderr
