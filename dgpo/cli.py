"""The `dgpo` command: one typer app composed of sub-apps (token, jobs, worker, ...)."""

import os
from pathlib import Path
from typing import Annotated

import typer

from dgpo.commands import demo, embedded, evals, jobs, schedules, studies, usage, workers
from dgpo.commands._api import err_console
from store.models import DEFAULT_PRINCIPAL, TokenScope
from workers.cli import beat_command, worker_command

app = typer.Typer(help="DGPO training service.", no_args_is_help=True)
app.add_typer(jobs.app, name="jobs")
app.add_typer(evals.app, name="evals")
app.add_typer(schedules.app, name="schedules")
app.add_typer(studies.app, name="studies")
app.add_typer(workers.app, name="workers")
app.command("up")(embedded.up)
app.command("demo")(demo.demo)
app.command("usage")(usage.usage)
token_app = typer.Typer(help="Create and revoke API tokens (writes the database).")
app.add_typer(token_app, name="token")
app.command("worker")(worker_command)
app.command("beat")(beat_command)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for")],
    scope: Annotated[TokenScope, typer.Option(help="read < submit < admin")] = TokenScope.READ,
    principal: Annotated[
        str,
        typer.Option(
            help="User or team the token acts for: it sees only that one's jobs "
            "and schedules (admin tokens see all)"
        ),
    ] = DEFAULT_PRINCIPAL,
) -> None:
    """Create a token and print it once; only its sha256 is stored.

    The token is written to the database this shell's settings name (DGPO_HOME's SQLite
    file, or DGPO_DATABASE_URL): only an API using that same database accepts it.
    """
    from sqlalchemy.engine import make_url

    from config.settings import get_settings
    from store.db import get_sessionmaker
    from store.tokens import create_token

    if not os.environ.get("DGPO_DATABASE_URL"):
        os.environ["DGPO_EMBEDDED"] = "1"  # no server database named: the one in DGPO_HOME
    settings = get_settings()
    sqlite_file = Path(settings.database_url.removeprefix("sqlite:///"))
    if settings.is_sqlite and not sqlite_file.is_file():
        err_console.print(
            f"[red]no DGPO database at {sqlite_file}[/red]: a token only works with the API "
            "whose database holds it. Set DGPO_HOME to the state directory `dgpo up` printed "
            "(or DGPO_DATABASE_URL to the server's database), or start `dgpo up` first."
        )
        raise typer.Exit(1)
    with get_sessionmaker()() as session:
        typer.echo(create_token(session, name, scope, principal))
    where = (
        f"DGPO_HOME={settings.home}"
        if settings.is_sqlite
        else make_url(settings.database_url).render_as_string(hide_password=True)
    )
    err_console.print(f"stored in {where}: APIs using this database accept it", highlight=False)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="Token name to revoke")]) -> None:
    """Revoke every live token with this name (API processes may trust it up to 5 s more)."""
    from store.db import get_sessionmaker
    from store.tokens import revoke_token

    with get_sessionmaker()() as session:
        count = revoke_token(session, name)
    typer.echo(f"revoked {count} token(s) named {name!r}")
    if not count:
        raise typer.Exit(1)
