"""A sweep logs online when the user is logged in to the W&B server this machine is configured for
(a self-hosted one included), and says in one line why it logs offline when not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.tracking import has_wandb_key, sweep_wandb_mode, wandb_host

KEY = "0123456789abcdef0123456789abcdef01234567"
SELF_HOSTED = "http://wandb.example.internal:8080"
WANDB_VARIABLES = ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE", "WANDB_CONFIG_DIR", "WANDB_DIR", "NETRC")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty home: no netrc, no W&B settings, no W&B variables; run from an empty folder."""
    for name in WANDB_VARIABLES + ("WANDB_IDENTITY_TOKEN_FILE",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "home"


def wandb_login(home: Path, *args: str) -> None:
    """The real `wandb login`, which writes the netrc entry and the settings file a user would have."""
    wandb = Path(sys.executable).with_name("wandb")
    env = {k: v for k, v in os.environ.items() if k not in WANDB_VARIABLES} | {"HOME": str(home)}
    subprocess.run([str(wandb), "login", "--no-verify", *args, KEY], env=env, check=True, capture_output=True)


def test_wandb_login_to_a_self_hosted_server_is_found(home, capsys):
    wandb_login(home, "--host", SELF_HOSTED)
    assert "machine wandb.example.internal:8080" in (home / ".netrc").read_text()
    assert wandb_host() == (SELF_HOSTED, "base_url in W&B's settings file")
    assert has_wandb_key()
    assert sweep_wandb_mode(None) == "online" and capsys.readouterr().err == ""


def test_a_netrc_entry_for_the_host_in_wandb_base_url_is_found(home, monkeypatch):
    (home / ".netrc").write_text(f"machine wandb.example.internal:8080\n  login user\n  password {KEY}\n")
    assert not has_wandb_key()  # the public host has no entry
    monkeypatch.setenv("WANDB_BASE_URL", SELF_HOSTED + "/")
    assert has_wandb_key() and sweep_wandb_mode(None) == "online"
    monkeypatch.setenv("NETRC", str(home / "elsewhere"))  # wandb reads $NETRC instead of ~/.netrc
    assert not has_wandb_key()


def test_a_key_for_another_host_falls_back_offline_with_one_line_saying_why(home, monkeypatch, capsys):
    (home / ".netrc").write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")
    assert sweep_wandb_mode(None) == "online"
    monkeypatch.setenv("WANDB_BASE_URL", SELF_HOSTED)
    assert sweep_wandb_mode(None) == "offline" and sweep_wandb_mode(None) == "offline"
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"gpsbench: W&B logs offline (files in each run folder): no API key for {SELF_HOSTED} (WANDB_BASE_URL) "
        f"in WANDB_API_KEY, W&B's settings or {home / '.netrc'}; to log online run `wandb login --host "
        f"{SELF_HOSTED}`, or set WANDB_MODE (or the sweep's wandb: mode)"
    ]  # once, however many runs the sweep plans
    assert sweep_wandb_mode("disabled") == "disabled" and sweep_wandb_mode(None, {"WANDB_MODE": "online"}) == "online"


def test_an_api_key_in_the_environment_or_the_settings_file_counts(home, monkeypatch):
    assert not has_wandb_key()
    settings = home / ".config" / "wandb" / "settings"
    settings.parent.mkdir(parents=True)
    settings.write_text(f"[default]\napi_key = {KEY}\n")
    assert has_wandb_key()
    settings.write_text("[default]\nmode = online\n")
    assert not has_wandb_key()
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert has_wandb_key()
