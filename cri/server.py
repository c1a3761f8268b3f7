"""The gRPC server: one ``grpc.aio`` server on the unix socket and one interceptor that every
call passes through, which

* maps ``runtime.errors`` to status codes (``cri/errors.py``) and anything unexpected to
  INTERNAL with a logged traceback, so a bad request never turns into UNKNOWN or a crash;
* records per-method latency, status counts and in-flight gauges;
* logs each call at debug level.

A unary handler may answer with ``bytes`` already serialized (the cached List answers,
``cri/rpc/listcache.py``): the wrapped handler's response serializer passes bytes through.

RPCs a servicer does not implement keep the generated base class's behaviour: UNIMPLEMENTED.
Only that: a ``NotImplementedError`` raised by the generated base method itself (the servicer
does not define the RPC) is UNIMPLEMENTED; one raised anywhere else is a bug like any other and
surfaces as INTERNAL with its traceback logged. Features pinnace knowingly lacks raise
``runtime.errors.Unimplemented``, which the error table maps to UNIMPLEMENTED with its message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from cri.errors import ERROR_KIND_KEY, kind_for, status_for, translate
from cri.metrics import Metrics
from runtime.errors import PinnaceError

# Status messages travel in trailing metadata, which gRPC limits to 16 KiB by default.
_MAX_MESSAGE = 4096
log = logging.getLogger(__name__)


def _split(method: str) -> tuple[str, str]:
    # "/runtime.v1.RuntimeService/Version" -> ("runtime.v1.RuntimeService", "Version")
    _, service, name = method.split("/", 2)
    return service, name


_GENERATED_SUFFIX = "_pb2_grpc.py"


def not_served(exc: BaseException) -> bool:
    """Whether ``exc`` is the generated base servicer's "Method not implemented!": a
    NotImplementedError raised by a function of a ``*_pb2_grpc`` module."""
    if not isinstance(exc, NotImplementedError):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.endswith(_GENERATED_SUFFIX)


def passing_bytes(
    serializer: Callable[[Any], bytes] | None,
) -> Callable[[Any], bytes] | None:
    """``serializer``, except that a response which is already ``bytes`` goes out as it is."""
    if serializer is None:
        return None
    inner = serializer

    def serialize(response: Any) -> bytes:
        if type(response) is bytes:
            return response
        return inner(response)

    return serialize


class CallInterceptor(aio.ServerInterceptor):
    """Error mapping, metrics and logging for every RPC."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # method -> (the servicer's handler, our wrapper of it): wrapping once per method
        # rather than once per call keeps the polled RPCs (List*, Status) cheap.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        service, name = _split(method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(service, name, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=passing_bytes(handler.response_serializer),
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(service, name, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _fail(
        self, context: aio.ServicerContext, service: str, name: str, exc: BaseException
    ) -> None:
        exc = translate(exc)
        code = status_for(exc)
        if isinstance(exc, PinnaceError):
            log.info("%s/%s failed: %s: %s", service, name, code.name, exc)
            message = str(exc)
        else:
            log.exception("%s/%s: unexpected error (a pinnace bug)", service, name)
            message = f"internal error in {name}: {type(exc).__name__}: {exc}"
        if len(message) > _MAX_MESSAGE:
            # a message echoing an oversized input would itself break gRPC's metadata limit
            # (the client then sees RESOURCE_EXHAUSTED instead of our status)
            message = message[: _MAX_MESSAGE - 40] + f"... ({len(message)} characters)"
        self._count(service, name, code)
        await context.abort(code, message, trailing_metadata=((ERROR_KIND_KEY, kind_for(exc)),))

    async def _unimplemented(self, context: aio.ServicerContext, service: str, name: str) -> None:
        # The generated base servicer raises NotImplementedError for RPCs we do not serve.
        self._count(service, name, grpc.StatusCode.UNIMPLEMENTED)
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"pinnace does not implement {service}/{name} yet",
            trailing_metadata=((ERROR_KIND_KEY, "Unimplemented"),),
        )

    def _count(self, service: str, name: str, code: grpc.StatusCode) -> None:
        self._metrics.rpc_total.labels(service, name, code.name).inc()
        if code != grpc.StatusCode.OK:
            self._metrics.rpc_errors.labels(service, name, code.name).inc()

    def _wrap_unary(self, service: str, name: str, behaviour: Any) -> Any:
        metrics = self._metrics
        latency = metrics.rpc_latency.labels(service, name)
        in_flight = metrics.rpc_in_flight.labels(service, name)
        succeeded = metrics.rpc_total.labels(service, name, grpc.StatusCode.OK.name)

        debug = log.isEnabledFor(logging.DEBUG)

        async def handle(request: Any, context: aio.ServicerContext) -> Any:
            start = time.perf_counter()
            in_flight.inc()
            try:
                response = await behaviour(request, context)
            except aio.AbortError:
                raise
            except Exception as exc:
                if not_served(exc):
                    await self._unimplemented(context, service, name)
                await self._fail(context, service, name, exc)
                raise  # unreachable: abort raises
            finally:
                in_flight.dec()
                elapsed = time.perf_counter() - start
                latency.observe(elapsed)
            succeeded.inc()
            if debug:
                log.debug("%s/%s OK in %.1f ms", service, name, elapsed * 1000)
            return response

        return handle

    def _wrap_stream(self, service: str, name: str, behaviour: Any) -> Any:
        metrics = self._metrics
        in_flight = metrics.rpc_in_flight.labels(service, name)

        async def handle(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            log.debug("%s/%s stream opened", service, name)
            in_flight.inc()
            try:
                result = behaviour(request, context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:
                    await result
            except aio.AbortError:
                raise
            except Exception as exc:
                if not_served(exc):
                    await self._unimplemented(context, service, name)
                await self._fail(context, service, name, exc)
            finally:
                in_flight.dec()
            self._count(service, name, grpc.StatusCode.OK)

        return handle


def build_server(metrics: Metrics) -> aio.Server:
    """A server with our interceptor and message size limits that fit big status replies."""
    return aio.server(
        interceptors=[CallInterceptor(metrics)],
        options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ],
    )
