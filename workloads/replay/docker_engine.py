"""The ``docker`` engine: each task becomes a container on the local engine at its submit time,
with its requests as limits (NanoCPUs, memory, a GPU device request). There is no admission
control: every task starts when it arrives, the baseline a scheduler is compared with.

The record comes from the engine's container events: create (SUBMIT, and SCHEDULE on this
engine's node: a container is placed where it is made), start (START), die (FINISH, FAIL with
its exit code, or KILL when the replay stopped it), oom (noted on the FAIL that follows).
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
from docker import DockerClient
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import DeviceRequest
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout

from workloads.replay.engine import (
    REPLAY_LABEL,
    RESEND_STOP_S,
    TASK_LABEL,
    Emit,
    EngineInfo,
    EnginePlugin,
    EngineSettings,
    ReplayInputError,
    ReplayTask,
    check_capacity,
    engine_error,
    first_line,
    labels,
    stop_grace_variable,
)
from workloads.runfolder import CONTAINER_LOG, Event, Node


def docker_client() -> DockerClient:
    """The Docker endpoint of the environment (DOCKER_HOST, else the local socket), answering;
    ReplayInputError (one line) otherwise."""
    try:
        client = docker.from_env(max_pool_size=64, timeout=120)
        client.ping()
    except DockerException as err:
        raise ReplayInputError(f"no Docker engine answers ({first_line(err)})") from None
    return client


class DockerEngine:
    """Each task a container on this engine, started when it arrives."""

    def __init__(self, client: DockerClient, replay_id: str, grace: float) -> None:
        self.client, self.replay_id, self.grace = client, replay_id, grace
        self._info = client.info()
        self._lock = threading.Lock()
        self._stopping: set[int] = set()  # tasks the replay stops: their end is a KILL
        self._out_of_memory: set[int] = set()

    @property
    def _filter(self) -> dict[str, Any]:
        return {"label": f"{REPLAY_LABEL}={self.replay_id}"}

    def describe(self) -> EngineInfo:
        version = self.client.version()
        info = self._info
        node = Node(id=info["ID"], name=info["Name"], cpus=info["NCPU"], memory=info["MemTotal"])
        return EngineInfo("docker", version["Version"], version["ApiVersion"], [node])

    def check(self, tasks: list[ReplayTask]) -> None:
        check_capacity(tasks, self.describe().nodes)
        for image in sorted({task.image for task in tasks}):
            self._have_image(image)

    def _have_image(self, image: str) -> None:
        """Pull what is missing now, so that no task's start includes a pull."""
        with contextlib.suppress(ImageNotFound):
            self.client.images.get(image)
            return
        try:
            self.client.images.pull(image)
        except DockerException as err:
            raise ReplayInputError(
                f"image {image} is neither on this engine nor in its registry ({engine_error(err)})"
            ) from None

    def submit(self, task: ReplayTask) -> None:
        device_requests = (
            [DeviceRequest(count=task.gpus, capabilities=[["gpu"]])] if task.gpus else None
        )
        container = self.client.containers.create(
            task.image,
            ["/bin/sh", "-c", task.command],
            name=task.name,
            labels=labels(self.replay_id, task.task_id),
            nano_cpus=round(task.cpus * 1e9),
            mem_limit=task.memory,
            device_requests=device_requests,
            volumes={str(task.output): {"bind": "/output", "mode": "rw"}},
            environment=[stop_grace_variable(self.grace)],  # the supervisor's bound: this grace
            detach=True,
        )
        container.start()

    def watch(self, emit: Emit, done: threading.Event) -> None:
        stream = self.client.events(
            since=int(time.time()) - 1, filters={"type": "container", **self._filter}, decode=True
        )
        closer = threading.Thread(target=lambda: (done.wait(), stream.close()), daemon=True)
        closer.start()
        with contextlib.suppress(Exception):  # the stream ends, or breaks, when closed
            for raw in stream:
                self._translate(raw, emit)

    def _translate(self, raw: dict[str, Any], emit: Emit) -> None:
        attributes = raw.get("Actor", {}).get("Attributes", {})
        if TASK_LABEL not in attributes:
            return
        task_id, action = int(attributes[TASK_LABEL]), raw.get("Action") or raw.get("status")
        moment = raw["timeNano"] / 1e9
        if action == "create":
            emit(Event(time=moment, task_id=task_id, event="SUBMIT"))
            emit(Event(time=moment, task_id=task_id, event="SCHEDULE", node=self._info["ID"]))
        elif action == "start":
            emit(Event(time=moment, task_id=task_id, event="START"))
        elif action == "oom":
            self._out_of_memory.add(task_id)
        elif action == "die":
            emit(self._ending(moment, task_id, int(attributes.get("exitCode", -1))))

    def _ending(self, moment: float, task_id: int, code: int) -> Event:
        with self._lock:
            stopped = task_id in self._stopping
        kind = "KILL" if stopped else "FINISH" if code == 0 else "FAIL"
        detail = None
        if kind == "FAIL" and task_id in self._out_of_memory:
            detail = "out of memory (the kernel's OOM killer)"
        return Event(time=moment, task_id=task_id, event=kind, exit_code=code, detail=detail)

    def stop(self) -> None:
        # Created and not yet running too: a task submitted just before the stop starts now.
        alive = {**self._filter, "status": ["created", "restarting", "running"]}
        running = self.client.api.containers(all=True, filters=alive)
        with self._lock:
            self._stopping |= {int(c["Labels"][TASK_LABEL]) for c in running}
        with ThreadPoolExecutor(max_workers=16) as pool:
            for container in running:
                pool.submit(self._stop_one, container["Id"])

    def _stop_one(self, container_id: str) -> None:
        """SIGTERM, sent again every RESEND_STOP_S while the container runs, then SIGKILL after
        the grace. Once is not enough: a container's first process is PID 1 of its namespace,
        and the kernel drops a signal that reaches PID 1 before it has a handler, in the first
        moments of a container that started just before the stop."""
        deadline = time.monotonic() + self.grace
        with contextlib.suppress(NotFound, APIError):  # gone, or not running (any more)
            while (left := deadline - time.monotonic()) > 0:
                self.client.api.kill(container_id, signal="SIGTERM")
                try:
                    self.client.api.wait(container_id, timeout=min(RESEND_STOP_S, left))
                    return
                except (ReadTimeout, RequestsConnectionError):  # docker-py's timeouts
                    continue
            self.client.api.kill(container_id, signal="SIGKILL")

    def cleanup(self) -> None:
        # The low-level listing: the high-level one inspects each, racing their removal.
        for container in self.client.api.containers(all=True, filters=self._filter):
            with contextlib.suppress(NotFound, APIError):
                self._keep_log(container)
                self.client.api.remove_container(container["Id"], force=True)

    def _keep_log(self, container: dict[str, Any]) -> None:
        """The container's output, kept in its task's folder as CONTAINER_LOG before the removal
        takes it (as Slurm keeps ``slurm-<job>.log``): where a task that ended without a
        document says why."""
        folder = next(
            (
                Path(mount["Source"])
                for mount in container["Mounts"]
                if mount["Destination"] == "/output"
            ),
            None,
        )
        if folder is not None and folder.is_dir():
            output = self.client.api.logs(container["Id"], timestamps=True)
            (folder / CONTAINER_LOG).write_bytes(output)


def connect(settings: EngineSettings) -> DockerEngine:
    return DockerEngine(docker_client(), settings.replay_id, settings.grace)


PLUGIN = EnginePlugin(
    name="docker",
    summary="every task a container on the Docker engine, started when it arrives (no queue)",
    connect=connect,
)
