"""The spectrum generator (DisCL Phase 1, step 2): image-guided img2img over strengths × seeds, on any dataset.

Three parts: ``plan`` (pure: sources, shards, blocks, groups, rank shares, resume scan, manifest rows),
``backend`` (the img2img model behind a small interface; ``--backend``) and ``runner`` (loading, the loop, the
quality retry, atomic saves, manifests, ``torchrun`` ranks, ``main``); ``config`` holds the run settings.
Importing this package loads neither torch nor diffusers.
"""

from discl.generation.backend import (BACKENDS, DEFAULT_BACKEND, Img2ImgBackend, SDImg2ImgBackend,  # noqa: F401
                                      SDXLImg2ImgBackend, SDXLRefinerBackend, backend_class, load_backend)
from discl.generation.config import (DEFAULT_SEEDS, DEFAULT_STRENGTHS, GenerationConfig, RetryPolicy,  # noqa: F401
                                     denoising_steps, generation_parser, parse_resolution, parse_seeds,
                                     parse_strengths, retry_policy)
from discl.generation.plan import (Group, Plan, PromptSource, SourceImage, WorkItem, batches,  # noqa: F401
                                   build_manifest, failures_path, generator_seed, images_per_block,
                                   load_prompt_source, make_blocks, make_groups, make_plan, manifest_path,
                                   rank_share, read_retry_record, read_sources, retry_record_path, shard_classes,
                                   split_parts)
from discl.generation.runner import (Estimate, GenerationResult, Outcome, SpectrumGenerator,  # noqa: F401
                                     config_from_args, estimate, estimate_lines, get_args_parser, main, prepare, run,
                                     summary_line)
