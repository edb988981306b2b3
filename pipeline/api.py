"""The public Python API over a store (`import sparsepipe`): list checkpoints and circuits, load them.

    import sparsepipe
    store = sparsepipe.open_store("./artifacts")         # or "s3://bucket/prefix"
    store.checkpoints()                                  # ["dense/tiny", "pretrain/tiny"]
    store.circuits()                                     # [("pretrain/tiny", "bracket_counting"), ...]
    model = store.load_model("pretrain/tiny")            # the GPT, with the reference hook names
    circuit = store.load_circuit("pretrain/tiny", "bracket_counting")
    circuit.run(["x = [1, [2"], ablate="circuit")        # logits, everything outside the circuit ablated
    circuit.loss("test")                                 # == result.json's circuit_loss

Artifacts are found by the kind their stage provides ("checkpoint", "circuit": `Stage.provides`), never by a
stage name, and read only after the same manifest checks a cell makes on its inputs (`execute.checked_input`).
A cell committed under several keys (runs with different configs) resolves to its newest commit; `key=` picks
another. A circuit loads with the very inputs its cell read: the prune manifest's parents, by digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..workers.prune.result import cell_name, split_cell
from .dag import default_registry
from .execute import checked_input
from .store import Manifest, Store, StoreSpec

if TYPE_CHECKING:
    from ..workers.nn.gpt import GPT
    from ..workers.prune.runnable import Circuit

CHECKPOINT, CIRCUIT = "checkpoint", "circuit"


class NotInStore(LookupError):
    """No committed artifact of that name in the store; the message lists what there is."""


@dataclass(frozen=True)
class CircuitRef:
    checkpoint: str  # "pretrain/tiny"
    task: str

    def __iter__(self):
        return iter((self.checkpoint, self.task))

    def __str__(self) -> str:
        return cell_name(self.checkpoint, self.task)


def open_store(url: str, endpoint_url: str | None = None, region: str | None = None) -> "ResultStore":
    """Open a store for reading: a local folder, or s3://bucket/prefix (endpoint from `endpoint_url` or
    AWS_ENDPOINT_URL, credentials as for boto)."""
    spec = StoreSpec(str(url), endpoint_url, region)
    if spec.is_local and not Path(spec.url).is_dir():
        raise FileNotFoundError(f"no store at {spec.url}: the folder does not exist")
    return ResultStore(spec.open(create=False))


class ResultStore:
    """Committed checkpoints and circuits of one store, by cell name."""

    def __init__(self, store: Store):
        self.store = store
        registry = default_registry()
        self._stages = {
            kind: {name for name, stage in registry.stages.items() if kind in stage.provides}
            for kind in (CHECKPOINT, CIRCUIT)
        }

    def __repr__(self) -> str:
        return f"ResultStore({self.store.spec.url!r})"

    # ----------------------------------------------------------------- listing

    def _newest(self, kind: str) -> dict[str, Manifest]:
        """{name: its newest committed manifest} for the stages that provide `kind` (`_name`)."""
        newest: dict[str, Manifest] = {}
        for manifest in self.store.iter_manifests():
            if manifest.stage not in self._stages[kind]:
                continue
            label = _name(kind, manifest)
            current = newest.get(label)
            if current is None or _committed_at(manifest) > _committed_at(current):
                newest[label] = manifest
        return dict(sorted(newest.items()))

    def checkpoints(self) -> list[str]:
        """Every committed checkpoint, by cell ("pretrain/tiny", "dense/tiny", "bridges/tiny", ...)."""
        return list(self._newest(CHECKPOINT))

    def circuits(self) -> list[CircuitRef]:
        """Every committed circuit as (checkpoint, task)."""
        refs = []
        for manifest in self._newest(CIRCUIT).values():
            refs.append(CircuitRef(*split_cell(manifest.cell)))
        return refs

    def _find(self, kind: str, label: str, key: str | None) -> Manifest:
        if key is not None:
            matches = [
                m
                for m in self.store.iter_manifests()
                if m.stage in self._stages[kind] and m.key.startswith(key) and _name(kind, m) == label
            ]
            if matches:
                return max(matches, key=lambda m: m.generation)
        else:
            found = self._newest(kind).get(label)
            if found is not None:
                return found
        have = ", ".join(self._newest(kind)) or "none"
        with_key = f" with key {key}" if key else ""
        raise NotInStore(f"no committed {kind} {label!r}{with_key} in {self.store.spec.url}; it has: {have}")

    # ------------------------------------------------------------------ loading

    def artifact_dir(self, manifest: Manifest) -> Path:
        """A local folder with the artifact's files, checked against its manifest (fetched once from S3)."""
        return checked_input(self.store, _label(manifest), manifest, full=False)

    def load_model(self, ref: str, key: str | None = None, device: str = "cpu") -> "GPT":
        """The checkpoint `ref` ("pretrain/tiny") as a GPT in eval mode; hooks are `model.hook_points`, named as
        the reference release names them ("0.attn.q", "1.mlp.post_act", ...)."""
        from ..workers.nn.gpt import load_checkpoint

        folder = self.artifact_dir(self._find(CHECKPOINT, ref, key))
        return load_checkpoint(folder, device=device).eval()

    def circuit_manifest(self, ref: str, task: str, key: str | None = None) -> Manifest:
        return self._find(CIRCUIT, cell_name(ref, task), key)

    def load_circuit(self, ref: str, task: str, key: str | None = None, device: str = "cpu") -> "Circuit":
        """The circuit of checkpoint `ref` on `task`, runnable (`Circuit.run`, `Circuit.loss`), loaded with the
        inputs its prune cell read."""
        from ..workers.prune.runnable import load_circuit

        manifest = self.circuit_manifest(ref, task, key)
        inputs = {name: self.artifact_dir(self._parent(manifest, name)) for name in manifest.data.get("parents", {})}
        return load_circuit(self.artifact_dir(manifest), inputs, device=device)

    def _parent(self, manifest: Manifest, name: str) -> Manifest:
        """Input `name` of the cell that committed `manifest`: the exact artifact it read (by digest)."""
        parent: dict[str, Any] = manifest.data["parents"][name]
        for candidate in reversed(self.store.manifests_of(parent["stage"], parent["key"])):
            if isinstance(candidate, Manifest) and candidate.digest == parent["digest"]:
                return candidate
        raise NotInStore(
            f"{_label(manifest)} read {parent['stage']}/{parent.get('cell', '')} (key {parent['key'][:12]}), "
            f"which is no longer in {self.store.spec.url}"
        )


def _label(manifest: Manifest) -> str:
    return f"{manifest.stage}/{manifest.cell}" if manifest.cell else manifest.stage


def _name(kind: str, manifest: Manifest) -> str:
    """A checkpoint is named by stage and cell ("pretrain/tiny"); a circuit by its cell ("pretrain/tiny:task")."""
    return manifest.cell if kind == CIRCUIT else _label(manifest)


def _committed_at(manifest: Manifest) -> float:
    return float(manifest.data.get("committed_at") or 0.0)
