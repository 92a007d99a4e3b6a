"""Where the time goes: an operator-level profile of prefill and decode inside llama.cpp.

llama.cpp's scheduler takes an evaluation callback (``llama_context_params.cb_eval``, type
``ggml_backend_sched_eval_callback``).  For every graph node it first asks "do you want to
observe this node?" (``ask=true``); for an observed node it computes the graph up to and
including that node, synchronises the backend and calls back again (``ask=false``).  Answering
yes for every node that does work makes the scheduler compute the graph one node at a time, and
two clock readings per node bracket exactly that node's compute:

- the last thing the ``ask`` callback does is read the clock (the compute starts when it
  returns);
- the first thing the ``ask=false`` callback does is read the clock (the compute and the
  synchronise are over).

Everything else happens outside the timed intervals: the callbacks store raw integers only
(tensor addresses and nanoseconds) and the nodes' op, type, shape and name are read from ggml
itself (``ggml_op_desc``, ``ggml_op_name``, ``ggml_get_name``, ``ggml_nbytes``,
``ggml_type_name`` and the ``ggml_tensor`` struct) after the timed run, while the graph still
exists (llama.cpp builds graphs of constant topology, so one graph describes every graph of a
test).

Views (no work) and an ``RMS_NORM`` followed by its ``MUL`` (which the CPU backend fuses) are
not observed: they are computed together with the next node and timed with it.  The time
between one node's end and the next node's start is the observer's own callback time; the
time of ``llama_decode`` outside every node (graph build, input upload, output copy) is the
unattributed rest.  The same test runs without the callback on a second context of the same
model in the same process, interleaved sample by sample, for the cost of observing.

docs/profile.md describes the method, the operator classes and the limits.
"""

from __future__ import annotations

import ctypes
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from slmbench import config
from slmbench.config import Settings, TestPlan, config_id
from slmbench.errors import ModelLoadError, ProfileError
from slmbench.gguf_info import model_id_from_file, read_gguf
from slmbench.llama_backend import llama
from slmbench.schema import (LayerTime, LoadResult, NodeTime, OperatorClassTime,
                             OperatorProfile, Record, TestResult, utc_now)
from slmbench.stats import noise_warning, summarize

Progress = Callable[[str], None]

CLASS_ORDER = ("matmul", "output", "attention", "kv_copy", "norm", "rope", "elementwise",
               "embedding", "other", "noise", "unattributed")  # docs/profile.md defines them
EMPTY_OPS = ("NONE", "RESHAPE", "VIEW", "PERMUTE", "TRANSPOSE")  # ggml computes nothing
FUSED_FIRST = ("RMS_NORM",)  # the CPU backend fuses RMS_NORM + MUL when computed together
MATMUL_OPS = {"MUL_MAT", "MUL_MAT_ID"}
ATTENTION_OPS = {"SOFT_MAX", "FLASH_ATTN_EXT", "SSM_CONV", "SSM_SCAN", "RWKV_WKV6",
                 "RWKV_WKV7", "GATED_LINEAR_ATTN", "GATED_DELTA_NET"}
NORM_OPS = {"NORM", "RMS_NORM", "GROUP_NORM", "L2_NORM"}
ROPE_OPS = {"ROPE"}
ELEMENTWISE_OPS = {"ADD", "ADD_ID", "ADD1", "ACC", "SUB", "MUL", "DIV", "SQR", "SQRT", "LOG",
                   "SIN", "COS", "SCALE", "CLAMP", "UNARY", "GLU", "LEAKY_RELU", "FILL"}
OUTPUT_WEIGHTS = ("output.weight", "token_embd.weight")  # token_embd: tied embeddings
BUFFER_USAGE_WEIGHTS = 1  # enum ggml_backend_buffer_usage
TOP_NODES = 12
_LAYER_RE = re.compile(r"-(\d+)(?: |$)")
_AUTO_NAME_RE = re.compile(r"^(node_\d+)?$")


# --------------------------------------------------------------------------- ggml itself

class _Tensor(ctypes.Structure):
    """struct ggml_tensor (ggml/include/ggml.h); checked against ggml_get_name at first use."""

    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p),
                ("ne", ctypes.c_int64 * 4), ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int),
                ("op_params", ctypes.c_int32 * 16), ("flags", ctypes.c_int32),
                ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p),
                ("name", ctypes.c_char * 64), ("extra", ctypes.c_void_p),
                ("padding", ctypes.c_char * 8)]


OP_OFFSET = _Tensor.op.offset


