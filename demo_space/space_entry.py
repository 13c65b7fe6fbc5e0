"""Entry point of the demo Space: `rag-de deploy demo` uploads this file as the repo's root `app.py`.

The Space runs `python app.py` from its repo root, where the project modules the app needs were
uploaded beside it (`demo_space/`, `dataset_builder/`, `rag_de/`); settings come from the Space's
variables and secrets (environment).
"""

from demo_space.app import main

if __name__ == "__main__":
    raise SystemExit(main())
