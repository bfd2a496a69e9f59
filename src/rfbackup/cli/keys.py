"""``rfbackup keys generate``: the Ed25519 keypair that signs manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rfbackup.cli.common import JsonOption, print_json

app = typer.Typer(help="Manifest signing keys.", no_args_is_help=True)


@app.command("generate")
def generate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Private key file to create (mode 0600); the public key goes to OUT.pub.",
        ),
    ] = Path("rfbackup-signing.key"),
    as_json: JsonOption = False,
) -> None:
    """Create a signing keypair. Never overwrites an existing key.

    Give the private key to the backup writer (RFBACKUP_SIGNING__KEY_FILE) and the public key to every host that restores (RFBACKUP_SIGNING__PUBLIC_KEYS).
    """  # noqa: E501
    from rfbackup.signing import generate as make_keys

    pub_path, public = make_keys(out)
    if as_json:
        print_json(
            {"private_key": str(out), "public_key_file": str(pub_path), "public_key": public}
        )
        return
    typer.echo(public)
    typer.echo(
        f"private key: {out} (0600; backup writer: RFBACKUP_SIGNING__KEY_FILE={out})\n"
        f"public key:  {pub_path} (restore hosts: RFBACKUP_SIGNING__PUBLIC_KEYS={public})",
        err=True,
    )
