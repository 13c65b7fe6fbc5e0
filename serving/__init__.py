"""Serving exports: the trained adapter as a merged full-precision model (vLLM, TGI, transformers) or as a
GGUF file with an Ollama Modelfile (llama.cpp, Ollama), each checked against base + adapter."""
