"""Knowledge: a group's documents, chunked, embedded and searched, in one place.

    services.py     adding, deleting, retrying and failing sources; the embedding model
    selectors.py    reading sources, chunks and indexes; searching as a tool does
    tasks.py        the Celery jobs (the `embeddings` queue)
    views.py, urls.py, forms.py, admin.py   the Knowledge pages and the admin
    ingestion/      extract.py (text from files), docx.py (Word), chunk.py (chunking),
                    fetch.py (URL sources), pipeline.py (chunk and embed a source)
    retrieval/      embedders.py, indexes.py (per-model HNSW), search.py (hybrid), spaces.py

The models stay in agents/models.py (their tables predate this package).
"""

from agents.knowledge.ingestion.pipeline import index_build, source_chunk, source_process
from agents.knowledge.retrieval.indexes import index_fail
from agents.knowledge.services import (
    check_files,
    embedding_indexes_sync,
    embedding_model_set,
    source_add_files,
    source_add_text,
    source_add_urls,
    source_delete,
    source_fail,
    source_retry,
)

__all__ = [
    "check_files",
    "embedding_indexes_sync",
    "embedding_model_set",
    "index_build",
    "index_fail",
    "source_add_files",
    "source_add_text",
    "source_add_urls",
    "source_chunk",
    "source_delete",
    "source_fail",
    "source_process",
    "source_retry",
]
