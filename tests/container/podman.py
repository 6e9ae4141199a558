"""podman, as the container tests drive it: build the image, run it, read its logs, stop it.

Every call goes through `podman --runtime runc --cgroup-manager cgroupfs` (what this kind of
machine needs; see ../shared/container/README.md). Environment variables reach a container as
bare ``-e NAME`` flags, with their values in podman's own environment, so a database password
never sits on a command line.

The base images the Dockerfiles start FROM (`node:22-bookworm-slim`, uv's image) are used when
present, else built by ``../shared/container/base-images.sh`` when that script is there (this
project's machines, which reach no registry), else pulled (`ensure_base_images`).

``python3 -m tests.container.podman --check [--required]`` is what scripts/prerequisites runs before the
suite (stdlib only: it runs before the project's environment exists). It exits 0 when podman and the
base images are there (building or pulling them first), else prints why on one line and exits 3
(`container tests: NOT RUN: …`), or 1 with `--required` (.ci/run: there a missing engine or image is
a failure).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGES_SCRIPT = REPO.parent / "shared" / "container" / "base-images.sh"
# Every Dockerfile a container test builds: the image's, and the two the README gives for your own app.
DOCKERFILES = (
    REPO / "Dockerfile",
    REPO / "examples" / "minimal-app" / "Dockerfile",
    REPO / "examples" / "minimal-app" / "Dockerfile.entrypoint-base",
)
PODMAN_FLAGS = ("--runtime", "runc", "--cgroup-manager", "cgroupfs")
INSTALL_HINT = "apt-get install -y podman runc"
BUILD_TIMEOUT = 1800
PULL_TIMEOUT = 600
NOT_RUN = 3  # the check's exit code when the container tests cannot run here (and need not)


class ContainerError(RuntimeError):
    """podman is missing, or a podman command failed; the message says which and why."""


class NoEngine(ContainerError):
    """No podman (and runc) to run the container tests with."""


class NoBaseImages(ContainerError):
    """A base image is missing and could be neither built here nor pulled."""


def podman_binary() -> str:
    """The podman executable, or NoEngine with the install command."""
    found = shutil.which("podman")
    if found is None or shutil.which("runc") is None:
        raise NoEngine(
            "no container engine (the container tests drive podman with runc, and they are not both on PATH: "
            f"{INSTALL_HINT})"
        )
    return found


def podman(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run one podman command, output captured (stderr apart); raise ContainerError on failure if `check`."""
    argv = [podman_binary(), *PODMAN_FLAGS, *args]
    child_env = {**os.environ, **(env or {})}
    try:
        result = subprocess.run(
            argv, env=child_env, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as error:
        raise ContainerError(f"podman {' '.join(args[:3])} timed out after {timeout}s") from error
    if check and result.returncode != 0:
        raise ContainerError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def env_flags(env: Mapping[str, str]) -> list[str]:
    """``-e NAME`` for each variable: podman takes the value from its own environment."""
    return [flag for name in env for flag in ("-e", name)]


def image_exists(ref: str) -> bool:
    """Whether the local image store has `ref`."""
    return podman("image", "exists", ref, check=False).returncode == 0


def base_images(dockerfile: Path) -> list[str]:
    """The registry images the Dockerfile starts FROM or copies from (stage names left out)."""
    stages: set[str] = set()
    images: list[str] = []
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) >= 2 and words[0].upper() == "FROM":
            image = words[1]
            # A build argument (the entrypoint's own image, in the README's Dockerfile) is the test's to build.
            if image not in stages and image not in images and "$" not in image:
                images.append(image)
            if len(words) == 4 and words[2].upper() == "AS":
                stages.add(words[3])
        for word in words:
            if word.startswith("--from="):
                source = word.removeprefix("--from=")
                if source not in stages and source not in images:
                    images.append(source)
    return images


