"""The curl scripts of client_scripts/, against the real stack on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from ports import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "client_scripts"
ALL = [
    "streamdata.sh",
    "train.sh",
    "cleanbuf.sh",
    "stats.sh",
    "desc.sh",
    "dumpbuf.sh",
    "results.sh",
    "batches.sh",
]
WRITER = "writer-token-0123456789"
ADMIN = "admin-token-0123456789"


def run(
    script: str,
    *args: str,
    url: str,
    token: str | None = None,
    stdin: str | None = None,
    env_url: str | None = None,
    reader_token: str | None = None,
):
    """Run ``script`` against ``url``: given in GLITCHFLOW_URL, or with ``--url`` when ``env_url``
    (which then goes in GLITCHFLOW_URL, and must be overridden) is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLITCHFLOW_")}
    env["GLITCHFLOW_URL"] = url if env_url is None else env_url
    if token is not None:
        env["GLITCHFLOW_TOKEN"] = token
    if reader_token is not None:
        env["GLITCHFLOW_READER_TOKEN"] = reader_token
    url_args = [] if env_url is None else ["--url", url]
    return subprocess.run(
        [str(SCRIPTS / script), *url_args, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        input=stdin,
    )


def answers(done: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("script", ALL)
def test_usage_line_and_bad_options(script):
    shown = run(script, "-h", url="http://127.0.0.1:1")
    assert shown.returncode == 0
    assert shown.stdout.startswith(f"usage: {script}")
    wrong = run(script, "-Z", url="http://127.0.0.1:1")
    assert wrong.returncode == 2
    assert "unknown option -Z" in wrong.stderr


@pytest.mark.parametrize("script", ALL)
def test_help_documents_every_option_url_and_token(script):
    short = run(script, "-h", url="http://127.0.0.1:1")
    long = run(script, "--help", url="http://127.0.0.1:1")
    assert long.returncode == 0 and long.stdout == short.stdout
    usage, _, rest = long.stdout.partition("\n")
    options = re.findall(r"(?:\[|\s)(-[-\w]+)", usage)  # [-x] optional, -x required
    assert options[:2] == ["-h", "--url"]
    documented = re.findall(r"^  (-[-\w]+)", rest, flags=re.MULTILINE)
    assert sorted(documented) == sorted(options)
    for variable in ("GLITCHFLOW_URL", "GLITCHFLOW_TOKEN"):
        assert variable in rest


@pytest.mark.parametrize("args", [["--bogus"], ["--url"], ["--url="], ["--url", ""]])
def test_bad_long_options_are_usage_errors(args):
    done = run("stats.sh", *args, url="http://127.0.0.1:1")
    assert done.returncode == 2
    assert "usage: stats.sh" in done.stderr
    assert done.stdout == ""


def _shellcheck() -> str:
    """shellcheck from PATH or, as the test extras install it, next to this Python."""
    found = shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=str(Path(sys.executable).parent)
    )
    assert found, "shellcheck is missing: install the test extras (pip install -e '.[test]')"
    return found


@pytest.mark.parametrize("folder", [SCRIPTS, REPO / "scripts"], ids=["client_scripts", "scripts"])
def test_scripts_pass_shellcheck(folder):
    done = subprocess.run(
        [_shellcheck(), "-x", *sorted(p.name for p in folder.glob("*.sh"))],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_unreachable_api_exits_non_zero():
    done = run("stats.sh", url=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 7  # curl: could not connect
    assert "Failed to connect" in done.stderr


def test_url_option_overrides_the_environment():
    port = free_port()
    done = run("desc.sh", url=f"http://127.0.0.1:{port}/", env_url="http://127.0.0.1:1")
    assert done.returncode == 7
    assert f"port {port}" in done.stderr
    equals = run("desc.sh", f"--url=http://127.0.0.1:{port}", url="http://127.0.0.1:1")
    assert equals.returncode == 7
    assert f"port {port}" in equals.stderr


@pytest.mark.e2e
def test_every_script_through_a_freeze_and_flush(stack_factory, tmp_path):
    # Hold mode: the scripts meet the frozen buffer's refusal (rotate never refuses here).
    env = {"GLITCHFLOW_FREEZE_MODE": "hold"}
    _, layout = stack_factory(data_dir=tmp_path / "store", max_size=20_000, env=env)
    url = layout.api_url
    # Every call gives --url, with a GLITCHFLOW_URL where nothing listens: the option wins.
    cli = partial(run, env_url=f"http://127.0.0.1:{free_port()}")

    empty = answers(cli("stats.sh", url=url))[0]
    assert (empty["n_itm"], empty["buff_size"]) == (0, 0)
    assert answers(cli("desc.sh", url=url))[0]["resp"] == "OPERATIONAL"

    one = cli("streamdata.sh", "-t", "1000000000", url=url)
    assert one.returncode == 0, one.stdout + one.stderr
    assert answers(one)[0]["resp"] == "CREATED"
    again = cli("streamdata.sh", "-t", "1000000000", url=url)
    assert again.returncode == 0 and answers(again)[0]["resp"] == "DUPLICATE"

    many = cli(
        "streamdata.sh", "-n", "20", "-p", "5", "-c", "H1:CURL-STRAIN", "-t", "1000000000", url=url
    )
    assert many.returncode == 0, many.stdout + many.stderr
    assert [a["resp"] for a in answers(many)] == ["CREATED"] * 20

    stats = answers(cli("stats.sh", url=url))[0]
    assert stats["n_itm"] == 21
    names = answers(cli("dumpbuf.sh", url=url))[0]["nmlist"]
    assert len(names) == 21
    page = answers(cli("dumpbuf.sh", "-l", "5", "-o", "2", url=url))[0]["nmlist"]
    assert page == names[2:7]

    waiting = cli("train.sh", "-u", "airflow", url=url)
    assert waiting.returncode == 0 and answers(waiting)[0]["resp"] == "WAITING"
    big = cli("streamdata.sh", "-s", "2048", "-t", "1000001000", url=url)
    assert big.returncode == 0 and answers(big)[0]["resp"] == "CREATED"
    assert answers(cli("desc.sh", url=url))[0]["resp"] == "FROZEN"
    refused = cli("streamdata.sh", "-t", "1000002000", url=url)
    assert refused.returncode == 22
    assert answers(refused)[0]["resp"] == "FROZEN"

    frozen = cli("train.sh", url=url)
    assert frozen.returncode == 0
    train = answers(frozen)[0]
    assert (train["resp"], train["n_f"]) == ("FROZEN", 22)
    cleaned = cli("cleanbuf.sh", "-m", "archived by the test", url=url)
    assert cleaned.returncode == 0, cleaned.stdout
    assert answers(cleaned)[0]["resp"] == "CLEANED"
    assert answers(cli("desc.sh", url=url))[0]["resp"] == "OPERATIONAL"
    assert answers(cli("stats.sh", url=url))[0]["n_itm"] == 0

    batch = str(train["batch"])
    results = tmp_path / "results.json"
    results.write_text('{"dag_run_id": "by-hand", "report": {"windows": 4, "flagged": 1}}')
    recorded = cli("results.sh", "-b", batch, "-f", str(results), url=url)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert (answers(recorded)[0]["resp"], answers(recorded)[0]["replaced"]) == ("RECORDED", False)
    again = cli("results.sh", "-b", batch, url=url, stdin=results.read_text())
    assert again.returncode == 0 and answers(again)[0]["replaced"] is True
    listed = answers(cli("batches.sh", "-l", "1", url=url))[0]["batches"]
    assert listed[0]["results"]["report"] == {"windows": 4, "flagged": 1}
    unknown = cli("results.sh", "-b", "99", "-f", str(results), url=url)
    assert unknown.returncode == 22
    assert answers(unknown)[0]["resp"] == "UNKNOWN_BATCH"
    bad = cli("results.sh", "-b", batch, url=url, stdin='{"report": {}}')
    assert bad.returncode == 22
    assert answers(bad)[0]["detail"]["field"] == "dag_run_id"
    assert cli("results.sh", url=url).returncode == 2  # -b is required
    # Not frozen and empty: CLEANED with zero files, as the original's clean.sh got.
    empty = cli("cleanbuf.sh", url=url)
    assert empty.returncode == 0, empty.stdout
    assert (answers(empty)[0]["resp"], answers(empty)[0]["body"]["n_f"]) == ("CLEANED", 0)


@pytest.mark.e2e
def test_invalid_payload_file_exits_non_zero_naming_the_field(stack_factory, tmp_path):
    _, layout = stack_factory(data_dir=tmp_path / "store")
    bad = tmp_path / "bad.json"
    bad.write_text('{"h": [1.0], "t": [1.0, 0]}')
    done = run("streamdata.sh", "-f", str(bad), url=layout.api_url)
    assert done.returncode == 22
    answer = answers(done)[0]
    assert answer["detail"]["field"] == "t"


@pytest.mark.e2e
def test_scripts_send_the_token(stack_factory, tmp_path):
    reader = "reader-token-0123456789"
    env = {
        "GLITCHFLOW_WRITER_TOKENS": WRITER,
        "GLITCHFLOW_ADMIN_TOKENS": ADMIN,
        "GLITCHFLOW_READER_TOKENS": reader,
    }
    _, layout = stack_factory(data_dir=tmp_path / "store", env=env)
    url = layout.api_url
    # A listing needs a reader (or admin) token: GLITCHFLOW_READER_TOKEN wins over the writer's.
    assert run("dumpbuf.sh", url=url, token=WRITER).returncode == 22
    listed = run("dumpbuf.sh", url=url, token=WRITER, reader_token=reader)
    assert listed.returncode == 0 and answers(listed)[0]["nmlist"] == []
    assert run("dumpbuf.sh", url=url, token=ADMIN).returncode == 0
    denied = run("streamdata.sh", "-t", "1000000000", url=url)
    assert denied.returncode == 22
    assert WRITER not in denied.stdout + denied.stderr
    allowed = run("streamdata.sh", "-t", "1000000000", url=url, token=WRITER)
    assert allowed.returncode == 0 and answers(allowed)[0]["resp"] == "CREATED"
    assert run("train.sh", url=url).returncode == 22
    waiting = run("train.sh", url=url, token=ADMIN)
    assert waiting.returncode == 0 and answers(waiting)[0]["resp"] == "WAITING"
    forced = run("cleanbuf.sh", "-f", url=url, token=ADMIN)
    assert forced.returncode == 0 and answers(forced)[0]["resp"] == "CLEANED"
    assert ADMIN not in forced.stdout
