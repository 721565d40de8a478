"""Every default in one place. Each setting says why it exists.

Settings come from ``MEDIAGEN_*`` environment variables (or a ``.env`` file beside the app).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .netguard import parse_allow


class ModelPrice(BaseModel):
    """What one model costs in USD: per image by ``size/quality`` (or size, or quality), or per
    second of video by resolution. The key ``*`` matches anything not listed."""

    model_config = ConfigDict(extra="forbid")

    per_image: dict[str, NonNegativeFloat] = {}
    per_second: dict[str, NonNegativeFloat] = {}

    @model_validator(mode="after")
    def _one_unit(self) -> ModelPrice:
        if bool(self.per_image) == bool(self.per_second):
            raise ValueError("give either per_image or per_second prices (not both, not neither)")
        return self


class Settings(BaseSettings):
    # Inputs stay out of error messages: a mistyped secret must not be printed back.
    model_config = SettingsConfigDict(
        env_prefix="MEDIAGEN_", env_file=".env", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    data_dir: Path = Field(
        Path("./data"),
        description="Holds the SQLite database and locally stored media; one folder to back up.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; overrides the SQLite file in the data dir (PostgreSQL to scale out).",
    )
    db_pool_size: int = Field(
        5,
        ge=1,
        le=100,
        description="Connections to a database server each process keeps open. No connection is held while a "
        "provider, storage or a person is waited on, so a few serve a worker's 64 polls or an app's pages.",
    )
    db_max_overflow: int = Field(
        5,
        ge=0,
        le=100,
        description="Extra connections a process opens in a burst (many jobs ending at once) and closes after; "
        "MEDIAGEN_DB_POOL_SIZE + this is the most one process holds.",
    )
    db_pool_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="How long a thread waits for a free connection before its request fails: transactions take "
        "milliseconds, so a wait this long means the process needs a bigger pool.",
    )
    db_prepared_statements: bool = Field(
        False,
        description="Let the PostgreSQL driver keep prepared statements on the server (about 0.2 ms saved per "
        "statement). Off, so the studio works through PgBouncer in transaction mode; turn on when connecting "
        "to PostgreSQL directly or through a pooler that tracks them (PgBouncer 1.21+ with "
        "max_prepared_statements).",
    )
    storage: Literal["local", "s3"] = Field(
        "local",
        description="Where media is kept: `local` is a folder the app itself serves at /cdn; `s3` a bucket.",
    )
    public_base_url: str | None = Field(
        None,
        description="Base of asset URLs (a CDN for S3); absolute, because browsers fetch it directly. Local "
        "storage follows the address and port the running app serves (its /cdn); S3 without it uses presigned URLs.",
    )
    s3_bucket: str | None = Field(None, description="The bucket media goes to (required with storage=s3).")
    s3_prefix: str = Field("", description="Key prefix inside the bucket, so one bucket can serve several apps.")
    s3_region: str | None = Field(None, description="Bucket region; the AWS default chain decides when unset.")
    s3_endpoint_url: str | None = Field(None, description="For S3-compatible stores (MinIO, R2, moto).")
    presign_ttl_s: int = Field(
        3600,
        gt=0,
        description="Lifetime of presigned S3 URLs, and of signed local media URLs when sign-in is on; made "
        "when shown, never stored. Clamped to 7 days.",
    )
    cors_origins: list[str] = Field(
        ["*"],
        description="Origins the bucket's CORS rule lets GET/HEAD media (JSON list in the environment).",
    )
    s3_multipart_threshold_mb: int = Field(
        8, ge=5, description="Uploads above this size go multipart (S3's smallest part is 5 MiB)."
    )
    s3_max_concurrency: int = Field(
        8,
        ge=1,
        le=32,
        description="Parts uploaded at once. Media uploads read each part from disk as it is sent, so this "
        "bounds connections, not memory.",
    )
    poll_interval_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="How often a worker looks for due video jobs and does its housekeeping.",
    )
    image_deadline_s: int = Field(
        300,
        gt=0,
        description="An image job still unfinished after this long is marked timed out.",
    )
    video_deadline_s: int = Field(
        1800,
        gt=0,
        description="A video job still unfinished after this long is marked timed out.",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Delete finished jobs older than this many days with their files (starred or collected "
        "ones are kept). Off when unset.",
    )
    retention_dry_run: bool = Field(
        True,
        description="Only report what the retention policy would delete (System page); set to false to let "
        "the workers delete.",
    )
    roles: dict[str, Literal["creator", "reviewer", "admin"]] = Field(
        {},
        description="Who may use the studio once sign-in is on, as JSON: e-mail addresses or domains to a role, "
        '{"ana@example.com": "admin", "example.com": "creator"}; an address wins over its domain.',
    )
    admin_contact: str | None = Field(
        None, description="Whom signed-in users without a role are told to ask for access (a name or address)."
    )
    link_secret: SecretStr | None = Field(
        None,
        description="Signs the studio's links (zip downloads; media URLs when sign-in is on); set the same value "
        "on every app server behind one address. Unset: a random key kept in the data dir (link-secret).",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Let the studio run without sign-in on an address other than 127.0.0.1 (anyone who "
        "reaches it is then an admin).",
    )
    prices: dict[str, ModelPrice] = Field(
        {},
        description="Price table for estimated cost per model, as JSON: "
        '{"gpt-image-1": {"per_image": {"1024x1024/high": 0.17, "*": 0.04}}, "sora-2": {"per_second": {"*": 0.1}}}.',
    )
    model_aliases: dict[str, str] = Field(
        {},
        description='Other names for models served here, as JSON: {"dall-e-3": "local-image"}, so scripts written '
        "for another service's model names work unchanged; resolved by the API, the CLI and the studio, and listed "
        "by `/v1/models` and `python -m mediagen models`.",
    )
    model_deadlines_s: dict[str, int] = Field(
        {},
        description='Per-model deadlines overriding the per-kind ones, as JSON: {"sora-2": 3600}.',
    )
    lease_s: int = Field(
        600,
        gt=0,
        description="How long a worker owns a claimed job; a crashed worker's jobs free up after it. "
        "Longer than a download may take, so a slow copy is not started twice.",
    )
    poll_concurrency: int = Field(
        64,
        ge=1,
        le=256,
        description="Provider polls one worker has in flight at once; bounds threads and the load on a "
        "provider while keeping a thousand jobs on a 2 s cadence.",
    )
    download_concurrency: int = Field(
        4,
        ge=1,
        le=64,
        description="Finished results one worker copies into storage at once, beside its polling.",
    )
    image_concurrency: int = Field(
        8,
        ge=1,
        le=64,
        description="Image generations one process runs at once (studio pages, API and CLI callers alike); "
        "more wait their turn. Remote image calls mostly wait on the provider, so a few threads serve many.",
    )
    image_backlog: int = Field(
        32,
        ge=0,
        le=10_000,
        description="Image generations that may wait for a free slot; beyond that new ones are refused "
        "at once (HTTP 429 with Retry-After) rather than queueing without bound.",
    )
    worker_in_app: bool = Field(
        True,
        description="Run a worker (polling, copying, housekeeping) inside each app server process; set to "
        "false where separate `python -m mediagen worker` processes do that work.",
    )
    max_prompt_chars: int = Field(
        4000,
        ge=1,
        description="Longest prompt accepted; longer ones are refused before anything is stored.",
    )
    max_media_bytes: int = Field(
        512 * 1024 * 1024,
        gt=0,
        description="Largest single media file ingested; stops runaway downloads.",
    )
    download_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Total time allowed to copy one result out of a provider.",
    )

    # Provider calls. Each provider's own key, base URL and options live with the provider
    # (``providers/*.py``, read from its own variables); these apply to every one of them.
    provider_timeout_s: float = Field(
        60.0, gt=0, description="Read timeout of one provider HTTP call (image calls can be slow)."
    )
    provider_max_retries: int = Field(
        2, ge=0, le=6, description="Retries of a failed provider call (rate limits, 5xx, network)."
    )

    # Outbound calls and webhooks.
    outbound_allow: list[str] = Field(
        [],
        description="Hosts or CIDRs that outbound fetches and webhooks may reach although not public "
        "(JSON list; for local fakes and tests). Everything else must resolve to a public address.",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Standard Webhooks signing secret (whsec_ + base64); jobs may carry a webhook URL only "
        "when it is set.",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=60, description="How long one webhook delivery may take.")
    webhook_retry_window_s: int = Field(
        24 * 3600,
        ge=60,
        description="How long a failing webhook keeps being retried (exponential backoff with jitter).",
    )
    webhook_retry_base_s: float = Field(
        5.0, gt=0, description="First webhook retry delay; each later one doubles, up to an hour."
    )

    @field_validator("outbound_allow")
    @classmethod
    def _hosts_or_cidrs(cls, value: list[str]) -> list[str]:
        parse_allow(value)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        import base64
        import binascii

        raw = value.get_secret_value().removeprefix("whsec_")
        try:
            if len(base64.b64decode(raw, validate=True)) < 24:
                raise ValueError("MEDIAGEN_WEBHOOK_SECRET must hold at least 24 random bytes")
        except binascii.Error:
            raise ValueError("MEDIAGEN_WEBHOOK_SECRET must be whsec_ followed by base64") from None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        # st.image/st.video treat a relative URL as a local file path, so it must be absolute.
        if not value:  # an empty variable means unset
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s):// URL, e.g. http://127.0.0.1:8501/cdn")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("storage=s3 needs MEDIAGEN_S3_BUCKET")
        return self

    @property
    def presign_ttl(self) -> int:
        return min(self.presign_ttl_s, 7 * 24 * 3600)  # S3's maximum for SigV4

    @model_validator(mode="after")
    def _lease_outlasts_download(self) -> Settings:
        if self.lease_s <= self.download_timeout_s:
            raise ValueError(
                f"lease_s ({self.lease_s}) must be longer than download_timeout_s "
                f"({self.download_timeout_s:g}), or a slow download could be claimed twice"
            )
        return self

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def upload_dir(self) -> Path:
        """Local storage writes each upload here, then renames it into the media folder: beside the
        media folder (one filesystem, so the rename is atomic) but outside what ``/cdn`` serves, so
        a process killed mid-upload never leaves a half file where browsers can fetch it."""
        return self.data_dir / "uploads"

    @property
    def spool_dir(self) -> Path:
        """Downloads wait here between provider and storage: on disk beside the data, never a
        RAM-backed /tmp."""
        return self.data_dir / "spool"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mediagen.db').resolve()}"

    def deadline_for(self, kind: str, model: str | None = None) -> int:
        if model and model in self.model_deadlines_s:
            return self.model_deadlines_s[model]
        return self.image_deadline_s if kind == "image" else self.video_deadline_s
