"""Write N scene prompts per hard class to a JSON (class name -> list of prompts), resumably.

Backends: ``openai`` asks any OpenAI-compatible chat-completions endpoint (key only from the environment
variable OPENAI_API_KEY); ``template`` builds prompts offline from a template bank (deterministic, seeded).
Classes already complete in an existing ``--prompt_json`` are kept and not asked again. The classes come from a
hard-sample CSV of --dataset (default imagenet_lt; the request names each class by the dataset's text name)
or are given directly. See docs/hard-samples-and-prompts.md.

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
from discl.config import add_arguments, from_args
from discl.data.hard_sample_csv import read_hard_sample_csv
from discl.datasets import dataset_parser
from discl.datasets import from_args as dataset_from_args
from discl.errors import InputError
from discl.prompts import (API_KEY_ENV, DEFAULT_BASE_URL, MIN_USABLE, ChatClient, LLMError, PromptConfig,
                           build_prompt_json, llm_prompts_for_class, template_prompts_for_class)

DATASET = "imagenet_lt"


def get_args_parser(default_dataset: str | None = DATASET) -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     parents=[dataset_parser(required_root=False, default=default_dataset)])
    add_arguments(parser.add_argument_group("prompts"), PromptConfig)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv=None, default_dataset: str | None = DATASET) -> int:
    """Collect the classes, build or resume the prompt JSON, print a one-line summary."""
    args = get_args_parser(default_dataset).parse_args(argv)
    setup_logging(args.verbose)
    config = from_args(PromptConfig, args)
    if config.num_prompts < 1:
        raise InputError(None, f"--num-prompts must be >= 1, got {config.num_prompts}")
    if (config.data_csv is None) == (not config.classes):
        raise InputError(None, "give exactly one of --data_csv and --classes")
    text_of = str
    if config.data_csv:
        dataset = dataset_from_args(args)
        classes = sorted(read_hard_sample_csv(config.data_csv, dataset)["class_name"].unique())
        text_of = dataset.text_name  # ask for the readable name, store under the CSV's class name
    else:
        classes = list(config.classes)

    if config.backend == "template":
        backend = functools.partial(template_prompts_for_class, n=config.num_prompts, seed=config.seed,
                                    min_words=config.min_words)
    else:
        api_key = os.environ.get(API_KEY_ENV)
        if not api_key and config.base_url == DEFAULT_BASE_URL:
            raise InputError(None, f"set the environment variable {API_KEY_ENV} (the key is never read from a flag)")
        client = ChatClient(base_url=config.base_url, model=config.model, api_key=api_key,
                            temperature=config.temperature, timeout=config.timeout, max_retries=config.max_retries,
                            backoff=config.backoff)
        backend = functools.partial(llm_prompts_for_class, client, n=config.num_prompts, min_words=config.min_words,
                                    min_usable=min(MIN_USABLE, config.num_prompts))
    try:
        prompts = build_prompt_json(classes, config.prompt_json, lambda name: backend(text_of(name)),
                                    n=config.num_prompts, min_usable=min(MIN_USABLE, config.num_prompts))
    except LLMError as err:
        logging.getLogger(__name__).error("%s (finished classes are saved in %s)", err, config.prompt_json)
        return 1
    count = sum(len(prompts[c]) for c in classes)
    print(f"{len(classes)} classes, {count} prompts -> {config.prompt_json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
