"""Per-operator times of a .tflite file on LiteRT's CPU runtime (XNNPACK), from LiteRT's own profiler.

The op-profiling ``benchmark_model`` binary is not on PyPI, but the ``libLiteRt.so`` that
ai-edge-litert ships exports LiteRT's C profiler API (``LiteRtCompiledModelGetProfiler``,
``LiteRtGetProfilerEvents``: the events ``benchmark_model --enable_op_profiling`` summarises).
This module calls it through ctypes: a CompiledModel on the CPU with the runtime option
``enable_profiling = true`` and XNNPACK's ``num_threads``; XNNPACK then times each of its own
operators (``XNN_FLAG_BASIC_PROFILING``). Operator names are XNNPACK's (activations fused into
convolutions, 1x1 convolutions as "Fully Connected GEMM"); operators LiteRT runs itself (outside
the delegate) come as TFLite node names. Times are whole microseconds per call, rounded down.

The ctypes layouts follow ai-edge-litert 2.3.0's headers (``litert/c/litert_profiler_event.h``).
"""

from __future__ import annotations

import ctypes
import dataclasses
from pathlib import Path

_OPERATOR, _DELEGATE_OPERATOR, _DELEGATE_PROFILED_OPERATOR = 2, 4, 8
_INVOKE = 1  # a DEFAULT event tagged "Invoke": one whole call


class _MemoryUsage(ctypes.Structure):
    _fields_ = [("total", ctypes.c_size_t), ("in_use", ctypes.c_size_t), ("private", ctypes.c_size_t)]


class _Event(ctypes.Structure):  # ProfiledEventData
    _fields_ = [
        ("tag", ctypes.c_char_p),
        ("event_type", ctypes.c_int),
        ("start_us", ctypes.c_uint64),
        ("elapsed_us", ctypes.c_uint64),
        ("begin_memory", _MemoryUsage),
        ("end_memory", _MemoryUsage),
        ("meta1", ctypes.c_uint64),
        ("meta2", ctypes.c_uint64),
        ("source", ctypes.c_int),
    ]


@dataclasses.dataclass(frozen=True)
class Operator:
    index: int  # its position among the file's profiled operators
    name: str  # XNNPACK's operator name, or the TFLite node's for operators outside XNNPACK
    microseconds: float  # mean per call
    delegated: bool  # run by XNNPACK


@dataclasses.dataclass(frozen=True)
class Profile:
    invoke_microseconds: list[int]  # each profiled call, whole
    operators: list[Operator]


def _library() -> ctypes.CDLL:
    import ai_edge_litert

    return ctypes.CDLL(str(Path(ai_edge_litert.__file__).parent / "libLiteRt.so"))


