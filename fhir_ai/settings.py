"""The one settings object, read from ``FHIR_AI_*`` environment variables."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration shared by the web app, the CLI and the Celery workers.

    Every field can be set with an environment variable named ``FHIR_AI_<FIELD>``
    (for example ``FHIR_AI_DATABASE_URL``).
    """

    model_config = SettingsConfigDict(env_prefix="FHIR_AI_", frozen=True, extra="ignore")

    data_dir: Path = Field(default=Path("./var"), description="Where embedded data lives.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is SQLite at <data_dir>/fhir-ai.sqlite3.",
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description="Database connections pooled per engine and process: at least the "
        "threads that use the database at once (web request threads, a threads-pool "
        "worker's --concurrency), or the pool opens and closes a connection per use.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL; default is an embedded Redis under <data_dir>.",
    )
    result_backend_url: str | None = Field(
        default=None, description="Celery result backend; default is the broker URL."
    )
    public_base_url: str | None = Field(
        default=None,
        description=(
            "Public root URL of the server (https://host[:port][/prefix]) as clients see it: "
            "JWT audiences and absolute links are built from it; default from the request."
        ),
    )
    cds_auth: Literal["required", "off"] = Field(
        default="required", description="Check the CDS client's JWT on every CDS Hooks call."
    )
    cds_issuers: Path | None = Field(
        default=None, description="JSON file of trusted CDS clients: iss -> JWKS file or jku."
    )
    cds_result_window_days: int = Field(
        default=30, ge=1, description="How far back CDS cards look for AI results."
    )
    report_link_ttl_s: int = Field(
        default=1800,
        ge=60,
        le=86400,
        description="How long the signed 'Open the AI report' link of a CDS card stays valid.",
    )
    report_link_key: SecretStr | None = Field(
        default=None,
        description="Key signing report links (same on every web process); default: a "
        "random key kept in <data_dir>/report-link.key.",
    )
    cds_allow_http_fhir_server: bool = Field(
        default=False,
        description=(
            "Accept a plain-http fhirServer with fhirAuthorization (the access token would "
            "travel in clear): local development only."
        ),
    )
    audit: bool = Field(
        default=True, description="Record every FHIR access and hook call as an AuditEvent."
    )
    jwt_leeway_s: int = Field(default=30, ge=0, le=300)
    fhir_auth: Literal["required", "off"] = Field(
        default="required",
        description="Require a SMART on FHIR bearer access token on the /fhir API.",
    )
    fhir_issuers: Path | None = Field(
        default=None,
        description="JSON file of trusted SMART token issuers: iss -> JWKS file or jku.",
    )
    fhir_audience: str | None = Field(
        default=None,
        description="Expected access token aud; default <public_base_url or request root>/fhir.",
    )
    smart_token_endpoint: str | None = Field(
        default=None, description="The authorization server's token endpoint (advertised)."
    )
    smart_authorization_endpoint: str | None = Field(
        default=None,
        description="The authorization server's authorize endpoint (advertised).",
    )
    cors_origins: tuple[str, ...] = Field(
        default=(), description="Browser origins allowed to call the API (CORS)."
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, description="Largest request body.")
    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    auto_migrate: bool = Field(
        default=True, description="Apply database migrations when the server starts."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    shared_data_dir: Path = Field(
        default=Path("../shared/data"), description="Where the project's shared data sets live."
    )
    sql_echo: bool = False
    terminology_dir: Path | None = Field(
        default=None,
        description="Code systems, value sets and NLP/imaging rules; default: the "
        "terminology package installed with fhir-ai.",
    )
    object_store_dir: Path | None = Field(
        default=None,
        description="Where DICOM instances and other blobs live (default <data_dir>/objects).",
    )
    analyze_on_store: bool = Field(
        default=True, description="STOW-RS starts the AI analysis of each stored study."
    )
    extract_on_create: bool = Field(
        default=True, description="Creating a DocumentReference starts its NLP extraction."
    )
    max_dicom_bytes: int = Field(
        default=512 * 1024 * 1024, description="Largest STOW-RS request body."
    )
    dicom_patient_id_system: str = Field(
        default="urn:fhir-ai:dicom:patient-id",
        description="Identifier system of Patients created from a DICOM PatientID.",
    )
    dicom_patient_id_issuers: dict[str, str] = Field(
        default_factory=dict,
        description="Issuer of Patient ID (0010,0021) -> FHIR identifier system of the "
        "PatientIDs it issues (JSON); other PatientIDs use dicom_patient_id_system.",
    )
    dicom_timezone: str | None = Field(
        default=None,
        description="IANA time zone of the modalities' local DICOM dates and times (e.g. "
        "Europe/Paris), used when an instance has no TimezoneOffsetFromUTC; unset: such "
        "studies get a start date without a time.",
    )
    imaging_batch_size: int = Field(default=16, ge=1, le=512)
    imaging_batch_wait_ms: int = Field(default=50, ge=0, le=5000)
    worker_threads: int = Field(
        default=1, ge=1, description="torch threads per CPU worker process."
    )
    task_time_limit_s: int = Field(
        default=600, ge=2, description="Hard time limit of a worker task (soft: 90% of it)."
    )
    broker_visibility_timeout_s: int = Field(
        default=3600,
        ge=3,
        description="Redis redelivers a reserved, unacked job after this long (a lost worker's "
        "job); must exceed task_time_limit_s.",
    )
    job_resend_after_s: int = Field(
        default=900,
        ge=1,
        description="`fhir-ai jobs resend --stale` and the workers' sweep (at start, then this "
        "often) re-send Tasks still requested after this long (their message may have been "
        "lost), and the follow-ups of completed Tasks that could not be queued.",
    )
    worker_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve worker Prometheus metrics on this port."
    )
    worker_heartbeat_dir: Path | None = Field(
        default=None, description="Worker heartbeat files (default <data_dir>/heartbeats)."
    )
    subscription_retry_s: float = Field(
        default=5.0, gt=0, description="First retry delay of a failed Subscription delivery."
    )
    subscription_max_retries: int = Field(default=8, ge=0, le=20)
    subscription_timeout_s: float = Field(default=10.0, gt=0)
    writeback_fhir_base_url: str | None = Field(
        default=None,
        description="Write finished AI reports back to this FHIR server (off when unset).",
    )
    writeback_client_config: Path | None = Field(
        default=None,
        description="SMART Backend Services client configuration (JSON) for the write-back.",
    )
    nlp_max_text_bytes: int = Field(
        default=1_000_000, ge=1, description="Largest document text the NLP pipeline analyses."
    )

    @model_validator(mode="after")
    def _visibility_exceeds_time_limit(self) -> Settings:
        if self.broker_visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError(
                "broker_visibility_timeout_s must exceed task_time_limit_s, or a running job "
                "is delivered again while it runs"
            )
        return self

    @field_validator("dicom_timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    def terminology_path(self) -> Path:
        """The terminology folder: as configured, else the installed ``terminology`` package."""
        if self.terminology_dir is not None:
            return self.terminology_dir
        return Path(str(resources.files("terminology")))

    def objects_dir(self) -> Path:
        """Where the content-addressed object store keeps its files."""
        return (self.object_store_dir or self.data_dir / "objects").resolve()

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'fhir-ai.sqlite3').resolve()}"

    def heartbeat_dir(self) -> Path:
        """Where workers keep their heartbeat files."""
        return (self.worker_heartbeat_dir or self.data_dir / "heartbeats").resolve()

    def embedded_broker(self) -> bool:
        """True when no broker is configured and the server must start its own."""
        return self.broker_url is None
