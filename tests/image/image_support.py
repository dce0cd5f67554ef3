"""Run the image `make image-check` built with Debian's buildah (no Docker engine here), as the image's user.

Every process runs in one working container of the image (`buildah run --isolation chroot`: the host's
network, so servers bind 127.0.0.1 through HOUSING_HOST), with a read-only view of the image's files: each
directory is bound read-only onto itself, except the volumes mounted over it (the inference log,
/mnt/models) and the directories buildah manages itself (/proc, /sys, /dev, /run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from integration.serving.serving_support import ROOT, Server, free_port, wait_ready
from proctree import descendants

IMAGE_ENV = "IMAGE_UNDER_TEST"  # set by `make image-check`: the image tag
BUILDAH_ENV = "IMAGE_BUILDAH"  # set by `make image-check`: buildah with its storage flags
LOG_VOLUME = "/var/log/housing"
KSERVE_MODEL_DIR = "/mnt/models"
RUNTIME_DIRS = {"/proc", "/sys", "/dev", "/run"}  # set up by buildah for each run
# Files buildah itself creates in the root filesystem to mount over them: not writes of the process.
BUILDAH_MOUNT_POINTS = {"run/.containerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf"}
IMAGE_UID = 10001
REPO_MODELS = ROOT / "models"  # what the image bakes in: the build context's models/
LOCK = ROOT / "requirements" / "serving.txt"
LOCK_SOURCE = ROOT / "requirements" / "serving.in"


def lock_entries(path: Path = LOCK) -> dict[str, tuple[Requirement, list[str]]]:
    """The lock's requirements by canonical name, each with its sha256 hashes (continuation lines joined)."""
    logical = path.read_text().replace("\\\n", " ")
    entries = {}
    for line in logical.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *hashes = line.split(" --hash=")
        requirement = Requirement(spec.strip())
        entries[canonicalize_name(requirement.name)] = (requirement, [h.strip() for h in hashes])
    return entries


def locked_versions() -> dict[str, str]:
    """Canonical name -> pinned version."""
    return {name: str(req.specifier).removeprefix("==") for name, (req, _) in lock_entries().items()}


@dataclass(frozen=True)
class Buildah:
    command: tuple[str, ...]

    @classmethod
    def from_env(cls) -> Buildah:
        return cls(tuple(shlex.split(os.environ[BUILDAH_ENV])))

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.command, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"buildah {shlex.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def image_config(self, image: str) -> dict:
        """The image's Docker config (User, Env, Cmd, Healthcheck, ...), as `buildah inspect` reports it."""
        return json.loads(self("inspect", "--type", "image", image).stdout)["Docker"]["config"]


def read_only_binds(rootfs: Path, mounted: set[str]) -> list[str]:
    """`-v` flags binding every directory of the image read-only onto itself.

    Paths in `mounted` get volumes of their own; their ancestors stay as they are (root-owned, so the image's
    user cannot write there either) and the ancestors' other entries are bound one level down.
    """
    flags: list[str] = []

    def walk(relative: PurePosixPath) -> None:
        for entry in sorted((rootfs / relative).iterdir()):
            target = f"/{relative / entry.name}"
            if entry.is_symlink() or not entry.is_dir() or target in RUNTIME_DIRS or target in mounted:
                continue
            if any(path.startswith(f"{target}/") for path in mounted):
                walk(relative / entry.name)
            else:
                flags.extend(["-v", f"{entry}:{target}:ro"])

    walk(PurePosixPath())
    return flags


def process_uids(pid: int) -> list[int]:
    """Real, effective, saved and filesystem uid of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(uid) for uid in line.split()[1:]]
    raise AssertionError(f"no Uid line for process {pid}")


@dataclass
class Container:
    """A working container of the image; `run` and `serve` use the image's USER, CMD and ENV."""

    buildah: Buildah
    image: str
    name: str = ""
    rootfs: Path = field(default=Path())

    def __post_init__(self) -> None:
        self.name = self.buildah("from", "--pull=never", self.image).stdout.strip()
        # Without this, buildah 1.28's `run` also mounts an anonymous volume of its own at the image's VOLUME,
        # and its unstable sort of the mounts lets that win over `-v` at random (the image keeps its VOLUME).
        self.buildah("config", "--volume", f"{LOG_VOLUME}-", self.name)
        self.rootfs = Path(self.buildah("mount", self.name).stdout.strip())

    def remove(self) -> None:
        self.buildah("rm", self.name, check=False)

    def run_command(
        self, command: list[str], log_dir: Path, env: dict[str, str] | None = None, models: Path | None = None
    ) -> list[str]:
        os.chown(log_dir, IMAGE_UID, IMAGE_UID)  # the image's user owns its log volume (and WORKDIR)
        mounted = {LOG_VOLUME} | ({KSERVE_MODEL_DIR} if models else set())
        volumes = ["-v", f"{log_dir}:{LOG_VOLUME}", *read_only_binds(self.rootfs, mounted)]
        if models is not None:
            volumes += ["-v", f"{models}:{KSERVE_MODEL_DIR}"]
        env_flags = [flag for key, value in (env or {}).items() for flag in ("-e", f"{key}={value}")]
        return [
            *self.buildah.command,
            "run",
            "--isolation",
            "chroot",
            *volumes,
            *env_flags,
            self.name,
            "--",
            *command,
        ]

    def run(
        self, *command: str, log_dir: Path, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.run_command(list(command), log_dir, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def serve(self, workdir: Path, models: Path | None = None) -> ImageServer:
        """Start the image's CMD on a free 127.0.0.1 port, its log volume in workdir/log; wait until ready."""
        log_dir = workdir / "log"
        log_dir.mkdir(parents=True)
        port = free_port()
        env = {"HOUSING_HOST": "127.0.0.1", "HOUSING_PORT": str(port)}
        stderr_path = workdir / "server.log"
        started = time.time()
        command = self.run_command(self.buildah.image_config(self.image)["Cmd"], log_dir, env, models)
        with stderr_path.open("wb") as err:
            proc = subprocess.Popen(command, stdout=err, stderr=subprocess.STDOUT, start_new_session=True)
        server = ImageServer(
            proc=proc,
            port=port,
            log_dir=log_dir / "inference",
            stderr_path=stderr_path,
            container=self,
            env=env,
            started=started,
        )
        try:
            wait_ready(proc, server.url, stderr_path, timeout=90)
        except BaseException:
            server.stop()
            raise
        return server


# Keyword-only: a field added to ServerProcess must not shift these (started=0.0 made every file "new").
@dataclass(kw_only=True)
class ImageServer(Server):
    container: Container
    env: dict[str, str]
    started: float  # time.time() just before the run: files modified since were written by the server

    def server_pid(self) -> int:
        """The Python process serving (buildah-chroot-exec's child), seen from the host."""
        for pid in descendants(self.proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if argv[0].endswith(b"python") or argv[0].endswith(b"python3"):
                return pid
        raise AssertionError(f"no Python process under buildah run {self.proc.pid}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM to the server (it drains and flushes), then kill whatever is left of buildah's run."""
        if self.proc.poll() is None:
            try:
                os.kill(self.server_pid(), signal.SIGTERM)
                self.proc.wait(timeout)
            except (AssertionError, ProcessLookupError, subprocess.TimeoutExpired):
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only buildah and the server are in it
        return self.proc.wait(10)
