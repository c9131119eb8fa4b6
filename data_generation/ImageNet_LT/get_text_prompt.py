"""Write N scene prompts per hard class to a JSON (class name -> list of prompts), resumably.

Backends: ``openai`` asks any OpenAI-compatible chat-completions endpoint (key only from the environment
variable OPENAI_API_KEY); ``template`` builds prompts offline from a template bank (deterministic, seeded).
Classes already complete in an existing ``--prompt-json`` are kept and not asked again. The classes come from a
hard-sample CSV of --dataset (default imagenet_lt; the request names each class by the dataset's text name)
or are given directly. See docs/hard-samples-and-prompts.md.

    python data_generation/ImageNet_LT/get_text_prompt.py --data-csv hard.csv --prompt-json prompts.json
    python data_generation/ImageNet_LT/get_text_prompt.py --classes goldfish "tree frog" \
        --prompt-json prompts.json --backend template
"""

from __future__ import annotations

from discl import prompts
from discl.cli import run_cli

DATASET = "imagenet_lt"


def main(argv=None, default_dataset: str | None = DATASET) -> int:
    """Build or resume the prompt JSON (see discl.prompts.main)."""
    return prompts.main(argv, default_dataset, __doc__)


if __name__ == "__main__":
    run_cli(main)
