"""Every knob of Vigil, read from `VIGIL_*` environment variables.

Defaults work against the local launcher (`vigil dev up`) so a developer can start a
worker with nothing set; production sets the bootstrap, Redis URL and prefix.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    model_dir: Path = Path("model-store")
    model_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="where torch models run; auto = CUDA when available"
    )
    torch_threads: int = Field(
        default=1,
        ge=1,
        description="CPU threads of torch models; 1 leaves a core to the event loop and Redis",
    )
    image_max_batch: int = Field(default=32, ge=1, description="images per model call")
    image_max_wait_ms: float = Field(
        default=20.0, ge=0, description="longest an image waits for others to fill a batch"
    )
    image_max_queue: int = Field(
        default=256, ge=1, description="images waiting for the model before intake waits"
    )
    image_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1, description="largest image file")
    model_poll_s: float = Field(
        default=5.0, gt=0, description="how often the worker looks for a newer model"
    )
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    api_token: str | None = None

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: Path | None = None

    kafka_session_timeout_s: float = Field(
        default=10.0,
        ge=6,
        description="a worker that stops heartbeating loses its partitions after this long",
    )

    topic_partitions: int = Field(default=12, ge=1)
    topic_replication: int = Field(default=1, ge=1)

    fetch_max_wait_ms: int = Field(
        default=20,
        ge=0,
        description="longest the broker holds a fetch that has less than fetch_min_bytes",
    )
    fetch_min_bytes: int = Field(
        default=65_536,
        ge=1,
        description="a fetch returns before fetch_max_wait_ms only with this much data",
    )

    batch_max: int = Field(
        default=2000,
        ge=1,
        description="most vitals events per batch; a batch is what arrived while the last one "
        "was handled, so a backlog gives large batches that re-score each patient once",
    )
    notes_imaging_batch_max: int = Field(
        default=500,
        ge=1,
        description="most notes or imaging events per batch: they are held in memory (images "
        "decoded) and scored by a model whose time grows with the batch",
    )

    alert_policy: Path | None = Field(
        default=None, description="YAML alert policy; default streams/alert_policy.yaml"
    )
    news2_lookback_h: float = Field(default=4.0, gt=0, le=24)
    patient_ttl_h: float = Field(
        default=48.0, gt=0, description="Redis keys of a patient with no event expire after this"
    )
    history_h: float = Field(default=24.0, gt=0)
    max_message_bytes: int = 1024 * 1024

    @property
    def app_id(self) -> str:
        """Consumer group and Faust app id; carries the prefix so tenants never share one."""
        return f"{self.topic_prefix}vigil-worker"

    @property
    def redis_namespace(self) -> str:
        return f"vigil:{self.topic_prefix}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
