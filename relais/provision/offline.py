"""`relais provision preview --offline`: the resource graph a stack would create, without the
`pulumi` CLI, a provider plugin or any network.

The stack's real program runs under Pulumi's own mock runtime (the one sanctioned stand-in,
as in the unit tests); every registered resource is recorded with its parent and inputs, and
the CrossGuard rules of ``policies/crossguard`` are applied to each, as the engine would.
Values only the cloud knows (addresses, ids) show as placeholders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

from relais.plan import Plan
from relais.provision.errors import ProvisionError
from relais.provision.paths import ensure_importable

if TYPE_CHECKING:
    from policies.crossguard.rules import Violation
    from stacks.program import StackOptions, StackSpec


def known_after_up(name: str, what: str = "address") -> str:
    return f"({name} {what}, known after up)"


class PreviewMocks(pulumi.runtime.Mocks):
    """Inputs come back as state; what only the cloud computes gets a readable placeholder."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        state: dict[str, Any] = dict(args.inputs)
        if args.typ == "openstack:networking/port:Port":
            state["allFixedIps"] = [known_after_up(args.name)]
        elif args.typ == "openstack:networking/floatingIp:FloatingIp":
            state["address"] = known_after_up(args.name, "public address")
        elif args.typ == "scaleway:instance/server:Server":
            state["privateIps"] = [{"id": f"{args.name}-pnic", "address": known_after_up(args.name)}]
        elif args.typ == "scaleway:instance/ip:Ip":
            state["address"] = known_after_up(args.name, "public address")
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        name = args.args.get("name", "")
        return {"id": f"({args.token.rsplit(':', 1)[-1]} {name})", "name": name}, []


@dataclass(frozen=True)
class PlannedResource:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[PlannedResource] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            inputs = self.resources[response.urn].state if response.urn in self.resources else {}
            self.recorded.append(PlannedResource(
                urn=response.urn, type=request.type, name=request.name, parent=request.parent or None,
                custom=bool(request.custom), inputs=dict(inputs)))
        return response


@dataclass
class OfflinePreview:
    stack: str
    spec: StackSpec
    resources: list[PlannedResource]
    violations: list[Violation] = field(default_factory=list)

    def of_type(self, resource_type: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == resource_type]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource in self.resources:
            if resource.custom:
                counts[resource.type] = counts.get(resource.type, 0) + 1
        return dict(sorted(counts.items()))

    def tree(self) -> list[tuple[int, PlannedResource]]:
        """Resources depth-first under their parents, in registration order."""
        by_urn = {r.urn for r in self.resources}
        children: dict[str | None, list[PlannedResource]] = {}
        for resource in sorted(self.resources, key=lambda r: (r.custom, r.type, r.name)):
            parent = resource.parent if resource.parent in by_urn else None
            children.setdefault(parent, []).append(resource)
        ordered: list[tuple[int, PlannedResource]] = []

        def walk(parent: str | None, depth: int) -> None:
            for child in children.get(parent, []):
                ordered.append((depth, child))
                walk(child.urn, depth + 1)

        walk(None, 0)
        return ordered

    def as_dict(self) -> dict[str, object]:
        spec = self.spec
        return {
            "stack": self.stack,
            "provider": spec.provider,
            "project": spec.project,
            "review": spec.review,
            "counts": self.counts(),
            "resources": [
                {"depth": depth, "type": r.type, "name": r.name, "urn": r.urn, "custom": r.custom,
                 "inputs": r.inputs}
                for depth, r in self.tree()
            ],
            "violations": [
                {"rule": v.rule, "type": v.resource_type, "name": v.name, "message": v.message}
                for v in self.violations
            ],
            "commune_records": [r.model_dump(mode="json") for r in spec.commune_records],
            "unresolved": list(spec.unresolved),
            "notes": list(spec.notes),
        }


def describe_stack(plan: Plan, options: StackOptions) -> StackSpec:
    """:func:`stacks.program.describe`, its errors as :class:`ProvisionError`."""
    ensure_importable()
    from stacks.program import StackSpecError, describe

    try:
        return describe(plan, options)
    except StackSpecError as error:
        raise ProvisionError(f"stack {options.kind}: {error}", hint=error.hint) from None


def run_under_mocks(program: Callable[[], None], *, project: str, stack: str,
                    mocks: pulumi.runtime.Mocks | None = None) -> list[PlannedResource]:
    """Run a Pulumi program under the mock runtime; return every resource it registered."""
    mocks = mocks or PreviewMocks()
    monitor = _RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=True, monitor=monitor)
    pulumi.runtime.test(program)()  # type: ignore[no-untyped-call]
    return monitor.recorded


def preview_offline(plan: Plan, options: StackOptions, *, stack: str | None = None,
                    mocks: pulumi.runtime.Mocks | None = None) -> OfflinePreview:
    """The resources the stack would create for this Plan, checked by the CrossGuard pack."""
    spec = describe_stack(plan, options)
    from policies.crossguard.rules import check
    from stacks.program import run

    resources = run_under_mocks(lambda: run(spec, options), project=spec.project,
                                stack=stack or options.kind, mocks=mocks)
    violations = [v for r in resources if r.custom for v in check(r.type, r.inputs, name=r.name, urn=r.urn)]
    return OfflinePreview(stack=options.kind, spec=spec, resources=resources, violations=violations)