class Ggml:
    """The functions of the ggml library shipped with llama-cpp-python that a profile reads
    nodes with.  One-line ProfileError when this build lacks them."""

    _instance: "Ggml | None" = None

    def __init__(self) -> None:
        lc = llama()
        if not hasattr(lc, "ggml_backend_sched_eval_callback") or "cb_eval" not in \
                [f[0] for f in lc.llama_context_params._fields_]:
            raise ProfileError(
                "this llama-cpp-python does not expose llama.cpp's scheduler evaluation "
                "callback (llama_context_params.cb_eval); upgrade llama-cpp-python to profile")
        self.callback_type = lc.ggml_backend_sched_eval_callback
        lib_dir = os.path.join(os.path.dirname(lc.__file__), "lib")
        try:
            base = _load_first([os.path.join(lib_dir, _lib_name(stem))
                                for stem in ("ggml-base", "ggml", "llama")])
            sig = {"ggml_op_desc": (ctypes.c_char_p, [ctypes.c_void_p]),
                   "ggml_op_name": (ctypes.c_char_p, [ctypes.c_int]),
                   "ggml_get_name": (ctypes.c_void_p, [ctypes.c_void_p]),
                   "ggml_nbytes": (ctypes.c_size_t, [ctypes.c_void_p]),
                   "ggml_type_name": (ctypes.c_char_p, [ctypes.c_int]),
                   "ggml_backend_buffer_name": (ctypes.c_char_p, [ctypes.c_void_p]),
                   "ggml_backend_buffer_get_usage": (ctypes.c_int, [ctypes.c_void_p])}
            for name, (restype, argtypes) in sig.items():
                fn = getattr(base, name)
                fn.restype, fn.argtypes = restype, argtypes
        except (OSError, AttributeError) as exc:
            raise ProfileError(f"the ggml library of this llama-cpp-python lacks what a profile "
                               f"reads nodes with ({exc})") from None
        self.base = base
        self._op_names: dict[int, str] = {}
        ids = self.op_ids(EMPTY_OPS + FUSED_FIRST)
        self.empty_ids = frozenset(ids[n] for n in EMPTY_OPS)
        self.fused_first_ids = frozenset(ids[n] for n in FUSED_FIRST)
        self.checked = False

    @classmethod
    def get(cls) -> "Ggml":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def op_name(self, op: int) -> str:
        name = self._op_names.get(op)
        if name is None:
            raw = self.base.ggml_op_name(op)
            name = self._op_names[op] = raw.decode() if raw else f"OP{op}"
        return name

    def op_ids(self, names: tuple[str, ...]) -> dict[str, int]:
        """enum ggml_op values by name, scanning from 0 only as far as needed (the names
        table has no length symbol; these ops sit early in the enum)."""
        found: dict[str, int] = {}
        for op in range(256):
            name = self.op_name(op)
            if name in names:
                found[name] = op
            if len(found) == len(set(names)):
                return found
        raise ProfileError(f"this ggml has no op named {', '.join(set(names) - set(found))}")

    def check_layout(self, ptr: int) -> None:
        """The struct layout above is this library's: the name lies where ggml_get_name says
        and the op is a known one."""
        t = _Tensor.from_address(ptr)
        if self.base.ggml_get_name(ptr) != ptr + _Tensor.name.offset or not \
                0 <= t.op < 256 or self.base.ggml_op_desc(ptr) is None:
            raise ProfileError("the ggml_tensor layout of this llama.cpp build is not the one "
                               "slmbench knows (ggml.h changed); cannot read graph nodes")
        self.checked = True


def _load_first(paths: list[str]) -> Any:
    """The first of these libraries that loads and has ggml_op_desc (a build may link ggml
    into libllama)."""
    error: Exception = OSError("no ggml library found")
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.ggml_op_desc  # noqa: B018 - the symbol is the test
            return lib
        except (OSError, AttributeError) as exc:
            error = exc
    raise error


def _lib_name(stem: str) -> str:
    import sys

    if sys.platform == "darwin":
        return f"lib{stem}.dylib"
    if sys.platform == "win32":
        return f"{stem}.dll"
    return f"lib{stem}.so"


@dataclass
class Node:
    """What ggml says about one graph node (read after the timed run)."""

    name: str
    op: str  # ggml_op_name: MUL_MAT, UNARY, GLU ...
    desc: str  # ggml_op_desc: the unary / glu op for those
    type: str
    shape: list[int]
    backend: str | None
    weight_name: str | None = None  # src0 when it lives in a weights buffer
    weight_type: str | None = None
    weight_bytes: int = 0  # bytes of src0 read by one evaluation
    dst_name: str | None = None  # CPY: the tensor written
    src_names: tuple[str, ...] = ()  # its sources' names (the layer of an unnamed node)

    @property
    def layer(self) -> int | None:
        """The block of the node: its name's ``-N`` suffix (llama.cpp names nodes so); a node
        ggml named itself (``node_52``: llama.cpp did not name it) takes its first source's
        (an unnamed FLASH_ATTN_EXT reads Qcur-N)."""
        names = (self.name,) + (self.src_names if _AUTO_NAME_RE.match(self.name) else ())
        for name in names:
            m = _LAYER_RE.search(name)
            if m:
                return int(m.group(1))
        return None

    @property
    def empty(self) -> bool:
        return self.op in EMPTY_OPS

    def op_class(self) -> tuple[str, str | None]:
        """(class, weight type) of the node."""
        op = self.op
        if op in MATMUL_OPS:
            if self.weight_name is None:
                return "attention", None
            if self.weight_name in OUTPUT_WEIGHTS:
                return "output", self.weight_type
            return "matmul", self.weight_type
        if op in ATTENTION_OPS:
            return "attention", None
        if op == "SET_ROWS" or (op == "CPY" and "cache" in (self.dst_name or "")):
            return "kv_copy", None
        if op in NORM_OPS:
            return "norm", None
        if op in ROPE_OPS:
            return "rope", None
        if op == "GET_ROWS":
            return ("embedding", self.weight_type) if self.weight_name else ("other", None)
        if op in ELEMENTWISE_OPS:
            return "elementwise", None
        return "other", None


