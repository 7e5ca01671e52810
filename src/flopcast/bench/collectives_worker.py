"""A worker process of `bench --collectives --nproc N` (``python -m flopcast.bench.collectives_worker``).

Arguments: ``CONFIG.json RANK WORLD PORT DIR``. The worker joins ``tcp://127.0.0.1:PORT`` as ``RANK`` of
``WORLD`` and runs :func:`flopcast.bench.collectives_run.run_rank`. Rank 0 writes its progress to
``DIR/progress`` (``done total label``, one line, replaced atomically) and the gathered result to
``DIR/result.json`` (atomically, only after success). A failure is one line on stderr and exit 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    from flopcast.bench.collectives import CollectivesConfig
    from flopcast.bench.collectives_run import run_rank
    from flopcast.errors import FlopcastError

    config_file, rank, world, port, folder = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), Path(argv[4])
    config = CollectivesConfig.from_dict(json.loads(Path(config_file).read_text(encoding="utf-8")))

    def progress(label: str, done: int, total: int) -> None:
        _replace(folder / "progress", f"{done} {total} {label}\n")

    try:
        result = run_rank(
            config, rank=rank, world=world, init_method=f"tcp://127.0.0.1:{port}",
            progress=progress if rank == 0 else None,
        )  # fmt: skip
    except FlopcastError as exc:
        sys.stderr.write(exc.one_line() + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    if rank == 0:
        _replace(folder / "result.json", json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
