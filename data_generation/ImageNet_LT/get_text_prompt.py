"""Write N scene prompts per hard ImageNet-LT class to a JSON (class name -> list of prompts), resumably.

Backends: ``openai`` asks any OpenAI-compatible chat-completions endpoint (key only from the environment
variable OPENAI_API_KEY); ``template`` builds prompts offline from a template bank (deterministic, seeded).
Classes already complete in an existing ``--prompt_json`` are kept and not asked again.

    python data_generation/ImageNet_LT/get_text_prompt.py --data_csv hard.csv --prompt_json prompts.json
    python data_generation/ImageNet_LT/get_text_prompt.py --classes goldfish "tree frog" \
        --prompt_json prompts.json --backend template
"""

from __future__ import annotations

import argparse
import functools
import logging
import os

from discl.cli import run_cli, setup_logging
from discl.data.hard_sample_csv import read_hard_sample_csv
from discl.errors import InputError
from discl.prompts import (MIN_USABLE, MIN_WORDS, ChatClient, LLMError, build_prompt_json, llm_prompts_for_class,
                           template_prompts_for_class)

API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def get_args_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data_csv", help="ImageNet-LT hard-sample CSV; its 'classname' column names the classes")
    source.add_argument("--classes", nargs="+", help="class names given directly")
    parser.add_argument("--prompt_json", required=True, help="output JSON (resumed if it exists)")
    parser.add_argument("--backend", choices=("openai", "template"), default="openai")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="OpenAI-compatible API root (…/v1)")
    parser.add_argument("--model", default="gpt-3.5-turbo", help="chat model name")
    parser.add_argument("--num-prompts", type=int, default=10, help="prompts per class")
    parser.add_argument("--min-words", type=int, default=MIN_WORDS, help="shorter lines are discarded")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-retries", type=int, default=5, help="retries per request on errors/429/5xx")
    parser.add_argument("--backoff", type=float, default=1.0, help="first retry delay in s (doubles each retry)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request")
    parser.add_argument("--seed", type=int, default=0, help="seed of the template backend")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv=None) -> int:
    """Collect the classes, build or resume the prompt JSON, print a one-line summary."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.num_prompts < 1:
        raise InputError(None, f"--num-prompts must be >= 1, got {args.num_prompts}")
    if args.data_csv:
        classes = sorted(read_hard_sample_csv(args.data_csv, "imagenet_lt")["class_name"].unique())
    else:
        classes = list(args.classes)

    if args.backend == "template":
        make = functools.partial(template_prompts_for_class, n=args.num_prompts, seed=args.seed,
                                 min_words=args.min_words)
    else:
        api_key = os.environ.get(API_KEY_ENV)
        if not api_key and args.base_url == DEFAULT_BASE_URL:
            raise InputError(None, f"set the environment variable {API_KEY_ENV} (the key is never read from a flag)")
        client = ChatClient(base_url=args.base_url, model=args.model, api_key=api_key,
                            temperature=args.temperature, timeout=args.timeout, max_retries=args.max_retries,
                            backoff=args.backoff)
        make = functools.partial(llm_prompts_for_class, client, n=args.num_prompts, min_words=args.min_words,
                                 min_usable=min(MIN_USABLE, args.num_prompts))
    try:
        prompts = build_prompt_json(classes, args.prompt_json, make, n=args.num_prompts,
                                    min_usable=min(MIN_USABLE, args.num_prompts))
    except LLMError as err:
        logging.getLogger(__name__).error("%s (finished classes are saved in %s)", err, args.prompt_json)
        return 1
    count = sum(len(prompts[c]) for c in classes)
    print(f"{len(classes)} classes, {count} prompts -> {args.prompt_json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