def read_node(g: Ggml, ptr: int) -> Node:
    """A graph node's facts from ggml (the graph must still exist)."""
    if not g.checked:
        g.check_layout(ptr)
    t = _Tensor.from_address(ptr)
    base = g.base
    shape = list(t.ne)
    while len(shape) > 1 and shape[-1] == 1:
        shape.pop()
    buf = t.buffer
    if not buf and t.view_src:
        buf = _Tensor.from_address(t.view_src).buffer
    node = Node(name=t.name.decode("utf-8", "replace"), op=g.op_name(t.op),
                desc=(base.ggml_op_desc(ptr) or b"?").decode(),
                type=_type_name(base, t.type), shape=shape,
                backend=(base.ggml_backend_buffer_name(buf) or b"?").decode() if buf else None)
    node.src_names = tuple(_Tensor.from_address(p).name.decode("utf-8", "replace")
                           for p in t.src[:3] if p)
    src0 = t.src[0]
    if src0:
        s0 = _Tensor.from_address(src0)
        if s0.buffer and s0.op == 0 and \
                base.ggml_backend_buffer_get_usage(s0.buffer) == BUFFER_USAGE_WEIGHTS:
            node.weight_name = s0.name.decode("utf-8", "replace")
            node.weight_type = _type_name(base, s0.type)
            nbytes = int(base.ggml_nbytes(src0))
            if node.op == "GET_ROWS" and t.src[1]:  # only the rows looked up
                rows = _Tensor.from_address(t.src[1])
                nbytes = min(nbytes, int(rows.ne[0] * rows.ne[1]) * int(s0.nb[1]))
            elif node.op == "MUL_MAT_ID" and t.src[2] and s0.ne[2] > 0:
                ids = _Tensor.from_address(t.src[2])  # experts used, at most all of them
                nbytes = int(nbytes * min(1.0, ids.ne[0] * ids.ne[1] / s0.ne[2]))
            node.weight_bytes = nbytes
    if node.op == "CPY" and t.src[1]:
        node.dst_name = _Tensor.from_address(t.src[1]).name.decode("utf-8", "replace")
    return node


def _type_name(base: Any, type_: int) -> str:
    """ggml_type_name in the spelling of file types: q4_K -> Q4_K, f16 -> F16."""
    return (base.ggml_type_name(type_) or b"?").decode().upper()


# --------------------------------------------------------------------------- the callback

class Recorder:
    """The evaluation callback and its raw record: integers only, nothing decoded in it."""

    def __init__(self, g: Ggml):
        self.g = g
        self.asked: list[int] = []  # every node the scheduler asked about, in order
        self.obs_idx: list[int] = []  # per timed node: len(asked) when it was asked
        self.obs_t: list[int] = []  # per timed node: clock when its compute starts
        self.posts: list[int] = []  # per timed node: clock when its compute is over
        self.needs: dict[int, bool] = {}  # node address -> observed (cleared per test)
        asked, obs_idx, obs_t, posts, needs = (self.asked, self.obs_idx, self.obs_t,
                                                self.posts, self.needs)
        clock = time.perf_counter_ns
        read_op = ctypes.c_int.from_address
        skip = g.empty_ids | g.fused_first_ids

        def callback(t: int, ask: bool, _user: Any) -> bool:
            if not ask:
                posts.append(clock())  # first thing: the node's compute is over
                return True
            asked.append(t)
            need = needs.get(t)
            if need is None:
                need = needs[t] = read_op(t + OP_OFFSET).value not in skip
            if need:
                obs_idx.append(len(asked))
                obs_t.append(clock())  # last thing: the compute starts when this returns
            return need

        self._fn = callback
        self.cfunc = g.callback_type(callback)  # must outlive the context (Session keeps it)

    def reset(self) -> None:
        del self.asked[:], self.obs_idx[:], self.obs_t[:], self.posts[:]

    def new_test(self) -> None:
        self.reset()
        self.needs.clear()


@dataclass
class _Group:
    """Nodes computed together and timed as one (the timed node and the views before it)."""

    members: tuple[int, ...]
    ns: list[int] = field(default_factory=list)  # every evaluation's time

    @property
    def typical_ns(self) -> float:
        """Median evaluation time x evaluations: the node's time without the spikes other
        processes, page faults and late wake-ups add to some evaluations."""
        import numpy as np

        return float(np.median(self.ns)) * len(self.ns) if self.ns else 0.0


@dataclass
class _Accumulator:
    """One phase's raw totals over its samples."""

    groups: dict[int, _Group] = field(default_factory=dict)  # timed node address -> group
    nodes: dict[int, Node] = field(default_factory=dict)
    n_graph_nodes: int = 0
    n_graphs: int = 0
    nodes_ns: int = 0
    callback_ns: int = 0
    profiled_ns: list[int] = field(default_factory=list)
    unprofiled_ns: list[int] = field(default_factory=list)
    callback_sample_ns: list[int] = field(default_factory=list)

    def add_sample(self, rec: Recorder, wall_ns: int, g: Ggml) -> None:
        """Fold one profiled sample's raw record in and read its new nodes from ggml (the
        graph is still alive: nothing has been computed since)."""
        import numpy as np

        n = len(rec.posts)
        if n == 0 or len(rec.obs_t) != n:
            raise ProfileError("llama.cpp did not call the evaluation callback after the "
                               "nodes it computed: this backend cannot be profiled")
        asked = np.asarray(rec.asked, dtype=np.int64)
        idx = np.asarray(rec.obs_idx, dtype=np.int64)
        t0 = np.asarray(rec.obs_t, dtype=np.int64)
        t1 = np.asarray(rec.posts, dtype=np.int64)
        starts = np.flatnonzero(asked == asked[0])  # a graph starts where its first node is
        self.n_graphs += len(starts)
        self.n_graph_nodes = max(self.n_graph_nodes, int(np.diff(
            np.append(starts, len(asked))).max()))
        intervals = (t1 - t0).tolist()
        self.nodes_ns += int(sum(intervals))
        # between consecutive timed nodes of one graph: the observer's callbacks
        callback_ns = 0
        if n > 1:
            crossed = np.searchsorted(starts, idx[1:], "left") - \
                np.searchsorted(starts, idx[:-1], "left")
            gaps = t0[1:] - t1[:-1]
            callback_ns = int(gaps[crossed == 0].sum())
        self.callback_ns += callback_ns
        self.callback_sample_ns.append(callback_ns)
        prev = 0
        asked_list = rec.asked
        groups = self.groups
        for i, end in enumerate(rec.obs_idx):
            key = asked_list[end - 1]
            grp = groups.get(key)
            if grp is None:
                grp = groups[key] = _Group(members=tuple(asked_list[prev:end]))
            grp.ns.append(intervals[i])
            prev = end
        for ptr in set(asked_list):
            if ptr not in self.nodes:
                self.nodes[ptr] = read_node(g, ptr)
        self.profiled_ns.append(int(wall_ns))


