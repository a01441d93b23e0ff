"""The migration plan as data: phases of steps, each step's actions, checks, rollback and the facts it relies on.

The JSON/YAML form of :class:`Plan` is a versioned, documented schema (``SCHEMA_VERSION``, see docs/plan.md): the
executor runs exactly this document, so everything a step does is spelled out as typed data, never as prose
only. Actions and checks are discriminated unions (``action`` / ``check`` field), so a reader can dispatch on a
single key. Keys are stable within a schema version; the same input gives a byte-identical document.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal["cni-migrate.io/plan/v1"] = "cni-migrate.io/plan/v1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- references to objects ------------------------------------------------------------------------------------


class ObjectRef(_Model):
    """One Kubernetes object."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @property
    def group(self) -> str:
        return self.api_version.rsplit("/", 1)[0] if "/" in self.api_version else ""

    def key(self) -> str:
        return f"{self.group}/{self.kind}/{self.namespace or ''}/{self.name}"

    def text(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


class ObjectSelector(_Model):
    """A set of objects: every object of ``kind`` (or of every kind of ``group`` when kind is empty), optionally
    restricted to a namespace, a name or a label selector."""

    group: str
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    label_selector: str | None = None

    def covers(self, ref: ObjectRef) -> bool:
        if self.group != ref.group:
            return False
        if self.kind is not None and self.kind != ref.kind:
            return False
        if self.namespace is not None and self.namespace != ref.namespace:
            return False
        return self.name is None or self.name == ref.name


class NameMatch(_Model):
    """Leftovers found by name: every object of every listable kind whose name matches ``pattern`` (a Python/RE2
    compatible regular expression, case-insensitive), in every namespace, except the ``exclude`` objects."""

    pattern: str
    exclude_namespaces: list[str] = Field(default_factory=list)
    exclude_groups: list[str] = Field(default_factory=list)


# --- checks -------------------------------------------------------------------------------------------------


class CommandCheck(_Model):
    """Run ``argv`` (kubectl/helm from the operator's machine, or a shell command as root on each of ``nodes``)
    and compare: exit code 0, stdout matching ``expect`` (regex), not matching ``reject``, and every IP address it
    prints inside one of ``expect_in_cidr`` (lines matching ``ignore_lines`` skipped). With ``cilium_pod_on``,
    ``argv`` is run inside the Cilium agent pod of that node (``kubectl exec <pod> -c cilium-agent -- argv``)."""

    check: Literal["command"] = "command"
    description: str
    argv: list[str] = Field(default_factory=list)
    shell: str | None = None
    nodes: list[str] = Field(default_factory=list)
    expect: str | None = None
    reject: str | None = None
    expect_in_cidr: list[str] = Field(default_factory=list)
    ignore_lines: str | None = None
    cilium_pod_on: str | None = None


class ObjectCheck(_Model):
    """An object exists (``present``) or not; optionally a JSONPath of it equals ``equals``."""

    check: Literal["object"] = "object"
    description: str
    target: ObjectRef
    state: Literal["present", "absent"] = "present"
    jsonpath: str | None = None
    equals: str | None = None


class NodePortCheck(_Model):
    """An HTTP GET to the NodePort of ``service`` answers on every listed node address."""

    check: Literal["nodeport"] = "nodeport"
    description: str
    service: ObjectRef
    addresses: dict[str, str]  # node -> InternalIP
    path: str = "/"
    timeout_seconds: int = 5


class FactCheck(_Model):
    """Evaluated by the planner from the facts; recorded with its result so the reviewer sees it."""

    check: Literal["fact"] = "fact"
    description: str
    fact: str
    result: Literal["pass", "warn"]
    detail: str


Check = Annotated[CommandCheck | ObjectCheck | NodePortCheck | FactCheck, Field(discriminator="check")]


# --- actions ------------------------------------------------------------------------------------------------


class Backup(_Model):
    """Save objects (YAML, with their finalizers) before anything removes or changes them. ``destination`` is a
    directory relative to the plan's backup directory; the executor writes one file per object."""

    action: Literal["backup"] = "backup"
    destination: str
    objects: list[ObjectRef] = Field(default_factory=list)
    selectors: list[ObjectSelector] = Field(default_factory=list)
    name_match: NameMatch | None = None

    def covers(self, ref: ObjectRef) -> bool:
        return any(o.key() == ref.key() for o in self.objects) or any(s.covers(ref) for s in self.selectors)


class RestoreBackup(_Model):
    """Re-create objects from a :class:`Backup` (server-side apply of the saved YAML, without status,
    resourceVersion, uid and finalizers): the rollback of a deletion."""

    action: Literal["restore"] = "restore"
    source: str
    objects: list[ObjectRef] = Field(default_factory=list)
    selectors: list[ObjectSelector] = Field(default_factory=list)


class ApplyObjects(_Model):
    """Server-side apply of ``objects`` (field manager ``cni-migrate``). ``artifact`` is the rendered manifest
    (none for small generated objects, e.g. per-node probe pods, which the runbook inlines)."""

    action: Literal["apply"] = "apply"
    artifact: str | None = None
    objects: list[dict[str, Any]]


class PatchObject(_Model):
    action: Literal["patch"] = "patch"
    target: ObjectRef
    patch_type: Literal["merge", "strategic", "json"]
    patch: dict[str, Any] | list[dict[str, Any]]


class DeleteObjects(_Model):
    """Delete objects; ``selectors`` delete every object they select (e.g. all CRDs of a group)."""

    action: Literal["delete"] = "delete"
    objects: list[ObjectRef] = Field(default_factory=list)
    selectors: list[ObjectSelector] = Field(default_factory=list)
    name_match: NameMatch | None = None
    ignore_not_found: bool = True
    wait: bool = True
    cascade: Literal["background", "foreground", "orphan"] = "background"
    timeout_seconds: int = 300


class RemoveFinalizers(_Model):
    """Clear the named finalizers from an object that is still terminating after ``after_seconds``: the explicit
    fix for finalizers nobody will process any more (e.g. ``tigera.io/cni-protector``). Skipped when the object is
    gone or not terminating."""

    action: Literal["remove-finalizers"] = "remove-finalizers"
    target: ObjectRef
    finalizers: list[str]
    after_seconds: int = 120


class NodeCommand(_Model):
    """One shell command run as root on a node. ``saves``/``removes`` name node state ("cni-config",
    "iptables", "routes", "links", "ipvs", "ipsets", "kernel-modules", "cni-state") so the order
    "save before remove" can be checked."""

    run: str
    description: str
    saves: list[str] = Field(default_factory=list)
    removes: list[str] = Field(default_factory=list)
    ignore_errors: bool = False


class NodeCommands(_Model):
    action: Literal["node-commands"] = "node-commands"
    nodes: list[str]
    commands: list[NodeCommand]
    parallel: int = 1


class HelmRelease(_Model):
    """``helm upgrade --install`` (idempotent: works whether or not the release exists). ``repo_url`` is empty
    for a chart given as a local path."""

    action: Literal["helm"] = "helm"
    release: str
    chart: str
    repo_name: str = ""
    repo_url: str = ""
    version: str
    namespace: str
    values_file: str | None
    create_namespace: bool = False
    wait: bool = True
    timeout_seconds: int = 600


class HelmUninstall(_Model):
    action: Literal["helm-uninstall"] = "helm-uninstall"
    release: str
    namespace: str


class WaitFor(_Model):
    """Wait until a condition holds: a rollout completes, an object is gone (or, with ``selector``, no pod matching
    it is left in ``namespace`` on ``nodes``), an object's condition ``value`` is True (e.g. a CRD
    ``Established``), pods with a selector are ready, a pod reaches phase ``value``, or nodes are Ready."""

    action: Literal["wait"] = "wait"
    condition: Literal["rollout", "deleted", "condition", "pods-ready", "pod-phase", "nodes-ready"]
    target: ObjectRef | None = None
    selector: str | None = None
    namespace: str | None = None
    nodes: list[str] = Field(default_factory=list)
    value: str | None = None
    timeout_seconds: int = 300


class ManualGate(_Model):
    """A person must confirm before the plan continues (the executor stops and asks)."""

    action: Literal["gate"] = "gate"
    prompt: str
    details: list[str] = Field(default_factory=list)


class CordonNodes(_Model):
    action: Literal["cordon"] = "cordon"
    nodes: list[str]


class UncordonNodes(_Model):
    action: Literal["uncordon"] = "uncordon"
    nodes: list[str]


class EvictPods(_Model):
    """Evict every pod on the nodes through the Eviction API, so PodDisruptionBudgets are respected; DaemonSet
    pods and mirror pods stay. Retries refused evictions until ``timeout_seconds``."""

    action: Literal["evict"] = "evict"
    nodes: list[str]
    ignore_daemonsets: bool = True
    delete_emptydir_data: bool = True
    timeout_seconds: int = 600


class LabelNodes(_Model):
    """Set (value) or remove (null) node labels."""

    action: Literal["label-nodes"] = "label-nodes"
    nodes: list[str]
    labels: dict[str, str | None]


class AnnotateNodes(_Model):
    action: Literal["annotate-nodes"] = "annotate-nodes"
    annotations: dict[str, dict[str, str | None]]  # node -> {key: value or null to remove}


class RestartPods(_Model):
    """Delete pods so their controllers recreate them: every non-hostNetwork pod without a CiliumEndpoint
    (``unmanaged_only``) or the pods matching ``selector``, optionally on some nodes only."""

    action: Literal["restart-pods"] = "restart-pods"
    namespace: str | None = None
    selector: str | None = None
    nodes: list[str] = Field(default_factory=list)
    unmanaged_only: bool = False


class RolloutRestart(_Model):
    action: Literal["rollout-restart"] = "rollout-restart"
    target: ObjectRef


class Verify(_Model):
    """Run checks in the middle of a step; the executor stops the step (and offers its rollback) if one fails."""

    action: Literal["verify"] = "verify"
    checks: list[Check]


Action = Annotated[
    Backup
    | RestoreBackup
    | ApplyObjects
    | PatchObject
    | DeleteObjects
    | RemoveFinalizers
    | NodeCommands
    | HelmRelease
    | HelmUninstall
    | WaitFor
    | ManualGate
    | CordonNodes
    | UncordonNodes
    | EvictPods
    | LabelNodes
    | AnnotateNodes
    | RestartPods
    | RolloutRestart
    | Verify,
    Field(discriminator="action"),
]

# Never swept by name, as the executor: objects named after nodes (hosts called k8s-calico-worker-1 match
# "calico"), Kubernetes' bookkeeping, objects that go with their owner, and Secrets (never read).
SWEEP_SKIPPED_RESOURCES = (
    "nodes",
    "pods",
    "secrets",
    "events",
    "endpoints",
    "componentstatuses",
    r"events\.events\.k8s\.io",
    r"leases\.coordination\.k8s\.io",
    r"endpointslices\.discovery\.k8s\.io",
    r"controllerrevisions\.apps",
    r"replicasets\.apps",
    r"csinodes\.storage\.k8s\.io",
    r"volumeattachments\.storage\.k8s\.io",
    r"certificatesigningrequests\.certificates\.k8s\.io",
)
SWEEP_SKIPPED_PATTERN = "^(" + "|".join(SWEEP_SKIPPED_RESOURCES) + ")$"


DESTRUCTIVE_ACTIONS = ("delete", "remove-finalizers", "patch", "helm-uninstall")


# --- steps and phases ----------------------------------------------------------------------------------------


class FactRef(_Model):
    """A fact a step relies on: its path in the ``discover -o json`` facts, its value and where it came from."""

    path: str
    value: Any = None
    source: str | None = None


class Rollback(_Model):
    description: str
    actions: list[Action] = Field(default_factory=list)
    possible: bool = True


class Disruption(_Model):
    disruptive: bool = False
    scope: Literal["none", "node", "cluster"] = "none"
    estimate_seconds: int = 0
    what: str = ""


class Step(_Model):
    id: str
    title: str
    scope: Literal["cluster", "node"]
    nodes: list[str] = Field(default_factory=list)
    description: str = ""
    actions: list[Action]
    preconditions: list[Check] = Field(default_factory=list)
    success: list[Check] = Field(default_factory=list)
    rollback: Rollback
    disruption: Disruption = Field(default_factory=Disruption)
    relies_on: list[FactRef] = Field(default_factory=list)


class Phase(_Model):
    id: str
    title: str
    description: str = ""
    steps: list[Step]


# --- the document --------------------------------------------------------------------------------------------


class Decision(_Model):
    """A choice the planner made: the option, the value, why, and the facts behind it."""

    option: str
    value: Any
    origin: Literal["option", "derived", "default", "values-file"]
    reason: str
    facts: list[FactRef] = Field(default_factory=list)


class GeneratedValue(_Model):
    name: str
    value: str
    origin: Literal["generated", "supplied"]
    note: str = ""


class LintSummary(_Model):
    """What the lint engine said about one values file the plan emits (errors would have stopped the plan)."""

    artifact: str
    errors: int = 0
    warnings: int = 0
    findings: list[dict[str, Any]] = Field(default_factory=list)
    not_checked: list[str] = Field(default_factory=list)


class Artifact(_Model):
    """A file the plan needs (values file, manifest, runbook), with its full content."""

    path: str
    kind: Literal["values", "manifest", "runbook"]
    description: str
    content: str


class PlanInputs(_Model):
    facts_source: str
    facts_digest: str
    cluster_nodes: int
    old_cni: str
    cilium_version: str
    strategy: Literal["offline", "rolling"]
    options: dict[str, Any]


class Plan(_Model):
    schema_version: Literal["cni-migrate.io/plan/v1"] = SCHEMA_VERSION
    id: str
    # sha256 of the document without this field (see plan_content_digest): the executor refuses a plan whose
    # content no longer matches, i.e. one edited after review.
    digest: str = ""
    generated_by: str
    inputs: PlanInputs
    backup_dir: str
    node_backup_dir: str
    decisions: list[Decision]
    generated: list[GeneratedValue] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    blocking_pdbs: list[str] = Field(default_factory=list)
    lint: list[LintSummary] = Field(default_factory=list)
    phases: list[Phase]
    artifacts: list[Artifact] = Field(default_factory=list)

    def steps(self) -> list[Step]:
        return [s for p in self.phases for s in p.steps]

    def step(self, step_id: str) -> Step:
        for s in self.steps():
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def artifact(self, path: str) -> Artifact:
        for a in self.artifacts:
            if a.path == path:
                return a
        raise KeyError(path)


def plan_content_digest(plan: Plan) -> str:
    """The digest of everything in the plan but the ``digest`` field itself (canonical JSON, sorted keys)."""
    body = plan.model_dump(mode="json", exclude={"digest"})
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
