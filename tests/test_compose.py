"""docker-compose.yml: valid against the Compose Specification, consistent with the code, and
safe by construction (secrets from the environment only, only Coachline's HTTP published).

Read as compose reads it (interpolated from an .env); docker is never run here.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from voice_server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose" / "compose-spec.json"
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)
# A secret the compose file may only take from the environment, never spell out.
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)$")


class MissingVariable(LookupError):
    pass


def _interpolate(value, env: dict[str, str]):
    """Compose's variable syntax: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?msg}, ${VAR?msg}."""
    if isinstance(value, dict):
        return {key: _interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"]
        unset = name not in env or (op is not None and op.startswith(":") and env[name] == "")
        if op and op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return env.get(name, "")

    return _REFERENCE.sub(one, value)


def _references(value) -> list[re.Match]:
    if isinstance(value, dict):
        return [m for item in value.values() for m in _references(item)]
    if isinstance(value, list):
        return [m for item in value for m in _references(item)]
    return (
        [m for m in _REFERENCE.finditer(value) if not m["escaped"]]
        if isinstance(value, str)
        else []
    )


def _compose_raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _example_env() -> dict[str, str]:
    """.env.example with its required secrets filled in the way its comments say."""
    from storage.keys import new_master_key

    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[name] = value
    return {
        **env,
        "POSTGRES_PASSWORD": "a1" * 32,
        "REDIS_PASSWORD": "b2" * 32,
        "COACHLINE_RECORDING_KEY": f"k1:{new_master_key()}",
    }


def _compose(env: dict[str, str] | None = None) -> dict:
    return _interpolate(_compose_raw(), _example_env() if env is None else env)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def _image_env() -> dict[str, str]:
    """The ENV the Dockerfile's runtime stage sets (COACHLINE_HOST, COACHLINE_PORT, ...)."""
    text = (ROOT / "Dockerfile").read_text().split("AS runtime", 1)[1].replace("\\\n", " ")
    return dict(re.findall(r"(COACHLINE_\w+)=(\S+)", text))


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(a + b for a, b in parts) == duration, duration
    return sum(float(amount) * units[unit] for amount, unit in parts)


def test_compose_file_is_valid_against_the_compose_specification():
    from jsonschema import Draft202012Validator

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    errors = sorted(Draft202012Validator(schema).iter_errors(_compose()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    assert set(_compose()["services"]) == {"coachline", "postgres", "redis"}


def test_compose_refuses_to_start_without_each_secret_and_spells_none_out():
    env = _example_env()
    required = {m["name"] for m in _references(_compose_raw()) if m["op"] in (":?", "?")}
    assert required == {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "COACHLINE_RECORDING_KEY"}
    for name in required:
        for missing in ({k: v for k, v in env.items() if k != name}, {**env, name: ""}):
            with pytest.raises(MissingVariable, match=name):
                _compose(missing)
    for service_name, service in _compose_raw()["services"].items():
        for name, raw in _environment(service).items():
            if _SECRET_NAME.search(name):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", raw), (
                    f"{service_name}.{name} is spelled out"
                )
            if "://" in raw and "@" in raw:  # a URL with credentials: its password is a variable
                password = raw.split("://", 1)[1].rsplit("@", 1)[0].partition(":")[2]
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", password), f"{service_name}.{name}"


def test_every_variable_compose_sets_for_coachline_is_a_setting_and_env_example_is_used():
    known = {"DATABASE_URL", "REDIS_URL"} | {
        f"COACHLINE_{name.upper()}" for name in Settings.model_fields
    }
    coachline = _compose_raw()["services"]["coachline"]
    unknown = sorted(set(_environment(coachline)) - known)
    assert not unknown, f"docker-compose.yml sets variables no setting reads: {unknown}"
    assert "env_file" not in coachline  # every variable it passes is listed, so checked here
    referenced = {m["name"] or m["bare"] for m in _references(_compose_raw())}
    documented = {
        line.lstrip("#").partition("=")[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"#?[A-Z_]+=", line)
    }
    assert documented <= referenced, (
        f".env.example names variables compose never reads: {documented - referenced}"
    )
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "COACHLINE_RECORDING_KEY"} <= documented


def test_compose_gives_coachline_a_valid_configuration_pointing_at_its_services():
    from storage.keys import load_keyring
    from voice_server.settings import load_settings

    compose = _compose()
    env = _example_env()
    settings = load_settings({**_image_env(), **_environment(compose["services"]["coachline"])})
    database = urlsplit(settings.database_url)
    postgres = _environment(compose["services"]["postgres"])
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert (
        database.username == postgres["POSTGRES_USER"]
        and database.path == f"/{postgres['POSTGRES_DB']}"
    )
    assert database.password == postgres["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    redis_url = urlsplit(settings.redis_url)
    assert (redis_url.hostname, redis_url.port) == ("redis", 6379)
    assert redis_url.password == _environment(compose["services"]["redis"])["REDIS_PASSWORD"]
    assert settings.event_bus_kind == "redis" and settings.host == "0.0.0.0"
    assert load_keyring(settings.recording_key.get_secret_value(), None) is not None
    stop_s = _seconds(compose["services"]["coachline"]["stop_grace_period"])
    assert stop_s > settings.shutdown_grace_s  # the drain finishes before compose kills it


def test_every_compose_service_is_health_checked_and_coachline_waits_for_healthy_ones():
    services = _compose()["services"]
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    port = _image_env()["COACHLINE_PORT"]
    assert f"http://127.0.0.1:{port}/ready" in " ".join(
        services["coachline"]["healthcheck"]["test"]
    )
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    redis_check = " ".join(services["redis"]["healthcheck"]["test"])
    assert "redis-cli ping" in redis_check and 'REDISCLI_AUTH="$REDIS_PASSWORD"' in redis_check
    # no password on a command line
    assert "--pass" not in redis_check and " -a " not in redis_check
    started = services["redis"].get("entrypoint", []) + services["redis"].get("command", [])
    assert "--requirepass" not in " ".join(started)  # the password goes in a private file
    depends = services["coachline"]["depends_on"]
    assert {name: d["condition"] for name, d in depends.items()} == {
        name: "service_healthy" for name in services if name != "coachline"
    }


def test_compose_publishes_only_coachline_http_on_loopback_by_default():
    services = _compose()["services"]
    for name, service in services.items():
        assert service.get("network_mode") != "host", name
        if name != "coachline":
            assert not service.get("ports"), f"{name} is published to the host"
    ports = services["coachline"]["ports"]
    assert len(ports) == 1
    host_ip, host_port, target = (
        ports[0].rsplit(":", 2) if ports[0].count(":") == 2 else ("", *ports[0].split(":"))
    )
    assert target == _image_env()["COACHLINE_PORT"]
    assert host_ip == "127.0.0.1" and host_port == "8080"


def test_compose_volumes_are_named_and_images_pinned_to_a_version():
    compose = _compose()
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount["source"] if isinstance(mount, dict) else mount.split(":")[0]
            assert isinstance(mount, str) or mount.get("type", "volume") == "volume", (
                f"{name}: {mount}"
            )
            assert source in declared, f"{name} mounts {source!r}, not a named volume"
            used.add(source)
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag and re.match(r"\d+(\.\d+)+", tag), (
            f"{name}: {image} is not pinned"
        )
    assert used == declared
    assert {"coachline-data", "postgres-data", "redis-data"} == declared
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert compose["services"]["coachline"]["image"] == f"coachline:{version}"