def _group_facts(grp: _Group, nodes: dict[int, Node]) -> tuple[Node, str, int | None,
                                                                   list[Node]]:
    """(principal node, op text, layer, working nodes) of a group: the principal is its first
    node that does work (RMS_NORM of a fused RMS_NORM+MUL), the name its timed node's."""
    work = [nodes[p] for p in grp.members if not nodes[p].empty] or [nodes[grp.members[-1]]]
    principal = work[0]
    op = "+".join(n.desc for n in work)
    layer = next((n.layer for n in [nodes[grp.members[-1]]] + work if n.layer is not None),
                 None)
    return principal, op, layer, work


def _median(values: list[int]) -> float:
    import numpy as np

    return float(np.median(values)) if values else 0.0


def summarize_phase(acc: _Accumulator, phase: str, n_tokens: int) -> OperatorProfile:
    """The per-token profile of one phase from its accumulated samples.

    Totals are sums over every sample (so nodes + callbacks + unattributed = the profiled
    wall time exactly); a class's time is the sum of its nodes' typical times (median
    evaluation x evaluations), and what the nodes took above that is the ``noise`` row.
    """
    n_samples = len(acc.profiled_ns)
    tokens = max(1, n_tokens * n_samples)
    per_tok = 1e-6 / tokens  # ns total -> ms per token
    profiled_total = sum(acc.profiled_ns)
    total_ns = profiled_total - acc.callback_ns
    unattributed_ns = max(0, total_ns - acc.nodes_ns)

    def pct(ns: float) -> float:
        return round(100.0 * ns / total_ns, 3) if total_ns > 0 else 0.0

    classes: dict[tuple[str, str | None], dict[str, float]] = {}
    layers: dict[int | None, dict[str, float]] = {}
    backends: dict[str, float] = {}
    tops = []
    typical_total = 0.0
    for grp in acc.groups.values():
        principal, op, layer, work = _group_facts(grp, acc.nodes)
        cls, wtype = principal.op_class()
        label = f"{cls} {wtype}" if wtype and cls != "embedding" else cls
        key = (cls, wtype if cls != "embedding" else None)
        ns = grp.typical_ns
        typical_total += ns
        row = classes.setdefault(key, {"ns": 0.0, "n": 0, "bytes": 0.0})
        row["ns"] += ns
        row["n"] += 1
        wbytes = sum(n.weight_bytes for n in work)
        row["bytes"] += wbytes * len(grp.ns)
        lay = layers.setdefault(layer, {})
        lay[label] = lay.get(label, 0.0) + ns
        backend = acc.nodes[grp.members[-1]].backend or "?"
        backends[backend] = backends.get(backend, 0.0) + ns
        tops.append((ns, principal, op, label, layer, grp, wbytes))
    noise_ns = acc.nodes_ns - typical_total
    n_timed = len(acc.groups)
    n_graphs_per_sample = acc.n_graphs // max(1, n_samples)
    class_rows = []
    for (cls, wtype), row in classes.items():
        gbs = None
        if row["bytes"] and row["ns"] > 0 and cls in ("matmul", "output", "embedding"):
            gbs = round(row["bytes"] / row["ns"], 3)  # bytes per ns = GB/s
        class_rows.append(OperatorClassTime(
            op_class=cls, weight_type=wtype, ms=round(row["ns"] * per_tok, 5),
            pct=pct(row["ns"]), n_nodes=int(row["n"]),
            weight_bytes=round(row["bytes"] / tokens, 1) if row["bytes"] else None, gbs=gbs))
    class_rows.append(OperatorClassTime(op_class="noise", ms=round(noise_ns * per_tok, 5),
                                        pct=pct(noise_ns)))
    class_rows.append(OperatorClassTime(op_class="unattributed",
                                        ms=round(unattributed_ns * per_tok, 5),
                                        pct=pct(unattributed_ns)))
    class_rows.sort(key=lambda r: (CLASS_ORDER.index(r.op_class), -r.ms))
    layer_rows = [LayerTime(layer=k, ms=round(sum(v.values()) * per_tok, 5),
                            pct=pct(sum(v.values())),
                            classes={c: round(ns * per_tok, 5) for c, ns in
                                     sorted(v.items(), key=lambda kv: -kv[1])})
                  for k, v in sorted(layers.items(), key=lambda kv: (kv[0] is None,
                                                                     kv[0] or 0))]
    tops.sort(key=lambda x: -x[0])
    top_rows = [NodeTime(name=acc.nodes[grp.members[-1]].name, op=op, op_class=label,
                         layer=layer, ms=round(ns * per_tok, 5), pct=pct(ns),
                         shape=acc.nodes[grp.members[-1]].shape,
                         weight_type=principal.weight_type, weight_bytes=wbytes or None)
                for ns, principal, op, label, layer, grp, wbytes in tops[:TOP_NODES]]
    # the cost of observing, from the medians of the interleaved samples
    med_prof, med_plain = _median(acc.profiled_ns), _median(acc.unprofiled_ns)
    overhead = round(100.0 * (med_prof / med_plain - 1), 2) if med_plain else 0.0
    dispatch = None
    timed_per_sample = n_timed * n_graphs_per_sample
    if timed_per_sample and med_plain:
        extra = med_prof - _median(acc.callback_sample_ns) - med_plain
        dispatch = round(extra / timed_per_sample / 1e3, 3)
    unprofiled_ms = sum(acc.unprofiled_ns) / max(1, len(acc.unprofiled_ns)) / \
        max(1, n_tokens) / 1e6
    return OperatorProfile(
        phase=phase, n_tokens=n_tokens, n_samples=n_samples,
        profiled_ms=round(profiled_total * per_tok, 5), unprofiled_ms=round(unprofiled_ms, 5),
        overhead_pct=overhead,
        total_ms=round(total_ns * per_tok, 5), nodes_ms=round(acc.nodes_ns * per_tok, 5),
        callback_ms=round(acc.callback_ns * per_tok, 5),
        unattributed_ms=round(unattributed_ns * per_tok, 5),
        noise_ms=round(noise_ns * per_tok, 5),
        coverage_pct=pct(acc.nodes_ns), dispatch_us=dispatch,
        n_graph_nodes=acc.n_graph_nodes, n_timed_nodes=n_timed,
        n_graphs=n_graphs_per_sample, classes=class_rows, layers=layer_rows,
        top_nodes=top_rows,
        backends={k: round(v * per_tok, 5) for k, v in sorted(backends.items())},
        profiled_samples_ns=list(acc.profiled_ns),
        unprofiled_samples_ns=list(acc.unprofiled_ns))


