"""One training loop for every trainer and every registered dataset (docs/train-iwildcam.md,
docs/train-imagenet-lt.md): ``config`` (the loop's settings), ``stage_data`` (which rows a stage trains on),
``data`` (images, batch order, sharded prediction), ``task`` (what a trainer adds), ``loop`` (the Trainer),
``outputs`` (summary, report, figures), ``cli`` (the training scripts' command line)."""
