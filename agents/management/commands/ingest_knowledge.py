"""Ingest a folder of documents into a group's knowledge, here and now, with a progress bar."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from agents import knowledge
from agents.knowledge.ingestion.extract import format_of
from agents.providers import ProviderError
from ontology.models import Group, User


class Command(BaseCommand):
    help = "Add every .txt/.md/.html/.pdf file under a folder to a group's knowledge and embed it."

    def add_arguments(self, parser):
        parser.add_argument("folder")
        parser.add_argument("--group", required=True, help="The group's slug.")
        parser.add_argument("--user", help="Username recorded as the uploader (audit trail).")
        parser.add_argument(
            "--queue", action="store_true", help="Leave the work to the Celery embeddings queue."
        )

    def handle(self, *args, folder, group, user=None, queue=False, **options):
        root = Path(folder)
        if not root.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        target = Group.objects.filter(slug=group).first()
        if target is None:
            raise CommandError(f"No group with the slug {group!r}.")
        actor = User.objects.filter(username=user).first() if user else None
        files = sorted(p for p in root.rglob("*") if p.is_file())
        added, existing, failed = [], 0, 0
        for path in files:
            if format_of(path.name) is None:
                self.stdout.write(f"skipped {path.relative_to(root)} (unsupported type)")
                continue
            upload = SimpleUploadedFile(path.name, path.read_bytes())
            try:
                ((source, created),) = knowledge.source_add_files(
                    group=target, files=[upload], actor=actor, queue=queue
                )
            except ValidationError as error:
                failed += 1
                self.stdout.write(f"refused {path.relative_to(root)}: {' '.join(error.messages)}")
                continue
            if created:
                added.append(source)
            else:
                existing += 1
        if not queue:
            failed += self._ingest(target, added)
        self.stdout.write(
            f"{len(added)} added, {existing} already there, {failed} failed"
            + (" (queued for the embeddings worker)" if queue else "")
        )

    def _ingest(self, group: Group, sources: list) -> int:
        chunked = []
        for source in tqdm(sources, desc="chunking", unit="file", file=self.stderr):
            chunked.append(knowledge.source_chunk(group=group, source_id=source.pk))
        total = sum(s.embed_total for s in chunked if s is not None and s.status == "embedding")
        failed = 0
        with tqdm(total=total, desc="embedding", unit="chunk", file=self.stderr) as bar:
            for source in chunked:
                if source is None or source.status == "failed":
                    self.stdout.write(f"failed {source.title}: {source.error}" if source else "")
                    failed += 1
                    continue
                try:
                    done = knowledge.source_process(
                        group=group, source_id=source.pk, on_progress=bar.update
                    )
                except ProviderError as error:
                    done = knowledge.source_fail(source=source, reason=error.message)
                if done is not None and done.status == "failed":
                    self.stdout.write(f"failed {done.title}: {done.error}")
                    failed += 1
        return failed
