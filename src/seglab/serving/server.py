"""``seglab serve``: the socket bound first (a port in use fails at once, before any model is
loaded), then the models, then uvicorn on that socket; optionally the page opened in a browser."""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
import webbrowser
from collections.abc import Callable, Sequence

from seglab.errors import SeglabError, first_line

MB = 1024 * 1024


def serve(
    models: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_upload_mb: float = 16,
    max_megapixels: float = 16,
    queue: int = 32,
    batch: int = 4,
    batch_megapixels: float = 4,
    body_timeout: float = 60,
    per_client: int = 8,
    expose_details: bool = False,
    device: str = "cpu",
    threads: int | str = "auto",
    open_browser: bool = False,
    report: Callable[[str], None] = print,
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> None:
    """Serve ``models`` (checkpoints, run folders, exported artifacts; NAME=PATH names one) until
    interrupted. One-line SeglabError for a bad option, a model that cannot be loaded or an
    address that cannot be listened on. What bounds memory and each client's share is printed
    after the line naming the address (see :func:`limits_line`), then the threads: ``threads``
    ("auto": one per free core, engine.machine.choose_threads) are set before the models load,
    as ONNX Runtime takes its thread count when a session opens."""
    for flag, value in (
        ("--max-upload", max_upload_mb),
        ("--max-megapixels", max_megapixels),
        ("--batch-megapixels", batch_megapixels),
        ("--body-timeout", body_timeout),
    ):
        if not value > 0:
            raise SeglabError(f"serve: {flag} {value} must be a positive number")
    for flag, value in (("--queue", queue), ("--batch", batch), ("--per-client", per_client)):
        if value < 1:
            raise SeglabError(f"serve: {flag} {value} must be at least 1")
    if not 0 <= port <= 65535:
        raise SeglabError(f"serve: --port {port} must be between 0 and 65535")
    warning = exposure_warning(host)
    if warning:
        warn(f"seglab: warning: {warning}")
    sock = listen(host, port)
    try:
        # After the checks above: a bad flag answers before torch and the web stack load.
        from seglab.engine.machine import resolve_threads, torch_threads
        from seglab.serving.app import create_app
        from seglab.serving.models import load_models

        chosen = resolve_threads("serving", threads, accelerator=device != "cpu")
        with torch_threads(chosen.threads):  # put back when serving ends (serve from Python)
            served = load_models(models, device)
            app = create_app(
                served,
                max_upload=int(max_upload_mb * MB),
                max_pixels=int(max_megapixels * 1e6),
                queue_size=queue,
                batch=batch,
                batch_pixels=int(batch_megapixels * 1e6),
                body_timeout=body_timeout,
                per_client=per_client,
                expose_details=expose_details,
            )
            url = page_url(host, sock.getsockname()[1])
            names = ", ".join(f"{m.name} ({m.segmenter.kind})" for m in served)
            report(f"serving {names} at {url} (Ctrl+C stops)")
            report(
                limits_line(
                    max_upload_mb, max_megapixels, batch, batch_megapixels, queue, per_client,
                    body_timeout, expose_details,
                )
            )  # fmt: skip
            report(f"threads: {chosen.reason}")
            on_ready = (lambda: webbrowser.open(url)) if open_browser else None
            _uvicorn_server(_uvicorn_config(app, queue), on_ready).run(sockets=[sock])
    finally:
        sock.close()


def limits_line(
    max_upload_mb: float,
    max_megapixels: float,
    batch: int,
    batch_megapixels: float,
    queue: int,
    per_client: int,
    body_timeout: float,
    expose_details: bool = False,
) -> str:
    """The startup line saying what bounds the server's memory and each client's share."""
    from seglab.serving.app import DECODE_SLOTS, waiting_pixels  # the app imports torch

    largest = max(max_megapixels, batch_megapixels)
    waiting = waiting_pixels(int(max_megapixels * 1e6), int(batch_megapixels * 1e6)) / 1e6
    details = (
        "shows file paths and machine details (--expose-details)"
        if expose_details
        else "shows no file paths or machine details (--expose-details would)"
    )
    return (
        f"limits: uploads up to {max_upload_mb:g} MB and {max_megapixels:g} megapixels; "
        f"memory: one batch at a time, up to {batch} same-size images of {batch_megapixels:g} "
        f"megapixels in all (a larger image runs alone), so inference holds at most "
        f"{largest:g} megapixels; up to {queue} requests and {waiting:g} megapixels of decoded "
        f"images wait (503 beyond), {DECODE_SLOTS} decode at once; per client: "
        f"{per_client} requests at once (429 beyond), each body within {body_timeout:g} s "
        f"(408); GET /models {details}"
    )


def _uvicorn_config(app, queue: int):
    import uvicorn  # late, as in serve(): a bad flag answers before the web stack loads

    return uvicorn.Config(
        app,
        log_level="info",
        # uvicorn's own 503 beyond this many connections: a bound on memory even for requests
        # still uploading, before they reach the queue
        limit_concurrency=max(64, 4 * queue),
        timeout_graceful_shutdown=5,
        server_header=False,
    )


def _uvicorn_server(config, on_ready: Callable[[], object] | None):
    """uvicorn's server, calling ``on_ready`` once it accepts connections."""
    import uvicorn  # loaded by serve() before this runs; here for the class below

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started and on_ready is not None:
                on_ready()

    return Server(config)


def exposure_warning(host: str) -> str | None:
    """What to tell the user when ``host`` lets other machines in: None for loopback."""
    if host in ("localhost", ""):
        return None if host else _all_interfaces(host)
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:  # a host name: it may resolve to any interface
        return (
            f"--host {host} may be reachable from other machines; anyone who reaches it can use "
            "the models (there is no authentication)"
        )
    if address.is_loopback:
        return None
    if address.is_unspecified:
        return _all_interfaces(host)
    return (
        f"--host {host} is reachable from other machines; anyone who reaches it can use the "
        "models (there is no authentication)"
    )


def _all_interfaces(host: str) -> str:
    return (
        f"--host {host or 'all'} listens on all network interfaces: anyone who can reach this "
        "machine can use the models (there is no authentication); --host 127.0.0.1 keeps it local"
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port). One-line SeglabError when the
    address is in use or cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise SeglabError(f"serve: cannot listen on {host}:{port} ({first_line(err)})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        hint = "; choose another --port" if err.errno == errno.EADDRINUSE else ""
        raise SeglabError(
            f"serve: cannot listen on {host}:{port} ({first_line(err)}){hint}"
        ) from None
    sock.set_inheritable(True)
    return sock


def page_url(host: str, port: int) -> str:
    """The page's address for a browser on this machine."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/"
