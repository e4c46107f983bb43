"""The ``glitchflow`` command: ``up``'s options and help, the hand-over to the dataset tools."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from glitchflow_stack.cli import add_up_options, byte_size, log_env

UP_OPTIONS = [
    "--data-dir",
    "--max-size",
    "--host",
    "--api-port",
    "--logic-port",
    "--buffer-port",
    "--logic-workers",
    "--api-workers",
    "--demo",
    "--no-demo",
    "--log-level",
    "--access-log",
    "--no-access-log",
]


def glitchflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glitchflow_stack", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def up_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glitchflow up")
    add_up_options(parser)
    return parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2000", 2000),
        ("1e9", 10**9),
        ("8MiB", 8 * 1024**2),
        ("64mib", 64 * 1024**2),
        ("1.5GB", 1_500_000_000),
    ],
)
def test_max_size_forms(text: str, expected: int) -> None:
    assert up_parser().parse_args(["--max-size", text]).max_size == expected


@pytest.mark.parametrize("text", ["lots", "-5", "8 parsecs", "nan", "inf", ""])
def test_max_size_refuses_what_is_not_a_whole_size(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
        byte_size(text)


def test_defaults_and_the_demo_switch() -> None:
    parser = up_parser()
    defaults = parser.parse_args([])
    assert (defaults.max_size, defaults.demo, defaults.api_port) == (64 * 1024**2, False, 8000)
    assert parser.parse_args(["--demo"]).demo is True
    # scripts/up.sh passes --demo first; a --no-demo after it wins.
    assert parser.parse_args(["--demo", "--no-demo"]).demo is False


def test_access_log_is_off_by_default_and_on_with_its_option() -> None:
    parser = up_parser()
    assert log_env(parser.parse_args([])) == {
        "GLITCHFLOW_LOG_LEVEL": "INFO",
        "GLITCHFLOW_ACCESS_LOG": "false",
    }
    assert log_env(parser.parse_args(["--access-log", "--log-level", "debug"])) == {
        "GLITCHFLOW_LOG_LEVEL": "DEBUG",
        "GLITCHFLOW_ACCESS_LOG": "true",
    }


def test_up_help_documents_every_option_for_users() -> None:
    done = glitchflow("up", "--help")
    assert done.returncode == 0
    for option in UP_OPTIONS:
        assert option in done.stdout
    for action in up_parser()._actions:
        assert action.help, f"{action.option_strings} has no help text"
    for developer_note in ("gunicorn", ".py", "TODO"):
        assert developer_note not in done.stdout


def test_top_level_help_lists_the_commands() -> None:
    done = glitchflow("--help")
    assert done.returncode == 0
    for command in ("up", "export", "train-ref"):
        assert command in done.stdout


@pytest.mark.parametrize("command", ["export", "train-ref"])
def test_dataset_command_without_the_package_is_one_line_and_status_2(command: str) -> None:
    # None in sys.modules is how Python marks a module as absent, installed or not.
    absent = (
        "import sys; sys.modules['glitchflow_dataset'] = None; "
        "from glitchflow_stack.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", absent, command, "--out", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"glitchflow {command}: needs the Python package 'glitchflow_dataset',"
        " which is not installed"
    ]


@pytest.mark.parametrize("command", ["export", "train-ref"])
def test_dataset_command_hands_its_arguments_to_the_dataset_cli(command: str) -> None:
    # A stand-in for glitchflow_dataset.cli, put in sys.modules before the CLI looks it up.
    stand_in = (
        "import sys, types; cli = types.ModuleType('glitchflow_dataset.cli'); "
        "cli.main = lambda argv=None: print(repr(argv)) or 7; "
        "sys.modules['glitchflow_dataset'] = types.ModuleType('glitchflow_dataset'); "
        "sys.modules['glitchflow_dataset.cli'] = cli; "
        "from glitchflow_stack.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = [command, "--batch", "3", "--out", "a b"]
    done = subprocess.run(
        [sys.executable, "-c", stand_in, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 7
    assert done.stdout.strip() == repr(argv)


def test_export_reaches_the_real_dataset_tools(tmp_path: Path) -> None:
    done = glitchflow(
        "export", "7", "--out", str(tmp_path / "b.h5"), "--archive-root", str(tmp_path)
    )
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert "glitchflow export: error:" in done.stderr
    assert not (tmp_path / "b.h5").exists()
