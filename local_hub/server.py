"""Run the local Hub with uvicorn (one process; SQLite serializes writers, the thread pool does the I/O)."""

from __future__ import annotations

import sys

from local_hub.settings import LocalHubConfig


def serve(data_dir: str, host: str = "127.0.0.1", port: int = 8080, log_level: str = "warning",
          config: LocalHubConfig | None = None) -> None:
    import uvicorn

    from local_hub.app import create_app

    app = create_app(data_dir, config)
    # Only the address goes to the log, never a token: the token is in DATA_DIR/token (mode 600).
    print(f"local hub serving {data_dir} on http://{host}:{port} "
          f"(export HF_ENDPOINT=http://{host}:{port} HF_TOKEN=$(cat {data_dir}/token))", file=sys.stderr, flush=True)
    # uvicorn's access log prints request lines only (no headers), so Authorization never reaches it.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                timeout_keep_alive=30)