class _Runtime:
    """A compiled model with zero-filled input buffers of signature 0 (batch 1)."""

    def __init__(self, path: Path, threads: int):
        self.lib = lib = _library()
        self._keep: list = []  # option payloads LiteRT reads later
        self.env, self.model, options, self.compiled = (ctypes.c_void_p() for _ in range(4))
        self._check(lib.LiteRtCreateEnvironment(0, None, ctypes.byref(self.env)), "CreateEnvironment")
        self._check(lib.LiteRtCreateModelFromFile(self.env, str(path).encode(), ctypes.byref(self.model)), "open")
        self._check(lib.LiteRtCreateOptions(ctypes.byref(options)), "CreateOptions")
        self._check(lib.LiteRtSetOptionsHardwareAccelerators(options, 1), "use the CPU")  # 1: CPU
        # Identifiers and keys: litert/c/options/litert_runtime_options.cc, litert_cpu_options.cc
        settings = {"runtime_options_string": "enable_profiling = true", "xnnpack": f"num_threads = {threads}"}
        for identifier, toml in settings.items():
            self._check(lib.LiteRtAddOpaqueOptions(options, self._opaque(identifier, toml + "\n")), identifier)
        compiled = lib.LiteRtCreateCompiledModel(self.env, self.model, options, ctypes.byref(self.compiled))
        self._check(compiled, "compile")
        self.signature = ctypes.c_void_p()
        signature = lib.LiteRtGetModelSignature(self.model, ctypes.c_size_t(0), ctypes.byref(self.signature))
        self._check(signature, "signature")
        self.inputs = self._buffers("Input")
        self.outputs = self._buffers("Output")
        for raw in self.inputs:  # timing does not depend on the values
            # A ctypes array yields plain ints; as arguments they would pass as 32-bit ints.
            buffer, address, size = ctypes.c_void_p(raw), ctypes.c_void_p(), ctypes.c_size_t()
            self._check(lib.LiteRtGetTensorBufferSize(buffer, ctypes.byref(size)), "buffer size")
            self._check(lib.LiteRtLockTensorBuffer(buffer, ctypes.byref(address), 1), "lock")
            ctypes.memset(address, 0, size.value)
            self._check(lib.LiteRtUnlockTensorBuffer(buffer), "unlock")

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"LiteRT: {what} failed (status {status})")

    def _opaque(self, identifier: str, toml: str) -> ctypes.c_void_p:
        payload = ctypes.create_string_buffer(toml.encode())
        keep_deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: None)  # Python owns the payload
        self._keep += [payload, keep_deleter]
        handle = ctypes.c_void_p()
        status = self.lib.LiteRtCreateOpaqueOptions(
            identifier.encode(), ctypes.cast(payload, ctypes.c_void_p), keep_deleter, ctypes.byref(handle)
        )
        self._check(status, f"option {identifier}")
        return handle

    def _buffers(self, kind: str):
        count = ctypes.c_size_t()
        self._check(getattr(self.lib, f"LiteRtGetNumSignature{kind}s")(self.signature, ctypes.byref(count)), kind)
        buffers = (ctypes.c_void_p * count.value)()
        for i in range(count.value):
            tensor, requirements, buffer = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
            getter = getattr(self.lib, f"LiteRtGetSignature{kind}TensorByIndex")
            self._check(getter(self.signature, ctypes.c_size_t(i), ctypes.byref(tensor)), f"{kind} tensor")
            tensor_type = ctypes.create_string_buffer(1024)  # LiteRtRankedTensorType
            self._check(self.lib.LiteRtGetRankedTensorType(tensor, tensor_type), "tensor type")
            # {int32 element type; {rank: 7 bits, has_strides: 1 bit}; int32 dims[8]; ...}: a
            # dynamic dimension (the batch) becomes 1.
            rank, dims = tensor_type.raw[4] & 0x7F, (ctypes.c_int32 * 8).from_buffer(tensor_type, 8)
            for d in range(rank):
                dims[d] = max(dims[d], 1)
            requirement = getattr(self.lib, f"LiteRtGetCompiledModel{kind}BufferRequirements")
            status = requirement(self.compiled, ctypes.c_size_t(0), ctypes.c_size_t(i), ctypes.byref(requirements))
            self._check(status, "requirements")
            self._check(
                self.lib.LiteRtCreateManagedTensorBufferFromRequirements(
                    self.env, tensor_type, requirements, ctypes.byref(buffer)
                ),
                "buffer",
            )
            buffers[i] = buffer
        return buffers

    def run(self) -> None:
        self._check(
            self.lib.LiteRtRunCompiledModel(
                self.compiled, ctypes.c_size_t(0), ctypes.c_size_t(len(self.inputs)), self.inputs,
                ctypes.c_size_t(len(self.outputs)), self.outputs,
            ),
            "run",
        )  # fmt: skip


def profile(path: Path, threads: int = 1, calls: int = 200, warmup: int = 10) -> Profile:
    """Each operator's mean time over ``calls`` calls of ``path`` at batch 1, after ``warmup``."""
    runtime = _Runtime(path, threads)
    lib, profiler = runtime.lib, ctypes.c_void_p()
    runtime._check(lib.LiteRtCompiledModelGetProfiler(runtime.compiled, ctypes.byref(profiler)), "profiler")
    if not profiler.value:
        raise RuntimeError("LiteRT gave no profiler: the enable_profiling option was not honoured")
    for _ in range(warmup):
        runtime.run()
    runtime._check(lib.LiteRtResetProfiler(profiler), "reset")
    runtime._check(lib.LiteRtStartProfiler(profiler), "start")
    for _ in range(calls):
        runtime.run()
    runtime._check(lib.LiteRtStopProfiler(profiler), "stop")
    count = ctypes.c_int()
    runtime._check(lib.LiteRtGetNumProfilerEvents(profiler, ctypes.byref(count)), "events")
    events = (_Event * count.value)()
    runtime._check(lib.LiteRtGetProfilerEvents(profiler, count, events), "events")

    totals: dict[tuple[bool, int, str], int] = {}
    for event in events:
        if event.event_type in (_OPERATOR, _DELEGATE_OPERATOR, _DELEGATE_PROFILED_OPERATOR):
            key = (event.event_type != _OPERATOR, int(event.meta1), event.tag.decode(errors="replace"))
            totals[key] = totals.get(key, 0) + int(event.elapsed_us)
    invokes = [int(e.elapsed_us) for e in events if e.event_type == _INVOKE and e.tag == b"Invoke"]
    operators = [
        Operator(index, name, total / calls, delegated)
        for (delegated, index, name), total in totals.items()
        if not (name == "TfLiteXNNPackDelegate" and not delegated)  # the whole partition, not an operator
    ]
    return Profile(invokes, operators)
