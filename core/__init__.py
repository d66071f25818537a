"""ResNet Explorer's core: pure Python, PyTorch and Captum; never imports the UI.

Importing any core module loads `core.plan`, which registers itself as the planner behind
`NetSpec.validate` (core.spec never imports core.plan, so the two form no cycle).
"""

from core import plan as _plan  # noqa: F401
