"""What every API-calling command shares: a client from the environment, errors as messages."""

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dgpo.client import DEFAULT_API_URL, DgpoAPIError, DgpoClient, env_token

console = Console()
err_console = Console(stderr=True)


@contextmanager
def api_client() -> Iterator[DgpoClient]:
    """A client for DGPO_API_URL / DGPO_TOKEN; an API error ends the command with its detail."""
    try:
        with DgpoClient.from_env() as client:
            yield client
    except DgpoAPIError as exc:
        # The API's text is data, not markup: `pip install 'dgpo[data]'` keeps its `[data]`;
        # soft wrap leaves a command in it on one line, whole for copying.
        message = f"[red]error:[/red] {escape(str(exc))}{_hint(exc)}"
        err_console.print(message, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc


def _hint(exc: DgpoAPIError) -> str:
    """What to do next; a 401 is almost always a token made for another database."""
    if exc.status == 403:
        return "\n(this token's scope is too low for the command; `dgpo token create --help`)"
    if exc.status != 401:
        return ""
    url = os.environ.get("DGPO_API_URL", DEFAULT_API_URL)
    if not env_token():
        return (
            "\nno token: export the DGPO_TOKEN that `dgpo up` printed, or create one with "
            "`dgpo token create NAME --scope submit` using the API's DGPO_HOME"
        )
    return (
        f"\nthe API at {url} does not know this token. Tokens live in the API's database: "
        "run `dgpo token create NAME --scope submit` with the same DGPO_HOME as the `dgpo up` "
        f"serving {url} (it prints it), or the server's DGPO_DATABASE_URL"
    )


def print_warnings(warnings: list[str], to: Console = err_console) -> None:
    """The API's warnings about a submission, one line each."""
    for warning in warnings:
        to.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


def exit_invalid(path: Path, what: str, lines: list[str]) -> NoReturn:
    """Say why the file at `path` is not a valid `what`, line by line; exit 2."""
    console.print(f"[red]{path} is not a valid {what}:[/red]")
    for line in lines:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def print_json(payload: Any) -> None:
    console.print_json(json.dumps(payload, default=str))


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    title: str = "",
    keep: Sequence[str] = (),
) -> None:
    """Rows of dicts as a table; missing keys print empty, floats with 4 significant digits.

    Narrow terminals wrap cells instead of cutting them with `…`; the `keep` columns (ids
    people copy, labels) never wrap at all, so the others give way first. Cells are plain
    text: an API's `[data]` is not Rich markup.
    """
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    table = Table(title=title or None, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i, column in enumerate(columns):
        if column in keep:
            width = max([len(column), *(len(line[i]) for line in cells)])
            table.add_column(column, no_wrap=True, min_width=width)
        else:
            table.add_column(column, overflow="fold")
    for line in cells:
        table.add_row(*map(Text, line))
    console.print(table)


def minute(stamp: str | None) -> str:
    """`2026-12-01T09:17:04.123+00:00` -> `12-01 09:17` (UTC, as the API stores it)."""
    return stamp[5:16].replace("T", " ") if stamp else ""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)
