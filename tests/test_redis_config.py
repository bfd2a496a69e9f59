"""Where the Redis connection comes from: REDIS_URL or REDIS_HOST/PORT/PASSWORD, read only by
config.py; the password stays out of repr, the lineage and messages."""

from __future__ import annotations

import pytest

from rfbackup.config import Settings
from rfbackup.errors import ConfigError
from rfbackup.sources.redis.target import RedisTarget


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RFBACKUP_CONFIG", "/nonexistent/rfbackup.toml")
    return Settings()


def test_url_with_acl_user_password_db_and_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    t = settings(
        monkeypatch, REDIS_URL="rediss://backup:p%40ss@cache.internal:6380/2"
    ).redis_target()
    assert (t.host, t.port, t.username, t.db, t.tls) == ("cache.internal", 6380, "backup", 2, True)
    assert t.password is not None and t.password.get_secret_value() == "p@ss"
    assert t.lineage == "cache.internal:6380/2"
    assert "p@ss" not in repr(t) and "p@ss" not in t.display


def test_host_port_password_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, REDIS_HOST="redis", REDIS_PORT="6390", REDIS_PASSWORD="pw1")
    t = s.redis_target()
    assert (t.host, t.port, t.username, t.db, t.tls) == ("redis", 6390, None, None, False)
    assert t.password is not None and t.password.get_secret_value() == "pw1"
    assert t.lineage == "redis:6390/all" and "pw1" not in repr(t)


def test_url_without_password_takes_redis_password(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, REDIS_URL="redis://r:6379", REDIS_PASSWORD="pw2")
    t = s.redis_target()
    assert t.password is not None and t.password.get_secret_value() == "pw2"


@pytest.mark.parametrize(
    "url", ["http://x:6379", "redis://", "redis://h:notaport", "redis://h:6379/zero"]
)
def test_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        RedisTarget.from_url(url)
