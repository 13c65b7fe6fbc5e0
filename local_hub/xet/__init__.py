"""Xet storage for the local Hub: the CAS side of the Xet protocol (hub-docs `docs/xet/*.md`).

huggingface_hub 2.x uploads large files through Xet whenever `hf_xet` is installed; this package lets
it do so against the local Hub. The client cuts files into chunks, packs them into xorbs, uploads the
xorbs and one shard describing each file; the server verifies every hash and materializes each file
into the ordinary content-addressed blob store (by sha256), so the NDJSON commit (`lfsFile` by sha256)
and every download route stay exactly as they are for LFS.
"""
