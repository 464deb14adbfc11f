"""A stand-in for the Lambda service, for the demo and the CLI tests (moto's Lambda needs Docker).

* the Invoke API (`POST /2015-03-31/functions/<name>/invocations`) on a loopback
  port, so a real boto3 `lambda.invoke` (the CLI's `run`) reaches the handler
  running in this process: point `AWS_ENDPOINT_URL_LAMBDA` at `url`;
* the checkpoint queue's event source mapping: a thread that drains the queue
  into the same handler one message at a time (`deliver_one`), which can be paused.

One "container": invocations never overlap, as in one Lambda execution
environment. What the function prints (its JSON logs, EMF metrics) goes to
`log`, as Lambda sends it to CloudWatch Logs, never to the caller's output.

Answers follow the Invoke API: 200 with the handler's result, a
`X-Amz-Function-Error: Unhandled` header when it raised, 404
`ResourceNotFoundException` for another function name.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

from local.harness import FakeContext, Handler, sqs_event

_PATH_PREFIX = "/2015-03-31/functions/"


class LambdaService:
    def __init__(
        self,
        handler: Handler,
        function_name: str,
        *,
        invoke_budget_ms: int = 60_000,
        queue_budget_ms: int = 60_000,
        sqs: Any = None,
        queue_url: str | None = None,
        log: IO[str] | None = None,
        logger_name: str = "wifi-export",
    ) -> None:
        self.handler = handler
        self.function_name = function_name
        self.invoke_budget_ms = invoke_budget_ms
        self.queue_budget_ms = queue_budget_ms
        self.sqs = sqs
        self.queue_url = queue_url
        self.log: IO[str] = log if log is not None else io.StringIO()
        self._logger = logging.getLogger(logger_name)
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []
        self.invocations = 0
        self._container = threading.Lock()
        self._stop = threading.Event()
        self._polling = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- the "one container" -----------------------------------------------------------

    def invoke(self, event: Any, budget_ms: int) -> Any:
        with self._container:
            return self._run(event, budget_ms)

    def _run(self, event: Any, budget_ms: int) -> Any:
        self.invocations += 1
        caller_stdout = sys.stdout
        sys.stdout = _ThreadRouted(caller_stdout, self.log, threading.get_ident())
        try:
            return self.handler(event, FakeContext(budget_ms, self.function_name))
        finally:
            sys.stdout = caller_stdout

    # -- the Invoke API ----------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _http_handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Invoke(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the demo prints its own lines

            def _answer(self, status: int, body: Any, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                name = path.removeprefix(_PATH_PREFIX).removesuffix("/invocations")
                name = name.rsplit(":function:", 1)[-1].split(":", 1)[0]
                if not path.startswith(_PATH_PREFIX) or name != service.function_name:
                    self._answer(
                        404,
                        {"Type": "User", "message": f"Function not found: {name}"},
                        {"x-amzn-ErrorType": "ResourceNotFoundException"},
                    )
                    return
                try:
                    event = json.loads(payload or b"{}")
                    result = service.invoke(event, service.invoke_budget_ms)
                except Exception as exc:
                    self._answer(
                        200,
                        {
                            "errorMessage": str(exc),
                            "errorType": type(exc).__name__,
                            "stackTrace": traceback.format_tb(exc.__traceback__)[-3:],
                        },
                        {"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"},
                    )
                    return
                self._answer(200, result, {"X-Amz-Executed-Version": "$LATEST"})

        return Invoke

    # -- the queue's event source mapping ------------------------------------------------

    @property
    def _queue_arn(self) -> str:
        arn: str = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        return arn

    def deliver_one(self) -> bool | None:
        """One poll of the event source mapping: None if the queue had nothing
        visible, else whether the handler finished the message (it is deleted)
        or not (it becomes visible again at once: a compressed visibility timeout)."""
        with self._container:
            return self._deliver_one(self._queue_arn)

    def _deliver_one(self, arn: str) -> bool | None:
        sqs, url = self.sqs, self.queue_url
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"], VisibilityTimeout=30
        ).get("Messages", [])
        if not got:
            return None
        message = got[0]
        try:
            response = self._run(sqs_event([message], arn), self.queue_budget_ms)
            done = not (response and response.get("batchItemFailures"))
        except Exception:
            done = False
        if done:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        else:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return done

    def _poll(self) -> None:
        arn = self._queue_arn
        while not self._stop.is_set():
            if not self._polling.wait(timeout=0.05):
                continue
            with self._container:  # checked under the lock: pause() waits for this
                if not self._polling.is_set() or self._stop.is_set():
                    continue
                delivered = self._deliver_one(arn)
            if not delivered:  # idle, or a message that comes back: do not spin
                time.sleep(0.1)

    def idle(self) -> bool:
        """Nothing waiting in the queue (visible or in flight)."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attrs.values()) == 0

    def pause(self) -> None:
        """Stop taking queue messages (after the invocation in progress)."""
        self._polling.clear()
        with self._container:
            pass

    def resume(self) -> None:
        self._polling.set()

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.resume()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, *, poll: bool = True) -> LambdaService:
        for handler in self._logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                self._streams.append((handler, handler.setStream(self.log)))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._http_handler())
        serving = threading.Thread(target=self._server.serve_forever, daemon=True)
        serving.start()
        self._threads.append(serving)
        if self.sqs is not None and self.queue_url is not None:
            poller = threading.Thread(target=self._poll, name="event-source-mapping", daemon=True)
            poller.start()
            self._threads.append(poller)
            if poll:
                self.resume()
        return self

    def stop(self) -> None:
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._stop.set()
        self._polling.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> LambdaService:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _ThreadRouted(io.TextIOBase):
    """sys.stdout while the function runs: its thread's writes go to the log."""

    def __init__(self, default: IO[str], log: IO[str], thread: int) -> None:
        self._default, self._log, self._thread = default, log, thread

    def write(self, text: str) -> int:
        target = self._log if threading.get_ident() == self._thread else self._default
        return target.write(text)

    def flush(self) -> None:
        self._default.flush()
        self._log.flush()
