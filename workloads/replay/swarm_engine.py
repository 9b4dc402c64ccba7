"""The ``swarm`` engine: each task becomes a ``replicated-job`` service (one replica, no
restart) with reservations = limits = its requests. Swarm's own scheduler places it, or keeps
it pending ("no suitable node (insufficient resources on N nodes)") until capacity frees: the
real queue. The same code serves one node or many, and records the node Swarm chose.

Swarm has no task events: the tasks API is polled every ``POLL_SECONDS``, and each change is
recorded with the task's own status timestamp (SUBMIT with the service's creation time). A
state passed between two polls is not seen: when a task is first seen running, its SCHEDULE is
its START, marked ``"inferred": true``. A service removed by a stop leaves no record, so its
KILL carries the replay's clock (``"clock": "replay"``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from docker import DockerClient
from docker.errors import APIError, DockerException, NotFound
from docker.types import Mount, Resources, RestartPolicy, ServiceMode

from workloads.replay.docker_engine import docker_client
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
    engine_time,
    labels,
    stop_grace_variable,
)
from workloads.runfolder import Event, Node

POLL_SECONDS = 0.1
_PLACED = ("assigned", "accepted", "preparing", "ready", "starting")
_ENDINGS = {
    "complete": "FINISH",
    "failed": "FAIL",
    "rejected": "FAIL",
    "shutdown": "KILL",
    "remove": "KILL",
    "orphaned": "LOST",
}
# Stopped services' containers are gone within the grace, plus this for the engine's own work.
_REMOVAL_MARGIN = 10.0
# The services that pull a replay's images on every node before it starts carry this label.
PULL_LABEL = "org.cloudai.pull"
# How long those pulls may take (cold nodes, large images) before the replay starts anyway.
PULL_TIMEOUT_S = 900.0


class SwarmEngine:
    def __init__(self, client: DockerClient, replay_id: str, grace: float) -> None:
        self.client, self.replay_id, self.grace = client, replay_id, grace
        swarm = client.info().get("Swarm", {})
        if not swarm.get("ControlAvailable"):
            raise ReplayInputError(
                "this engine is not a swarm manager (docker swarm init makes a one-node swarm; "
                "or replay with --engine docker)"
            )
        self._lock = threading.Lock()
        self._tasks: dict[str, int] = {}  # service id -> task id
        self._seen: dict[int, set[str]] = {}  # task id -> the events recorded for it
        self._emit: Emit | None = None
        self._nodes = self._read_nodes()

    @property
    def _filter(self) -> dict[str, Any]:
        return {"label": f"{REPLAY_LABEL}={self.replay_id}"}

    def _read_nodes(self) -> list[Node]:
        nodes = []
        for node in self.client.api.nodes():
            if node.get("Status", {}).get("State") != "ready":
                continue
            description = node.get("Description", {})
            resources = description.get("Resources", {})
            gpus = sum(
                item.get("DiscreteResourceSpec", {}).get("Value", 0)
                for item in resources.get("GenericResources") or []
                if "gpu" in item.get("DiscreteResourceSpec", {}).get("Kind", "").lower()
            )
            name = description.get("Hostname", node["ID"])
            cpus = resources.get("NanoCPUs", 0) / 1e9
            memory = resources.get("MemoryBytes", 0)
            nodes.append(Node(id=node["ID"], name=name, cpus=cpus, memory=memory, gpus=gpus))
        return nodes

    def describe(self) -> EngineInfo:
        version = self.client.version()
        return EngineInfo("swarm", version["Version"], version["ApiVersion"], list(self._nodes))

    def check(self, tasks: list[ReplayTask]) -> None:
        check_capacity(tasks, self._nodes)
        images = sorted({task.image for task in tasks})
        for image in images:
            try:
                self.client.api.inspect_distribution(image)
            except DockerException as err:
                raise ReplayInputError(
                    f"image {image} is not in its registry, where every node pulls from "
                    f"({engine_error(err)})"
                ) from None
        self._pull_on_every_node(images)

    def _pull_on_every_node(self, images: list[str]) -> None:
        """A global job per image (every node runs ``true`` in it) and wait until every node's
        has ended: no task's start on any node then includes a pull. A node that fails to pull
        is one warning; its tasks pull when they land, as they would have."""
        services = [
            self.client.services.create(
                image,
                args=["/bin/sh", "-c", "true"],  # the image keeps its entrypoint
                name=f"cloudai-pull-{self.replay_id[-12:]}-{index}",
                labels={PULL_LABEL: self.replay_id},
                mode=ServiceMode("global-job"),
                restart_policy=RestartPolicy(condition="none"),
            ).id
            for index, image in enumerate(images)
        ]
        try:
            ended = self._wait_for_jobs(services, time.monotonic() + PULL_TIMEOUT_S)
        finally:
            self._remove(services)
        failed = [task for task in ended if task["Status"]["State"] != "complete"]
        for task in failed:
            image = task["Spec"]["ContainerSpec"]["Image"].split("@")[0]
            print(
                f"replay: warning: node {task.get('NodeID', '?')} could not pull {image} before "
                f"the replay ({task['Status'].get('Err') or task['Status']['State']})",
                flush=True,
            )
        nodes = len({task.get("NodeID") for task in ended})
        print(
            f"replay: {len(images)} image(s) on {nodes} node(s) before the first task", flush=True
        )

    def _wait_for_jobs(self, services: list[str], deadline: float) -> list[dict[str, Any]]:
        """The jobs' tasks once every one has ended (or what has ended by ``deadline``)."""
        while True:
            tasks = self.client.api.tasks(filters={"service": services})  # one call for all
            ended = [task for task in tasks if task["Status"]["State"] in _ENDINGS]
            placed = {task["ServiceID"] for task in tasks}
            if (len(placed) == len(services) and len(ended) == len(tasks)) or (
                time.monotonic() > deadline
            ):
                return ended
            time.sleep(0.2)

    def _remove(self, services: list[str]) -> None:
        for service_id in services:
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_service(service_id)

    def submit(self, task: ReplayTask) -> None:
        nano_cpus = round(task.cpus * 1e9)
        resources = Resources(
            cpu_limit=nano_cpus,
            mem_limit=task.memory,
            cpu_reservation=nano_cpus,
            mem_reservation=task.memory,
            generic_resources={"gpu": task.gpus} if task.gpus else None,
        )
        service = self.client.services.create(
            task.image,
            args=["/bin/sh", "-c", task.command],  # the image keeps its entrypoint
            name=task.name,
            labels=labels(self.replay_id, task.task_id),
            mode=ServiceMode("replicated-job", replicas=1),
            restart_policy=RestartPolicy(condition="none"),
            resources=resources,
            mounts=[Mount(target="/output", source=str(task.output), type="bind")],
            env=[stop_grace_variable(self.grace)],  # the supervisor's bound: this grace
            stop_grace_period=round(self.grace * 1e9),
        )
        with self._lock:
            self._tasks[service.id] = task.task_id

    def watch(self, emit: Emit, done: threading.Event) -> None:
        self._emit = emit
        while not done.is_set():
            try:
                self._poll(emit)
            except (APIError, DockerException) as err:  # one failed poll: the next one retries
                print(f"replay: warning: polling Swarm: {engine_error(err)}", flush=True)
            done.wait(POLL_SECONDS)

    def _poll(self, emit: Emit) -> None:
        for service in self.client.api.services(filters=self._filter):
            task_id = int(service["Spec"]["Labels"][TASK_LABEL])
            self._record(emit, task_id, "SUBMIT", engine_time(service["CreatedAt"]))
        first: dict[str, dict[str, Any]] = {}
        for task in self.client.api.tasks(filters=self._filter):
            earlier = first.get(task["ServiceID"])
            if earlier is None or task["CreatedAt"] < earlier["CreatedAt"]:
                first[task["ServiceID"]] = task  # a respawned job (moby #42741) is not followed
        for service_id, task in first.items():
            with self._lock:
                task_id = self._tasks.get(service_id)
            if task_id is not None:
                self._follow(emit, task_id, task)

    def _follow(self, emit: Emit, task_id: int, task: dict[str, Any]) -> None:
        status = task["Status"]
        state, moment = status["State"], engine_time(status["Timestamp"])
        node = task.get("NodeID")
        if state == "pending" and status.get("Err"):
            self._record(emit, task_id, "QUEUE", moment, detail=status["Err"])
        if state in _PLACED:
            self._record(emit, task_id, "SCHEDULE", moment, node=node)
        if state == "running" or (state in _ENDINGS and "START" not in self._events(task_id)):
            if node:
                self._record(emit, task_id, "SCHEDULE", moment, node=node, inferred=True)
            if state == "running":
                self._record(emit, task_id, "START", moment)
        if state in _ENDINGS:
            extra: dict[str, Any] = {"node": node}
            code = status.get("ContainerStatus", {}).get("ExitCode")
            if code is not None:
                extra["exit_code"] = code
            if status.get("Err"):
                extra["detail"] = status["Err"]
            self._record(emit, task_id, _ENDINGS[state], moment, **extra)

    def _events(self, task_id: int) -> set[str]:
        with self._lock:
            return self._seen.setdefault(task_id, set())

    def _record(self, emit: Emit, task_id: int, kind: str, moment: float, **extra: Any) -> None:
        """Emit ``kind`` once per task (an ending once in all)."""
        with self._lock:
            seen = self._seen.setdefault(task_id, set())
            ended = bool(seen & set(_ENDINGS.values()))
            if kind in seen or ended:
                return
            seen.add(kind)
        emit(Event(time=moment, task_id=task_id, event=kind, **extra))

    def stop(self) -> None:
        """Remove the services of tasks that have not ended: Swarm stops their containers with
        the grace period given at creation. Removal leaves no task record: KILL is timed by
        the replay."""
        with self._lock:
            services = dict(self._tasks)
        removed = []
        for service_id, task_id in services.items():
            if self._events(task_id) & set(_ENDINGS.values()):
                continue
            with contextlib.suppress(NotFound, APIError):
                self.client.api.remove_service(service_id)
                removed.append(service_id)
            if self._emit is not None:
                self._record(
                    self._emit, task_id, "KILL", time.time(), clock="replay",
                    detail="stopped by the replay",
                )  # fmt: skip
        self._wait_for_containers(removed)

    def _wait_for_containers(self, services: list[str]) -> None:
        """Until this node runs no container of ``services`` (their documents are written).
        Swarm sends one SIGTERM, which a container's PID 1 misses in its first moments: this
        node's containers get it again every RESEND_STOP_S (other nodes' are out of reach)."""
        started = time.monotonic()
        deadline, resent = started + self.grace + _REMOVAL_MARGIN, started
        while services and time.monotonic() < deadline:
            running = [
                container
                for service_id in services
                for container in self.client.api.containers(
                    all=True, filters={"label": f"com.docker.swarm.service.id={service_id}"}
                )
            ]
            if not running:
                return
            if time.monotonic() - resent >= RESEND_STOP_S:
                resent = time.monotonic()
                for container in running:
                    with contextlib.suppress(NotFound, APIError):  # gone, or not running
                        self.client.api.kill(container["Id"], signal="SIGTERM")
            time.sleep(0.2)

    def cleanup(self) -> None:
        pulls = {"label": f"{PULL_LABEL}={self.replay_id}"}
        self._remove([service["ID"] for service in self.client.api.services(filters=pulls)])
        services = [service["ID"] for service in self.client.api.services(filters=self._filter)]
        self._remove(services)
        self._wait_for_containers(services)


def connect(settings: EngineSettings) -> SwarmEngine:
    return SwarmEngine(docker_client(), settings.replay_id, settings.grace)


PLUGIN = EnginePlugin(
    name="swarm",
    summary="every task a Swarm service (a replicated job): Swarm places it or queues it",
    connect=connect,
)
