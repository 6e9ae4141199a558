"""podman, as the container tests drive it: build the image, run it, read its logs, stop it.

Every call goes through `podman --runtime runc --cgroup-manager cgroupfs` (what this kind of
machine needs; see ../shared/container/README.md). Environment variables reach a container as
bare ``-e NAME`` flags, with their values in podman's own environment, so a database password
never sits on a command line.

No Docker engine or image registry is needed: the two base images the Dockerfile starts FROM
are local stand-ins built by ``../shared/container/base-images.sh`` (`ensure_base_images`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGES_SCRIPT = REPO.parent / "shared" / "container" / "base-images.sh"
PODMAN_FLAGS = ("--runtime", "runc", "--cgroup-manager", "cgroupfs")
INSTALL_HINT = "apt-get install -y podman runc, then ../shared/container/base-images.sh (from the repo root)"
BUILD_TIMEOUT = 1800


class ContainerError(RuntimeError):
    """podman is missing, or a podman command failed; the message says which and why."""


def podman_binary() -> str:
    """The podman executable, or ContainerError with the install command."""
    found = shutil.which("podman")
    if found is None or shutil.which("runc") is None:
        raise ContainerError(f"podman and runc are needed for the container tests: {INSTALL_HINT}")
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
            if image not in stages and image not in images:
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


def ensure_base_images(dockerfile: Path, *, timeout: float = BUILD_TIMEOUT) -> float:
    """Build the local base-image stand-ins if any is missing; returns the seconds it took (0 if none)."""
    missing = [image for image in base_images(dockerfile) if not image_exists(_qualified(image))]
    if not missing:
        return 0.0
    if not BASE_IMAGES_SCRIPT.is_file():
        raise ContainerError(
            f"base images {', '.join(missing)} are missing and {BASE_IMAGES_SCRIPT} is not there to build them: "
            "run ../shared/container/base-images.sh from the repo root on a machine that has it"
        )
    started = time.monotonic()
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
    if result.returncode != 0:
        raise ContainerError(f"{BASE_IMAGES_SCRIPT} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    still = [image for image in missing if not image_exists(_qualified(image))]
    if still:
        raise ContainerError(f"{BASE_IMAGES_SCRIPT} ran but {', '.join(still)} still missing")
    return time.monotonic() - started


@dataclass(frozen=True)
class Build:
    """A finished `podman build`: the tag, how long it took, and its output."""

    tag: str
    seconds: float
    output: str


def build(context: Path, tag: str, *, timeout: float = BUILD_TIMEOUT) -> Build:
    """`podman build` of `context`'s Dockerfile, as a user would (layer cache kept between runs).

    ``--format docker`` is what `docker build` produces; podman's default OCI format would drop
    the HEALTHCHECK. ``--network host`` is what this machine's registries need.
    """
    started = time.monotonic()
    result = podman("build", "--network", "host", "--format", "docker", "-t", tag, str(context), timeout=timeout)
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
