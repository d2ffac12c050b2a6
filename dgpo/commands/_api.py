"""What every API-calling command shares: a client from the environment, errors as messages."""

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dgpo.client import DgpoAPIError, DgpoClient

console = Console()
err_console = Console(stderr=True)


@contextmanager
def api_client() -> Iterator[DgpoClient]:
    """A client for DGPO_API_URL / DGPO_TOKEN; an API error ends the command with its detail."""
    try:
        with DgpoClient.from_env() as client:
            yield client
    except DgpoAPIError as exc:
        hint = {
            401: " (set DGPO_TOKEN; create one with `dgpo token create NAME --scope submit`)",
            403: " (this token's scope is too low for the command)",
        }.get(exc.status, "")
        err_console.print(f"[red]error:[/red] {exc}{hint}", markup=True, highlight=False)
        raise typer.Exit(1) from exc


def print_json(payload: Any) -> None:
    console.print_json(json.dumps(payload, default=str))


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str = "") -> None:
    """Rows of dicts as a table; missing keys print empty, floats with 4 significant digits."""
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)
