"""The one way a `valleyctl` command prints (huggingface_hub's `cli/_output.py` shape).

Human mode writes lines, tables and `next:` hints to stdout. JSON mode (`--json`) writes only
the result document to stdout, so a script can parse it; progress lines then go to stderr.
Errors are not printed here: they are raised and `run_cli` prints them as one line.
rich loads only when a table or a progress display needs it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, Callable


class Output:
    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self._console = None

    @property
    def console(self):
        """The rich console for tables and progress (see valley.cli_kit.console for its width); in
        JSON mode it draws on stderr, out of the document's way."""
        if self._console is None:
            from valley.cli_kit import console

            self._console = console(stderr=self.as_json)
        return self._console

    def line(self, text: str = "") -> None:
        """A human line: progress or a result; in JSON mode on stderr, out of the document's way."""
        stream = sys.stderr if self.as_json else sys.stdout
        stream.write(f"{text}\n")
        stream.flush()

    def hint(self, command: str) -> None:
        """What to run next; human mode only."""
        if not self.as_json:
            self.line(f"next: {command}")

    def raw(self, text: str) -> None:
        """Text passed through as written (YAML, logs), flushed at once for `--follow`."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def table(self, renderable, *, width: int | None = None) -> None:
        """A rich table (or any renderable); `width` overrides the width when not at a terminal."""
        console = self.console
        if width is not None and not console.is_terminal:
            console.width = width
        console.print(renderable)

    def result(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """The command's result: JSON in JSON mode (dataclasses become dicts), else `human()`."""
        if self.as_json:
            document = json.dumps(to_jsonable(data), indent=2)
            sys.stdout.write(document + "\n")
            sys.stdout.flush()
        elif human is not None:
            human()


def to_jsonable(data: Any) -> Any:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return dataclasses.asdict(data)
    if isinstance(data, list):
        return [to_jsonable(item) for item in data]
    if isinstance(data, dict):  # e.g. a launch's {study: Comparison}
        return {key: to_jsonable(value) for key, value in data.items()}
    return data
