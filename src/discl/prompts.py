"""Prompts for image-guided generation: the paper's templates, prompt-list JSON, an LLM client, a template bank.

iWildCam prompts name the species' common English name; ImageNet-LT prompts wrap one of a class's
LLM-written scene descriptions. The LLM client speaks the OpenAI chat-completions protocol over
the standard library's ``urllib`` so no extra package is needed; the offline template bank builds similar
prompts with no network.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence


from discl.config import option
from discl.errors import InputError, decoding
from discl.fileio import atomic_write_json
from discl.progress import progress
from discl.seeding import derived_rng

log = logging.getLogger(__name__)

IWILDCAM_PROMPT_TEMPLATE = "a photo of {} in the wild"
IMAGENET_LT_PROMPT_TEMPLATE = "a 8k real photo: {}"

# The reference's request, with the class name filled in.
LLM_INSTRUCTION = (
    "Give me {n} different descriptions of random scenes that contain only the object \"{name}\" and no other "
    "object class. Each description must be at least {min_words} words long and will be used as a prompt to "
    "guide Stable Diffusion to generate a realistic photo. Write one description per line, with no extra text."
)
MIN_WORDS = 15
MAX_REQUEST_RETRIES = 20  # the delay doubles per retry: 2**20 s of backoff is already 12 days
MAX_SECONDS = 86400.0  # --timeout, --backoff: beyond a day the standard library's sleep and sockets overflow
MAX_TEMPERATURE = 2.0  # the chat-completions API's range
MIN_USABLE = 9  # the reference re-asks when fewer than 9 lines come back
API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def iwildcam_prompt(common_name: str) -> str:
    """The iWildCam generation prompt, ``a photo of {common name} in the wild``."""
    return IWILDCAM_PROMPT_TEMPLATE.format(common_name)


def imagenet_lt_prompt(description: str) -> str:
    """The ImageNet-LT generation prompt, ``a 8k real photo: {description}``."""
    return IMAGENET_LT_PROMPT_TEMPLATE.format(description)


def validate_prompt_dict(data: object, file: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Check that ``data`` maps class names to non-empty lists of non-empty strings; return a clean copy."""
    if not isinstance(data, dict):
        raise InputError(file, "expected a JSON object mapping class name -> list of prompts, "
                               f"got {type(data).__name__}")
    prompts: dict[str, list[str]] = {}
    for name, entries in data.items():
        if not isinstance(entries, list):
            raise InputError(file, f"class {name!r}: expected a list of prompts, got {type(entries).__name__}")
        if not entries:
            raise InputError(file, f"class {name!r}: the prompt list is empty")
        for index, entry in enumerate(entries):
            if not isinstance(entry, str) or not entry.strip():
                raise InputError(file, f"class {name!r}: prompt {index} is not a non-empty string: {entry!r}")
        prompts[str(name)] = [entry.strip() for entry in entries]
    return prompts


def load_prompt_json(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a prompt JSON (class name -> list of prompts) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "prompt JSON not found")
    try:
        with decoding(path):
            data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    return validate_prompt_dict(data, path)


