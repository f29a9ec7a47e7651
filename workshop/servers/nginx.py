"""Debian's nginx in front of reference-server workers, started as this user with its own prefix
(no system service, nothing in /etc): the config is ``deploy/nginx.conf.template``.

    with Nginx([a.address, b.address]) as proxy:       # a free port on 127.0.0.1
        httpx.post(f"{proxy.url}/api/sessions", ...)

``buffering=True`` and ``http_version="1.0"`` restore nginx's defaults (``proxy_buffering on``,
``proxy_http_version 1.0``), to show what they do to streams; ``read_timeout_s`` is ``proxy_read_timeout``; ``http2=True`` serves HTTPS with HTTP/2 on a
throwaway self-signed certificate (``cert_path`` for clients that want to trust it);
``location`` replaces the directives of the template's ``location /`` block (lesson 12 and its
check put a learner's directives there: the rest of the config stays the template's).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from string import Template
from typing import NamedTuple

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf.template"
INSTALL_HINT = "install Debian's nginx (apt-get install nginx-light; .ci/run does)"
# proxy_read_timeout: longer than the server's first-event wait (10 s) and keep-alive interval
# (15 s), or nginx cuts a stream that is only quiet (tests/test_deploy_nginx.py checks it).
READ_TIMEOUT_S = 75


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway certificate and key for ``host`` (for local HTTP/2 only: browsers need TLS)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    alt = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


LOCATION_BLOCK = re.compile(r"(\n(\s*)location / \{\n)(.*?)(\n\2\}\n)", re.S)


def render(upstreams: list[tuple[str, int]], *, prefix: Path, listen: str, buffering: bool = False,
           http_version: str = "1.1", read_timeout_s: float = READ_TIMEOUT_S, tls: str = "",
           location: str | None = None) -> str:
    """The template filled in: only its own ``${UPPER_CASE}`` names (nginx's ``$host`` stays);
    ``location``: other directives for ``location /`` (the upstream is ``reference_server``)."""
    user = "user root;" if os.geteuid() == 0 else ""  # as root, workers would drop to nobody
    servers = "\n        ".join(f"server {host}:{port} max_fails=0;" for host, port in upstreams)
    values = dict(NGINX_PREFIX=str(prefix), LISTEN=listen, UPSTREAM_SERVERS=servers, USER_DIRECTIVE=user,
                  PROXY_BUFFERING="on" if buffering else "off", PROXY_HTTP_VERSION=http_version,
                  PROXY_READ_TIMEOUT=f"{max(1, round(read_timeout_s))}s", TLS=tls)
    text = "".join(line if line.lstrip().startswith("#") else Template(line).safe_substitute(values)
                   for line in TEMPLATE.read_text().splitlines(keepends=True))  # comments as they are
    if location is not None:
        def swap(match: re.Match) -> str:
            indent = match.group(2) + "    "
            body = "\n".join(indent + line.strip() for line in location.strip("\n").splitlines())
            return match.group(1) + body + match.group(4)
        text = LOCATION_BLOCK.sub(swap, text, count=1)
    return text


def location_first_line(config: str) -> int:
    """The line number (1-based) of the first directive inside ``location /`` in ``config``."""
    return config[:config.index("location / {")].count("\n") + 2


# A line of the access log (deploy/nginx.conf.template's log_format "upstream").
LOGGED = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d+) \d+ upstream=(?P<upstream>.*) time=')


class Logged(NamedTuple):
    """One request nginx logged: ``tried``, the workers it tried in order (``host:port``)."""

    method: str
    path: str
    status: int
    tried: tuple[str, ...]

    @property
    def worker(self) -> str:
        """The worker that answered: the last one nginx tried."""
        return self.tried[-1]


class Nginx:
    """nginx on ``host:port`` (0: a free one) proxying to ``upstreams`` round-robin."""

    def __init__(self, upstreams: list[tuple[str, int]], *, host: str = "127.0.0.1", port: int = 0,
                 buffering: bool = False, http_version: str = "1.1", read_timeout_s: float = READ_TIMEOUT_S,
                 http2: bool = False, location: str | None = None) -> None:
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError(f"nginx not found: {INSTALL_HINT}")
        self.binary = binary
        self.upstreams = list(upstreams)
        self.host, self.port = host, port
        self.buffering, self.http_version = buffering, http_version
        self.read_timeout_s, self.http2 = read_timeout_s, http2
        self.location = location
        self.prefix = Path(tempfile.mkdtemp(prefix="workshop-nginx-"))
        self.cert_path: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.http2 else 'http'}://{self.host}:{self.port}"

    def _write_config(self) -> Path:
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        tls = ""
        listen = f"{self.host}:{self.port}"
        if self.http2:
            if self.cert_path is None:
                self.cert_path, key = self_signed_certificate(self.prefix, self.host)
            listen += " ssl http2"  # nginx 1.22 (Debian 12) spells HTTP/2 on the listen line
            tls = (f"ssl_certificate {self.cert_path};\n        "
                   f"ssl_certificate_key {self.prefix / 'key.pem'};")
        conf = self.prefix / "nginx.conf"
        conf.write_text(render(self.upstreams, prefix=self.prefix, listen=listen,
                               buffering=self.buffering, http_version=self.http_version,
                               read_timeout_s=self.read_timeout_s, tls=tls, location=self.location))
        return conf

    def start(self, timeout: float = 15) -> Nginx:
        for _attempt in range(3):  # nginx binds the port itself: retry if another took it first
            if not self.port or _attempt:
                self.port = _free_port(self.host)
            conf = self._write_config()
            self.process = subprocess.Popen(
                [self.binary, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            atexit.register(self.stop)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.5):
                    return self
                time.sleep(0.02)
            err = self.process.stderr.read().decode(errors="replace") if self.process.poll() is not None else ""
            self.stop()
            if "Address already in use" not in err + self.log():
                raise RuntimeError(f"nginx did not start: {err}{self.log()}")
        raise RuntimeError("nginx: no free port after 3 tries")

    def logged(self, path_part: str, count: int = 1, timeout: float = 10) -> list[Logged]:
        """The requests whose path contains ``path_part``, in the order they ended, once
        ``count`` of them are logged (nginx writes a line when a response has ended: a test
        that reads at once may be early), or after ``timeout`` seconds with what there is."""
        deadline = time.monotonic() + timeout
        while True:
            log = (self.prefix / "access.log").read_text()
            found = [Logged(m["method"], m["path"], int(m["status"]), tuple(m["upstream"].split(", ")))
                     for m in LOGGED.finditer(log) if path_part in m["path"]]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 5) -> None:
        """SIGQUIT (graceful: open streams finish), then SIGKILL after ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        atexit.unregister(self.stop)
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)
