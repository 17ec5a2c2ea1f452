"""Retrieval over your own documents (the RAG engine; docs/rag.md): an index of chunks
and their vectors on disk (store.py). In progress: ingestion, the `bosun rag` service,
the RAGEngine resource."""
