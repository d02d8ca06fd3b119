"""ui3d: text-to-3D and one-step distillation with Uni-Instruct guidance."""

__version__ = "0.1.0"
