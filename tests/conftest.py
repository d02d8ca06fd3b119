"""Suite-wide settings. One torch thread: on a 2-core machine with anything else busy, two torch
threads were measured 10–50× slower than one (thread spin-waits), and one is never much slower."""

import torch

torch.set_num_threads(1)
