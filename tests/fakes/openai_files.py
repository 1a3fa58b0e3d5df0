"""A local fake of OpenAI's files and fine-tuning jobs endpoints that records every request.

`/v1/files` (multipart upload), `/v1/fine_tuning/jobs` (create, list) and `/v1/fine_tuning/jobs/{id}`
(retrieve; the job moves validating_files -> running -> succeeded on successive reads). Point the official client at
`fake.base_url`. `fake.requests` holds (method, path, headers with lower-case names, and the JSON body,
or {"fields", "filename", "file"} for uploads).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness.local_server import LocalServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, list[str]] = field(default_factory=dict)


class FakeOpenAIFiles(LocalServer):
    """Context manager: a threaded HTTP server on 127.0.0.1 with an ephemeral port."""

    _thread_name = "fake-openai-files"

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self._reads: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeOpenAIFiles is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def requests_to(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # -- behaviour ---------------------------------------------------------------------------------------------

    def _upload(self, fields: dict[str, str], filename: str, content: bytes) -> dict[str, Any]:
        file_id = f"file-{len(self.files) + 1:04d}"
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": fields.get("purpose", ""),
            "status": "processed",
        }
        self.files[file_id] = obj
        self.contents[file_id] = content
        return obj

    def _create_job(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for key in ("training_file", "validation_file"):
            if body.get(key) and body[key] not in self.files:
                return 400, {"error": {"message": f"invalid {key} {body[key]}", "type": "invalid_request_error"}}
        job_id = f"ftjob-{len(self.jobs) + 1:04d}"
        method = body.get("method") or {"type": "supervised"}
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "hyperparameters": {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"},
            "model": body.get("model"),
            "organization_id": "org-fake",
            "result_files": [],
            "seed": 42,
            "status": "validating_files",
            "trained_tokens": None,
            "training_file": body.get("training_file"),
            "validation_file": body.get("validation_file"),
            "method": method,
            "suffix": body.get("suffix"),
        }
        self.jobs[job_id] = job
        return 200, job

    def _advance(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        reads = self._reads.get(job_id, 0) + 1
        self._reads[job_id] = reads
        if reads == 1:
            job["status"] = "running"
        else:
            job["status"] = "succeeded"
            job["finished_at"] = int(time.time())
            job["trained_tokens"] = 1234
            job["fine_tuned_model"] = f"ft:{job['model']}:lore:{job.get('suffix') or 'x'}:{job_id[-4:]}"
        return job

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: Any) -> str:
                parts = urlsplit(self.path)
                with fake._lock:
                    fake.requests.append(
                        Recorded(
                            self.command,
                            parts.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            parse_qs(parts.query),
                        )
                    )
                return parts.path

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("multipart/form-data"):
                    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
                    fields: dict[str, str] = {}
                    filename, content = "", b""
                    for part in message.iter_parts():
                        name = part.get_param("name", header="content-disposition")
                        if part.get_filename():
                            filename, content = part.get_filename(), part.get_payload(decode=True)
                        else:
                            fields[str(name)] = part.get_payload(decode=True).decode()
                    path = self._record({"fields": fields, "filename": filename, "file": content})
                    if path == "/v1/files":
                        with fake._lock:
                            self._reply(200, fake._upload(fields, filename, content))
                        return
                else:
                    body = json.loads(raw or b"{}")
                    path = self._record(body)
                    if path == "/v1/fine_tuning/jobs":
                        with fake._lock:
                            status, payload = fake._create_job(body)
                        self._reply(status, payload)
                        return
                self._reply(404, {"error": {"message": f"no route {self.path}"}})

            def do_GET(self) -> None:
                path = self._record(None)
                with fake._lock:
                    if path == "/v1/fine_tuning/jobs":
                        data = sorted(fake.jobs.values(), key=lambda j: j["id"], reverse=True)
                        self._reply(200, {"object": "list", "data": data, "has_more": False})
                        return
                    if path.startswith("/v1/fine_tuning/jobs/"):
                        job_id = path.rsplit("/", 1)[1]
                        if job_id in fake.jobs:
                            self._reply(200, fake._advance(job_id))
                            return
                self._reply(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        return Handler


@pytest.fixture
def fake_openai_files() -> Iterator[FakeOpenAIFiles]:
    with FakeOpenAIFiles() as fake:
        yield fake
