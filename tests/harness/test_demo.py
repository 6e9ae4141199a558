"""`scripts/demo` (`python -m harness.demo`): the runbook's deploy replayed end to end, and nothing left behind."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness.demo import APP, GUARD
from tests.support import REPO, RUNBOOK_SYNC_LINES, entrypoint_env, error_lines, output_of, run_entrypoint

BACKEND = REPO / "examples" / "backend"


def _run(command: list[str], cwd: Path, pythonpath: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=entrypoint_env(None, PYTHONPATH=str(pythonpath)),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )


def _demo(*args: str, cwd: Path = REPO, pythonpath: Path = REPO) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "harness.demo", *args], cwd, pythonpath)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{proc.name}: {cmdline}")
    return found


def test_demo_replays_the_runbook_and_cleans_up(tmp_path: Path) -> None:
    """`scripts/demo` from any folder: the sync, migration and app lines, every step-6 check, exit 0, no server left."""
    result = _run([str(REPO / "scripts" / "demo")], cwd=tmp_path)
    out = result.stdout
    assert result.returncode == 0, out
    lines = out.splitlines()
    start = lines.index(RUNBOOK_SYNC_LINES[0])
    assert lines[start : start + len(RUNBOOK_SYNC_LINES)] == RUNBOOK_SYNC_LINES
    assert f"📁 Migrations folder: {BACKEND / 'drizzle'}" in lines
    assert any(re.fullmatch(r"   ✔ 0011_performance_indexes \(43 statements, \d+ ms\)", line) for line in lines)
    assert "✅ Database migrations completed successfully" in lines
    assert (
        f"🚢 Deploying the new release as Render would: python -m entrypoint --guard '{GUARD}' -- node {APP}" in lines
    )
    assert f"🏁 Starting the app: node {APP}" in lines
    assert any(re.fullmatch(r"🚀 Application started on port \d+", line) for line in lines)
    checks = [line for line in lines if line.startswith(("✅", "❌"))][-5:]
    assert checks[:3] == [
        "✅ Users per role unchanged: 8 managers, 60 FBOs",
        "✅ 43 idx_% indexes in pg_indexes",
        "✅ 12 ledger rows, ids without gaps, each hash = sha256 of its file and created_at = its `when`",
    ]
    assert re.fullmatch(r"✅ /health answered 200 in \d+ ms \(first call \d+ ms, .*\)", checks[3])
    assert checks[4] == "✅ The app stopped cleanly on SIGTERM (exit 0)"
    assert error_lines(out) == [], out
    assert lines[-1].startswith("🎉 Demo complete")
    assert not re.search(r"postgres(ql)?://[^\s@/]*:[^\s@/]*@", out), "a connection password was printed"

    data = re.search(r"data in (/\S+)", out)
    assert data, out
    assert not Path(data.group(1)).exists()
    assert _processes_mentioning(data.group(1)) == []
    app = re.search(r"🛑 SIGTERM to pid (\d+) \(node examples/backend/dist/src/main\.js\)", out)
    assert app, out
    assert not any(p.startswith(f"{app.group(1)}: ") for p in _processes_mentioning("main.js"))


def test_demo_help() -> None:
    """`--help` exits 0 and documents --keep and the exit codes."""
    result = _demo("--help")
    assert result.returncode == 0, result.stdout
    assert "--keep" in result.stdout
    assert "exit codes:" in result.stdout


def test_the_demo_is_no_entrypoint_subcommand() -> None:
    """The shipped package has no demo: `python -m entrypoint demo` is an unknown argument, not the story."""
    result = run_entrypoint(["demo"], url=None)
    assert result.returncode == 2, output_of(result)


def test_demo_without_the_examples_folder(tmp_path: Path) -> None:
    """Run from a copy of harness/ without examples/, the demo says why with one ❌ line and exit 11."""
    shutil.copytree(REPO / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    result = _demo(cwd=tmp_path, pythonpath=tmp_path)
    assert result.returncode == 11, result.stdout
    assert result.stdout.startswith("❌ The demo needs the example backend"), result.stdout
    assert len(result.stdout.splitlines()) == 1
