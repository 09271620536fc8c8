"""Coming from other tools: functions named in configuration files (OAUTHBEARER, AWS MSK IAM, a user's
``error_cb``), ..."""

from __future__ import annotations

import logging
import logging.config
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logkafka import KafkaLogHandler

NOWHERE = "127.0.0.1:1"


@pytest.fixture
def made() -> Iterator[list[KafkaLogHandler]]:
    handlers: list[KafkaLogHandler] = []
    yield handlers
    for handler in handlers:
        handler.close()


@pytest.fixture
def auth_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An importable module of the user's with a token function, an error callback, and what they saw."""
    name = f"lk_auth_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import threading, time
        token_calls = []
        errors = []
        called = threading.Event()

        def token(config):
            token_calls.append(config)
            called.set()
            return "a-token", time.time() + 3600

        def on_error(err):
            errors.append(err)
            called.set()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    yield importlib.import_module(name)
    sys.modules.pop(name, None)


def wait_for(event: threading.Event, what: str) -> None:
    assert event.wait(20), f"{what} was never called"


class TestFunctionsNamedInConfiguration:
    def test_ext_oauth_cb_from_dictconfig_is_imported_and_called(self, auth_module: Any) -> None:
        """dictConfig leaves 'ext://' inside producer_config as text: the handler imports the function, and
        librdkafka calls it for an OAUTHBEARER token (the way AWS MSK IAM and Confluent Cloud OAuth are set up)."""
        config = {"version": 1, "disable_existing_loggers": False, "handlers": {"kafka": {
            "class": "logkafka.KafkaLogHandler", "bootstrap_servers": NOWHERE, "topic": "t", "flush_timeout": 0.5,
            "producer_config": {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
                                "oauth_cb": f"ext://{auth_module.__name__}.token"}}},
            "loggers": {"eco.oauth": {"handlers": ["kafka"], "level": "INFO", "propagate": False}}}
        logging.config.dictConfig(config)
        handler = logging.getLogger("eco.oauth").handlers[0]
        try:
            assert isinstance(handler, KafkaLogHandler)
            assert handler.settings.producer_config["oauth_cb"] is auth_module.token
            assert auth_module.token_calls == []  # not called while the settings were checked
            logging.getLogger("eco.oauth").info("hello")  # the handler's thread starts its producer
            wait_for(auth_module.called, "oauth_cb")
            assert auth_module.token_calls[0] is None or isinstance(auth_module.token_calls[0], str)
        finally:
            logging.getLogger("eco.oauth").handlers.clear()
            handler.close()

    @pytest.mark.parametrize("form", ["ext://{m}.token", "{m}:token", "{m}.token", " ext://{m}.token "])
    def test_forms_of_a_name(self, auth_module: Any, made: list[KafkaLogHandler], form: str) -> None:
        """'ext://module.function', 'module:function' and 'module.function' name the same function."""
        made.append(KafkaLogHandler(NOWHERE, "t", producer_config={
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
            "oauth_cb": form.format(m=auth_module.__name__)}))
        assert made[-1].settings.producer_config["oauth_cb"] is auth_module.token

    def test_a_submodule_not_imported_yet(self, made: list[KafkaLogHandler]) -> None:
        """A dotted name imports the packages on its way, as dictConfig's ext:// does."""
        sys.modules.pop("xml.dom.minidom", None)
        made.append(KafkaLogHandler(NOWHERE, "t", producer_config={
            "statistics.interval.ms": 60_000, "stats_cb": "ext://xml.dom.minidom.parseString"}))
        import xml.dom.minidom
        assert made[-1].settings.producer_config["stats_cb"] is xml.dom.minidom.parseString

    def test_from_the_environment(self, auth_module: Any, made: list[KafkaLogHandler],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
        """LOGKAFKA_PRODUCER_CONFIG can name the function too (a Kubernetes secret or config map)."""
        monkeypatch.setenv("LOGKAFKA_PRODUCER_CONFIG", "security.protocol=SASL_PLAINTEXT\n"
                           f"sasl.mechanisms=OAUTHBEARER\noauth_cb=ext://{auth_module.__name__}.token")
        made.append(KafkaLogHandler(NOWHERE, "t"))
        assert made[-1].settings.producer_config["oauth_cb"] is auth_module.token

    @pytest.mark.parametrize(("value", "expected"), [
        ("ext://lk_no_such_module_x.token",
         "producer_config['oauth_cb']: cannot import 'ext://lk_no_such_module_x.token': No module named "
         "'lk_no_such_module_x'"),
        ("ext://json.no_such_function", "producer_config['oauth_cb']: no 'json.no_such_function' (from "
         "'ext://json.no_such_function')"),
        ("json:dumps.nope", "producer_config['oauth_cb']: no 'json.dumps.nope' (from 'json:dumps.nope')"),
        ("token", "producer_config['oauth_cb']: expected a function named 'ext://package.module.function' or "
                  "'package.module:function', got 'token'"),
        ("ext://json.dumps()", "producer_config['oauth_cb']: expected a function named"),
        ("ext://json.JSONDecodeError.__name__", "producer_config['oauth_cb']: expected a function, got "
                                                "'JSONDecodeError'"),
    ])
    def test_a_name_that_does_not_resolve(self, value: str, expected: str) -> None:
        """A name that cannot be imported, or is not a function, is a ValueError naming the setting."""
        with pytest.raises(ValueError) as info:
            KafkaLogHandler(NOWHERE, "t", producer_config={"oauth_cb": value})
        assert str(info.value).startswith(expected), str(info.value)

    def test_text_settings_stay_text(self, made: list[KafkaLogHandler]) -> None:
        """Only settings whose values are functions are imported: others are librdkafka's text."""
        made.append(KafkaLogHandler(NOWHERE, "t", producer_config={"client.id": "json.dumps"}))
        assert made[-1].settings.producer_config["client.id"] == "json.dumps"

    def test_the_users_error_cb_is_called_after_logkafkas(self, auth_module: Any,
                                                           made: list[KafkaLogHandler]) -> None:
        """A user's error_cb sees the client's errors; logkafka still counts them and says the outage."""
        handler = KafkaLogHandler(NOWHERE, "t", flush_timeout=0.5,
                                  producer_config={"error_cb": f"ext://{auth_module.__name__}.on_error"})
        made.append(handler)
        log = logging.getLogger(f"eco.error_cb.{uuid.uuid4().hex[:6]}")
        log.propagate = False
        log.addHandler(handler)
        log.warning("nobody listens")
        wait_for(auth_module.called, "error_cb")
        deadline = time.monotonic() + 20
        while not handler.stats()["errors"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert auth_module.errors[0].code() is not None
        assert handler.stats()["errors"] >= 1, handler.stats()

    def test_an_error_cb_that_raises_is_said_and_ignored(self, made: list[KafkaLogHandler],
                                                          capfd: pytest.CaptureFixture[str]) -> None:
        """A failing error_cb of the user's never stops logkafka's own watch: it is said on stderr."""
        seen = threading.Event()

        def broken(err: Any) -> None:
            seen.set()
            raise RuntimeError("the user's callback broke")

        handler = KafkaLogHandler(NOWHERE, "t", flush_timeout=0.5, producer_config={"error_cb": broken})
        made.append(handler)
        log = logging.getLogger(f"eco.error_cb.broken.{uuid.uuid4().hex[:6]}")
        log.propagate = False
        log.addHandler(handler)
        log.warning("nobody listens")
        wait_for(seen, "error_cb")
        deadline = time.monotonic() + 10
        while "the user's callback broke" not in (err := capfd.readouterr().err) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "producer_config['error_cb'] raised RuntimeError: the user's callback broke" in err


ROOT = Path(__file__).resolve().parent.parent


class TestCloudSignIn:
    @pytest.fixture
    def aws_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """AWS credentials in the environment, as a pod's or a CI job's (made up: the token is signed locally)."""
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                     "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY123456")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret/EXAMPLEKEY/made-up")
        monkeypatch.setenv("AWS_REGION", "eu-west-1")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.syspath_prepend(str(ROOT))

    def test_the_msk_iam_token_is_a_signed_connect_request(self, aws_env: None) -> None:
        """The recipe's token is what MSK checks: a base64url SigV4-signed kafka-cluster:Connect request for
        the region, signed with the credentials found, expiring in the future."""
        import base64
        from urllib.parse import parse_qs, urlparse

        from examples.cloud_auth import msk_iam_token

        token, expires = msk_iam_token(None)
        url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
        query = parse_qs(url.query)
        assert url.hostname == "kafka.eu-west-1.amazonaws.com"
        assert query["Action"] == ["kafka-cluster:Connect"]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Credential"][0].startswith("AKIAEXAMPLEKEY123456/")
        assert "/eu-west-1/kafka-cluster/" in query["X-Amz-Credential"][0]
        assert time.time() < expires < time.time() + 24 * 3600

    def test_the_readme_recipe_from_yaml_signs_in_through_librdkafka(self, aws_env: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        """The README's YAML block, as written (the servers aside), makes a handler whose client asks the
        recipe's function for its token."""
        import yaml

        import examples.cloud_auth

        made: list[tuple[str, float]] = []
        asked = threading.Event()
        real = examples.cloud_auth.msk_iam_token

        def watched(config: Any) -> tuple[str, float]:
            made.append(real(config))
            asked.set()
            return made[-1]

        monkeypatch.setattr(examples.cloud_auth, "msk_iam_token", watched)
        text = readme_block("yaml", "ext://examples.cloud_auth.msk_iam_token")
        config = yaml.safe_load(text)
        kafka = config["handlers"]["kafka"]
        kafka["bootstrap_servers"] = NOWHERE
        kafka["flush_timeout"] = 0.5
        logging.config.dictConfig(config)
        log = logging.getLogger(next(iter(config["loggers"])))
        handler = next(h for h in log.handlers if isinstance(h, KafkaLogHandler))
        try:
            assert handler.settings.producer_config["oauth_cb"] is watched
            log.warning("signing in")
            wait_for(asked, "the MSK IAM oauth_cb")
            assert made[0][0] and made[0][1] > time.time()
        finally:
            log.handlers.clear()
            handler.close()


def readme_block(lang: str, containing: str) -> str:
    """The README's fenced ``lang`` block that contains ``containing``."""
    text = (ROOT / "README.md").read_text()
    for block in text.split(f"```{lang}\n")[1:]:
        body = block.split("```", 1)[0]
        if containing in body:
            return body
    raise AssertionError(f"no {lang} block with {containing!r} in README.md")


def test_the_readme_confluent_cloud_properties_read_the_secret_from_its_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made: list[KafkaLogHandler]) -> None:
    """The README's properties file, as written (the secret's path aside): the client settings come from
    LOGKAFKA_PRODUCER_CONFIG_FILE, the password from the mounted file, and librdkafka accepts them."""
    text = readme_block("properties", "sasl.mechanisms=PLAIN")
    secret = tmp_path / "api-secret"
    secret.write_text("s3cr3t-from-the-mount\n")
    path = tmp_path / "client.properties"
    path.write_text(text.replace("/var/run/secrets/confluent/api-secret", str(secret)))
    monkeypatch.setenv("LOGKAFKA_PRODUCER_CONFIG_FILE", str(path))
    made.append(KafkaLogHandler(NOWHERE, "t"))
    config = made[-1].settings.producer_config
    assert (config["security.protocol"], config["sasl.mechanisms"]) == ("SASL_SSL", "PLAIN")
    assert config["sasl.username"] == "ABCDEFGHIJKLMNOP"
    assert config["sasl.password"] == "s3cr3t-from-the-mount"
    assert "s3cr3t" not in repr(made[-1].stats())
