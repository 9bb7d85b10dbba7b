"""Where batch work runs: local worker processes (``concurrent.futures``), or Ray actors on
a local or remote cluster. Both run a :class:`~.worker.Worker` per process or actor, which
loads its engines once; the coordinator keeps at most :attr:`Executor.capacity` tasks in
flight, so nothing queues inside them and a killed batch has little to redo."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import queue
import re
import signal
import socket
import threading
import time
from collections.abc import Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from ..engines.neural.device import CPU_CORES
from ..errors import InputError
from .worker import Outcome, Worker, die_with_parent

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "check_ray_address"]


class Executor(Protocol):
    """Runs :class:`Worker` methods (``analyse`` or ``run``) somewhere.

    Attributes:
        capacity: tasks that run at once.
        where: a few words for the summary.
    """

    capacity: int
    where: str
    uploads: bool

    def submit(self, tag: Hashable, method: str, *args: Any) -> None:
        """Start ``Worker.<method>(*args)``; its outcome comes back with ``tag``."""

    def next_done(self, timeout: float | None = None) -> tuple[Hashable, Outcome] | None:
        """Wait for a task to finish (None when ``timeout`` passes first)."""

    def put(self, data: bytes) -> Any:
        """``data`` made available to the workers (passed as an argument of :meth:`submit`)."""

    def close(self, abort: bool = False) -> None:
        """Stop the workers once their tasks end, or at once with ``abort`` (the batch is
        stopping: a signal, an error), their tasks' work lost."""


_worker: Worker | None = None


def _start_worker(threads: int) -> None:
    global _worker
    die_with_parent()
    _worker = Worker(threads)


def _call(method: str, *args: Any) -> Outcome:
    return getattr(_worker, method)(*args)


class LocalExecutor:
    """``workers`` local processes. A process that dies fails the tasks it was running with
    that reason (the batch retries them) and the processes are started again."""

    uploads = False

    def __init__(self, workers: int) -> None:
        self.capacity = workers
        self.where = f"{workers} local worker{'s' if workers > 1 else ''}"
        self._threads = max(1, CPU_CORES // workers)
        self._pool = self._new_pool()
        self._running: dict[Future, tuple[Hashable, ProcessPoolExecutor]] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.capacity, multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(self._threads,))

    def _renew(self, pool: ProcessPoolExecutor) -> None:
        """A new pool for a broken one (once: its other tasks fail with it)."""
        if pool is self._pool:
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def submit(self, tag: Hashable, method: str, *args: Any) -> None:
        try:
            future = self._pool.submit(_call, method, *args)
        except BrokenProcessPool:  # a process died while idle: its pool takes no more tasks
            self._renew(self._pool)
            future = self._pool.submit(_call, method, *args)
        self._running[future] = (tag, self._pool)

    def put(self, data: bytes) -> bytes:
        return data

    def next_done(self, timeout: float | None = None) -> tuple[Hashable, Outcome] | None:
        done, _ = wait(list(self._running), timeout, return_when=FIRST_COMPLETED)
        if not done:
            return None
        future = next(iter(done))
        tag, pool = self._running.pop(future)
        try:
            return tag, future.result()
        except BrokenProcessPool:
            # every task of the pool fails with it: a new pool runs the retries
            self._renew(pool)
            return tag, Outcome(error="a worker process died (killed, or out of memory)")

    def close(self, abort: bool = False) -> None:
        if abort:  # killed, not waited for (Python 3.14's kill_workers; none before it)
            for process in list(self._pool._processes.values()):
                process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _RayWorker:
    """The Ray actor: one :class:`Worker`."""

    def __init__(self, threads: int) -> None:
        self._worker = Worker(threads)

    def call(self, method: str, *args: Any) -> Outcome:
        return getattr(self._worker, method)(*args)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("--ray_address needs Ray: pip install 'portrait-animate[ray]'") from None
    return ray


#: Seconds to wait for a cluster's port to take a connection.
PROBE_SECONDS = 10.0
#: How Ray Client begins the refusal of a server that answered but could not set up the session.
_SERVER_FAILED = "Initialization failure from server"
#: ``HOST:PORT`` or ``ray://HOST:PORT``, the host a name or an address ([bracketed] for IPv6).
_HOST_PORT = re.compile(r"(ray://)?(\[[0-9A-Fa-f:.]+\]|[^\s:/@\[\]]+):(\d{1,5})")


