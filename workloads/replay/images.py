"""Which images a replay runs: the ones its trace names, unless a flag says otherwise.

A trace names its images fully (``localhost:5000/cloudai/cloudai-cpu-intensive:3``); a replay
runs exactly those. ``--registry`` and ``--namespace`` move them; docker-bake.hcl's variables
($REGISTRY, $NAMESPACE, $DOCKER_USERNAME, often set for ``docker login``) only fill in a part an
image name leaves out, so a shell's settings never silently replace what a trace names. Every
change is returned, to be printed once and recorded in replay.json.
"""

from __future__ import annotations

from collections.abc import Mapping

from workloads.runfolder import ImageRewrite, TraceTask


def _split(image: str) -> tuple[str | None, str | None, str]:
    """(registry, namespace, repository:tag) of an image name; None where it names none."""
    parts = image.split("/")
    if len(parts) >= 3:
        return parts[0], "/".join(parts[1:-1]), parts[-1]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return None, None, parts[0]


def images_to_replay(
    trace: list[TraceTask],
    registry_flag: str | None,
    namespace_flag: str | None,
    environment: Mapping[str, str],
) -> tuple[list[TraceTask], list[ImageRewrite]]:
    """The images the trace names, but where ``--registry``/``--namespace`` say otherwise; the
    variables of docker-bake.hcl ($REGISTRY, $NAMESPACE, $DOCKER_USERNAME) fill in only a part
    the trace's image leaves out. Every change is returned, to be printed and recorded."""
    env_registry = environment.get("REGISTRY")
    env_namespace = environment.get("NAMESPACE") or environment.get("DOCKER_USERNAME")
    rewrites: dict[str, ImageRewrite] = {}
    moved = []
    for task in trace:
        registry, namespace, name = _split(task.image)
        reasons = []
        if registry_flag is not None and registry_flag != registry:
            registry, reasons = registry_flag, [*reasons, "--registry"]
        elif registry is None and env_registry:
            registry, reasons = env_registry, [*reasons, "$REGISTRY"]
        if namespace_flag is not None and namespace_flag != namespace:
            namespace, reasons = namespace_flag, [*reasons, "--namespace"]
        elif namespace is None and env_namespace:
            namespace, reasons = env_namespace, [*reasons, "$NAMESPACE or $DOCKER_USERNAME"]
        if not reasons:
            moved.append(task)
            continue
        image = "/".join(part for part in (registry, namespace, name) if part)
        rewrites.setdefault(
            task.image, ImageRewrite(trace=task.image, replayed=image, reason=", ".join(reasons))
        )
        moved.append(task.model_copy(update={"image": image}))
    return moved, list(rewrites.values())