def _qualified(image: str) -> str:
    """Docker's short names as podman stores them (node:22 -> docker.io/library/node:22)."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{image}"
    return image


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip().startswith("Error")), text.strip())


def ensure_base_images(dockerfile: Path, *, timeout: float = BUILD_TIMEOUT) -> float:
    """Make every missing base image present; returns the seconds it took (0 if none was missing).

    On this project's machines ``../shared/container/base-images.sh`` builds local stand-ins (no
    registry is reachable there); elsewhere they are pulled, as `docker build` would. NoBaseImages
    says which image could not be had, and podman's reason.
    """
    missing = [image for image in base_images(dockerfile) if not image_exists(_qualified(image))]
    if not missing:
        return 0.0
    started = time.monotonic()
    if BASE_IMAGES_SCRIPT.is_file():
        result = subprocess.run(
            ["bash", str(BASE_IMAGES_SCRIPT)],
            cwd=dockerfile.parent,
            env={**os.environ, "DOCKERFILE": str(dockerfile)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        still = [image for image in missing if not image_exists(_qualified(image))]
        if result.returncode != 0 or still:
            raise NoBaseImages(
                f"the base images cannot be built: {BASE_IMAGES_SCRIPT} exited {result.returncode}"
                + (f", {', '.join(still)} still missing" if still else "")
                + f": {_first_line(result.stderr or result.stdout)}"
            )
        return time.monotonic() - started
    for image in missing:
        pulled = podman("pull", "--quiet", _qualified(image), timeout=PULL_TIMEOUT, check=False)
        if pulled.returncode != 0:
            raise NoBaseImages(f"the base images cannot be pulled: {image}: {_first_line(pulled.stderr)}")
    return time.monotonic() - started


def check(*, required: bool) -> int:
    """scripts/prerequisites' container check: podman and every base image here (built or pulled if missing).

    Exit 0 when the container tests can run. Otherwise one line: on stdout and exit 3 (`NOT_RUN`), so
    scripts/test leaves them out and says so; with `required`, on stderr and exit 1.
    """
    try:
        podman_binary()
        seconds = sum(ensure_base_images(dockerfile) for dockerfile in DOCKERFILES if dockerfile.is_file())
    except ContainerError as error:
        if required:
            print(f"container tests: cannot run, and .ci/run requires them: {error}", file=sys.stderr)
            return 1
        print(f"container tests: NOT RUN: {error}")
        return NOT_RUN
    if seconds:
        print(f"container tests: base images made ready in {seconds:.0f} s", file=sys.stderr)
    return 0


@dataclass(frozen=True)
class Build:
    """A finished `podman build`: the tag, how long it took, and its output."""

    tag: str
    seconds: float
    output: str


def build(
    context: Path,
    tag: str,
    *,
    dockerfile: Path | None = None,
    build_args: Mapping[str, str] | None = None,
    timeout: float = BUILD_TIMEOUT,
) -> Build:
    """`podman build` of `context`'s Dockerfile (or `dockerfile`), as a user would (layer cache kept between runs).

    ``--format docker`` is what `docker build` produces; podman's default OCI format would drop
    the HEALTHCHECK. ``--network host`` is what this machine's registries need.
    """
    started = time.monotonic()
    args = [flag for name, value in (build_args or {}).items() for flag in ("--build-arg", f"{name}={value}")]
    if dockerfile is not None:
        args += ["--file", str(dockerfile)]
    result = podman("build", "--network", "host", "--format", "docker", *args, "-t", tag, str(context), timeout=timeout)
    return Build(tag=tag, seconds=time.monotonic() - started, output=result.stdout + result.stderr)


def run(
    image: str,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    detach: bool = False,
    entrypoint: str | None = None,
    volumes: Sequence[str] = (),
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """`podman run --network host` of `image`; removed afterwards unless detached (see `remove`).

    One-shot runs get ``--no-healthcheck``: their HEALTHCHECK would only ask for systemd timers.
    """
    env = dict(env or {})
    flags = ["--network", "host", *env_flags(env)]
    flags += ["-d"] if detach else ["--rm", "--no-healthcheck"]
    if name is not None:
        flags += ["--name", name]
    if entrypoint is not None:
        flags += ["--entrypoint", entrypoint]
    for volume in volumes:
        flags += ["-v", volume]
    return podman("run", *flags, image, *args, env=env, timeout=timeout, check=False)


def logs(name: str) -> str:
    """The container's output so far, stdout and stderr together."""
    result = podman("logs", name)
    return result.stdout + result.stderr


def inspect(name: str) -> dict[str, object]:
    """`podman inspect` of a container, as a dict."""
    (data,) = json.loads(podman("inspect", name).stdout)
    assert isinstance(data, dict)
    return data


def state(name: str) -> dict[str, object]:
    """The container's State block (Status, Running, ExitCode, Pid...)."""
    value = inspect(name)["State"]
    assert isinstance(value, dict)
    return value


def exec_in(name: str, argv: Sequence[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`podman exec` in a running container; never raises on the command's exit code."""
    return podman("exec", name, *argv, timeout=timeout, check=False)


def wait_for_log(name: str, needle: str, *, timeout: float = 90) -> str:
    """Poll the logs until `needle` appears; ContainerError with the logs if the container stops first."""
    deadline = time.monotonic() + timeout
    while True:
        text = logs(name)
        if needle in text:
            return text
        if not state(name).get("Running"):
            raise ContainerError(f"container {name} stopped before printing {needle!r}:\n{text}")
        if time.monotonic() > deadline:
            raise ContainerError(f"container {name} did not print {needle!r} within {timeout}s:\n{text}")
        time.sleep(0.2)


def stop(name: str, *, grace: int = 10) -> float:
    """`podman stop -t GRACE` (SIGTERM, then SIGKILL after GRACE seconds); returns the seconds it took."""
    started = time.monotonic()
    podman("stop", "-t", str(grace), name, timeout=grace + 60)
    return time.monotonic() - started


def remove(name: str) -> None:
    """`podman rm -f`, ignoring a container that is already gone."""
    podman("rm", "-f", "--ignore", name, check=False)


def image_size(ref: str) -> int:
    """The image's size in bytes, as `podman images` counts it (all layers, base image included)."""
    (data,) = json.loads(podman("image", "inspect", ref).stdout)
    return int(data["Size"])


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if not arguments or arguments[0] != "--check" or set(arguments[1:]) - {"--required"}:
        print("usage: python3 -m tests.container.podman --check [--required]", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(check(required="--required" in arguments))
