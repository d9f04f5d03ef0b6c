import pytest

from voice_server.settings import SettingsError, load_settings


def test_defaults_are_safe_for_local_use():
    settings = load_settings({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.database_url is None and settings.redis_url is None
    assert settings.event_bus_kind == "memory"


def test_conventional_url_names_are_read():
    settings = load_settings({"DATABASE_URL": "postgresql://u@db/x", "REDIS_URL": "redis://r:6379/0"})
    assert settings.database_url == "postgresql://u@db/x"
    assert settings.event_bus_kind == "redis"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COACHLINE_PORT": "eighty"}, "COACHLINE_PORT: .*valid integer.*'eighty'"),
        ({"COACHLINE_PORT": "70000"}, "COACHLINE_PORT: .*65535"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL: .*postgresql://"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL: .*redis://"),
        ({"COACHLINE_LOG_LEVEL": "loud"}, "COACHLINE_LOG_LEVEL"),
        ({"COACHLINE_EVENT_BUS": "kafka"}, "COACHLINE_EVENT_BUS"),
        ({"COACHLINE_DB_POOL_MIN": "20", "COACHLINE_DB_POOL_MAX": "5"}, "must not exceed"),
    ],
)
def test_invalid_values_are_refused_with_a_clear_message(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_settings_are_read_once_and_frozen():
    settings = load_settings({})
    with pytest.raises(Exception):
        settings.port = 1  # type: ignore[misc]