def check_ray_address(address: str) -> None:
    """Refuse, before any work, a ``--ray_address`` that is not ``local``, ``auto``,
    ``ray://HOST:PORT`` or ``HOST:PORT``.

    Raises:
        InputError: naming the forms.
    """
    if address in ("local", "auto"):
        return
    match = _HOST_PORT.fullmatch(address)
    if match is None or not 1 <= int(match[3]) <= 65535:
        raise InputError(f"--ray_address {address} is not local, auto, ray://HOST:PORT or "
                         "HOST:PORT; pass one of those")


def _connect(ray: Any, address: str, kwargs: dict[str, Any]) -> None:
    """Join the cluster at ``address`` (``auto``, ``ray://host:port`` or ``host:port``).

    Raises:
        InputError: another form, Ray Client missing for ``ray://``, no cluster there (nothing
            listening, or no Ray port), or one that could not start the session.
    """
    check_ray_address(address)
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise InputError(f"--ray_address {address} needs Ray Client: pip install "
                         "'portrait-animate[ray]'")
    if address != "auto":  # Ray retries an address where nothing listens for minutes
        _, host, port = _HOST_PORT.fullmatch(address).groups()
        try:
            socket.create_connection((host.strip("[]"), int(port)), PROBE_SECONDS).close()
        except OSError as exc:
            raise _unreached(address, exc.strerror or type(exc).__name__) from None
        # ... and one where something else listens for ever (HOST:PORT) or 30 s (ray://),
        # or that wants another token (23 s, 34 s)
        if (answer := _grpc_answer(address, f"{host}:{port}")) is not None:
            raise answer if isinstance(answer, InputError) else _unreached(address, answer)
    for attempt in range(2):
        try:
            ray.init(address=address, **kwargs)
            return
        except ConnectionError as exc:
            failed = exc
        # A Ray Client server starts a process for each session; on a busy head that process
        # may die before it runs (Ray 2.60 says "psutil.ZombieProcess"): once more.
        server_failed = str(failed).startswith(_SERVER_FAILED)
        if attempt or not server_failed:
            break
    if server_failed:
        raise InputError(f"--ray_address {address}: the Ray cluster there could not start this "
                         f"batch's session ({_ray_reason(failed)}); try again, or pass "
                         "--ray_address local")
    hint = ""
    if address.startswith("ray://") and os.environ.get("RAY_AUTH_MODE") != "token" \
            and not _can_probe():  # else the probe found the token asked for
        hint = ("; a cluster that asks for a token (`ray start --head` of Ray 2.59 or later) "
                "takes RAY_AUTH_MODE=token here, and the token of `ray get-auth-token` in "
                "RAY_AUTH_TOKEN")
    raise _unreached(address, _ray_reason(failed), hint)


def _start_local(ray: Any, workers: int, kwargs: dict[str, Any]) -> None:
    """Start a local cluster of ``workers`` CPUs (0: this machine's).

    Raises:
        InputError: Ray's temporary folder (``RAY_TMPDIR``, else on Linux ``TMPDIR``) is too
            deep for its sockets' paths (Ray said so in a traceback).
    """
    try:
        ray.init(num_cpus=workers or os.cpu_count(), **kwargs)
    except OSError as exc:
        if "AF_UNIX path length" not in str(exc):
            raise
        socket_path = str(exc).rsplit(": ", 1)[-1]
        raise InputError(f"--ray_address local: Ray's socket {socket_path} would be longer than "
                         "the 107 bytes a socket's path may have; set RAY_TMPDIR to a short "
                         "folder, such as RAY_TMPDIR=/tmp") from None


def _can_probe() -> bool:
    """Whether :func:`_grpc_answer` can speak to a Ray port: not without grpc (Ray without its
    client), nor on TLS clusters (``RAY_USE_TLS``), whose hand-shake needs their certificates."""
    return (importlib.util.find_spec("grpc") is not None
            and os.environ.get("RAY_USE_TLS", "0").lower() not in ("1", "true"))


