"""The gallery service (``omnireid serve``): FastAPI app, durable vector stores (SQLite + FAISS,
or Qdrant), API keys and request limits. docs/serve.md describes the API and its guarantees."""
