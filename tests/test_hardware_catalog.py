"""The profile search path (DESIGN §2): shipped, $FLOPCAST_PROFILES, user config dir, --profiles; later wins."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flopcast.errors import InvalidProfile, UnknownHardware
from flopcast.hardware import load_catalog, search_path, shipped_profiles_dir, user_profiles_dir


def write_profile(directory: Path, pid: str, *, bf16: float = 1e15, aliases: str = "[]", name: str = "") -> Path:
    """A minimal valid profile; ``bf16`` tells copies apart."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{pid}.yaml"
    path.write_text(
        f"id: {pid}\nname: {name or 'Test ' + pid}\nkind: gpu\naliases: {aliases}\n"
        f"peak_flops_per_s:\n  bf16: {bf16}\nmemory_bytes: 8.0e10\nmemory_bandwidth_bytes_per_s: 2.0e12\n"
        'sources: ["test fixture"]\n'
    )
    return path


def test_shipped_only_by_default():
    catalog = load_catalog()
    assert {e.origin for e in catalog.entries.values()} == {"shipped"}
    assert all(e.overrides == [] for e in catalog.entries.values())
    assert catalog.entry("h100").path.parent == shipped_profiles_dir()


def test_user_config_dir_is_isolated_per_test(isolated_user_config):
    assert user_profiles_dir() == isolated_user_config / "profiles"
    assert not str(user_profiles_dir()).startswith(str(Path.home() / ".config"))


