"""Who may call the CDS Hooks endpoints: the client JWT check, built from settings."""

from __future__ import annotations

import logging

import redis
from sqlalchemy import Engine

from fhir_ai.security.cds_jwt import (
    CdsJwtVerifier,
    HttpJwksFetcher,
    KeyResolver,
    RedisReplayCache,
    ReplayCache,
    VerifiedClient,
    load_issuers,
)
from fhir_ai.settings import Settings
from fhir_ai.store.database import create_replay_engine
from fhir_ai.store.replay import SqlReplayCache

logger = logging.getLogger("fhir_ai.cds.auth")


class CdsAuthenticator:
    """Checks the ``Authorization`` header of a CDS Hooks call for its exact endpoint URL."""

    def __init__(self, verifier: CdsJwtVerifier | None) -> None:
        self.verifier = verifier

    @property
    def enabled(self) -> bool:
        """False only when ``FHIR_AI_CDS_AUTH=off``."""
        return self.verifier is not None

    def check(self, authorization: str | None, audience: str) -> VerifiedClient | None:
        """The verified client, None when auth is off; AuthenticationFailed (401) otherwise."""
        if self.verifier is None:
            return None
        return self.verifier.verify(authorization, audience)

    def close(self) -> None:
        """Release the verifier's connections (its replay cache's)."""
        if self.verifier is not None:
            self.verifier.close()


def build_authenticator(settings: Settings, engine: Engine) -> CdsAuthenticator:
    """The authenticator the settings ask for (required unless explicitly off)."""
    if settings.cds_auth == "off":
        logger.warning("CDS Hooks authentication is OFF (FHIR_AI_CDS_AUTH=off)")
        return CdsAuthenticator(None)
    issuers = load_issuers(settings.cds_issuers) if settings.cds_issuers else {}
    if not issuers:
        logger.warning("no trusted CDS clients configured (FHIR_AI_CDS_ISSUERS): calls get 401")
    verifier = CdsJwtVerifier(
        issuers,
        KeyResolver(HttpJwksFetcher()),
        replay_cache(settings, engine),
        leeway_s=settings.jwt_leeway_s,
    )
    return CdsAuthenticator(verifier)


def replay_cache(settings: Settings, engine: Engine) -> ReplayCache:
    """The jti replay cache: Redis when the broker is Redis, else the database (shared by
    every process of the server; on SQLite a file of its own, see
    :func:`~fhir_ai.store.database.create_replay_engine`)."""
    url = settings.broker_url or ""
    if url.startswith(("redis://", "rediss://")):
        return RedisReplayCache(redis.Redis.from_url(url, socket_timeout=2))
    if url.startswith("redis+socket://"):
        return RedisReplayCache(redis.Redis(unix_socket_path=url.removeprefix("redis+socket://")))
    replay_engine = create_replay_engine(settings, engine)
    return SqlReplayCache(replay_engine, owns_engine=replay_engine is not engine)
