"""One-step generators."""

from .mlp import MLPGenerator
