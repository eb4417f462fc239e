"""r1cli: reproduce the DeepSeek-R1 recipe (arXiv 2501.12948) from one command-line toolkit.

Importing this package is cheap: torch, transformers and trl are imported only by the stage that needs them.
"""

__version__ = "0.1.0"
