#!/usr/bin/env python3
"""Generate images for a prompt file on a Ray cluster: ``argen.ray`` as a script.

    python examples/python/ray_generate.py --model fixtures/models/shapesworld \
        --prompts prompts.txt --out out/ --method sd --seeds 4 --workers 2

See ``python/argen/ray.py`` (``python -m argen.ray --help``) and docs/embedding.md.
"""

import sys

from argen.ray import main

if __name__ == "__main__":
    sys.exit(main())