# --------------------------------------------------------------------------- measuring

def profile_name(phase: str, n_prompt: int, n_gen: int, n_depth: int) -> str:
    base = f"profile-pp{n_prompt}" if phase == "prefill" else f"profile-tg{n_gen}"
    return f"{base}@d{n_depth}" if n_depth else base


def profile_plan(n_prompt: int, n_gen: int, n_depth: int) -> TestPlan:
    return TestPlan([n_prompt] if n_prompt else [], [n_gen] if n_gen else [], [n_depth], False)


def profile_record_id(model_key: str, settings: Settings, n_prompt: int, n_gen: int,
                      n_depth: int) -> str:
    """The record id of a profile config (distinct from the timing config's of the same
    settings)."""
    return config_id(f"{model_key}:profile", settings,
                     profile_plan(n_prompt, n_gen, n_depth))


def measure_profile(path: str, settings: Settings, *, n_prompt: int = 256, n_gen: int = 32,
                    n_depth: int = 0, repetitions: int = 3, model_id: str | None = None,
                    quant: str | None = None, device: str | None = None,
                    progress: Progress | None = None) -> Record:
    """Profile ``path``: a prefill of ``n_prompt`` tokens and ``n_gen`` single-token decodes,
    both at depth ``n_depth``, ``repetitions`` samples each with and without the callback.

    Returns a Record with one ``profile`` test per phase (its ``samples_ns`` are the unprofiled
    samples, comparable with ``bench``; ``profile`` holds the breakdown).  Raises
    SlmbenchError for bad input (ProfileError when this build cannot be profiled).
    """
    import numpy as np

    from slmbench.measure import Session

    path = os.fspath(path)
    settings = config.resolved(settings)
    settings.repetitions = int(repetitions)
    plan = profile_plan(n_prompt, n_gen, n_depth)
    config.validate(settings, plan)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such model file")
    g = Ggml.get()
    info = read_gguf(path)
    quant = quant or info.file_type
    model_id = model_id or model_id_from_file(path, quant)
    record = Record(record_id=profile_record_id(f"{model_id}:{quant}", settings, n_prompt,
                                                n_gen, n_depth),
                    run_id=None, model_id=model_id, quant=quant, device=device,
                    started_at=utc_now(), model=info.to_facts(), settings=settings)
    n_ctx = settings.n_ctx or plan.n_ctx_needed()
    rec = Recorder(g)
    plain = prof = None
    try:
        if progress:
            progress("loading")
        plain = Session(path, settings, n_ctx, info)
        prof = Session(path, settings, n_ctx, info, cb_eval=rec.cfunc, share=plain)
        record.load = LoadResult(load_ms=round(plain.load_ms, 3), ctx_ms=round(plain.ctx_ms, 3),
                                 rss_before_load_mib=round(plain.rss_before_load, 2),
                                 rss_after_load_mib=round(plain.rss_after_load, 2),
                                 rss_after_ctx_mib=round(prof.rss_after_ctx, 2))
        rng = np.random.default_rng(settings.seed)
        notes = _notes(settings, plain)
        phases = [p for p, k in (("prefill", n_prompt), ("decode", n_gen)) if k > 0]
        for phase in phases:
            test = _profile_phase(plain, prof, rec, g, phase, n_prompt, n_gen, n_depth,
                                  settings, rng, progress)
            test.profile.notes = list(notes)
            record.tests.append(test)
    finally:
        for sess in (prof, plain):  # the second context first: it borrows the model
            if sess is not None:
                sess.close()
    record.finished_at = utc_now()
    for t in record.tests:
        record.warnings.extend(t.warnings)
    return record


