"""The autoscaler's status document: written by the monitor after every tick, read back by
`rayctl status` (its table and its --json alike). Light: pydantic only, so reading a status
never imports the reconciler."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class BundleCount(_Record):
    bundle: dict[str, float]
    count: int


class PlacementGroupView(_Record):
    strategy: str
    bundles: list[dict[str, float]]


class Infeasible(_Record):
    bundle: dict[str, float]
    count: int
    reason: str


class Event(_Record):
    at: float
    action: str  # launch, terminate, kept, ready, failed
    what: str
    reason: str


class Backoff(_Record):
    failures: int  # failed launches of the type in a row
    until: float  # no launch of the type before then


class Retry(_Record):
    """A worker the provider could not terminate yet: retried with backoff."""

    attempts: int
    next_at: float
    reason: str  # why it is being terminated
    error: str  # why the last attempt failed


class AutostopStatus(_Record):
    """The cluster's autostop as of the monitor's last tick."""

    idle_minutes: float
    down: bool  # remove the cluster (else stop its nodes for a later `up`)
    idle_s: float | None  # how long it has been idle (None: it is not)
    left_s: float | None  # before it stops (None: not counting down)
    busy: str | None  # why it is not idle
    stopped_at: float | None = None  # when the monitor stopped it (without down)


class AutoscalerStatus(BaseModel):
    updated_at: float
    booting: list[str] = []  # ids of workers being bootstrapped
    demands: list[BundleCount] = []  # tasks and actors waiting, by shape
    placement_groups: list[PlacementGroupView] = []
    constraints: list[BundleCount] = []  # request_resources
    infeasible: list[Infeasible] = []
    events: list[Event] = []  # the last decisions, oldest first
    failures: list[Event] = []
    backoff: dict[str, Backoff] = {}  # node type -> its backoff
    terminating: dict[str, Retry] = {}  # node id -> its failed termination
    autostop: AutostopStatus | None = None  # None: no autostop
    pid: int | None = None  # the monitor's
    error: str | None = None  # why the last tick failed
