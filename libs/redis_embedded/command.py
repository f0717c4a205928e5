"""The ``redis-server`` command line for one private, non-persistent server.

Only flags that Redis 6.2 (the bundled binary) accepts are used, except in TLS mode,
which needs a binary built with TLS anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOOPBACK", "TlsFiles", "server_command"]

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS server: its certificate and key, and the CA that signed it."""

    cert_file: str
    key_file: str
    ca_cert_file: str


def server_command(
    binary: str,
    *,
    workdir: Path,
    port: int | None,
    unix_socket_path: Path | None,
    password: str | None,
    tls: TlsFiles | None,
) -> list[str]:
    """Arguments that run ``binary`` in ``workdir``; writes the config file it needs there.

    The server listens on ``unix_socket_path`` if given (TCP off), else on ``port``
    (TLS-only when ``tls`` is given).
    """
    command = [binary]
    if password is not None:
        # In a 0600 config file rather than argv, where `ps` would show it to anyone.
        config = workdir / "redis.conf"
        config.touch(mode=0o600)
        config.write_text(f'requirepass "{_config_escape(password)}"\n')
        command.append(str(config))
    command += [
        "--bind",
        LOOPBACK,
        "--port",
        str(0 if unix_socket_path is not None or tls else port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    if unix_socket_path is not None:
        command += ["--unixsocket", str(unix_socket_path), "--unixsocketperm", "700"]
    if tls is not None:
        command += [
            "--tls-port",
            str(port),
            "--tls-cert-file",
            tls.cert_file,
            "--tls-key-file",
            tls.key_file,
            "--tls-ca-cert-file",
            tls.ca_cert_file,
            "--tls-auth-clients",
            "no",
        ]
    return command


def _config_escape(value: str) -> str:
    # redis.conf double-quoted strings understand \xHH; escaping every byte that is not
    # plainly safe means no password can break out of the quotes.
    return "".join(
        chr(byte) if chr(byte).isalnum() and byte < 128 else f"\\x{byte:02x}"
        for byte in value.encode()
    )
