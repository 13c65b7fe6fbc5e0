"""A local server that speaks the Hugging Face Hub HTTP API.

Why: the pipeline publishes datasets, adapters and Spaces with the unchanged `huggingface_hub` and
`datasets` clients; pointing `HF_ENDPOINT` here makes that work offline, in tests and in CI.
Modules: `storage/` (blobs, users and tokens, repos, commits, Space settings over SQLite), `auth`
(permissions), `errors` (Hub-shaped error answers), `context` (per-request plumbing), `shapes` (JSON
answers), `repo_routes`, `tree_routes`, `listing_routes`, `discussion_routes` (PRs), `maintenance_routes`
(squash, duplicate, LFS files), `space_routes`, `uploads` (HTTP handlers by job), `app` (the route
table), `server` (uvicorn), `admin` (Python API used by the CLI).
Nothing here imports the ML libraries (`rag_de.atomic`, the one atomic-write helper, is stdlib only).
"""
