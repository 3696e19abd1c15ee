"""Generated tasks with exact verifiers (shared by Modules 01 and 02).

- ``ArithmeticTask``: ``"37+85="`` → ``"122"``;
- ``CountdownTask``: reach a target from 3 numbers (safe parser, no ``eval``);
- ``GSM8KTask``: GSM8K answer extraction + reward; ``load_gsm8k`` (full) / ``synthetic_gsm8k`` (toy).
"""
from hdai_lessons.tasks.arithmetic import ArithmeticTask, parse_integer
from hdai_lessons.tasks.base import Problem, Task, rewards_for, split_problems
from hdai_lessons.tasks.countdown import CountdownTask, ParseError, evaluate_expression, extract_answer
from hdai_lessons.tasks.gsm8k import GSM8KTask, extract_gsm8k_answer, load_gsm8k, normalize_number, problem_from_record, synthetic_gsm8k

__all__ = ["ArithmeticTask", "CountdownTask", "GSM8KTask", "ParseError", "Problem", "Task",
           "evaluate_expression", "extract_answer", "extract_gsm8k_answer", "load_gsm8k", "normalize_number",
           "parse_integer", "problem_from_record", "rewards_for", "split_problems", "synthetic_gsm8k"]
