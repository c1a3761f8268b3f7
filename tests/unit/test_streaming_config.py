"""The [streaming] config section and its flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri import config
from cri.daemon import build_config, parse_args
from runtime.errors import InvalidArgument


def test_defaults_are_loopback_and_any_port() -> None:
    cfg = config.Config().validate().streaming
    assert (cfg.address, cfg.port, cfg.tls) == ("127.0.0.1", 0, False)
    assert cfg.token_timeout == 60.0


def test_section_parses_durations_and_tls() -> None:
    cfg = config.from_mapping(
        {"streaming": {"address": "::1", "port": 10010, "idle_timeout": "5m",
                       "tls_self_signed": True, "token_timeout": "30s"}}
    ).streaming  # fmt: skip
    assert (cfg.address, cfg.port, cfg.idle_timeout, cfg.tls) == ("::1", 10010, 300.0, True)
    assert cfg.token_timeout == 30.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"port": 70000}, "streaming.port"),
        ({"address": "[::1]"}, "streaming.address"),
        ({"tls_cert": "/a.crt"}, "both tls_cert and tls_key"),
        ({"tls_cert": "/a", "tls_key": "/b", "tls_self_signed": True}, "exclude"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"idle_timeout": "soon"}, "not a duration"),
        ({"listen": "x"}, "unknown key streaming.listen"),
    ],
)
def test_bad_values_say_what_to_fix(section: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        config.from_mapping({"streaming": section})


def test_flags_override_the_file(tmp_path: Path) -> None:
    args = parse_args(
        ["--stream-address", "0.0.0.0", "--stream-port", "10250", "--stream-idle-timeout",
         "10m", "--stream-tls-self-signed", "--root", str(tmp_path / "r")]
    )  # fmt: skip
    cfg = build_config(args).streaming
    assert (cfg.address, cfg.port, cfg.idle_timeout, cfg.tls_self_signed) == (
        "0.0.0.0", 10250, 600.0, True,
    )  # fmt: skip


def test_the_template_documents_the_section() -> None:
    template = Path(__file__).resolve().parents[2] / "deploy" / "config.toml"
    assert config.load(template).streaming == config.StreamingConfig()