def draw_prompt(prompts: dict[str, list[str]], class_name: str, seed: int, attempt: int = 0,
                source: str | os.PathLike | None = None) -> str:
    """The prompt of ``class_name`` for generation seed ``seed``; attempt k > 0 is the k-th quality retry.

    Each attempt's choice is seeded by ``stable_seed(class, seed, attempt)`` and avoids the prompts of the
    earlier attempts until the list is used up (then a new round starts), so retries really try other
    prompts. Returns the raw list entry; wrap it with ``imagenet_lt_prompt`` for the diffusion prompt.
    """
    if class_name not in prompts:
        raise InputError(source, f"class {class_name!r} has no entry in the prompt JSON")
    candidates = prompts[class_name]
    if not candidates:
        raise InputError(source, f"class {class_name!r}: the prompt list is empty")
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    picked: list[int] = []
    for step in range(attempt + 1):
        round_start = (step // len(candidates)) * len(candidates)
        used = set(picked[round_start:])
        pool = [i for i in range(len(candidates)) if i not in used]
        rng = derived_rng("discl-prompt", class_name, int(seed), step)
        picked.append(pool[int(rng.integers(len(pool)))])
    return candidates[picked[-1]]


# ---------------------------------------------------------------------------------------------------------
# Parsing LLM answers

_NUMBERING = re.compile(r"^\s*(?:\(?\d{1,3}[.):\]]|[-*•]|#\d+[.:)]?)\s*")
_QUOTES = "\"'“”‘’`"


def parse_prompt_lines(text: str, min_words: int = MIN_WORDS) -> list[str]:
    """Usable prompts from an LLM answer: one per line, numbering/bullets/quotes stripped, ≥ ``min_words`` words."""
    prompts: list[str] = []
    for line in text.splitlines():
        line = _NUMBERING.sub("", line.strip(), count=1).strip()
        # Strip quotes only when they wrap the line, so apostrophes inside survive.
        while len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
            line = line[1:-1].strip()
        if len(line.split()) >= min_words and line not in prompts:
            prompts.append(line)
    return prompts


# ---------------------------------------------------------------------------------------------------------
# The OpenAI-compatible chat-completions client


class LLMError(RuntimeError):
    """The chat endpoint kept failing after every retry."""


@dataclass
class ChatClient:
    """A minimal OpenAI-compatible ``/chat/completions`` client (standard library only).

    The API key is only placed in the ``Authorization`` header; it is never logged nor part of any message.
    """

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-3.5-turbo"
    api_key: str | None = field(default=None, repr=False)  # never shown in logs or reprs
    temperature: float = 1.0
    timeout: float = 60.0
    max_retries: int = 5
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep

    def complete(self, message: str) -> str:
        """Send one user message; return the assistant's text, retrying errors, 429 and 5xx with backoff."""
        url = self.base_url.rstrip("/") + "/chat/completions"
        body = json.dumps({"model": self.model, "temperature": self.temperature,
                           "messages": [{"role": "user", "content": message}]}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_problem = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning("chat request failed (%s); retry %d/%d in %.1f s", last_problem, attempt,
                            self.max_retries, delay)
                self.sleep(delay)
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                return payload["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as err:
                last_problem = f"HTTP {err.code}"
                if err.code != 429 and err.code < 500:
                    # 4xx other than 429 (bad key, bad model) will not fix itself: fail now.
                    raise LLMError(f"chat endpoint {url} answered HTTP {err.code}: {_error_text(err)}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last_problem = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            except (json.JSONDecodeError, KeyError, IndexError, TypeError):
                last_problem = "malformed response"
        raise LLMError(f"chat endpoint {url} failed {self.max_retries + 1} times (last: {last_problem})")


def _error_text(err: urllib.error.HTTPError) -> str:
    try:
        return err.read().decode("utf-8", "replace")[:200]
    except Exception:  # noqa: BLE001 - the body is only decoration for the message
        return ""


def llm_prompts_for_class(client: ChatClient, class_name: str, n: int = 10, min_words: int = MIN_WORDS,
                          min_usable: int = MIN_USABLE, max_asks: int = 5) -> list[str]:
    """Ask the chat model for ``n`` scene prompts of one class; re-ask while fewer than ``min_usable`` parse."""
    message = LLM_INSTRUCTION.format(n=n, name=class_name, min_words=min_words)
    collected: list[str] = []
    for ask in range(1, max_asks + 1):
        answer = parse_prompt_lines(client.complete(message), min_words)
        if len(answer) >= min_usable:
            return answer[:n]
        log.info("class %r: only %d usable prompt(s) in answer %d; asking again", class_name, len(answer), ask)
        collected.extend(p for p in answer if p not in collected)
        if len(collected) >= n:
            return collected[:n]
    raise LLMError(f"class {class_name!r}: fewer than {min_usable} usable prompts after {max_asks} requests")


# ---------------------------------------------------------------------------------------------------------
# The offline template bank

_SUBJECT = [
    "a single {name}", "one {name}", "a lone {name}", "a close-up view of the {name}", "a detailed {name}",
    "one {name} seen from the side", "one {name} photographed from above", "a clearly visible {name}",
]
_SETTING = [
    "resting on a weathered wooden table in a quiet farmhouse kitchen",
    "standing in the middle of an empty sunlit meadow",
    "placed on a plain concrete floor inside a bright minimalist studio",
    "in a misty forest clearing surrounded by tall pine trees",
    "on a sandy beach near calm turquoise water",
    "against a clean white background in a professional photo studio",
    "on a snowy mountain path under a pale winter sky",
    "in an empty city street after a summer rain shower",
    "on a stone ledge in an old abandoned courtyard",
    "on a grassy hill overlooking a wide valley",
    "inside a dim room lit by a single window",
    "on a rocky riverbank beside slowly flowing water",
]
_LIGHT = [
    "in soft golden hour light", "in bright midday sun", "in diffuse overcast daylight",
    "lit by warm evening light", "in cool morning light with long shadows", "in soft natural light",
]
_STYLE = [
    "captured with a sharp high resolution camera and natural colors",
    "in a realistic photograph with fine texture and shallow depth of field",
    "shown in crisp focus with rich detail and true to life colors",
    "photographed in a natural documentary style with no other objects in view",
    "in a highly detailed realistic photo with a calm uncluttered composition",
]


def template_prompts_for_class(class_name: str, n: int = 10, seed: int = 0, min_words: int = MIN_WORDS) -> list[str]:
    """``n`` distinct scene prompts for one class from the offline template bank (deterministic per class and seed)."""
    limit = template_bank_size(class_name, min_words, seed)
    if n > limit:
        raise ValueError(f"the template bank makes at most {limit} prompts of >= {min_words} words for "
                         f"{class_name!r}, asked for {n}")
    rng = derived_rng("discl-template-bank", class_name, int(seed))
    prompts: list[str] = []
    # Walk a random permutation of settings so consecutive prompts show different scenes.
    settings = rng.permutation(len(_SETTING))
    while len(prompts) < n:
        setting = _SETTING[settings[len(prompts) % len(settings)]]
        prompt = " ".join([
            _SUBJECT[rng.integers(len(_SUBJECT))].format(name=class_name), setting,
            _LIGHT[rng.integers(len(_LIGHT))] + ",", _STYLE[rng.integers(len(_STYLE))],
        ])
        prompt = prompt[0].upper() + prompt[1:] + "."
        if prompt not in prompts and len(prompt.split()) >= min_words:
            prompts.append(prompt)
    return prompts


def template_bank_size(class_name: str, min_words: int = MIN_WORDS, seed: int = 0) -> int:
    """How many prompts ``template_prompts_for_class`` can make for this class: prompt k takes the (k mod 12)-th
    setting of the class's permutation, so it stops at the first setting whose combinations of at least
    ``min_words`` words are used up (0 when no combination is that long)."""
    words = lambda text: len(text.split())  # noqa: E731
    settings = derived_rng("discl-template-bank", class_name, int(seed)).permutation(len(_SETTING))
    others = [words(subject.format(name=class_name)) + words(light + ",") + words(style)
              for subject in _SUBJECT for light in _LIGHT for style in _STYLE]
    usable = [sum(count + words(_SETTING[s]) >= min_words for count in others) for s in settings]
    return min(count * len(_SETTING) + position for position, count in enumerate(usable))


# ---------------------------------------------------------------------------------------------------------
# Building a prompt JSON for many classes, with resume


def build_prompt_json(classes: Sequence[str], output: str | os.PathLike,
                      make_prompts: Callable[[str], list[str]], n: int = 10,
                      min_usable: int = MIN_USABLE) -> dict[str, list[str]]:
    """Fill ``output`` with prompts per class, keeping complete classes already there; save after each class."""
    output = Path(output)
    prompts: dict[str, list[str]] = {}
    if output.exists():
        prompts = load_prompt_json(output)
    done = {name for name, entries in prompts.items() if len(entries) >= min(n, min_usable)}
    todo = [name for name in _unique(classes) if name not in done]
    if done:
        log.info("%s: %d class(es) already complete, %d to do", output, len(done & set(classes)), len(todo))
    for name in progress(todo, desc="prompts", unit="class"):
        prompts[name] = make_prompts(name)
        atomic_write_json(output, prompts)
    if not todo and not output.exists():
        atomic_write_json(output, prompts)
    return prompts


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------------------------------------------
# The flags of get_text_prompt.py


@dataclass
class PromptConfig:
    """Where the classes come from, where the prompts go, and how they are made."""

    data_csv: str | None = option(None, "hard-sample CSV of --dataset; its class-name column names the classes "
                                        "(give this or --classes)", aliases=("--data_csv",))
    classes: list[str] | None = option(None, "class names given directly (instead of --data-csv)")
    prompt_json: str = option("", "output JSON, class name -> prompts (resumed if it exists)",
                              aliases=("--prompt_json",), required=True)
    backend: str = option("openai", "openai: a chat-completions endpoint (key from OPENAI_API_KEY); template: the "
                                    "offline template bank", choices=("openai", "template"))
    base_url: str = option(DEFAULT_BASE_URL, "OpenAI-compatible API root (…/v1)")
    llm_model: str = option("gpt-3.5-turbo", "chat model name", paper="gpt-3.5-turbo")
    num_prompts: int = option(10, "prompts per class", paper="10")
    min_words: int = option(MIN_WORDS, "shorter lines are discarded", paper="15")
    temperature: float = option(1.0, "sampling temperature of the chat model")
    request_retries: int = option(5, "retries of one HTTP request on errors / 429 / 5xx")
    backoff: float = option(1.0, "first retry delay in s (doubles each retry)")
    timeout: float = option(60.0, "seconds per HTTP request")
    seed: int = option(0, "seed of the template backend")

    def check(self) -> None:
        """Values the parser cannot check alone (``InputError`` naming the flag)."""
        from discl.generation.config import SEED_LIMIT, check_inputs_kept, check_number

        if (self.data_csv is None) == (not self.classes):
            raise InputError("--data-csv", "give exactly one of --data-csv and --classes")
        for name in self.classes or ():
            if not name.strip():
                raise InputError("--classes", f"empty class name {name!r}")
        repeated = next((name for i, name in enumerate(self.classes or ()) if name in self.classes[:i]), None)
        if repeated is not None:
            raise InputError("--classes", f"class {repeated!r} is given twice")
        for flag, value, low, high in (
                ("--num-prompts", self.num_prompts, 1, None), ("--min-words", self.min_words, 1, None),
                ("--request-retries", self.request_retries, 0, MAX_REQUEST_RETRIES),
                ("--backoff", self.backoff, 0, MAX_SECONDS), ("--temperature", self.temperature, 0, MAX_TEMPERATURE),
                ("--seed", self.seed, 0, SEED_LIMIT - 1)):
            check_number(flag, value, low, high)
        check_number("--timeout", self.timeout, 0, MAX_SECONDS, low_open=True)
        if Path(self.prompt_json).is_dir():
            raise InputError(self.prompt_json, "--prompt-json is a folder; name the JSON file to write")
        check_inputs_kept([("--prompt-json", self.prompt_json)], [("--data-csv", self.data_csv)])


def check_template_bank(classes: Sequence[str], text_of: Callable[[str], str], config: PromptConfig) -> None:
    """Every class gets ``--num-prompts`` template-bank prompts of ``--min-words`` words (checked before any is
    made: the bank is finite)."""
    for name in classes:
        size = template_bank_size(text_of(name), config.min_words, config.seed)
        if size == 0:
            raise InputError("--min-words", f"no template-bank prompt for class {name!r} has {config.min_words} "
                                            "words or more")
        if config.num_prompts > size:
            raise InputError("--num-prompts", f"the template bank makes at most {size} prompts of >= "
                                              f"{config.min_words} words for class {name!r}, asked for "
                                              f"{config.num_prompts}")


# ---------------------------------------------------------------------------------------------------------
# The step (data_generation/ImageNet_LT/get_text_prompt.py, discl-prompts)


def get_args_parser(default_dataset: str | None = "imagenet_lt", description: str | None = None):
    """The command-line flags: the dataset flags, then ``PromptConfig``'s."""
    import argparse

    from discl.config import add_arguments
    from discl.datasets import dataset_parser

    parser = argparse.ArgumentParser(description=(description or __doc__).split("\n\n")[0],
                                     parents=[dataset_parser(required_root=False, default=default_dataset)])
    add_arguments(parser.add_argument_group("prompts"), PromptConfig)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None, default_dataset: str | None = "imagenet_lt",
         description: str | None = None) -> int:
    """Collect the classes, build or resume the prompt JSON, print a one-line summary; 1 if the LLM failed."""
    import functools

    from discl.cli import setup_logging
    from discl.config import from_args
    from discl.data.hard_sample_csv import read_hard_sample_csv
    from discl.datasets import from_args as dataset_from_args
    from discl.runrecord import RunRecord, start

    args = get_args_parser(default_dataset, description).parse_args(argv)
    setup_logging(args.verbose)
    config = from_args(PromptConfig, args)
    config.check()
    text_of = str
    if config.data_csv:
        dataset = dataset_from_args(args)
        classes = sorted(read_hard_sample_csv(config.data_csv, dataset)["class_name"].unique())
        text_of = dataset.text_name  # ask for the readable name, store under the CSV's class name
    else:
        classes = list(config.classes)

    if config.backend == "template":
        check_template_bank(classes, text_of, config)
        backend = functools.partial(template_prompts_for_class, n=config.num_prompts, seed=config.seed,
                                    min_words=config.min_words)
    else:
        api_key = os.environ.get(API_KEY_ENV)
        if not api_key and config.base_url == DEFAULT_BASE_URL:
            raise InputError(None, f"set the environment variable {API_KEY_ENV} (the key is never read from a flag)")
        client = ChatClient(base_url=config.base_url, model=config.llm_model, api_key=api_key,
                            temperature=config.temperature, timeout=config.timeout,
                            max_retries=config.request_retries, backoff=config.backoff)
        backend = functools.partial(llm_prompts_for_class, client, n=config.num_prompts, min_words=config.min_words,
                                    min_usable=min(MIN_USABLE, config.num_prompts))
    if Path(config.prompt_json).exists():
        load_prompt_json(config.prompt_json)  # a damaged JSON to resume is bad input: say so before writing
    with RunRecord("get_text_prompt", argv):
        start(Path(config.prompt_json).resolve().parent, {**vars(config), "dataset": args.dataset})
        try:
            prompts = build_prompt_json(classes, config.prompt_json, lambda name: backend(text_of(name)),
                                        n=config.num_prompts, min_usable=min(MIN_USABLE, config.num_prompts))
        except LLMError as err:
            log.error("%s (finished classes are saved in %s)", err, config.prompt_json)
            return 1
    count = sum(len(prompts[c]) for c in classes)
    print(f"{len(classes)} classes, {count} prompts -> {config.prompt_json}")
    return 0
