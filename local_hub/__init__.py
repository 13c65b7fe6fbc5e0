"""A local server that speaks the Hugging Face Hub HTTP API.

Why: the pipeline publishes datasets, adapters and Spaces with the unchanged `huggingface_hub` and
`datasets` clients; pointing `HF_ENDPOINT` here makes that work offline, in tests and in CI.
Modules: `storage` (blobs + SQLite, commits), `auth` (tokens, permissions), `errors` (Hub-shaped error
answers), `app` (HTTP routes), `server` (uvicorn), `admin` (Python API used by the CLI).
Nothing here imports the ML libraries.
"""