def test_user_config_dir_falls_back_to_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("FLOPCAST_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert user_profiles_dir() == tmp_path / "flopcast" / "profiles"


def test_order_later_overrides_earlier(tmp_path, monkeypatch, isolated_user_config):
    env_a, env_b, extra = tmp_path / "env_a", tmp_path / "env_b", tmp_path / "extra"
    user = isolated_user_config / "profiles"
    write_profile(env_a, "h100-80gb", bf16=1.0e15)
    write_profile(env_b, "h100-80gb", bf16=2.0e15)
    write_profile(user, "h100-80gb", bf16=3.0e15)
    write_profile(extra, "h100-80gb", bf16=4.0e15)
    monkeypatch.setenv("FLOPCAST_PROFILES", os.pathsep.join([str(env_a), str(env_b)]))

    assert [origin for _, origin, _ in search_path([extra])] == [
        "shipped", "$FLOPCAST_PROFILES", "$FLOPCAST_PROFILES", "user config", "--profiles",
    ]  # fmt: skip
    entry = load_catalog([extra]).entry("h100-80gb")
    assert entry.profile.peak_flops_per_s.bf16 == 4.0e15
    assert entry.origin == "--profiles"
    assert entry.overrides == [
        shipped_profiles_dir() / "h100-80gb.yaml", env_a / "h100-80gb.yaml", env_b / "h100-80gb.yaml",
        user / "h100-80gb.yaml",
    ]  # fmt: skip
    # without --profiles the user config dir wins; without it, the last $FLOPCAST_PROFILES entry
    assert load_catalog().get("h100-80gb").peak_flops_per_s.bf16 == 3.0e15
    (user / "h100-80gb.yaml").unlink()
    assert load_catalog().get("h100-80gb").peak_flops_per_s.bf16 == 2.0e15


def test_repeated_profiles_option_later_wins(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write_profile(first, "my-gpu", bf16=1e15)
    write_profile(second, "my-gpu", bf16=2e15)
    write_profile(second, "other-gpu")
    catalog = load_catalog([first, second])
    assert catalog.get("my-gpu").peak_flops_per_s.bf16 == 2e15
    assert "other-gpu" in catalog.ids() and "h100-80gb" in catalog.ids()


def test_empty_entries_in_env_list_are_ignored(tmp_path, monkeypatch):
    write_profile(tmp_path / "p", "my-gpu")
    monkeypatch.setenv("FLOPCAST_PROFILES", os.pathsep + str(tmp_path / "p") + os.pathsep)
    assert "my-gpu" in load_catalog().ids()


def test_missing_user_config_dir_is_fine(isolated_user_config):
    assert not (isolated_user_config / "profiles").exists()
    assert "h100-80gb" in load_catalog().ids()


def test_hidden_and_non_yaml_files_are_skipped(tmp_path):
    write_profile(tmp_path, "my-gpu")
    (tmp_path / ".#my-gpu.yaml").write_text("not: [valid")
    (tmp_path / "README.txt").write_text("notes")
    assert "my-gpu" in load_catalog([tmp_path]).ids()


def test_alias_of_a_later_directory_wins(tmp_path):
    write_profile(tmp_path, "my-h100", aliases="[h100]")
    catalog = load_catalog([tmp_path])
    assert catalog.resolve_id("h100") == "my-h100"
    assert catalog.resolve_id("h100-80gb") == "h100-80gb"  # an id is never shadowed by an alias


def test_alias_claimed_twice_in_one_directory_is_ambiguous(tmp_path):
    write_profile(tmp_path, "gpu-a", aliases="[box]")
    write_profile(tmp_path, "gpu-b", aliases="[box]")
    catalog = load_catalog([tmp_path])
    with pytest.raises(UnknownHardware) as info:
        catalog.resolve_id("box")
    assert "gpu-a" in info.value.one_line() and "gpu-b" in info.value.one_line()


@pytest.mark.parametrize(
    ("name", "expected"), [("a100", ["a100-40gb", "a100-80gb"]), ("v100", ["v100-16gb", "v100-32gb"])]
)
def test_ambiguous_short_names_suggest_every_size(name, expected):
    with pytest.raises(UnknownHardware) as info:
        load_catalog().resolve_id(name)
    for pid in expected:
        assert pid in info.value.one_line()


def test_misspelt_id_suggests_the_closest():
    with pytest.raises(UnknownHardware) as info:
        load_catalog().resolve_id("h100-80g")
    assert "h100-80gb" in info.value.one_line()


def test_two_files_with_one_id_in_a_directory_are_refused(tmp_path):
    write_profile(tmp_path, "my-gpu")
    clone = tmp_path / "copy-of-my-gpu.yaml"
    clone.write_text((tmp_path / "my-gpu.yaml").read_text())
    with pytest.raises(InvalidProfile) as info:
        load_catalog([tmp_path])
    assert f"{tmp_path / 'my-gpu.yaml'}:1: id:" in info.value.one_line()  # sorted: copy-of… first, my-gpu second
    assert "copy-of-my-gpu.yaml" in info.value.one_line()


def test_show_says_which_file_won_and_what_it_overrode(cli, tmp_path):
    path = write_profile(tmp_path, "h100-80gb", bf16=1.234e15)
    result = cli("hardware", "show", "h100", "--profiles", tmp_path, "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["file"] == str(path) and doc["origin"] == "--profiles"
    assert doc["overrides"] == [str(shipped_profiles_dir() / "h100-80gb.yaml")]
    table = cli("hardware", "show", "h100-80gb", "--profiles", tmp_path)
    assert "file (wins)" in table.stdout and "overrides" in table.stdout
    assert str(path) in table.stdout.replace("\n", "")


def test_user_config_profiles_are_listed(cli, isolated_user_config):
    write_profile(isolated_user_config / "profiles", "lab-gpu")
    result = cli("hardware", "list", "--format", "json")
    entries = {e["id"]: e for e in json.loads(result.stdout)}
    assert entries["lab-gpu"]["origin"] == "user config"


def test_the_shipped_index_agrees_with_every_parsed_profile():
    """Shipped profiles are indexed from their text and parsed only when used (start-up): the cheap index must
    give the id and aliases the full parse gives, for every shipped file."""
    from flopcast import catalog as hardware  # the catalogue moved out of flopcast.hardware

    files = sorted(hardware.shipped_profiles_dir().glob("*.yaml"))
    assert len(files) >= 28
    for path in files:
        indexed = hardware._shipped_index(path)
        profile = hardware.load_profile(path)
        assert indexed == (profile.id, list(profile.aliases)), path.name
