"""Adding the entrypoint to an app of one's own (README): the two Docker ways, built and run with podman.

The entrypoint's image is built from this repository's Dockerfile (as tests/container/test_container.py
builds it), then examples/minimal-app with each of its Dockerfiles, the README's, the entrypoint's image
passed as ENTRYPOINT_IMAGE. Each runs against the runbook's production database as a second app on
it would: its own ledger table (MIGRATIONS_TABLE), the runbook's app's rows and ledger left alone, and
BACKUP_DIR, so the image's pg_dump is used. Part of the container tests: `scripts/test` leaves it out
with them when podman or the base images cannot be had, and says so.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.postgres import find_free_port
from tests.container import podman as container
from tests.container.podman import ContainerError
from tests.own_app import LISTENING, MINIMAL_APP, assert_migrated, serving
from tests.support import REPO, ledger, query

ENTRYPOINT_IMAGE = "localhost/entrypoint-test:latest"
TABLE = "__minimal_app_migrations"
# The two README ways, by the Dockerfile each builds, and where each image keeps the app's drizzle/.
WAYS = {
    "own-dockerfile": ("Dockerfile", "/app/drizzle"),
    "entrypoint-base": ("Dockerfile.entrypoint-base", "/srv/app/drizzle"),
}
# tini, then node, as seen from inside: every process's name and parent.
PROCESSES = r"""
for d in /proc/[0-9]*; do
  [ "${d#/proc/}" = "$$" ] && continue
  [ -r "$d/status" ] || continue
  echo "${d#/proc/} $(sed -n 's/^PPid:[[:space:]]*//p' "$d/status") $(sed -n 's/^Name:[[:space:]]*//p' "$d/status")"
done
"""


@pytest.fixture(scope="module")
def entrypoint_image() -> str:
    """The entrypoint's image, built from this repository (base images made ready first)."""
    try:
        for dockerfile in container.DOCKERFILES:
            container.ensure_base_images(dockerfile)
        return container.build(REPO, ENTRYPOINT_IMAGE).tag
    except ContainerError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module", params=list(WAYS))
def app_image(request: pytest.FixtureRequest, entrypoint_image: str) -> tuple[str, str]:
    """examples/minimal-app built with one of the README's Dockerfiles: the image, and its migrations folder."""
    dockerfile, folder = WAYS[request.param]
    tag = f"localhost/minimal-app-{request.param}:test"
    try:
        container.build(
            MINIMAL_APP, tag, dockerfile=MINIMAL_APP / dockerfile, build_args={"ENTRYPOINT_IMAGE": entrypoint_image}
        )
    except ContainerError as error:
        pytest.fail(str(error), pytrace=False)
    return tag, folder


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    """A host folder the image's non-root user can write to, mounted at /backup."""
    folder = tmp_path / "backup"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


USERS = "select role, count(*) from users group by role order by role"


@pytest.fixture
def runbook_app(production_db: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """What the runbook's own app holds in the production database before the second app starts."""
    return ledger(production_db), query(production_db, USERS)


@pytest.fixture
def running(
    app_image: tuple[str, str], runbook_app: object, production_db: str, backup_dir: Path
) -> Iterator[tuple[str, int, str]]:
    """The app's image started against the runbook's production database: its name, port and log so far."""
    image, _ = app_image
    name = f"minimal-app-{secrets.token_hex(4)}"
    port = find_free_port()
    env = {"DATABASE_URL": production_db, "PORT": str(port), "MIGRATIONS_TABLE": TABLE, "BACKUP_DIR": "/backup"}
    started = container.run(image, env=env, name=name, detach=True, volumes=[f"{backup_dir}:/backup"])
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        log = container.wait_for_log(name, LISTENING.format(port=port), timeout=120)
        yield name, port, log
    finally:
        container.remove(name)


def test_the_app_migrates_backs_up_and_serves_beside_the_runbooks_app(
    app_image: tuple[str, str],
    runbook_app: tuple[list[tuple[object, ...]], list[tuple[object, ...]]],
    running: tuple[str, int, str],
    production_db: str,
    backup_dir: Path,
) -> None:
    """The entrypoint in the app's image backs up, applies the app's migrations to its own ledger, execs the app."""
    _, folder = app_image
    _, port, log = running
    assert f"📁 Migrations folder: {folder}" in log
    assert "💾 Backup written and checked" in log
    assert "✅ Database migrations completed successfully" in log
    assert "❌" not in log
    # The image's pg_dump dumped the shared database before the first change; its pg_restore reads it back.
    (dump,) = backup_dir.iterdir()
    listed = container.run(
        app_image[0], ["--list", f"/backup/{dump.name}"], entrypoint="pg_restore", volumes=[f"{backup_dir}:/backup:ro"]
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "TABLE DATA public users" in listed.stdout
    assert TABLE not in listed.stdout, "the dump is taken before anything is migrated"
    serving(port)
    assert_migrated(production_db, table=TABLE)
    # The runbook's app shares the database: its users and its drifted ledger are as they were.
    rows, users = runbook_app
    assert users == [("manager", 8), ("fbo", 60)]
    assert [row[0] for row in rows] == [*range(8), 283, 284, 285]
    assert (ledger(production_db), query(production_db, USERS)) == runbook_app


def test_tini_is_pid_1_node_its_only_child_and_stop_exits_0(running: tuple[str, int, str]) -> None:
    """The exec form holds: tini is PID 1, node (not Python) its only child; `podman stop` ends it with 0."""
    name, _, _ = running
    listed = container.exec_in(name, ["sh", "-c", PROCESSES])
    assert listed.returncode == 0, listed.stderr
    processes = {
        int(pid): (int(ppid), comm)
        for pid, ppid, comm in (line.split(maxsplit=2) for line in listed.stdout.splitlines())
    }
    assert processes[1][1] == "tini", processes
    assert [comm for ppid, comm in processes.values() if ppid == 1] == ["node"], processes
    seconds = container.stop(name, grace=10)
    state = container.state(name)
    assert seconds < 6, f"stop took {seconds:.1f}s: SIGTERM did not reach the app"
    assert (state["Status"], state["ExitCode"]) == ("exited", 0), (state, container.logs(name))


def test_the_images_pg_dump_is_18(app_image: tuple[str, str]) -> None:
    """The copied /opt/pg-client runs in the app's image: pg_dump 18, for servers up to 18."""
    image, _ = app_image
    result = container.run(image, ["--version"], entrypoint="pg_dump")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("pg_dump (PostgreSQL) 18."), result.stdout