def _notes(settings: Settings, sess: Any) -> list[str]:
    notes = []
    lc = sess.lc
    if settings.n_gpu_layers and not lc.llama_supports_gpu_offload():
        notes.append(f"-ngl {settings.n_gpu_layers}: this llama.cpp build has no GPU backend; "
                     "every node ran on the CPU")
    return notes


def _profile_phase(plain: Any, prof: Any, rec: Recorder, g: Ggml, phase: str, n_prompt: int,
                   n_gen: int, n_depth: int, settings: Settings, rng: Any,
                   progress: Progress | None) -> TestResult:
    import numpy as np

    name = profile_name(phase, n_prompt, n_gen, n_depth)
    n_tokens = n_prompt if phase == "prefill" else n_gen
    res = TestResult(test="profile", name=name, n_prompt=n_prompt if phase == "prefill" else 0,
                     n_gen=n_gen if phase == "decode" else 0, n_depth=n_depth)
    acc = _Accumulator()
    rec.new_test()
    fill_seed = settings.seed + 1

    def make_batches() -> list[Any]:
        if phase == "prefill":
            toks = plain.random_tokens(n_prompt, rng)
            return plain.batches(toks, n_prompt, settings.n_batch)
        toks = plain.random_tokens(n_gen, rng, bos_first=True)
        return plain.batches(toks, n_gen, 1)

    def timed(sess: Any, batches: list[Any]) -> int:
        sess.clear()
        sess.fill_depth(n_depth, np.random.default_rng(fill_seed))
        if sess is prof:  # the fill's nodes are not part of the sample, and its graph's
            rec.new_test()  # addresses may hold other nodes in the test's graph
        if phase == "prefill":
            return sess.time_prefill(batches)
        return sess.time_decode(batches, [])

    # warm-up: both contexts, untimed (first graphs allocate and touch their buffers)
    for _ in range(max(1, settings.warmup)):
        for sess in (plain, prof):
            sess.clear()
            warm = (sess.batches(sess.random_tokens(n_prompt, rng), n_prompt, settings.n_batch)
                    if phase == "prefill" else sess.batches(sess.random_tokens(1, rng), 1, 1))
            sess.run_batches(warm)
    if not rec.posts:
        raise ProfileError("llama.cpp never called the evaluation callback: this build's "
                           "scheduler cannot be profiled")
    for rep in range(settings.repetitions):
        if progress:
            progress(f"{name} {rep + 1}/{settings.repetitions}")
        batches = make_batches()
        order = (plain, prof) if rep % 2 == 0 else (prof, plain)  # interleaved A/B
        for sess in order:
            ns = timed(sess, batches)
            if sess is prof:
                acc.add_sample(rec, ns, g)  # untimed: reads the nodes of the live graph
                rec.reset()
            else:
                acc.unprofiled_ns.append(int(ns))
    res.profile = summarize_phase(acc, phase, n_tokens)
    _add_backend_notes(res.profile)
    res.samples_ns = list(acc.unprofiled_ns)
    res.samples_ts = [1e9 * n_tokens / ns if ns > 0 else float("nan") for ns in res.samples_ns]
    res.ms = summarize([ns / 1e6 for ns in res.samples_ns])
    res.ts = summarize(res.samples_ts)
    res.stop_reason = "fixed"
    for stats, what in ((res.ms, name),
                        (summarize([ns / 1e6 for ns in acc.profiled_ns]), f"{name} profiled")):
        warn = noise_warning(what, stats)
        if warn:
            res.warnings.append(warn)
    return res


def _add_backend_notes(p: OperatorProfile) -> None:
    gpu = [b for b in p.backends if not b.upper().startswith("CPU")]
    if gpu:
        p.notes.append(
            f"nodes on {', '.join(gpu)} were timed the same way: the scheduler synchronises "
            "the backend after every observed node, so queued kernels no longer overlap and "
            "fusions across nodes are off (GPU path untested until run on such a device)")


def apply_bandwidth(record: Record, bandwidth: Any) -> None:
    """Put the probe's figure at the record's thread count into its profiles (``bandwidth``:
    an env.json Bandwidth or its dict)."""
    from slmbench.schema import Bandwidth, from_dict

    if bandwidth is None:
        return
    if isinstance(bandwidth, dict):
        bandwidth = from_dict(Bandwidth, bandwidth)
    n = record.settings.n_threads if record.settings else None
    at = getattr(bandwidth, "at_threads", None)
    gbs, threads = at(n) if at else (bandwidth.read_gbs, 1)
    llc = getattr(bandwidth, "llc_bytes", None)
    for t in record.tests:
        if t.profile is not None and gbs:
            t.profile.bandwidth_gbs, t.profile.bandwidth_threads = gbs, threads
            t.profile.llc_bytes = llc


# --------------------------------------------------------------------------- rendering

def _profiles(record: Record) -> dict[str, tuple[TestResult, OperatorProfile]]:
    return {t.profile.phase: (t, t.profile) for t in record.tests if t.profile is not None}


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or x != x else f"{x:,.{digits}f}"


def _labels(profiles: list[OperatorProfile]) -> list[str]:
    """Class labels in class order, over every profile given."""
    seen: dict[str, tuple[int, float]] = {}
    for p in profiles:
        for c in p.classes:
            order = (CLASS_ORDER.index(c.op_class), -c.ms)
            seen[c.label] = min(seen.get(c.label, order), order)
    return sorted(seen, key=lambda k: seen[k])


def _row_of(p: OperatorProfile, label: str) -> OperatorClassTime | None:
    return next((c for c in p.classes if c.label == label), None)


