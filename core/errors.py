"""One family for every error a user can cause: what is wrong, where, and what to do.

Views catch `ExplainedError` alone and show its message; anything else is a bug, logged
on the server and shown as a short apology. No torch, no UI here.
"""

from __future__ import annotations


class ExplainedError(ValueError):
    """A refusal a teacher could read aloud.

    Args:
        problem: what is wrong, in the user's words ("the skip goes from 16x32x32 to ...").
        where: the place ("block 3", "the stem", "training settings"); None: nowhere in
            particular.
        fix: what to do instead ("choose the 'projection' shortcut"); None when the
            problem already says it.

    The message is "where: problem; fix", each part only when given.
    """

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None):
        self.problem = problem
        self.where = where
        self.fix = fix
        text = f"{where}: {problem}" if where else problem
        super().__init__(f"{text}; {fix}" if fix else text)