def _grpc_answer(address: str, target: str) -> str | InputError | None:
    """Why ``target`` (``host:port`` of ``address``, listening) is no Ray port that takes
    this machine, or None when it is one (or when it cannot tell: not :func:`_can_probe`).

    Both of Ray's ports (the GCS's; Ray Client's, for ``ray://``) are gRPC servers, which take
    HTTP/2 at once. Then one call that reads nothing (the GCS's cluster id; Ray Client's
    ping) carries the token Ray would send: a cluster that asks for a token (``ray start
    --head`` of Ray 2.59 or later) refuses at once one without it, or another, where Ray
    retries for 23 s (the GCS) or 34 s (Ray Client) and then calls the cluster unreached.

    Returns:
        The reason the port is no Ray port; the error to raise when the cluster refuses
        this machine's token (or its lack of one); None.
    """
    if not _can_probe():
        return None
    import grpc

    states: queue.Queue[grpc.ChannelConnectivity] = queue.Queue()
    channel = grpc.insecure_channel(target)
    channel.subscribe(states.put, try_to_connect=True)
    deadline = time.monotonic() + PROBE_SECONDS
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                state = states.get(timeout=left)
            except queue.Empty:
                break
            if state is grpc.ChannelConnectivity.READY:
                return _token_refused(channel, address)
            if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                         grpc.ChannelConnectivity.SHUTDOWN):
                return ("the port answers, but not as Ray's do; Ray's are the head's GCS port "
                        "(6379 unless set) for HOST:PORT and Ray Client's (10001) for ray://")
        return f"the port took the connection but said nothing for {PROBE_SECONDS:.0f} s"
    finally:
        channel.close()


def _token_refused(channel: Any, address: str) -> InputError | None:
    """The refusal of a Ray port (``channel``, ready) whose cluster and this machine disagree
    on tokens (see :func:`_grpc_answer`); None when they agree, when the call failed
    otherwise (Ray finds out itself), or when this Ray version's modules differ.

    Over ``HOST:PORT`` this process is a driver of the cluster whose workers call it back: a
    driver that asks for a token (``RAY_AUTH_MODE=token``) of a cluster that has none
    refuses its own actors, which die (Ray 2.60: the job fails with ``ActorDiedError``).
    """
    import grpc

    try:
        from ray._private.authentication.grpc_authentication_client_interceptor import (
            _get_authentication_metadata_tuple,
        )
        from ray.core.generated import gcs_service_pb2, ray_client_pb2

        metadata = _get_authentication_metadata_tuple()
    except (ImportError, AttributeError):
        return None
    client = address.startswith("ray://")
    if client:
        method = "/ray.rpc.RayletDriver/ClusterInfo"
        request = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)
    else:
        method = "/ray.rpc.NodeInfoGcsService/GetClusterId"
        request = gcs_service_pb2.GetClusterIdRequest()
    call = channel.unary_unary(method, request_serializer=lambda r: r.SerializeToString(),
                               response_deserializer=bytes)

    def refused(given: tuple) -> bool | None:  # None: failed otherwise
        try:
            call(request, timeout=PROBE_SECONDS, metadata=given)
            return False
        except grpc.RpcError as exc:
            return True if exc.code() is grpc.StatusCode.UNAUTHENTICATED else None

    if not (refusal := refused(metadata)):
        if refusal is False and metadata and not client and refused(()) is False:
            return InputError(f"--ray_address {address}: the Ray cluster there takes no token, "
                              "and its workers cannot call back a driver that asks for one "
                              "(RAY_AUTH_MODE=token here); unset RAY_AUTH_MODE")
        return None
    if not metadata:
        return InputError(f"--ray_address {address}: the Ray cluster there asks for a token; "
                          "set RAY_AUTH_MODE=token here, and RAY_AUTH_TOKEN to its token "
                          "(`ray get-auth-token` on the head)")
    return InputError(f"--ray_address {address}: the Ray cluster there refused this machine's "
                      "token (RAY_AUTH_TOKEN, else the file of RAY_AUTH_TOKEN_PATH, else "
                      "~/.ray/auth_token); give it the head's (`ray get-auth-token` there)")