def record_title(record: Record) -> str:
    """'file.gguf: gemma3, 18 blocks, width 640, vocabulary 262,144, Q4_K_M (2 threads)'."""
    m = record.model
    s = record.settings
    title = os.path.basename(m.path) if m and m.path else (record.model_id or "?")
    if m:
        title += (f": {m.architecture}, {m.n_layer} blocks, width {m.n_embd}, vocabulary "
                  f"{m.n_vocab:,}, {record.quant or m.file_type}")
    if s:
        title += (f" ({s.n_threads} thread{'s' if s.n_threads != 1 else ''}"
                  + (f", -ngl {s.n_gpu_layers}" if s.n_gpu_layers else "") + ")")
    return title


def phase_summary(test: TestResult, p: OperatorProfile) -> list[str]:
    """The totals of one phase: profiled = nodes + callbacks + outside, against unprofiled."""
    spread = ""
    if test.ms is not None and test.ms.n >= 2 and p.n_tokens:
        spread = f" ± {test.ms.stdev / p.n_tokens:.3f}"
    lines = [
        (f"profiled {p.profiled_ms:.3f} ms/token = nodes {p.nodes_ms:.3f} (of which noise "
         f"{p.noise_ms:.3f}) + observer callbacks {p.callback_ms:.3f} + outside the nodes "
         f"{p.unattributed_ms:.3f}"),
        (f"unprofiled {p.unprofiled_ms:.3f}{spread} ms/token (same process, interleaved): "
         f"profiling overhead {p.overhead_pct:+.1f} %" + _dispatch_text(p.dispatch_us)),
        (f"shares are of the profiled total {p.total_ms:.3f} ms/token (callbacks excluded); "
         f"the nodes sum to {p.coverage_pct:.1f} % of it, {100 - p.coverage_pct:.1f} % "
         f"unattributed; {p.n_timed_nodes} of {p.n_graph_nodes} nodes timed per graph, "
         f"{p.n_graphs} graph{'s' if p.n_graphs != 1 else ''} per sample, {p.n_samples} "
         "samples"),
    ]
    lines += p.notes
    return lines


def _dispatch_text(us: float | None) -> str:
    if us is None:
        return ""
    if us <= 0:
        return " (no cost per timed node above the noise)"
    return f", ~{us:.1f} us per timed node"


def format_record(record: Record, top: int = 5) -> str:
    """One file's profile: classes for prefill and decode side by side, totals, top nodes,
    blocks."""
    from slmbench.display import table

    if record.status != "ok":
        return f"{record_title(record)}: {record.status}: {record.reason}"
    phases = _profiles(record)
    order = [ph for ph in ("prefill", "decode") if ph in phases]
    profiles = [phases[ph][1] for ph in order]
    header = ["class"]
    for ph in order:
        t, p = phases[ph]
        header += [f"{t.name} ms/tok", "share", "GB/s"]
    bw = next((p.bandwidth_gbs for p in profiles if p.bandwidth_gbs), None)
    if bw and "decode" in phases:
        header.append("of probe")
    rows = []
    for label in _labels(profiles):
        row = [label]
        last = None
        for p in profiles:
            c = _row_of(p, label)
            last = c
            row += ([_num(c.ms, 4), f"{c.pct:.1f}%", _num(c.gbs, 1)] if c else ["-"] * 3)
        if bw and "decode" in phases:
            row.append(f"{100 * last.gbs / bw:.0f}%" if last and last.gbs else "-")
        rows.append(row)
    total = ["total (profiled)"]
    for p in profiles:
        total += [_num(p.total_ms, 4), "100.0%", ""]
    rows.append(total + ([""] if bw and "decode" in phases else []))
    out = [record_title(record), table(rows, header), ""]
    if bw:
        p0 = profiles[0]
        line = (f"GB/s: bytes of weights read / node time; probe {bw:.1f} GB/s at "
                f"{p0.bandwidth_threads} thread{'s' if p0.bandwidth_threads != 1 else ''}")
        decode = phases.get("decode")
        weights = sum(c.weight_bytes or 0 for c in decode[1].classes) if decode else 0
        if p0.llc_bytes and weights and weights <= p0.llc_bytes:
            line += (f"; the {weights / 2**20:.0f} MiB of weights read per token fit in the "
                     f"{p0.llc_bytes / 2**20:.0f} MiB last-level cache, so above 100 % of the "
                     "DRAM probe is possible")
        out.append(line)
    for ph in order:
        t, p = phases[ph]
        out.append(f"{t.name} ({ph}):")
        out += ["  " + line for line in phase_summary(t, p)]
        if top:
            out.append("  top nodes: " + "; ".join(
                f"{n.name} {n.op} {n.ms:.3f} ms ({n.pct:.1f}%)" for n in p.top_nodes[:top]))
        blocks = [lay for lay in p.layers if lay.layer is not None]
        if blocks:
            ms = [lay.ms for lay in blocks]
            out.append(f"  per block: {min(ms):.3f} .. {max(ms):.3f} ms/token (median "
                       f"{sorted(ms)[len(ms) // 2]:.3f}) over {len(blocks)} blocks; outside "
                       "the blocks " + _num(sum(lay.ms for lay in p.layers
                                                 if lay.layer is None), 3) + " ms/token")
    for w in record.warnings:
        out.append(f"warning: {w}")
    return "\n".join(out)


def by_class(p: OperatorProfile) -> dict[str, tuple[float, float, list[str]]]:
    """class -> (ms per token, share %, weight types), the weight types of a class summed."""
    out: dict[str, tuple[float, float, list[str]]] = {}
    for c in p.classes:
        ms, pct, types = out.get(c.op_class, (0.0, 0.0, []))
        out[c.op_class] = (ms + c.ms, pct + c.pct,
                           types + ([c.weight_type] if c.weight_type else []))
    return out


