"""`python -m pressmeter.collectors.ingest --config FILE`: the same as
`pressmeter ingest serve --config FILE`."""

from __future__ import annotations

import argparse
import sys

from pressmeter.collectors.ingest.config import load_config
from pressmeter.collectors.ingest.server import serve
from pressmeter.errors import PressmeterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pressmeter-ingest", description=__doc__)
    parser.add_argument("--config", required=True, help="the ingest service's TOML file")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    try:
        return serve(load_config(args.config), args.log_level)
    except PressmeterError as exc:
        print(f"pressmeter ingest: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
