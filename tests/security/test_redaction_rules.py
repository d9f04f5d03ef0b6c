"""The log and config redaction rules on their own, shape by shape, without a server.
test_secrets_never_printed.py shows them on the node's real output."""

from __future__ import annotations

from pydantic import SecretStr

from voice_server.redaction import (
    MIN_SECRET_CHARS,
    REDACTED,
    masked_setting,
    masked_settings,
    redact,
    redact_value,
    register_secrets,
    settings_secrets,
)


def test_credential_shapes_are_redacted_whoever_wrote_the_line():
    cases = {
        "Authorization: Bearer abc.def": f"Authorization: {REDACTED}",
        "proxy-authorization=Basic Zm9v": f"proxy-authorization={REDACTED}",
        "X-Twilio-Signature: c2lnbmF0dXJl": f"X-Twilio-Signature: {REDACTED}",
        "cookie: s=1; t=2": f"cookie: {REDACTED}",
        "b'Authorization SEKRET' refused": f"b'Authorization {REDACTED}' refused",
        'b"Cookie:SEKRET"': f'b"Cookie {REDACTED}"',
        "sent bearer tok_123, then": f"sent bearer {REDACTED}, then",
        "GET /x?access_token=q1&a=b HTTP/1.1": f"GET /x?access_token={REDACTED}&a=b HTTP/1.1",
        "/live?page=2&SIGNATURE=s1#f": f"/live?page=2&SIGNATURE={REDACTED}#f",
        "/a;jwt=j1 next": f"/a;jwt={REDACTED} next",
        "postgresql://app:pw1@db/x": f"postgresql://app:{REDACTED}@db/x",
        "redis://:pw2@cache:6379/0": f"redis://:{REDACTED}@cache:6379/0",
    }
    for line, expected in cases.items():
        assert redact(line) == expected, line
    for plain in ("tokens left: 3", "the keyboard", "?page=2&sort=name", "https://example.com/a"):
        assert redact(plain) == plain


def test_registered_secrets_are_redacted_anywhere_longest_first():
    register_secrets(["shrt", None, "", "Zx9-secret-Qw", "Zx9-secret-Qw-longer"])
    assert len("shrt") < MIN_SECRET_CHARS == 6
    assert redact("shrt stays") == "shrt stays"  # too short: it would blank out words
    assert redact("k=Zx9-secret-Qw-longer!") == f"k={REDACTED}!"
    assert redact("[Zx9-secret-Qw]") == f"[{REDACTED}]"
    register_secrets(["sixsix"])
    assert redact("a sixsix b") == f"a {REDACTED} b"


def test_values_inside_containers_are_redacted_others_kept():
    value = {"h": "Authorization: Bearer x", "l": ["bearer y", ("bearer z",)], "n": 3, "x": None}
    assert redact_value(value) == {
        "h": f"Authorization: {REDACTED}",
        "l": [f"bearer {REDACTED}", [f"bearer {REDACTED}"]],
        "n": 3,
        "x": None,
    }


def test_settings_show_whether_a_secret_is_set_never_its_value():
    settings = [
        ("twilio_auth_token", SecretStr("tw-Hf7sD1-token")),
        ("vonage_signature_secret", SecretStr("")),
        ("api_key", "plain-key-value"),
        ("recording_key_file", "/etc/coachline/key"),
        ("monkey", "banana"),
        ("database_url", "postgresql://app:db-pw-9@db/x"),
        ("sip_peers", "10.0.0.0/8,pbx:peer-pw-7@192.168.1.0/24"),
        ("port", 8080),
    ]
    assert masked_settings(settings) == [
        ("twilio_auth_token", "<set>"),
        ("vonage_signature_secret", "<unset>"),
        ("api_key", "<set>"),
        ("recording_key_file", "/etc/coachline/key"),  # a path to a secret is shown
        ("monkey", "banana"),
        ("database_url", f"postgresql://app:{REDACTED}@db/x"),
        ("sip_peers", f"10.0.0.0/8,pbx:{REDACTED}@192.168.1.0/24"),
        ("port", "8080"),
    ]
    assert masked_setting("session_secret", "") == "<unset>"
    assert set(settings_secrets(settings)) >= {
        "tw-Hf7sD1-token",
        "plain-key-value",
        "db-pw-9",
        "peer-pw-7",
    }
    assert "banana" not in set(settings_secrets(settings))
    assert "/etc/coachline/key" not in set(settings_secrets(settings))


def test_every_secret_in_a_multi_valued_secret_setting_is_registered():
    secrets = set(settings_secrets([("sip_peers_secret", SecretStr("pbx:p-one1,\nother:p-two2"))]))
    assert {"p-one1", "p-two2"} <= secrets
    url = [("redis_url", "redis://:p%40ss-word@cache/0")]
    assert {"p@ss-word", "p%40ss-word"} <= set(settings_secrets(url))
    assert "pa:ss-word1" in set(settings_secrets([("x_secret", SecretStr("pbx:pa:ss-word1"))]))


def test_a_malformed_url_setting_is_shown_redacted_and_never_breaks_the_listing():
    settings = [("webhook_url", "http://user:pw-x1@[::1")]  # urlsplit refuses the bracket
    assert list(settings_secrets(settings)) == []
    assert masked_settings(settings) == [("webhook_url", f"http://user:{REDACTED}@[::1")]


def test_user_at_host_values_are_peer_passwords_only_in_sip_peers():
    # A caller id "sip:agent@host" names no password: shown as it is, nothing registered.
    settings = [("twilio_caller_id", "sip:agent@pbx.example.com"), ("sip_realm", "a:b@c")]
    assert masked_settings(settings) == settings
    assert list(settings_secrets(settings)) == []