def format_comparison(records: list[Record]) -> str:
    """Two or more profiles side by side per phase, class by class (weight types summed and
    named), each against the first: 'why is B slower than A' has an answer per token."""
    from slmbench.display import table

    ok = [r for r in records if r.status == "ok"]
    if len(ok) < 2:
        return ""
    names = _short_names(ok)
    keys = [chr(ord("A") + i) if i < 26 else str(i) for i in range(len(ok))]
    out = ["compared: " + ", ".join(f"{k} = {n}" for k, n in zip(keys, names)), ""]
    for phase in ("prefill", "decode"):
        got = [_profiles(r).get(phase) for r in ok]
        if any(g is None for g in got):
            continue
        classes = [by_class(g[1]) for g in got]
        header = (["class"] + [f"{k} ms/tok" for k in keys]
                  + [f"{k} - A" for k in keys[1:]] + [f"{k} share" for k in keys]
                  + ["weight types"])
        rows = []
        for cls in CLASS_ORDER:
            cells = [c.get(cls) for c in classes]
            if not any(cells):
                continue
            ms = [c[0] if c else 0.0 for c in cells]
            types = [("+".join(c[2]) if c and c[2] else "-") for c in cells]
            rows.append([cls] + [_num(x, 4) for x in ms]
                        + [f"{x - ms[0]:+.4f}" for x in ms[1:]]
                        + [f"{c[1]:.1f}%" if c else "-" for c in cells]
                        + [" / ".join(types) if any(t != "-" for t in types) else ""])
        tot = [g[1].total_ms for g in got]
        rows.append(["total (profiled)"] + [_num(x, 4) for x in tot]
                    + [f"{x - tot[0]:+.4f}" for x in tot[1:]] + ["100.0%"] * len(tot) + [""])
        wall = [g[1].unprofiled_ms for g in got]
        rows.append(["unprofiled wall"] + [_num(x, 4) for x in wall]
                    + [f"{x - wall[0]:+.4f}" for x in wall[1:]] + [""] * len(wall) + [""])
        out += [f"{phase} ({', '.join(g[0].name for g in got)}), ms per token:",
                table(rows, header)]
        for key, g in zip(keys[1:], got[1:]):
            out.append("  " + explain_difference("A", got[0][1], key, g[1]))
        out.append("")
    return "\n".join(out).rstrip()


def explain_difference(name_a: str, a: OperatorProfile, name_b: str,
                       b: OperatorProfile) -> str:
    """One sentence: which classes make B slower (or faster) than A, per token."""
    diff = b.total_ms - a.total_ms
    ca, cb = by_class(a), by_class(b)
    deltas = sorted(((cb.get(k, (0.0,))[0] - ca.get(k, (0.0,))[0], k) for k in CLASS_ORDER
                     if k in ca or k in cb), key=lambda d: -abs(d[0]))
    word = "slower" if diff > 0 else "faster"
    parts = [f"{k} {d:+.3f}" for d, k in deltas[:3] if abs(d) > 0]
    return (f"{name_b} is {abs(diff):.3f} ms/token {word} than {name_a} "
            f"({100 * diff / a.total_ms:+.1f} %); largest differences: " + ", ".join(parts))


def _short_names(records: list[Record]) -> list[str]:
    """File names without .gguf; the settings that differ appended where names repeat."""
    names = []
    for r in records:
        path = r.model.path if r.model else None
        names.append((os.path.basename(path) if path else f"{r.model_id}:{r.quant}")
                     .removesuffix(".gguf"))
    if len(set(names)) == len(names):
        return names
    keys = (("n_threads", "t"), ("n_gpu_layers", "ngl"), ("type_k", "k"), ("type_v", "v"),
            ("flash_attn", "fa"), ("n_ubatch", "ub"))
    varying = [(k, short) for k, short in keys
               if len({getattr(r.settings, k, None) for r in records}) > 1]
    return [name + "".join(f" {short}{getattr(r.settings, k, '')}" for k, short in varying)
            for name, r in zip(names, records)]


def headline(p: OperatorProfile, n: int = 3) -> str:
    """The largest classes of a profile, e.g. 'output Q8_0 61%, matmul Q5_0 8%, noise 20%'."""
    rows = sorted((c for c in p.classes if c.op_class != "unattributed"), key=lambda c: -c.pct)
    return ", ".join(f"{c.label} {c.pct:.0f}%" for c in rows[:n])


def table_rows(records: list[Record]) -> list[list[str]]:
    """One row per profile test of the ok records (header first): what the runner's summary
    and the report show."""
    rows = [["model", "quant", "threads", "test", "profiled ms/tok", "unprofiled ms/tok",
             "overhead", "weight matmuls", "output projection", "largest classes"]]
    for r in records:
        if r.status != "ok":
            continue
        for t in r.tests:
            p = t.profile
            if p is None:
                continue
            mm = sum(c.pct for c in p.classes if c.op_class == "matmul")
            out = sum(c.pct for c in p.classes if c.op_class == "output")
            rows.append([r.model_id or "?", r.quant or "?",
                         str(r.settings.n_threads if r.settings else "?"), t.name,
                         f"{p.total_ms:.3f}", f"{p.unprofiled_ms:.3f}",
                         f"{p.overhead_pct:+.1f}%", f"{mm:.1f}%", f"{out:.1f}%", headline(p)])
    return rows