def _ray_reason(exc: ConnectionError) -> str:
    """The first sentence of Ray's refusal. A Ray Client server that failed to set up the
    session says only "Initialization failure from server:" on its first line and sends its
    traceback after it, whose last line is the reason."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith(_SERVER_FAILED) and len(lines) > 1:
        return f"the server failed: {lines[-1].split('. ')[0]}"
    return lines[0].split(". ")[0]


def _unreached(address: str, reason: str, hint: str = "") -> InputError:
    return InputError(f"--ray_address {address}: no Ray cluster reached ({reason}); start "
                      f"one with `ray start --head`, or pass --ray_address local{hint}")


class _Sigterm:
    """This process's SIGTERM handler, kept across ``ray.init``: Ray sets its own over it
    (``sys.exit(15)``), and its core worker a native one that prints a stack trace on the
    terminal. Ray's blocking calls turn what the handler raises into ``SystemExit(1)``;
    :attr:`raised` keeps it, to be raised instead. So a stopped batch exits 143, saying nothing
    more, as with local workers. A default handler (a Python caller's) is left to Ray's."""

    def __init__(self) -> None:
        main = threading.current_thread() is threading.main_thread()
        self._before = signal.getsignal(signal.SIGTERM) if main else None
        self.raised: SystemExit | None = None

    def restore(self) -> None:
        if callable(self._before):
            signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        try:
            self._before(signum, frame)
        except SystemExit as exc:
            self.raised = exc
            raise


class RayExecutor:
    """Ray actors, each a :class:`Worker` with one CPU (and ``gpus`` GPUs). Ray restarts an
    actor that dies and retries its task ``retries`` times.

    Args:
        address: ``local`` (start a local cluster of ``workers`` CPUs), ``auto`` (the cluster
            this machine belongs to) or ``ray://host:10001``.
        workers: actors; 0: one per CPU of the cluster.
        gpus: GPUs each actor asks for.
        upload: inputs go through the object store and outputs come back as bytes, for
            workers that do not share this machine's files.
    """

    def __init__(self, address: str, workers: int, gpus: float, upload: bool,
                 retries: int) -> None:
        ray = self._ray = _import_ray()
        kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False,
                                  "configure_logging": False}
        self._sigterm = _Sigterm()
        try:
            if address == "local":
                _start_local(ray, workers, kwargs)
            else:
                _connect(ray, address, kwargs)
        finally:
            self._sigterm.restore()
        #: The GPUs of the cluster's largest node: an actor that asks for more waits.
        self.most_gpus = max((node["Resources"].get("GPU", 0.0) for node in ray.nodes()
                              if node["Alive"]), default=0.0)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = workers or max(1, cpus)
        self.uploads = upload
        self.where = f"{self.capacity} Ray actor{'s' if self.capacity > 1 else ''} " \
                     f"({address})"
        actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=-1,
                           max_task_retries=retries)(_RayWorker)
        self._idle = [actor.remote(1) for _ in range(self.capacity)]
        self._running: dict[Any, tuple[Hashable, Any]] = {}

    def submit(self, tag: Hashable, method: str, *args: Any) -> None:
        actor = self._idle.pop()
        self._running[actor.call.remote(method, *args)] = (tag, actor)

    def put(self, data: bytes) -> Any:
        return self._ray.put(data)

    def next_done(self, timeout: float | None = None) -> tuple[Hashable, Outcome] | None:
        try:
            ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        except SystemExit:
            if self._sigterm.raised is not None:  # not Ray's SystemExit(1) for it
                raise self._sigterm.raised from None
            raise
        if not ready:
            return None
        (ref,) = ready
        tag, actor = self._running.pop(ref)
        self._idle.append(actor)
        try:
            return tag, self._ray.get(ref)
        except self._ray.exceptions.RayError as exc:
            return tag, Outcome(error=f"the Ray task failed: {type(exc).__name__}")

    def close(self, abort: bool = False) -> None:
        # Stopped or not, the actors are this driver's and end with its session, their tasks
        # with them (a stop took 1.1 to 2.7 s, local, HOST:PORT or ray://); a ray.kill of
        # each printed "Task _RayWorker.call failed ... will be retried" on the terminal.
        self._ray.shutdown()
